//! `kiln rack ...`: load the manifest, fan the node command out over SSH, print the table or JSON.

use std::collections::BTreeSet;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::Context;

use crate::cli::{RackCommand, RackRunArgs, RackTrustArgs};
use crate::exit;
use crate::fleet::{
    run_rack_step, summary_table, trust_nodes, FanoutOptions, Phase, Plan, RackStep, RemoteBinary, SshConnector, Step,
    TrustOptions, TrustResult,
};
use crate::inventory::{db_path, Inventory};
use crate::rack::RackManifest;

pub fn run(cmd: RackCommand) -> anyhow::Result<i32> {
    match cmd {
        RackCommand::Inspect(a) => step(&a, Step::Inspect),
        RackCommand::Validate(a) => step(&a, Step::Validate),
        RackCommand::Burnin(a) => step(&a, Step::Burnin),
        RackCommand::Status(a) => step(&a, Step::Status),
        RackCommand::Trust(a) => trust(&a),
        RackCommand::Handoff(a) => crate::cmd::handoff::run(&a),
        RackCommand::Image(a) => crate::cmd::rack_image::run(&a),
    }
}

/// Loads the rack manifest at `path` and checks that every name in `nodes`
/// is one of its nodes. A bad manifest is printed and gives `exit::BAD_INPUT`,
/// an unknown node `exit::USAGE`.
pub fn load(path: &std::path::Path, nodes: &[String]) -> Result<RackManifest, i32> {
    let manifest = RackManifest::load(path).map_err(|e| {
        eprintln!("kiln: error: {e}");
        exit::BAD_INPUT
    })?;
    if let Err(e) = manifest.select(nodes) {
        eprintln!("kiln: error: {e}");
        return Err(exit::USAGE);
    }
    Ok(manifest)
}

/// Runs one step over the rack, records it in the inventory (`--db`, default
/// `inventory/kiln.db`; `status` records nothing) and prints the outcome;
/// returns the exit code.
pub fn step(args: &RackRunArgs, step: Step) -> anyhow::Result<i32> {
    let manifest = match load(&args.rack, &args.nodes) {
        Ok(m) => m,
        Err(code) => return Ok(code),
    };
    // `load` checked every name.
    let nodes = manifest.select(&args.nodes)?;
    // The database is opened before any node is touched: a run that could
    // not be recorded is refused rather than done and forgotten.
    let db = db_path(args.db.db.as_deref());
    let mut inventory = if step == Step::Status {
        None
    } else {
        match Inventory::open(&db) {
            Ok(inv) => Some(inv),
            Err(e) => {
                eprintln!("kiln: error: {:#}", anyhow::Error::from(e));
                return Ok(exit::DATABASE);
            }
        }
    };
    let binary = match (&args.node_binary, &args.dist) {
        (None, Some(dir)) => RemoteBinary::from_dist(dir, &args.remote_path),
        (file, _) => RemoteBinary::new(file.as_deref(), &args.remote_path),
    };
    let binary = match binary {
        Ok(b) => b,
        Err(e) => {
            eprintln!("kiln: error: {}", crate::error::chain(&e));
            return Ok(exit::BAD_INPUT);
        }
    };
    let opts = FanoutOptions {
        parallel: args.parallel.max(1),
        command_timeout: Duration::from_secs(args.timeout.max(1)),
        binary,
    };
    let connector = SshConnector {
        credentials: manifest.credentials.clone(),
        connect_timeout: Duration::from_secs(args.connect_timeout.max(1)),
    };
    let plan = Plan::for_step(step, &args.node_args);
    let rack_step = RackStep {
        rack: &manifest.rack.id,
        rack_platform: manifest.rack.platform.as_deref(),
        nodes: &nodes,
        plan: &plan,
        opts: &opts,
        force: args.force,
    };
    let progress = TerminalProgress::new(nodes.len(), step);
    let result = run_rack_step(&rack_step, &connector, inventory.as_mut(), &|node, phase| progress.event(node, phase));
    progress.finish();
    let outcome = match result {
        Ok(o) => o,
        Err(e) => {
            eprintln!("kiln: error: {:#}", anyhow::Error::from(e));
            return Ok(exit::DATABASE);
        }
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&outcome).context("serialize the rack outcome")?);
    } else {
        print!("{}", summary_table(&outcome.nodes));
        for f in outcome.rack_findings.iter().filter(|f| f.outcome != crate::checks::Outcome::Pass) {
            println!("rack {} {}: {}", f.outcome.as_str(), f.check, f.message);
            if let Some(a) = &f.action {
                println!("    action: {a}");
            }
        }
        let checked = outcome.rack_findings.iter().filter(|f| f.outcome == crate::checks::Outcome::Pass).count();
        if checked > 0 {
            println!("rack checks: {checked} passed");
        }
        if let Some(id) = outcome.rack_run_id {
            println!("recorded in {} (rack run {id})", db.display());
        }
    }
    if let Some(e) = &outcome.record_error {
        eprintln!("kiln: error: the rack run could not be recorded in {}: {e}", db.display());
    }
    Ok(outcome.exit_code)
}

