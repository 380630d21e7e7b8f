//! `build_report`: gather a report from the inventory.

use time::OffsetDateTime;

use crate::checks::Outcome;
use crate::inventory::{format_timestamp, Inventory, InventoryError, NodeRow, RunRow};

use super::burnin_section::burnin_section;
use super::model::{FindingsReport, NodeReport, Report, StoredFinding, REPORT_KIND, REPORT_SCHEMA_VERSION};

/// A report on every node (by hostname), or on the one named. A name the
/// inventory does not know is an error, not an empty report.
pub fn build_report(
    inventory: &Inventory,
    hostname: Option<&str>,
    generated_at: OffsetDateTime,
) -> Result<Report, InventoryError> {
    let nodes = match hostname {
        Some(name) => {
            let node = inventory.node(name)?.ok_or_else(|| InventoryError::UnknownNode { hostname: name.into() })?;
            let run = inventory.latest_run(node.id)?;
            vec![(node, run)]
        }
        None => inventory.latest_runs()?,
    };
    let nodes = nodes.into_iter().map(|(node, run)| node_report(inventory, node, run)).collect::<Result<_, _>>()?;
    Ok(Report {
        schema_version: REPORT_SCHEMA_VERSION,
        kind: REPORT_KIND.to_string(),
        generated_at: format_timestamp(generated_at),
        nodes,
    })
}

fn node_report(inventory: &Inventory, node: NodeRow, last_run: Option<RunRow>) -> Result<NodeReport, InventoryError> {
    let components = match &last_run {
        Some(run) => inventory.run_components(run.id)?,
        None => Vec::new(),
    };
    let mut findings = FindingsReport { runs: inventory.latest_judged_runs(node.id)?, ..Default::default() };
    for run in &findings.runs {
        for finding in inventory.run_findings(run.id)? {
            if finding.outcome == Outcome::Pass {
                findings.passed += 1;
            } else {
                findings.not_passing.push(StoredFinding { run_id: run.id, run_kind: run.kind.clone(), finding });
            }
        }
    }
    let changes = inventory.changes_since_previous_run(node.id)?;
    let burnin = inventory.latest_burnin(node.id)?.map(|r| burnin_section(&r));
    Ok(NodeReport {
        hostname: node.name,
        rack: node.rack,
        platform: node.platform,
        serial: node.serial,
        state: node.state,
        first_seen: node.first_seen,
        last_seen: node.last_seen,
        last_run,
        components,
        findings,
        changes,
        burnin,
    })
}
