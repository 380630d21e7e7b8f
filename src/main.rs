//! The `kiln` binary: parse the command line, run one command, exit with its code.

use std::io::Write;

use clap::Parser;

use kiln::cli::{Cli, Command};
use kiln::cmd::{CmdResult, Outcome};
use kiln::notice::Stderr;

fn main() {
    let cli = Cli::parse();
    kiln::logging::init(cli.verbose);
    let notices = Stderr::new();
    let result: CmdResult = match cli.command {
        Command::Inspect(args) => kiln::cmd::inspect::run(&args),
        Command::Capture(args) => kiln::cmd::capture::run(&args),
        Command::Report(args) => kiln::cmd::report::run(&args),
        Command::Node(command) => kiln::cmd::node_state::run(&command),
        Command::Inventory(command) => kiln::cmd::inventory::run(&command),
        Command::Validate(args) => kiln::cmd::validate::run(&args),
        Command::Spec(command) => kiln::cmd::spec::run(&command),
        Command::BenchRecord(args) => kiln::cmd::bench_record::run(&args),
        Command::Bmc(args) => kiln::cmd::bmc::run(args, &notices),
        Command::Rack(cmd) => kiln::cmd::rack::run(cmd, &notices),
        Command::Burnin(args) => kiln::cmd::burnin::burnin(args, &notices),
        Command::Healthcheck(args) => kiln::cmd::healthcheck::run(&args),
        Command::Image(command) => kiln::cmd::image::run(&command, &notices),
        Command::Agent(args) => kiln::cmd::agent::run(&args),
        Command::NcclRank(args) => kiln::cmd::nccl_rank::run(&args),
    };
    let outcome = Outcome::from(result);
    // The one place a command's error reaches the user.
    let report = outcome.report();
    if !report.is_empty() {
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(kiln::terminal::text(&report).as_bytes()).and_then(|()| err.flush());
    }
    std::process::exit(outcome.code())
}
