//! `build_report`: gather a report from the inventory.

use time::OffsetDateTime;

use crate::checks::Outcome;
use crate::inventory::{format_timestamp, Inventory, InventoryError, NodeRow, RunRow};

use super::burnin_section::burnin_section;
use super::collective_section::collective_section;
use super::model::{FindingsReport, NodeReport, Report, StoredFinding, REPORT_KIND, REPORT_SCHEMA_VERSION};

/// A report on every node (by hostname), or on the one named. A name the
/// inventory does not know is an error, not an empty report.
pub fn build_report(
    inventory: &Inventory,
    hostname: Option<&str>,
    generated_at: OffsetDateTime,
) -> Result<Report, InventoryError> {
    build_report_as_of(inventory, hostname, generated_at, None)
}

/// `build_report` as the inventory stood at `as_of`: each node's newest run started by then,
/// its parts, the findings of its newest judged runs by then, the changes that run made, its
/// lifecycle state then. Nodes first recorded later are left out (named one: an error).
pub fn build_report_as_of(
    inventory: &Inventory,
    hostname: Option<&str>,
    generated_at: OffsetDateTime,
    as_of: Option<OffsetDateTime>,
) -> Result<Report, InventoryError> {
    let at = as_of.map(format_timestamp);
    let at = at.as_deref();
    let nodes = match (hostname, at) {
        (Some(name), _) => {
            let node = inventory.node(name)?.ok_or_else(|| InventoryError::UnknownNode { hostname: name.into() })?;
            if let Some(at) = at.filter(|at| node.first_seen.as_str() > *at) {
                return Err(InventoryError::NotYetRecorded {
                    hostname: node.name,
                    at: at.to_string(),
                    first_seen: node.first_seen,
                });
            }
            let run = inventory.latest_run_as_of(node.id, at)?;
            vec![(node, run)]
        }
        (None, None) => inventory.latest_runs()?,
        (None, Some(at)) => {
            let mut nodes = Vec::new();
            for node in inventory.nodes()?.into_iter().filter(|n| n.first_seen.as_str() <= at) {
                let run = inventory.latest_run_as_of(node.id, Some(at))?;
                nodes.push((node, run));
            }
            nodes
        }
    };
    let nodes = nodes.into_iter().map(|(node, run)| node_report(inventory, node, run, at)).collect::<Result<_, _>>()?;
    Ok(Report {
        schema_version: REPORT_SCHEMA_VERSION,
        kind: REPORT_KIND.to_string(),
        generated_at: format_timestamp(generated_at),
        as_of: at.map(str::to_string),
        nodes,
    })
}

fn node_report(
    inventory: &Inventory,
    node: NodeRow,
    last_run: Option<RunRow>,
    at: Option<&str>,
) -> Result<NodeReport, InventoryError> {
    let components = match &last_run {
        Some(run) => inventory.run_components(run.id)?,
        None => Vec::new(),
    };
    let mut findings = FindingsReport { runs: inventory.latest_judged_runs_as_of(node.id, at)?, ..Default::default() };
    for run in &findings.runs {
        for finding in inventory.run_findings(run.id)? {
            if finding.outcome == Outcome::Pass {
                findings.passed += 1;
            } else {
                findings.not_passing.push(StoredFinding { run_id: run.id, run_kind: run.kind.clone(), finding });
            }
        }
    }
    let changes = match &last_run {
        Some(run) => inventory.changes_before(run)?,
        None => None,
    };
    let burnin = inventory.latest_burnin_as_of(node.id, at)?.map(|r| burnin_section(&r));
    let collective = inventory.latest_collective_as_of(node.id, at)?.map(|t| collective_section(&t));
    let (state, last_seen) = match at {
        None => (node.state, node.last_seen),
        Some(at) => (
            inventory.state_as_of(node.id, at)?.unwrap_or(node.state),
            last_run.as_ref().map_or(node.first_seen.clone(), |r| r.finished_at.clone()),
        ),
    };
    Ok(NodeReport {
        hostname: node.name,
        rack: node.rack,
        platform: node.platform,
        serial: node.serial,
        state,
        first_seen: node.first_seen,
        last_seen,
        last_run,
        components,
        findings,
        changes,
        burnin,
        collective,
    })
}
