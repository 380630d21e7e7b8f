//! `kiln rack ...`: load the manifest, fan the node command out over SSH, print the table or JSON.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::Context;

use crate::cli::{RackCommand, RackRunArgs, RackTrustArgs};
use crate::cmd::{CmdError, CmdResult, Outcome};
use crate::exit;
use crate::fleet::{
    run_rack_step, summary_table, trust_nodes, FanoutOptions, Phase, Plan, RackStep, RemoteBinary, SshConnector, Step,
    TrustOptions, TrustResult,
};
use crate::inventory::{db_path, Inventory};
use crate::notice::Notices;
use crate::rack::{RackManifest, Site};

pub fn run(cmd: RackCommand, notices: &dyn Notices) -> CmdResult {
    match cmd {
        RackCommand::Inspect(a) => step(&a, Step::Inspect, notices),
        RackCommand::Validate(a) => step(&a, Step::Validate, notices),
        RackCommand::Burnin(a) => crate::cmd::rack_burnin_slurm::burnin(&a, notices),
        RackCommand::Status(a) => step(&a, Step::Status, notices),
        RackCommand::Trust(a) => trust(&a),
        RackCommand::Handoff(a) => crate::cmd::handoff::run(&a),
        RackCommand::Image(a) => crate::cmd::rack_image::run(&a, notices),
        RackCommand::Firmware(c) => crate::cmd::firmware::run(c, notices),
        RackCommand::Topology(a) => crate::cmd::rack_topology::run(&a),
        RackCommand::Imex(a) => crate::cmd::rack_imex::run(&a),
    }
}

/// Loads the rack manifest at `path` and checks that every name in `nodes`
/// is one of its nodes. A bad manifest is bad input (exit 4), an unknown
/// node a usage error (exit 2).
pub fn load(path: &std::path::Path, nodes: &[String]) -> CmdResult<RackManifest> {
    let manifest = RackManifest::load(path)?;
    manifest.select(nodes).map_err(CmdError::RackNodes)?;
    Ok(manifest)
}

/// Runs one step over the rack, records it in the inventory (`--db`, default
/// `inventory/kiln.db`; `status` records nothing) and prints the outcome.
/// Progress goes to `notices` (a terminal only).
pub fn step(args: &RackRunArgs, step: Step, notices: &dyn Notices) -> CmdResult {
    let racks = rack_files(args)?;
    let rack = match racks.as_slice() {
        [one] if args.site.is_none() => one,
        _ => return crate::cmd::rack_site::step(args, &racks, step, notices),
    };
    let manifest = load(rack, &args.nodes)?;
    // `load` checked every name.
    let nodes = manifest.select(&args.nodes).map_err(CmdError::RackNodes)?;
    // The specs the rack checks read, checked before any node is touched.
    let specs = crate::checks::spec_load::load_set(args.checks_dir.as_deref())?;
    // A tray number outside the rack's NVLink domain is bad input, before any node is touched.
    if let Some(domain) = manifest
        .rack
        .platform
        .as_deref()
        .and_then(|p| crate::checks::detect::by_name(&specs, p).ok())
        .and_then(|s| s.platform.nvlink_domain.as_ref())
    {
        manifest.check_trays(domain.trays)?;
    }
    // The database is opened before any node is touched: a run that could
    // not be recorded is refused rather than done and forgotten.
    let db = db_path(args.db.db.as_deref());
    let mut inventory = if step == Step::Status { None } else { Some(Inventory::open(&db)?) };
    let binary = match (&args.node_binary, &args.dist) {
        (None, Some(dir)) => RemoteBinary::from_dist(dir, &args.remote_path),
        (file, _) => RemoteBinary::new(file.as_deref(), &args.remote_path),
    }
    .map_err(CmdError::NodeBinary)?;
    let opts = FanoutOptions {
        parallel: args.parallel.min(args.per_rack.unwrap_or(usize::MAX)).max(1),
        command_timeout: Duration::from_secs(args.timeout.max(1)),
        binary,
    };
    let connector = SshConnector {
        credentials: manifest.credentials.clone(),
        connect_timeout: Duration::from_secs(args.connect_timeout.max(1)),
    };
    let plan = Plan::for_step(step, &crate::cmd::rack_collective::node_args_for(args, step, &manifest, &specs));
    let rack_step = RackStep {
        rack: &manifest.rack.id,
        rack_platform: manifest.rack.platform.as_deref(),
        specs: &specs,
        nodes: &nodes,
        plan: &plan,
        opts: &opts,
        force: args.force,
        whole_rack: args.nodes.is_empty(),
    };
    let hooks = crate::cmd::rack_collective::hooks(args, &nodes)?;
    let collective_only = crate::cmd::rack_collective::only(args, step, &manifest, &specs)?;
    let progress = TerminalProgress::new(nodes.len(), step, notices);
    let result = if collective_only {
        Ok(crate::fleet::RackOutcome::new(&manifest.rack.id, step, Vec::new(), Vec::new()))
    } else {
        run_rack_step(&rack_step, &connector, inventory.as_mut(), &|node, phase| progress.event(node, phase))
    };
    progress.finish();
    let mut outcome = result?;
    let after = crate::cmd::rack_collective::After {
        args,
        step,
        manifest: &manifest,
        nodes: &nodes,
        specs: &specs,
        binary: &opts.binary,
        hooks: &hooks,
    };
    crate::cmd::rack_collective::after_step(&after, &connector, inventory.as_mut(), &mut outcome);
    if args.json {
        crate::terminal::json(&outcome).context("serialize the rack outcome")?;
    } else {
        crate::terminal::print(&summary_table(&outcome.nodes));
        for f in outcome.rack_findings.iter().filter(|f| f.outcome != crate::checks::Outcome::Pass) {
            crate::terminal::println(format_args!("rack {} {}: {}", f.outcome.as_str(), f.check, f.message));
            if let Some(a) = &f.action {
                crate::terminal::println(format_args!("    action: {a}"));
            }
        }
        let checked = outcome.rack_findings.iter().filter(|f| f.outcome == crate::checks::Outcome::Pass).count();
        if checked > 0 {
            crate::terminal::println(format_args!("rack checks: {checked} passed"));
        }
        if let Some(id) = outcome.rack_run_id {
            crate::terminal::println(format_args!("recorded in {} (rack run {id})", db.display()));
        }
        crate::cmd::rack_collective::print(&outcome, &db);
    }
    let ended = Outcome::exit(outcome.exit_code);
    let collective =
        outcome.collective.as_ref().and_then(|c| c.record_error.clone()).map(|e| format!("collective: {e}"));
    let unrecorded: Vec<String> = outcome.record_error.into_iter().chain(collective).collect();
    Ok(match unrecorded.is_empty() {
        true => ended,
        false => ended.with_error(CmdError::RackNotRecorded { db, reason: unrecorded.join("; ") }),
    })
}

