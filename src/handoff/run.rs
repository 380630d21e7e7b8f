//! `hand_off_rack`: decide every node from the inventory, act on the cluster, record what happened.

use super::kube_api::KubeNodes;
use super::outcome::{HandoffOutcome, NodeHandoff};
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
    let mut out = Vec::with_capacity(nodes.len());
    for name in nodes {
        let decision = decide::decide(inventory, name)?;
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
    Ok(HandoffOutcome::new(rack, cluster.name(), dry_run, out))
}
