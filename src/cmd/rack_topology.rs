//! `kiln rack topology`: the verified NVLink domains of some racks, from the inventory, as a
//! Slurm topology file, topology.yaml or Kubernetes clique labels; printed, written with
//! `--out`, or as JSON.

use anyhow::Context;
use serde::Serialize;

use crate::cli::RackTopologyArgs;
use crate::cmd::{CmdError, CmdResult, Outcome};
use crate::exit;
use crate::handoff::{verified_domains, write_atomically, Candidate, LeftOut, TopologyFormat};
use crate::inventory::{db_path, Inventory};
use crate::rack::RackManifest;

pub const KIND: &str = "kiln.rack-topology";

/// One verified domain in the JSON document.
#[derive(Debug, Serialize)]
struct DomainDoc<'a> {
    name: &'a str,
    cluster_uuid: &'a str,
    clique_id: u32,
    clique: String,
    racks: &'a [String],
    nodes: &'a [String],
}

#[derive(Debug, Serialize)]
struct TopologyDoc<'a> {
    schema_version: u32,
    kind: &'static str,
    format: TopologyFormat,
    out: Option<String>,
    domains: Vec<DomainDoc<'a>>,
    block_sizes: Vec<usize>,
    left_out: &'a [LeftOut],
    text: Option<&'a str>,
    exit_code: i32,
}

pub fn run(args: &RackTopologyArgs) -> CmdResult {
    let mut candidates = Vec::new();
    for path in &args.rack {
        let manifest = RackManifest::load(path)?;
        for n in &manifest.nodes {
            candidates.push(Candidate { rack: manifest.rack.id.clone(), node: n.name.clone() });
        }
    }
    let db = db_path(args.db.db.as_deref());
    let inventory = Inventory::open_read_only(&db)?;
    let topology = verified_domains(&inventory, &candidates)?;
    let text = topology.render(args.format);
    // Every node placed is a pass; a node left out (or no domain at all) is a check that failed.
    let code = if topology.left_out.is_empty() && text.is_some() { exit::OK } else { exit::CHECK_FAILED };
    if let (Some(out), Some(text)) = (&args.out, &text) {
        write_atomically(out, text).map_err(|e| CmdError::BadInput(format!("--out {}: {e}", out.display())))?;
    }
    if args.json {
        let doc = TopologyDoc {
            schema_version: 1,
            kind: KIND,
            format: args.format,
            out: args.out.as_ref().filter(|_| text.is_some()).map(|p| p.display().to_string()),
            domains: topology
                .domains
                .iter()
                .map(|d| DomainDoc {
                    name: &d.name,
                    cluster_uuid: &d.cluster_uuid,
                    clique_id: d.clique_id,
                    clique: d.clique(),
                    racks: &d.racks,
                    nodes: &d.nodes,
                })
                .collect(),
            block_sizes: topology.block_sizes(),
            left_out: &topology.left_out,
            text: text.as_deref(),
            exit_code: code,
        };
        crate::terminal::json(&doc).context("serialize the topology")?;
        return Ok(Outcome::exit(code));
    }
    match (&args.out, &text) {
        (None, Some(text)) => crate::terminal::print(text),
        (Some(out), Some(_)) => {
            let nodes: usize = topology.domains.iter().map(|d| d.nodes.len()).sum();
            crate::terminal::println(format_args!(
                "wrote {} ({}): {} verified NVLink domain(s), {nodes} node(s)",
                out.display(),
                args.format.as_str(),
                topology.domains.len()
            ));
            for l in &topology.left_out {
                crate::terminal::println(format_args!("left out {} ({}): {}", l.node, l.rack, l.reason));
            }
        }
        (_, None) => {
            crate::terminal::println(format_args!("no verified NVLink domain: nothing written"));
            for l in &topology.left_out {
                crate::terminal::println(format_args!("left out {} ({}): {}", l.node, l.rack, l.reason));
            }
        }
    }
    Ok(Outcome::exit(code))
}

/// `kiln rack handoff --topology PATH`: the verified domains of the nodes this hand-off put in
/// service (or would, in a dry run), installed at `path`. A failed install makes the hand-off's
/// exit code 6: slurmctld was not told.
pub fn install_for_handoff(
    inventory: &Inventory,
    rack: &str,
    outcome: &crate::handoff::HandoffOutcome,
    path: &std::path::Path,
    format: Option<TopologyFormat>,
    ctl: &dyn crate::handoff::SlurmConfig,
) -> Result<crate::handoff::TopologyInstall, crate::inventory::InventoryError> {
    let candidates: Vec<Candidate> = outcome
        .nodes
        .iter()
        .filter(|n| n.disposition == crate::handoff::Disposition::HandedOff)
        .map(|n| Candidate { rack: rack.to_string(), node: n.decision.node.clone() })
        .collect();
    let topology = verified_domains(inventory, &candidates)?;
    Ok(crate::handoff::install_topology(&topology, path, format, ctl, outcome.dry_run))
}