fn trust(args: &RackTrustArgs) -> anyhow::Result<i32> {
    let manifest = match load(&args.rack, &args.nodes) {
        Ok(m) => m,
        Err(code) => return Ok(code),
    };
    // `load` checked every name.
    let nodes = manifest.select(&args.nodes)?;
    let opts = TrustOptions {
        connect_timeout: Duration::from_secs(args.connect_timeout.max(1)),
        replace: args.replace,
        parallel: 16,
    };
    let outcomes = trust_nodes(&manifest.credentials, &nodes, &opts)?;
    let mut code = exit::OK;
    for o in &outcomes {
        let line = match &o.result {
            TrustResult::Recorded { fingerprint } => format!("recorded        {fingerprint}"),
            TrustResult::AlreadyTrusted { fingerprint } => format!("already trusted {fingerprint}"),
            TrustResult::Replaced { fingerprint } => format!("REPLACED        {fingerprint}"),
            TrustResult::Changed { fingerprint } => {
                code = code.max(exit::CHECK_FAILED);
                format!("KEY CHANGED     {fingerprint} (not recorded; check on the console, then --replace)")
            }
            TrustResult::Failed { reason } => {
                code = exit::PEER;
                format!("failed          {reason}")
            }
        };
        println!("{:<12} {line}", o.node);
    }
    println!("known hosts: {}", manifest.credentials.known_hosts.display());
    Ok(code)
}

/// One status line on a terminal, rewritten as nodes progress; silent in a pipe.
struct TerminalProgress {
    enabled: bool,
    total: usize,
    step: Step,
    state: Mutex<(usize, BTreeSet<String>)>,
}

impl TerminalProgress {
    fn new(total: usize, step: Step) -> Self {
        TerminalProgress {
            enabled: std::io::stderr().is_terminal(),
            total,
            step,
            state: Mutex::new((0, BTreeSet::new())),
        }
    }

    fn event(&self, node: &str, phase: Phase<'_>) {
        if !self.enabled {
            return;
        }
        let Ok(mut state) = self.state.lock() else { return };
        let mut err = std::io::stderr().lock();
        match phase {
            Phase::Connecting => {
                state.1.insert(node.to_string());
            }
            Phase::Done(o) => {
                state.0 += 1;
                state.1.remove(node);
                let _ = writeln!(
                    err,
                    "\r\x1b[K{node}: {}{}",
                    o.status.as_str(),
                    o.reason.as_ref().map(|r| format!(" ({r})")).unwrap_or_default()
                );
            }
            Phase::CheckingBinary | Phase::Running => {}
        }
        let running: Vec<&str> = state.1.iter().map(String::as_str).take(6).collect();
        let more = state.1.len().saturating_sub(running.len());
        let _ = write!(
            err,
            "\r\x1b[K{} {}/{} done, running: {}{}",
            self.step.as_str(),
            state.0,
            self.total,
            running.join(" "),
            if more > 0 { format!(" +{more}") } else { String::new() }
        );
        let _ = err.flush();
    }

    fn finish(&self) {
        if self.enabled {
            let _ = write!(std::io::stderr(), "\r\x1b[K");
        }
    }
}
