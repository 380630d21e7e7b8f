//! The `kiln` binary: parse the command line, run one command, exit with its code.

use clap::Parser;

use kiln::cli::{Cli, Command};
use kiln::exit;

fn main() {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let result: anyhow::Result<i32> = match cli.command {
        Command::Burnin(args) => kiln::cmd::burnin::burnin(args),
        Command::Inspect(_) | Command::Capture(_) | Command::Validate(_) | Command::Report(_) | Command::Spec(_) => {
            Err(anyhow::anyhow!("not built yet"))
        }
    };
    match result {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("kiln: error: {e:#}");
            std::process::exit(exit::INTERNAL)
        }
    }
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("KILN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}
