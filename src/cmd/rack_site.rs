//! `kiln rack inspect|validate|burnin|status --site FILE` or `--rack A --rack B`: the racks run at
//! once under one bound on SSH sessions and one per rack, one table, one document, one exit code.

use std::time::Duration;

use anyhow::Context;

use crate::checks::Outcome as FindingOutcome;
use crate::cli::RackRunArgs;
use crate::cmd::rack::TerminalProgress;
use crate::cmd::rack_collective;
use crate::cmd::{CmdError, CmdResult, Outcome};
use crate::fleet::{
    racks_at_once, run_site_step, site_table, AfterRack, Connector, FanoutOptions, Plan, RackOutcome, RackStep,
    RemoteBinary, SiteRackStep, SiteStep, SshConnector, Step,
};
use crate::inventory::{db_path, Inventory};
use crate::notice::Notices;
use crate::rack::{RackNode, Site};

/// Runs `step` over every rack of the site (`--site`) or every `--rack`, records each rack as
/// one rack alone is recorded, and prints one table (or with `--json` one `kiln.site`
/// document). Everything a rack could refuse is checked for every rack before any node is
/// touched.
pub fn step(args: &RackRunArgs, racks: &[std::path::PathBuf], step: Step, notices: &dyn Notices) -> CmdResult {
    let site = match &args.site {
        Some(path) => Site::load(path)?,
        None => Site::from_racks(racks)?,
    };
    let selected = site.select(&args.nodes).map_err(CmdError::RackNodes)?;
    let specs = crate::checks::spec_load::load_set(args.checks_dir.as_deref())?;
    for rack in &site.racks {
        let m = &rack.manifest;
        if let Some(domain) = m
            .rack
            .platform
            .as_deref()
            .and_then(|p| crate::checks::detect::by_name(&specs, p).ok())
            .and_then(|s| s.platform.nvlink_domain.as_ref())
        {
            m.check_trays(domain.trays)?;
        }
    }
    // The database is opened (created, migrated) before any node is touched; each rack then
    // records through a connection of its own.
    let db = db_path(args.db.db.as_deref());
    let records = step != Step::Status;
    if records {
        drop(Inventory::open(&db)?);
    }
    let binary = match (&args.node_binary, &args.dist) {
        (None, Some(dir)) => RemoteBinary::from_dist(dir, &args.remote_path),
        (file, _) => RemoteBinary::new(file.as_deref(), &args.remote_path),
    }
    .map_err(CmdError::NodeBinary)?;
    let parallel = args.parallel.max(1);
    let per_rack = args.per_rack.unwrap_or(parallel).clamp(1, parallel);
    // The collective of each rack whose NVLink domain spans trays (`burnin`), checked for every
    // rack before any node is touched, then run by each rack after its own step, as one rack
    // alone runs it (`rack_collective::after_step`).
    let rack_nodes: Vec<&[&RackNode]> = selected.iter().map(Vec::as_slice).collect();
    let hooks = rack_collective::hooks_per_rack(args, &rack_nodes)?;
    let only: Vec<bool> =
        site.racks.iter().map(|r| rack_collective::only(args, step, &r.manifest, &specs)).collect::<CmdResult<_>>()?;
    let afters: Vec<rack_collective::After<'_>> = site
        .racks
        .iter()
        .zip(&selected)
        .zip(&hooks)
        .map(|((r, nodes), hooks)| rack_collective::After {
            args,
            step,
            manifest: &r.manifest,
            nodes,
            specs: &specs,
            binary: &binary,
            hooks,
        })
        .collect();
    let after_fns: Vec<Box<AfterRack<'_>>> = afters
        .iter()
        .map(|a| {
            Box::new(move |connector: &dyn Connector, inventory: Option<&mut Inventory>, outcome: &mut RackOutcome| {
                rack_collective::after_step(a, connector, inventory, outcome)
            }) as Box<AfterRack<'_>>
        })
        .collect();
    let plans: Vec<Plan> = site
        .racks
        .iter()
        .map(|r| Plan::for_step(step, &rack_collective::node_args_for(args, step, &r.manifest, &specs)))
        .collect();
    let opts: Vec<FanoutOptions> = site
        .racks
        .iter()
        .map(|r| FanoutOptions {
            parallel: r.per_rack.unwrap_or(per_rack).clamp(1, parallel),
            command_timeout: Duration::from_secs(r.timeout.unwrap_or(args.timeout).max(1)),
            binary: binary.clone(),
        })
        .collect();
    let connectors: Vec<SshConnector> = site
        .racks
        .iter()
        .map(|r| SshConnector {
            credentials: r.manifest.credentials.clone(),
            connect_timeout: Duration::from_secs(r.connect_timeout.unwrap_or(args.connect_timeout).max(1)),
        })
        .collect();
    let racks: Vec<SiteRackStep<'_>> = site
        .racks
        .iter()
        .zip(&selected)
        .zip(opts.iter().zip(&connectors))
        .zip(only.iter().zip(&after_fns).zip(&plans))
        .filter(|(((_, nodes), _), _)| !nodes.is_empty())
        .map(|(((r, nodes), (opts, connector)), ((only, after), plan))| SiteRackStep {
            step: RackStep {
                rack: &r.manifest.rack.id,
                rack_platform: r.manifest.rack.platform.as_deref(),
                specs: &specs,
                nodes,
                plan,
                opts,
                force: args.force,
                whole_rack: args.nodes.is_empty(),
            },
            connector,
            skip_nodes: *only,
            after: Some(after.as_ref()),
        })
        .collect();
    let run = SiteStep { site: site.id.as_deref(), step, racks: &racks, parallel };
    let total = racks.iter().map(|r| r.step.nodes.len()).sum();
    let progress = TerminalProgress::new(total, step, notices);
    let open = || Inventory::open(&db);
    let at_once = racks_at_once(parallel, per_rack, racks.len());
    let outcome = run_site_step(&run, records.then_some(&open), at_once, &|rack, node, phase| {
        progress.event(&format!("{rack}/{node}"), phase)
    });
    progress.finish();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&outcome).context("serialize the site outcome")?);
    } else {
        crate::terminal::print(&site_table(&outcome.racks));
        for rack in &outcome.racks {
            print_rack_lines(rack, &db);
            rack_collective::print(rack, &db);
        }
    }
    let unrecorded: Vec<String> = outcome
        .racks
        .iter()
        .flat_map(|r| {
            let collective = r.collective.as_ref().and_then(|c| c.record_error.as_ref());
            [
                r.record_error.as_ref().map(|e| format!("rack {}: {e}", r.rack)),
                collective.map(|e| format!("rack {} collective: {e}", r.rack)),
            ]
        })
        .flatten()
        .collect();
    let ended = Outcome::exit(outcome.exit_code);
    Ok(match unrecorded.is_empty() {
        true => ended,
        false => ended.with_error(CmdError::RackNotRecorded { db, reason: unrecorded.join("; ") }),
    })
}

/// Under the table, per rack: its rack checks that did not pass, how many passed, where it was
/// recorded.
fn print_rack_lines(rack: &RackOutcome, db: &std::path::Path) {
    for f in rack.rack_findings.iter().filter(|f| f.outcome != FindingOutcome::Pass) {
        crate::terminal::println(format_args!("rack {} {} {}: {}", rack.rack, f.outcome.as_str(), f.check, f.message));
        if let Some(a) = &f.action {
            crate::terminal::println(format_args!("    action: {a}"));
        }
    }
    let checked = rack.rack_findings.iter().filter(|f| f.outcome == FindingOutcome::Pass).count();
    let mut line = format!("rack {}: exit {}", rack.rack, rack.exit_code);
    if checked > 0 {
        line.push_str(&format!(", rack checks: {checked} passed"));
    }
    if let Some(id) = rack.rack_run_id {
        line.push_str(&format!(", recorded in {} (rack run {id})", db.display()));
    }
    crate::terminal::println(format_args!("{line}"));
}
