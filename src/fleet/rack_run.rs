//! A rack step end to end: skip nodes whose step already passed, fan out, record each node as it
//! finishes, then judge the rack as a whole and record that too.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use super::fanout::{run_step, FanoutOptions, Phase, Plan};
use super::outcome::{NodeOutcome, NodeStatus, RackOutcome, Step};
use super::rack_checks::{gated, nodes_from_outcomes, rack_findings_scoped, RackMember};
use super::record::{already_passed, apply, record_outcome, run_kind, RecordResult};
use super::transport::Connector;
use crate::checks::spec_load::LoadedSpec;
use crate::checks::{Component, Finding, Outcome, Severity};
use crate::exit;
use crate::handoff::list_checks;
use crate::inventory::{now, Inventory, InventoryError, RackRunRecord};
use crate::model::Node;
use crate::rack::RackNode;

/// One step over (part of) a rack.
#[derive(Debug, Clone, Copy)]
pub struct RackStep<'a> {
    /// The manifest's rack id, recorded with every run.
    pub rack: &'a str,
    /// The manifest's platform, for nodes whose report names none.
    pub rack_platform: Option<&'a str>,
    /// The platform specs rack checks read capabilities from (the built-in
    /// ones, or `--checks-dir`).
    pub specs: &'a [LoadedSpec],
    pub nodes: &'a [&'a RackNode],
    pub plan: &'a Plan,
    pub opts: &'a FanoutOptions,
    /// Run nodes whose step already passed as well.
    pub force: bool,
    /// `nodes` is every node of the manifest: a multi-node NVLink domain's
    /// completeness is judged only then.
    pub whole_rack: bool,
}