/// The rack manifests a step runs over: every `--rack`, else `$KILN_RACK`, else none when
/// `--site` names them; without any of the three, a usage error.
pub(crate) fn rack_files(args: &RackRunArgs) -> CmdResult<Vec<std::path::PathBuf>> {
    if !args.rack.is_empty() || args.site.is_some() {
        return Ok(args.rack.clone());
    }
    match std::env::var_os("KILN_RACK").filter(|v| !v.is_empty()) {
        Some(v) => Ok(vec![v.into()]),
        None => Err(CmdError::Usage(
            "give the rack manifest with --rack FILE (or KILN_RACK), or racks with --site FILE".into(),
        )
        .into()),
    }
}

/// The node command's extra arguments: `--checks-dir` goes to the node
/// commands that judge (validate, burnin) unless the arguments after `--`
/// already name one.
pub(crate) fn node_args(args: &RackRunArgs, step: Step) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(dir) = &args.checks_dir {
        let judges = matches!(step, Step::Validate | Step::Burnin);
        if judges && !args.node_args.iter().any(|a| a == "--checks-dir" || a.starts_with("--checks-dir=")) {
            out.push("--checks-dir".to_string());
            out.push(dir.display().to_string());
        }
    }
    out.extend(args.node_args.iter().cloned());
    out
}

fn trust(args: &RackTrustArgs) -> CmdResult {
    let site = match (&args.site, args.rack.as_slice()) {
        (Some(path), _) => Site::load(path)?,
        (None, []) => match std::env::var_os("KILN_RACK").filter(|v| !v.is_empty()) {
            Some(v) => Site::from_racks(&[v.into()])?,
            None => {
                return Err(CmdError::Usage(
                    "give the rack manifest with --rack FILE (or KILN_RACK), or racks with --site FILE".into(),
                )
                .into())
            }
        },
        (None, racks) => Site::from_racks(racks)?,
    };
    let selected = site.select(&args.nodes).map_err(CmdError::RackNodes)?;
    let opts = TrustOptions {
        connect_timeout: Duration::from_secs(args.connect_timeout.max(1)),
        replace: args.replace,
        parallel: 16,
    };
    let several = site.racks.len() > 1;
    let mut code = exit::OK;
    // Rack by rack: each has its own credentials and known-hosts file.
    for (rack, nodes) in site.racks.iter().zip(&selected).filter(|(_, n)| !n.is_empty()) {
        let manifest = &rack.manifest;
        let outcomes = trust_nodes(&manifest.credentials, nodes, &opts)?;
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
            let name = if several { format!("{}/{}", manifest.rack.id, o.node) } else { o.node.clone() };
            crate::terminal::println(format_args!("{name:<12} {line}"));
        }
        crate::terminal::println(format_args!("known hosts: {}", manifest.credentials.known_hosts.display()));
    }
    Ok(Outcome::exit(code))
}

/// What the rack step's progress says: a line per node as it finishes, and one status line
/// (done so far, running now) rewritten as nodes progress. `notices` shows both on a terminal
/// only; in a pipe nothing is said.
pub(crate) struct TerminalProgress<'a> {
    notices: &'a dyn Notices,
    total: usize,
    step: Step,
    state: Mutex<(usize, BTreeSet<String>)>,
}

impl<'a> TerminalProgress<'a> {
    pub(crate) fn new(total: usize, step: Step, notices: &'a dyn Notices) -> Self {
        TerminalProgress { notices, total, step, state: Mutex::new((0, BTreeSet::new())) }
    }

    pub(crate) fn event(&self, node: &str, phase: Phase<'_>) {
        if !self.notices.shows_progress() {
            return;
        }
        let Ok(mut state) = self.state.lock() else { return };
        match phase {
            Phase::Connecting => {
                state.1.insert(node.to_string());
            }
            Phase::Done(o) => {
                state.0 += 1;
                state.1.remove(node);
                self.notices.progress(&format!(
                    "{node}: {}{}",
                    o.status.as_str(),
                    o.reason.as_ref().map(|r| format!(" ({r})")).unwrap_or_default()
                ));
            }
            Phase::CheckingBinary | Phase::Running => {}
        }
        let running: Vec<&str> = state.1.iter().map(String::as_str).take(6).collect();
        let more = state.1.len().saturating_sub(running.len());
        self.notices.status(&format!(
            "{} {}/{} done, running: {}{}",
            self.step.as_str(),
            state.0,
            self.total,
            running.join(" "),
            if more > 0 { format!(" +{more}") } else { String::new() }
        ));
    }

    pub(crate) fn finish(&self) {
        self.notices.clear_status();
    }
}
