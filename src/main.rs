//! The `kiln` binary: parse the command line, run one command, exit with its code.

use clap::Parser;

use kiln::cli::{Cli, Command};
use kiln::exit;

fn main() {
    let cli = Cli::parse();
    kiln::logging::init(cli.verbose);
    let result: anyhow::Result<i32> = match cli.command {
        Command::Inspect(args) => kiln::cmd::inspect::run(&args),
        Command::Capture(args) => kiln::cmd::capture::run(&args),
        Command::Report(args) => kiln::cmd::report::run(&args),
        Command::Node(command) => kiln::cmd::node_state::run(&command),
        Command::Validate(args) => kiln::cmd::validate::run(&args),
        Command::Spec(command) => kiln::cmd::spec::run(&command),
        Command::BenchRecord(args) => kiln::cmd::bench_record::run(&args),
        Command::Bmc(args) => kiln::cmd::bmc::run(args),
        Command::Rack(cmd) => kiln::cmd::rack::run(cmd),
        Command::Burnin(args) => kiln::cmd::burnin::burnin(args),
        Command::Healthcheck(args) => kiln::cmd::healthcheck::run(&args),
        Command::Image(command) => kiln::cmd::image::run(&command),
        Command::Agent(args) => kiln::cmd::agent::run(&args),
    };
    match result {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("kiln: error: {e:#}");
            std::process::exit(exit::INTERNAL)
        }
    }
}
