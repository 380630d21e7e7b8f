//! `kiln rack handoff`: hand a rack's nodes to Slurm or Kubernetes as the inventory judges them.

use anyhow::Context;

use crate::checks::spec_load::LoadedSpec;
use crate::cli::{HandoffArgs, HandoffTarget};
use crate::cmd::{CmdError, CmdResult, Outcome};
use crate::handoff::{hand_off_domains, render_text, Cluster, Domain, KubeApi, Scontrol};
use crate::inventory::{db_path, Inventory, InventoryError};
use crate::lifecycle::RunKind;
use crate::rack::RackManifest;

pub fn run(args: &HandoffArgs) -> CmdResult {
    let manifest = super::rack::load(&args.rack, &args.nodes)?;
    // `load` checked every name.
    let nodes = manifest.select(&args.nodes).map_err(CmdError::RackNodes)?;
    let names: Vec<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
    let specs = crate::checks::spec_load::load_set(args.checks_dir.as_deref())?;
    let path = db_path(args.db.db.as_deref());
    let mut inventory = Inventory::open_existing(&path)?;
    let domains = domains(&manifest, &specs, &inventory)?;
    let scontrol;
    let kube;
    let cluster = match args.to {
        HandoffTarget::Slurm => {
            scontrol = Scontrol::new(&args.scontrol);
            Cluster::Slurm(&scontrol)
        }
        HandoffTarget::Kubernetes => {
            let (Some(url), Some(token)) = (&args.kube_api, &args.kube_token_file) else {
                return Err(CmdError::Usage("--to kubernetes needs --kube-api and --kube-token-file".into()).into());
            };
            kube = KubeApi::new(url, token, args.kube_ca.as_deref())?;
            Cluster::Kubernetes(&kube)
        }
    };
    if args.topology.is_some() && args.to != HandoffTarget::Slurm {
        return Err(CmdError::Usage("--topology installs a Slurm topology file: it needs --to slurm".into()).into());
    }
    if args.topology_format == Some(crate::handoff::TopologyFormat::K8sLabels) {
        return Err(CmdError::Usage("--topology-format k8s-labels is not a Slurm topology file".into()).into());
    }
    let mut outcome =
        hand_off_domains(&mut inventory, &manifest.rack.id, &names, &cluster, args.dry_run, &domains, args.partial)?;
    if let Some(path) = &args.topology {
        let scontrol = Scontrol::new(&args.scontrol);
        outcome.topology = Some(super::rack_topology::install_for_handoff(
            &inventory,
            &manifest.rack.id,
            &outcome,
            path,
            args.topology_format,
            &scontrol,
        )?);
        if outcome.topology.as_ref().is_some_and(|t| t.result == crate::handoff::InstallResult::Failed) {
            outcome.exit_code = crate::exit::PEER;
        }
        if let Some(t) = outcome.topology.as_mut() {
            note_topology(&mut inventory, t);
        }
    }
    if args.json {
        crate::terminal::json(&outcome).context("serialize the hand-off outcome")?;
    } else {
        crate::terminal::print(&render_text(&outcome));
    }
    Ok(Outcome::exit(outcome.exit_code))
}

/// A topology file written: each node in it gets an event in its history naming the block (or
/// switch) it was put in, the file and the form, so "since when did Slurm see this tray as part
/// of that domain" is answerable later. A note that cannot be written is a warning of the
/// install, never a lost hand-off.
fn note_topology(inventory: &mut Inventory, t: &mut crate::handoff::TopologyInstall) {
    if t.result != crate::handoff::InstallResult::Installed {
        return;
    }
    for d in &t.domains {
        let cause = format!(
            "topology installed: in {} (clique {}) of {} as {}",
            d.name,
            d.clique,
            t.path.display(),
            t.format.as_str()
        );
        for node in &d.nodes {
            if let Err(e) = inventory.note(node, crate::handoff::ACTOR, &cause, None) {
                t.warnings.push(format!("{node}: the topology event was not recorded: {}", crate::error::chain(&e)));
            }
        }
    }
}

/// The manifest's all-or-nothing NVLink domains: its nodes grouped by
/// platform (the manifest's, else the one the node's latest validate was
/// judged against), for each platform whose `[nvlink_domain]` says
/// `all_or_nothing`. Every node of the manifest counts, selected or not.
fn domains(manifest: &RackManifest, specs: &[LoadedSpec], inv: &Inventory) -> Result<Vec<Domain>, InventoryError> {
    let whole = |name: &str| {
        crate::checks::detect::by_name(specs, name)
            .ok()
            .and_then(|s| s.platform.nvlink_domain.as_ref())
            .is_some_and(|d| d.all_or_nothing)
    };
    let mut by_platform: std::collections::BTreeMap<String, Vec<String>> = std::collections::BTreeMap::new();
    for n in &manifest.nodes {
        let platform = match &manifest.rack.platform {
            Some(p) => Some(p.clone()),
            None => match inv.node(&n.name)? {
                Some(row) => inv.latest_run_of_kind(row.id, RunKind::Validate)?.and_then(|r| r.platform),
                None => None,
            },
        };
        if let Some(p) = platform.filter(|p| whole(p)) {
            by_platform.entry(p).or_default().push(n.name.clone());
        }
    }
    Ok(by_platform.into_iter().map(|(platform, nodes)| Domain { platform, nodes }).collect())
}
