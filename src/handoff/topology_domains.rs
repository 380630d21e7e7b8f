//! The verified NVLink domains of some racks, from the inventory alone: the trays the rack gate
//! passed (their lifecycle state and latest validate, not a re-run), grouped by the fabric
//! cluster UUID and clique id their recorded GPUs report.

use std::collections::BTreeMap;

use super::topology::{natural_cmp, slurm_name, LeftOut, Topology, VerifiedDomain};
use crate::checks::Verdict;
use crate::inventory::{Inventory, InventoryError};
use crate::lifecycle::{LifecycleState, RunKind};
use crate::model::{FabricState, Node};

/// A node to place: its manifest's rack id and its name there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub rack: String,
    pub node: String,
}

/// The all-zero UUID a GPU reports before it is registered with the fabric.
const UNREGISTERED: &str = "00000000-0000-0000-0000-000000000000";

/// Why a node's recorded GPUs place it in no one domain, or the domain they place it in.
fn fabric_identity(node: &Node) -> Result<(String, u32), String> {
    if let Some(why) = node.gpus.not_inspected_reason() {
        return Err(format!("its GPUs were not inspected ({why})"));
    }
    let gpus = node.gpus.gpus();
    if gpus.is_empty() {
        return Err("no GPU recorded".into());
    }
    let mut keys: Vec<(String, u32)> = Vec::new();
    for g in gpus {
        let Some(f) = g.fabric.as_ref() else {
            return Err(format!("GPU {} reports no NVLink fabric (not in a multi-node NVLink domain)", g.index));
        };
        if f.state != FabricState::Completed
            || f.status != 0
            || f.cluster_uuid.is_empty()
            || f.cluster_uuid == UNREGISTERED
        {
            return Err(format!("GPU {} is not registered with the NVLink fabric", g.index));
        }
        let key = (f.cluster_uuid.to_ascii_lowercase(), f.clique_id);
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    match keys.len() {
        1 => Ok(keys.remove(0)),
        n => Err(format!(
            "its GPUs report {n} NVLink domains ({})",
            keys.iter().map(|(u, c)| format!("{u}.{c}")).collect::<Vec<_>>().join(", ")
        )),
    }
}

/// Whether the gate passed `node`: the reason it did not, or its recorded model.
fn gate_passed(inv: &Inventory, c: &Candidate) -> Result<Result<Node, String>, InventoryError> {
    // The rack's place (`RACK/NAME`): manifest names repeat across racks.
    let Some(row) = inv.node(&format!("{}/{}", c.rack, c.node))? else {
        return Ok(Err("not in the inventory: run kiln rack validate".into()));
    };
    match &row.state {
        LifecycleState::Validated | LifecycleState::BurnedIn | LifecycleState::Ready | LifecycleState::HandedOff => {}
        LifecycleState::Failed { reason } | LifecycleState::Quarantined { reason } => {
            return Ok(Err(format!("{}: {reason}", row.state.name())));
        }
        other => return Ok(Err(format!("not validated (state {})", other.name()))),
    }
    let Some(run) = inv.latest_run_of_kind(row.id, RunKind::Validate)? else {
        return Ok(Err("no validate run recorded".into()));
    };
    if run.verdict != Some(Verdict::Pass) {
        let verdict = run.verdict.map(|v| v.as_str()).unwrap_or("none");
        return Ok(Err(format!("its latest validate (run {}) is {verdict}", run.id.0)));
    }
    Ok(Ok(inv.run_node(run.id)?))
}

/// The verified domains of `candidates`: each gate-passed node with one fabric identity joins
/// the domain of that identity; every other node is left out with its reason. Domains come in
/// (rack, name) order, their nodes in natural order; left-out nodes in the order given.
pub fn verified_domains(inv: &Inventory, candidates: &[Candidate]) -> Result<Topology, InventoryError> {
    let mut by_key: BTreeMap<(String, u32), Vec<&Candidate>> = BTreeMap::new();
    let mut left_out = Vec::new();
    for c in candidates {
        let placed = match gate_passed(inv, c)? {
            Ok(node) => fabric_identity(&node),
            Err(why) => Err(why),
        };
        match placed {
            Ok(key) => by_key.entry(key).or_default().push(c),
            Err(reason) => left_out.push(LeftOut { node: c.node.clone(), rack: c.rack.clone(), reason }),
        }
    }
    let mut domains: Vec<VerifiedDomain> = by_key
        .into_iter()
        .map(|((uuid, clique), members)| {
            let mut racks: Vec<String> = members.iter().map(|m| m.rack.clone()).collect();
            racks.sort();
            racks.dedup();
            let mut nodes: Vec<String> = members.iter().map(|m| m.node.clone()).collect();
            nodes.sort_by(|a, b| natural_cmp(a, b));
            nodes.dedup();
            let short: String = uuid.chars().filter(|c| c.is_ascii_hexdigit()).take(8).collect();
            let name = slurm_name(&format!("{}-{short}-{clique}", racks.first().map(String::as_str).unwrap_or("rack")));
            VerifiedDomain { name, cluster_uuid: uuid, clique_id: clique, racks, nodes }
        })
        .collect();
    domains.sort_by(|a, b| a.racks.cmp(&b.racks).then(a.name.cmp(&b.name)));
    Ok(Topology { domains, left_out })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::Finding;
    use crate::hw::fixture::sample::gb200_tray_node;
    use crate::inventory::tests::support::{at, temp_db, validate_findings};
    use crate::inventory::{RunLifecycle, RunRecord};

    /// A run of tray `node` recorded in its place of rack r07, as `kiln rack validate` records it.
    fn record(inv: &mut Inventory, kind: RunKind, node: &Node, findings: &[Finding], minute: i64) {
        let verdict = Verdict::of(findings);
        let run = RunRecord {
            name: Some(&node.hostname),
            platform: Some("gb200-nvl72-tray"),
            rack: Some("r07"),
            findings,
            verdict: Some(verdict),
            exit_code: i32::from(verdict == Verdict::Fail),
            started_at: at(minute),
            finished_at: at(minute + 1),
            lifecycle: RunLifecycle::FromOutcome,
            ..RunRecord::new(kind, node, "tech-ana")
        };
        inv.record_run(&run).expect("record a run");
    }

    fn tray(name: &str, uuid: Option<&str>) -> Node {
        let mut node = gb200_tray_node();
        node.hostname = name.into();
        if let Some(u) = uuid {
            if let crate::model::GpuInventory::Inspected { gpus, .. } = &mut node.gpus {
                for g in gpus.iter_mut() {
                    if let Some(f) = g.fabric.as_mut() {
                        f.cluster_uuid = u.into();
                    }
                }
            }
        }
        node
    }

    fn candidates(names: &[&str]) -> Vec<Candidate> {
        names.iter().map(|n| Candidate { rack: "r07".into(), node: n.to_string() }).collect()
    }

    #[test]
    fn gate_passed_trays_group_by_clique_and_the_rest_are_left_out_with_why() {
        let (_dir, path) = temp_db();
        let mut inv = Inventory::open(&path).expect("open");
        for (i, name) in ["t10", "t2", "t1", "t3"].iter().enumerate() {
            record(&mut inv, RunKind::Validate, &tray(name, None), &validate_findings(*name == "t3"), i as i64);
        }
        record(&mut inv, RunKind::Validate, &tray("t4", Some("0badc0de-0000-4000-8000-000000000001")), &[], 9);
        let topo = verified_domains(&inv, &candidates(&["t1", "t2", "t3", "t4", "t10", "t-none"])).expect("domains");
        assert_eq!(topo.domains.len(), 2, "{topo:#?}");
        let main = topo.domains.iter().find(|d| d.nodes.len() == 3).expect("the rack's domain");
        assert_eq!(main.nodes, ["t1", "t2", "t10"]);
        assert_eq!(main.name, "r07-7c1e2f3a-32766");
        assert_eq!(main.clique(), "7c1e2f3a-4b5c-4d6e-8f70-81a2b3c4d5e6.32766");
        let other = topo.domains.iter().find(|d| d.nodes == ["t4"]).expect("the stray tray's own domain");
        assert_eq!(other.name, "r07-0badc0de-32766");
        let reasons: Vec<(&str, &str)> = topo.left_out.iter().map(|l| (l.node.as_str(), l.reason.as_str())).collect();
        assert_eq!(reasons.len(), 2, "{reasons:?}");
        assert!(reasons[0].0 == "t3" && reasons[0].1.starts_with("failed: "), "{reasons:?}");
        assert!(reasons[1].0 == "t-none" && reasons[1].1.starts_with("not in the inventory"), "{reasons:?}");
    }

    #[test]
    fn a_tray_without_fabric_or_split_across_domains_joins_none() {
        let mut split = tray("s", None);
        if let crate::model::GpuInventory::Inspected { gpus, .. } = &mut split.gpus {
            if let Some(f) = gpus[1].fabric.as_mut() {
                f.clique_id = 7;
            }
        }
        assert!(fabric_identity(&split).expect_err("split").contains("2 NVLink domains"));
        let mut none = tray("n", None);
        if let crate::model::GpuInventory::Inspected { gpus, .. } = &mut none.gpus {
            gpus[0].fabric = None;
        }
        assert!(fabric_identity(&none).expect_err("no fabric").contains("reports no NVLink fabric"));
        let mut unregistered = tray("u", Some(UNREGISTERED));
        unregistered.hostname = "u".into();
        assert!(fabric_identity(&unregistered).expect_err("zero uuid").contains("not registered"));
        assert!(fabric_identity(&tray("ok", None)).is_ok());
    }
}
