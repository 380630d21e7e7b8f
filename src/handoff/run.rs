//! `hand_off_rack`: decide every node from the inventory, act on the cluster, record what happened.

use super::kube_api::KubeNodes;
use std::collections::BTreeMap;

use super::decide::{list_checks, Health};
use super::outcome::{BrokenTray, DomainHandoff, HandoffOutcome, NodeHandoff};
use super::slurm::SlurmControl;
use super::{decide, kubernetes, record, slurm};
use crate::inventory::{Inventory, InventoryError};

/// The cluster nodes are handed to.
pub enum Cluster<'a> {
    Slurm(&'a dyn SlurmControl),
    Kubernetes(&'a dyn KubeNodes),
}

impl Cluster<'_> {
    pub fn name(&self) -> &'static str {
        match self {
            Cluster::Slurm(_) => "slurm",
            Cluster::Kubernetes(_) => "kubernetes",
        }
    }
}

/// Hand `nodes` (names as in the manifest, which are also the cluster's
/// node names) to `cluster`. With `dry_run` the cluster is only read and
/// the inventory is not written. An inventory that cannot be read is an
/// error; a node the cluster refuses is reported in its outcome.
pub fn hand_off_rack(
    inventory: &mut Inventory,
    rack: &str,
    nodes: &[&str],
    cluster: &Cluster<'_>,
    dry_run: bool,
) -> Result<HandoffOutcome, InventoryError> {
    hand_off_domains(inventory, rack, nodes, cluster, dry_run, &[], false)
}

/// An NVLink domain handed off whole or not at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Domain {
    /// The platform spec whose `[nvlink_domain]` says all or nothing.
    pub platform: String,
    /// Every tray of the domain in the manifest, handed off in this run or not.
    pub nodes: Vec<String>,
}

/// `hand_off_rack` with all-or-nothing domains: a node of a domain any of
/// whose trays (in `nodes` or not) is not healthy is held, with the broken
/// trays named, unless `partial`, which hands off the healthy trays alone.
pub fn hand_off_domains(
    inventory: &mut Inventory,
    rack: &str,
    nodes: &[&str],
    cluster: &Cluster<'_>,
    dry_run: bool,
    domains: &[Domain],
    partial: bool,
) -> Result<HandoffOutcome, InventoryError> {
    let mut summaries = Vec::new();
    // Node -> why it is held for its domain.
    let mut held: BTreeMap<&str, String> = BTreeMap::new();
    for d in domains {
        let mut broken = Vec::new();
        for name in &d.nodes {
            let decision = decide::decide(inventory, name)?;
            if !matches!(decision.health, Health::Pass { .. }) {
                let reason = decision.health.reason().unwrap_or("not healthy").to_string();
                broken.push(BrokenTray { node: name.clone(), reason });
            }
        }
        if !broken.is_empty() && !partial {
            let names: Vec<&str> = broken.iter().map(|b| b.node.as_str()).collect();
            let why = format!(
                "NVLink domain {} incomplete: {} not healthy; the domain is handed off whole (--partial for the \
                 healthy trays)",
                d.platform,
                list_checks(&names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            );
            for name in &d.nodes {
                held.insert(name.as_str(), why.clone());
            }
        }
        summaries.push(DomainHandoff { platform: d.platform.clone(), nodes: d.nodes.clone(), broken, partial });
    }
    let mut out = Vec::with_capacity(nodes.len());
    for name in nodes {
        let mut decision = decide::decide(inventory, name)?;
        if let (Health::Pass { run, .. }, Some(why)) = (&decision.health, held.get(name)) {
            decision.health = Health::Hold { run: *run, reason: why.clone() };
        }
        let (actions, disposition) = match cluster {
            Cluster::Slurm(ctl) => slurm::hand_off(*ctl, &decision, dry_run),
            Cluster::Kubernetes(api) => kubernetes::hand_off(*api, &decision, dry_run),
        };
        let (state_after, recorded) = if dry_run {
            (decision.state.clone(), Vec::new())
        } else {
            record::record(inventory, cluster.name(), &decision, &actions, disposition)
        };
        out.push(NodeHandoff { decision, actions, disposition, state_after, recorded });
    }
    let mut outcome = HandoffOutcome::new(rack, cluster.name(), dry_run, out);
    outcome.domains = summaries;
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handoff::{Resumed, SlurmControl, SlurmError, SlurmNode};
    use crate::hw::fixture::sample::hgx_b200_node;
    use crate::inventory::tests::support::{record, temp_db, validate_findings};
    use crate::lifecycle::RunKind;

    /// A cluster whose nodes are all idle, for dry runs: only `show_node` is asked.
    struct Idle;

    impl SlurmControl for Idle {
        fn show_node(&self, name: &str) -> Result<SlurmNode, SlurmError> {
            Ok(SlurmNode { name: name.into(), state: "IDLE".into(), flags: Vec::new(), reason: None })
        }
        fn drain(&self, name: &str, _: &str) -> Result<(), SlurmError> {
            Err(SlurmError::UnknownNode { node: name.into() })
        }
        fn resume(&self, name: &str) -> Result<Resumed, SlurmError> {
            Err(SlurmError::UnknownNode { node: name.into() })
        }
    }

    #[test]
    fn a_broken_tray_holds_its_domain_unless_partial_and_is_named_either_way() {
        let (_dir, path) = temp_db();
        let mut inv = Inventory::open(&path).expect("open");
        for (name, bad) in [("t1", false), ("t2", true), ("t3", false)] {
            let node = hgx_b200_node(name);
            record(&mut inv, RunKind::Validate, &node, &validate_findings(bad), 0);
            if !bad {
                record(&mut inv, RunKind::Burnin, &node, &validate_findings(false), 5);
            }
        }
        let domain = Domain { platform: "p".into(), nodes: vec!["t1".into(), "t2".into(), "t3".into()] };
        let slurm = Idle;
        let cluster = Cluster::Slurm(&slurm);
        // Only t1 is handed off in this run; t2, out of the run, still holds it.
        let whole = hand_off_domains(&mut inv, "r", &["t1"], &cluster, true, std::slice::from_ref(&domain), false)
            .expect("run");
        let t1 = &whole.nodes[0];
        assert!(matches!(&t1.decision.health, Health::Hold { reason, .. } if reason.contains("t2")), "{t1:?}");
        assert_eq!(whole.domains[0].broken.iter().map(|b| b.node.as_str()).collect::<Vec<_>>(), ["t2"]);
        assert!(whole.domains[0].broken[0].reason.contains("pci.link_width"), "{:?}", whole.domains[0]);
        assert!(render_text_names(&whole).contains("t2 ("));
        let partial = hand_off_domains(&mut inv, "r", &["t1", "t2"], &cluster, true, &[domain], true).expect("run");
        assert!(matches!(partial.nodes[0].decision.health, Health::Pass { .. }));
        assert!(matches!(partial.nodes[1].decision.health, Health::Fail { .. }));
        assert!(partial.domains[0].partial && partial.domains[0].broken.len() == 1);
        // Without a domain nothing changes: t1 is a pass.
        let plain = hand_off_rack(&mut inv, "r", &["t1"], &cluster, true).expect("run");
        assert!(matches!(plain.nodes[0].decision.health, Health::Pass { .. }) && plain.domains.is_empty());
    }

    fn render_text_names(o: &HandoffOutcome) -> String {
        crate::handoff::render_text(o)
    }
}
