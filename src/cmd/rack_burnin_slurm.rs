//! `kiln rack burnin`: over SSH (the rack step), or `--via slurm` as one exclusive Slurm job per
//! node, followed to its end and recorded as the SSH path records it.

use std::time::Duration;

use anyhow::Context;

use crate::cli::{BurninVia, RackBurninArgs};
use crate::cmd::rack::{load, node_args, step};
use crate::cmd::{CmdError, CmdResult, Outcome};
use crate::fleet::slurm_jobs::{check_time, minutes_for};
use crate::fleet::{
    run_slurm_burnin, summary_table, FanoutOptions, NodeStatus, Plan, RemoteBinary, SlurmBurnin, SlurmCli, SlurmEvent,
    SshConnector, Step,
};
use crate::inventory::{db_path, Inventory};
use crate::notice::{Notice, Notices};

/// How long Slurm may not answer while jobs are followed.
const PATIENCE: Duration = Duration::from_secs(120);

pub fn burnin(args: &RackBurninArgs, notices: &dyn Notices) -> CmdResult {
    let s = &args.slurm;
    if s.via == BurninVia::Ssh {
        if s.partition.is_some() || s.account.is_some() || s.time.is_some() {
            return Err(CmdError::Usage("--partition, --account and --time go with --via slurm".into()).into());
        }
        return step(&args.run, Step::Burnin, notices);
    }
    let run = &args.run;
    let time = s.time.clone().unwrap_or_else(|| minutes_for(run.timeout));
    check_time(&time).map_err(|e| CmdError::Usage(format!("--time: {e}")))?;
    let racks = crate::cmd::rack::rack_files(run)?;
    let rack = match racks.as_slice() {
        [one] if run.site.is_none() => one,
        _ => return Err(CmdError::Usage("--via slurm burns in one rack: give one --rack".into()).into()),
    };
    let manifest = load(rack, &run.nodes)?;
    let nodes = manifest.select(&run.nodes).map_err(CmdError::RackNodes)?;
    // A malformed --checks-dir is refused before anything is submitted.
    crate::checks::spec_load::load_set(run.checks_dir.as_deref())?;
    let db = db_path(run.db.db.as_deref());
    let mut inventory = Inventory::open(&db)?;
    let binary = match (&run.node_binary, &run.dist) {
        (None, Some(dir)) => RemoteBinary::from_dist(dir, &run.remote_path),
        (file, _) => RemoteBinary::new(file.as_deref(), &run.remote_path),
    }
    .map_err(CmdError::NodeBinary)?;
    let opts = FanoutOptions {
        parallel: run.parallel.max(1),
        command_timeout: Duration::from_secs(run.timeout.max(1)),
        binary,
    };
    let connector = SshConnector {
        credentials: manifest.credentials.clone(),
        connect_timeout: Duration::from_secs(run.connect_timeout.max(1)),
    };
    let plan = Plan::for_step(Step::Burnin, &node_args(run, Step::Burnin));
    let job = SlurmBurnin {
        rack: &manifest.rack.id,
        nodes: &nodes,
        plan: &plan,
        opts: &opts,
        force: run.force,
        partition: s.partition.as_deref(),
        account: s.account.as_deref(),
        time: &time,
        poll: Duration::from_secs(s.poll.max(1)),
        patience: PATIENCE,
        db: Some(&db),
    };
    let progress = |e: SlurmEvent<'_>| match e {
        SlurmEvent::Submitted { node, job } => notices.notice(Notice::Note(&format!("{node}: Slurm job {job}"))),
        SlurmEvent::PickedUp { node, job } => {
            notices.notice(Notice::Note(&format!("{node}: Slurm job {job}, submitted before, followed again")))
        }
        SlurmEvent::State { node, job, status } => notices.progress(&format!(
            "{node}: job {job} {}{}",
            status.state,
            status.reason.as_ref().map(|r| format!(" ({r})")).unwrap_or_default()
        )),
        SlurmEvent::Done(o) => notices.progress(&format!(
            "{}: {}{}",
            o.node,
            o.status.as_str(),
            o.reason.as_ref().map(|r| format!(" ({r})")).unwrap_or_default()
        )),
    };
    let out = run_slurm_burnin(&job, &SlurmCli, &connector, &mut inventory, &progress)?;
    if run.json {
        crate::terminal::json(&out).context("serialize the rack outcome")?;
    } else {
        crate::terminal::print(&summary_table(&out.outcome.nodes));
        for j in &out.slurm_jobs {
            crate::terminal::println(format_args!(
                "{:<12} Slurm job {:<8} {:<10} {}{}",
                j.node,
                j.job_id,
                j.state,
                j.exit_code.map(|c| format!("kiln exit {c}")).unwrap_or_default(),
                if j.picked_up { " (picked up)" } else { "" }
            ));
        }
        if let Some(id) = out.outcome.rack_run_id {
            crate::terminal::println(format_args!("recorded in {} (rack run {id})", db.display()));
        }
    }
    let skipped = out.outcome.nodes.iter().filter(|n| n.status == NodeStatus::Skipped).count();
    tracing::debug!(skipped, jobs = out.slurm_jobs.len(), "burn-in through Slurm ended");
    let ended = Outcome::exit(out.outcome.exit_code);
    Ok(match out.outcome.record_error {
        Some(reason) => ended.with_error(CmdError::RackNotRecorded { db, reason }),
        None => ended,
    })
}
