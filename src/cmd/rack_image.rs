//! `kiln rack image`: load the rack and the artifact, open the inventory, deploy, print a table
//! or JSON, exit 0 only when every selected node is confirmed on the image.

use std::io::Write;

use anyhow::Context;

use crate::cli::RackImageArgs;
use crate::deploy::{run_deploy, DeployArtifact, DeployOptions, DeployOutcome};
use crate::exit;
use crate::inventory::{db_path, Inventory};

pub fn run(args: &RackImageArgs) -> anyhow::Result<i32> {
    let manifest = match super::rack::load(&args.rack, &args.nodes) {
        Ok(m) => m,
        Err(code) => return Ok(code),
    };
    let artifact = match DeployArtifact::load(&args.artifact) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("kiln: error: {}", crate::error::chain(&e));
            return Ok(e.exit_code());
        }
    };
    if let Some(dir) = &args.boot_dir {
        if !dir.is_dir() {
            eprintln!("kiln: error: --boot-dir {} is not a directory", dir.display());
            return Ok(exit::BAD_INPUT);
        }
    }
    // The database is opened before any node is touched: a deployment that could not be recorded
    // is refused rather than done and forgotten.
    let db = db_path(args.db.db.as_deref());
    let inventory = match Inventory::open(&db) {
        Ok(inv) => inv,
        Err(e) => {
            eprintln!("kiln: error: {:#}", anyhow::Error::from(e));
            return Ok(exit::DATABASE);
        }
    };
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
    let started = |url: &str| eprintln!("kiln: controller at {url} (files under /files/, agents at /agent/)");
    let outcome = match run_deploy(&manifest, &artifact, &opts, inventory, &started) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("kiln: error: {}", crate::error::chain(&e));
            return Ok(e.exit_code());
        }
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&outcome).context("serialize the deploy outcome")?)?;
    } else {
        write!(out, "{}", table(&outcome))?;
        writeln!(out, "recorded in {} (deploy {})", db.display(), outcome.deploy_id)?;
    }
    for n in outcome.nodes.iter().filter(|n| !n.status.confirmed()) {
        eprintln!("kiln: {}: {}", n.node, n.reason.as_deref().unwrap_or(n.status.as_str()));
    }
    Ok(outcome.exit_code)
}

fn table(o: &DeployOutcome) -> String {
    let width = o.nodes.iter().map(|n| n.node.len()).max().unwrap_or(4).max(4);
    let mut s = format!("image {} sha256 {} via {}\n", o.image, o.image_sha256, o.boot.as_str());
    s.push_str(&format!("{:<width$}  {:<14}  {}\n", "NODE", "STATUS", "LAST STEP / REASON"));
    for n in &o.nodes {
        let last = match (&n.reason, n.steps.last()) {
            (Some(r), _) => r.clone(),
            (None, Some(l)) => format!("{}: {}", l.step.as_str(), l.detail),
            (None, None) => String::new(),
        };
        s.push_str(&format!("{:<width$}  {:<14}  {last}\n", n.node, n.status.as_str()));
    }
    s
}
