//! `kiln rack image`: load the rack and the artifact, open the inventory, deploy, print a table
//! or JSON, exit 0 only when every selected node is confirmed on the image.

use std::io::Write;

use anyhow::Context;

use crate::cli::RackImageArgs;
use crate::cmd::{CmdError, CmdResult, Outcome};
use crate::deploy::{run_deploy, DeployArtifact, DeployOptions, DeployOutcome};
use crate::inventory::{db_path, Inventory};
use crate::notice::{Notice, Notices};

pub fn run(args: &RackImageArgs, notices: &dyn Notices) -> CmdResult {
    let manifest = super::rack::load(&args.rack, &args.nodes)?;
    let artifact = DeployArtifact::load(&args.artifact)?;
    if let Some(dir) = &args.boot_dir {
        if !dir.is_dir() {
            return Err(CmdError::BadInput(format!("--boot-dir {} is not a directory", dir.display())).into());
        }
    }
    // The database is opened before any node is touched: a deployment that could not be recorded
    // is refused rather than done and forgotten.
    let db = db_path(args.db.db.as_deref());
    let inventory = Inventory::open(&db)?;
    let opts = DeployOptions {
        nodes: args.nodes.clone(),
        boot: args.boot,
        media: args.media.clone(),
        pxe: args.pxe_kernel.clone().zip(args.pxe_initrd.clone()),
        dhcp_leases: args.dhcp_leases.clone(),
        listen: args.listen,
        advertise: args.advertise.clone(),
        boot_dir: args.boot_dir.clone(),
        target: args.target.clone(),
        parallel: args.parallel,
        node_timeout: args.node_timeout,
        reboot_grace: args.reboot_grace,
        insecure: args.insecure,
        restart: args.restart,
    };
    let started = |url: &str| {
        notices.notice(Notice::Status(&format!("controller at {url} (files under /files/, agents at /agent/)")))
    };
    let outcome = run_deploy(&manifest, &artifact, &opts, inventory, &started)?;
    let mut out = crate::terminal::stdout();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&outcome).context("serialize the deploy outcome")?)?;
    } else {
        write!(out, "{}", crate::terminal::text(&table(&outcome)))?;
        writeln!(out, "recorded in {} (deploy {})", db.display(), outcome.deploy_id)?;
    }
    // Each node that did not end on the image is named with its reason, beside the table or JSON.
    let unconfirmed: Vec<(String, String)> = outcome
        .nodes
        .iter()
        .filter(|n| !n.status.confirmed())
        .map(|n| (n.node.clone(), n.reason.as_deref().unwrap_or(n.status.as_str()).to_string()))
        .collect();
    let ended = Outcome::exit(outcome.exit_code);
    Ok(if unconfirmed.is_empty() { ended } else { ended.with_error(CmdError::NotConfirmed { nodes: unconfirmed }) })
}

fn table(o: &DeployOutcome) -> String {
    let width = crate::report::columns::width(o.nodes.iter().map(|n| n.node.as_str()), 4);
    let pad = crate::report::columns::pad;
    let mut s = format!("image {} sha256 {} via {}\n", o.image, o.image_sha256, o.boot.as_str());
    s.push_str(&format!("{}  {:<14}  {}\n", pad("NODE", width), "STATUS", "LAST STEP / REASON"));
    for n in &o.nodes {
        let last = match (&n.reason, n.steps.last()) {
            (Some(r), _) => r.clone(),
            (None, Some(l)) => format!("{}: {}", l.step.as_str(), l.detail),
            (None, None) => String::new(),
        };
        s.push_str(&format!("{}  {:<14}  {last}\n", pad(&n.node, width), n.status.as_str()));
    }
    s
}
