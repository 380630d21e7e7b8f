//! Recording many inventories quickly: the hook `cargo xtask bench` times.

use std::time::{Duration, Instant};

use crate::checks::{Finding, Verdict};
use crate::lifecycle::RunKind;
use crate::model::Node;

use super::{components_of, Inventory, InventoryError, RunLifecycle, RunRecord};

/// What `record_inventories` wrote and how long it took.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchStats {
    pub runs: usize,
    pub components: usize,
    pub findings: usize,
    pub elapsed: Duration,
}

impl BenchStats {
    pub fn runs_per_second(&self) -> f64 {
        self.runs as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }
}

/// Record `runs` validate runs of `template` with `findings`, spread over
/// `distinct_nodes` machines (hostnames `<hostname>-0000`, ..., each with its
/// own DMI serials and UUID), each run in its own transaction exactly as a real
/// run is recorded.
pub fn record_inventories(
    inventory: &mut Inventory,
    template: &Node,
    findings: &[Finding],
    runs: usize,
    distinct_nodes: usize,
) -> Result<BenchStats, InventoryError> {
    let distinct_nodes = distinct_nodes.max(1);
    let nodes: Vec<Node> = (0..distinct_nodes.min(runs))
        .map(|i| {
            let mut node = Node { hostname: format!("{}-{i:04}", template.hostname), ..template.clone() };
            let own = |s: &Option<String>| Some(format!("{}-{i:04}", s.as_deref().unwrap_or("bench")));
            node.dmi.product_serial = own(&template.dmi.product_serial);
            node.dmi.board_serial = own(&template.dmi.board_serial);
            node.dmi.product_uuid =
                template.dmi.product_uuid.as_ref().map(|_| format!("6e1f0c2a-0000-4000-8000-{i:012x}"));
            node
        })
        .collect();
    let per_run_components = components_of(template).len();
    let verdict = Verdict::of(findings);
    let start = Instant::now();
    for i in 0..runs {
        let node = &nodes[i % nodes.len()];
        let run = RunRecord {
            findings,
            verdict: Some(verdict),
            lifecycle: RunLifecycle::FromOutcome,
            ..RunRecord::new(RunKind::Validate, node, "kiln-bench")
        };
        inventory.record_run(&run)?;
    }
    Ok(BenchStats {
        runs,
        components: runs * per_run_components,
        findings: runs * findings.len(),
        elapsed: start.elapsed(),
    })
}