/// Runs `step` and, with an inventory, records it: each node's outcome as it
/// finishes (one transaction per node, so an interrupted rack keeps what
/// finished), then the rack run with its findings. Nodes whose step already
/// passed are skipped unless `force`. Rack checks run after `inspect` and
/// `validate`, over the nodes that ran and the skipped nodes' recorded models.
///
/// `Err` only when the inventory cannot be read before any node runs; a
/// write that fails later shows in the outcome (`recorded.error`,
/// `record_error`) and its exit code (`DATABASE`).
pub fn run_rack_step(
    step: &RackStep<'_>,
    connector: &dyn Connector,
    inventory: Option<&mut Inventory>,
    progress: &(dyn Fn(&str, Phase<'_>) + Sync),
) -> Result<RackOutcome, InventoryError> {
    let started = now();
    let kind = step.plan.step;
    let mut skips: HashMap<String, String> = HashMap::new();
    if let (Some(inv), false) = (inventory.as_deref(), step.force) {
        for n in step.nodes {
            if let Some(reason) = already_passed(inv, &super::record::place(step.rack, &n.name), kind)? {
                skips.insert(n.name.clone(), reason);
            }
        }
    }
    let skip = |name: &str| skips.get(name).cloned();
    let recording = inventory.filter(|_| run_kind(kind).is_some()).map(Mutex::new);
    let results: Mutex<HashMap<String, RecordResult>> = Mutex::new(HashMap::new());
    // Outcomes the rack's bill of materials changed, which replace the fan-out's.
    let judged: Mutex<HashMap<String, NodeOutcome>> = Mutex::new(HashMap::new());
    let on_phase = |name: &str, phase: Phase<'_>| {
        let Phase::Done(o) = phase else { return progress(name, phase) };
        let by_bom = step.nodes.iter().find(|n| n.name == name).and_then(|n| n.bom.as_deref());
        let by_bom = by_bom.and_then(|b| super::bom::judged(o, b));
        let o = by_bom.as_ref().unwrap_or(o);
        if let Some(inv) = recording.as_ref() {
            // A poisoned lock means another worker panicked mid-write; SQLite
            // rolled that transaction back, so the connection is still sound.
            let mut guard = inv.lock().unwrap_or_else(|p| p.into_inner());
            let result = record_outcome(&mut guard, step.rack, o);
            drop(guard);
            results.lock().unwrap_or_else(|p| p.into_inner()).insert(name.to_string(), result);
        }
        progress(name, Phase::Done(o));
        if let Some(j) = by_bom {
            judged.lock().unwrap_or_else(|p| p.into_inner()).insert(name.to_string(), j);
        }
    };
    let mut outcomes = run_step(step.nodes, step.plan, step.opts, connector, Some(&skip), &on_phase);
    let mut judged = judged.into_inner().unwrap_or_else(|p| p.into_inner());
    let mut results = results.into_inner().unwrap_or_else(|p| p.into_inner());
    for o in &mut outcomes {
        if let Some(j) = judged.remove(&o.node) {
            *o = j;
        }
        if let Some(r) = results.remove(&o.node) {
            apply(o, r);
        }
    }
    let inventory = recording.map(|m| m.into_inner().unwrap_or_else(|p| p.into_inner()));

    let (mut findings, gate) = if matches!(kind, Step::Inspect | Step::Validate) {
        let mut collected = nodes_from_outcomes(&outcomes, step.rack_platform);
        if let Some(inv) = inventory.as_deref() {
            collected.extend(skipped_members(inv, step.rack, &outcomes, kind, step.rack_platform));
        }
        let members: Vec<RackMember<'_>> = collected
            .iter()
            .map(|(name, platform, node)| RackMember {
                name,
                platform: platform.as_deref(),
                node,
                tray: step.nodes.iter().find(|n| &n.name == name).and_then(|n| n.tray),
            })
            .collect();
        let mut findings = rack_findings_scoped(&members, step.specs, step.whole_rack);
        if let (Step::Validate, Some(inv)) = (kind, inventory.as_deref()) {
            findings.extend(site_serials(inv, step.rack, &outcomes));
        }
        let gate = gated(&findings, &members, step.specs)
            .into_iter()
            .map(|(node, checks)| (node, format!("rack {} failed: {}", kind.as_str(), list_checks(&checks))))
            .collect();
        (findings, gate)
    } else {
        (Vec::new(), BTreeMap::new())
    };
    findings.extend(outcomes.iter().filter_map(machine_finding));
    let mut outcome = RackOutcome::new(step.rack, kind, outcomes, findings);
    if let Some(inv) = inventory {
        record_rack_outcome(inv, &mut outcome, started, &format!("kiln rack {}", kind.as_str()), &gate);
    }
    Ok(outcome)
}

/// Records `outcome` as its rack run (its rack findings, each node's status, the nodes `gate`
/// moves to `failed`) and then each recorded node's state as the run left it. A rack run the
/// inventory refuses leaves the outcome `DATABASE` (unless it already says worse) with why.
pub(super) fn record_rack_outcome(
    inv: &mut Inventory,
    outcome: &mut RackOutcome,
    started: time::OffsetDateTime,
    actor: &str,
    gate: &BTreeMap<String, String>,
) {
    let node_status: BTreeMap<String, String> =
        outcome.nodes.iter().map(|o| (o.node.clone(), o.status.as_str().to_string())).collect();
    let record = RackRunRecord {
        rack: &outcome.rack,
        kind: outcome.step.as_str(),
        started_at: started,
        finished_at: now(),
        findings: &outcome.rack_findings,
        exit_code: outcome.exit_code,
        node_status: &node_status,
        actor,
        gate,
    };
    match inv.record_rack_run(&record) {
        Ok(id) => {
            outcome.rack_run_id = Some(id.0);
            // Each node's recorded state as the rack run left it.
            for o in &mut outcome.nodes {
                if let (Some(recorded), Ok(state)) =
                    (o.recorded.as_mut(), inv.state(&super::record::place(&outcome.rack, &o.node)))
                {
                    recorded.state = Some(state.name().to_string());
                    recorded.state_reason = state.reason().map(str::to_string);
                }
            }
        }
        Err(e) => {
            tracing::warn!(rack = %outcome.rack, error = %e, "rack run not recorded");
            outcome.record_error = Some(e.to_string());
            if matches!(outcome.exit_code, exit::OK | exit::CHECK_ERROR | exit::SKIPPED) {
                outcome.exit_code = exit::DATABASE;
            }
        }
    }
}

/// The site-wide serial findings of the nodes just recorded, or one error finding saying why
/// they could not be judged.
fn site_serials(inv: &Inventory, rack: &str, outcomes: &[NodeOutcome]) -> Vec<Finding> {
    super::serials::site_serials(inv, rack, outcomes).unwrap_or_else(|e| {
        let why = crate::error::chain(&e);
        vec![Finding::new(
            crate::inventory::SERIAL_UNIQUE,
            Outcome::Error,
            Severity::Warning,
            Component { kind: "rack".into(), name: Some(rack.to_string()), ..Component::default() },
            format!("serials could not be compared across the inventory: {why}"),
        )]
    })
}

/// A place of the rack that holds a different machine than the inventory recorded there: a
/// finding until someone has looked (it shows in the run that saw the change, and in the
/// place's machine history).
fn machine_finding(o: &NodeOutcome) -> Option<Finding> {
    let change = o.recorded.as_ref()?.machine_change.as_ref()?;
    let component = Component { kind: "node".into(), name: Some(o.node.clone()), ..Component::default() };
    Some(
        Finding::new("inventory.machine", Outcome::Fail, Severity::Warning, component, change.message.clone())
            .expected(&change.was)
            .actual(&change.now)
            .action(format!(
                "confirm the machine in {} is meant to be there (a planned replacement or move); if not, \
                 put the recorded machine back",
                o.node
            )),
    )
}

/// The recorded models of nodes skipped because their step already passed,
/// so that rack checks on a rerun still compare the whole rack.
fn skipped_members(
    inv: &Inventory,
    rack: &str,
    outcomes: &[NodeOutcome],
    kind: Step,
    rack_platform: Option<&str>,
) -> Vec<(String, Option<String>, Node)> {
    let Some(run_kind) = run_kind(kind) else { return Vec::new() };
    outcomes
        .iter()
        .filter(|o| o.status == NodeStatus::Skipped && o.remote_exit.is_none())
        .filter_map(|o| {
            let row = inv.node(&super::record::place(rack, &o.node)).ok()??;
            let run = inv.latest_run_of_kind(row.id, run_kind).ok()??;
            let node = inv.run_node(run.id).ok()?;
            Some((o.node.clone(), run.platform.or_else(|| rack_platform.map(str::to_string)), node))
        })
        .collect()
}
