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

/// A synthetic site: `racks` racks of 18 trays, each tray its own machine with its own
/// serials (system, GPUs, DIMMs), checked once a day for `days` days. On the middle day the
/// first GPUs of the first two trays of rack 0 are swapped, so a `where` has two stays.
#[derive(Debug, Clone, PartialEq)]
pub struct SiteStats {
    pub racks: usize,
    pub trays: usize,
    pub gpus: usize,
    pub days: usize,
    pub runs: usize,
    /// How long recording each day's pass over the whole site took.
    pub day_elapsed: Vec<Duration>,
    /// The serial swapped, and the tray that holds it at the end.
    pub swapped_serial: Option<String>,
    pub first_tray: String,
}

/// Trays per rack in an NVL72 rack.
pub const TRAYS_PER_RACK: usize = 18;

fn site_tray(template: &Node, rack: usize, tray: usize) -> Node {
    let mut node = template.clone();
    let n = rack * TRAYS_PER_RACK + tray;
    node.hostname = format!("r{rack:03}-t{tray:02}");
    node.dmi.product_serial = Some(format!("18217{n:08}"));
    node.dmi.board_serial = Some(format!("18217{n:08}B"));
    node.dmi.product_uuid = Some(format!("8a2b3c4d-5e6f-4a1b-9c2d-{n:012x}"));
    if let crate::model::GpuInventory::Inspected { gpus, .. } = &mut node.gpus {
        for g in gpus.iter_mut() {
            g.serial = Some(format!("1652{n:07}{:02}", g.index));
            if let Some(p) = &mut g.platform {
                p.chassis_serial = Some(format!("RACK{rack:04}"));
                p.tray_index = tray as u32;
            }
        }
    }
    for (i, d) in node.memory.dimms.iter_mut().enumerate() {
        d.serial = Some(format!("80CE{n:07}{i:02}"));
    }
    node
}

/// Records the synthetic site (see `SiteStats`), one validate run per tray per day in its own
/// transaction as a rack step records it, with `findings` as each run's.
pub fn record_site(
    inventory: &mut Inventory,
    template: &Node,
    findings: &[Finding],
    platform: &str,
    racks: usize,
    days: usize,
) -> Result<SiteStats, InventoryError> {
    let start = time::OffsetDateTime::now_utc() - time::Duration::days(days as i64);
    let mut trays: Vec<(String, String, Node)> = Vec::new();
    for rack in 0..racks {
        for tray in 0..TRAYS_PER_RACK {
            trays.push((format!("rack{rack:03}"), format!("tray{tray:02}"), site_tray(template, rack, tray)));
        }
    }
    let gpus = trays.iter().map(|(_, _, n)| n.gpus.gpus().len()).sum();
    let verdict = Verdict::of(findings);
    let mut day_elapsed = Vec::new();
    let mut swapped_serial = None;
    let mut runs = 0;
    for day in 0..days {
        if day == days / 2 && days > 1 && trays.len() > 1 {
            let a = trays[0].2.gpus.gpus().first().and_then(|g| g.serial.clone());
            let b = trays[1].2.gpus.gpus().first().and_then(|g| g.serial.clone());
            for (i, serial) in [(0, b), (1, a.clone())] {
                if let crate::model::GpuInventory::Inspected { gpus, .. } = &mut trays[i].2.gpus {
                    if let Some(g) = gpus.first_mut() {
                        g.serial = serial;
                    }
                }
            }
            swapped_serial = a;
        }
        let began = Instant::now();
        for (i, (rack, name, node)) in trays.iter().enumerate() {
            let at = start + time::Duration::days(day as i64) + time::Duration::seconds(i as i64);
            let run = RunRecord {
                name: Some(name),
                rack: Some(rack),
                platform: Some(platform),
                findings,
                verdict: Some(verdict),
                started_at: at,
                finished_at: at + time::Duration::milliseconds(900),
                lifecycle: RunLifecycle::Leave,
                ..RunRecord::new(RunKind::Validate, node, "kiln-bench")
            };
            inventory.record_run(&run)?;
            runs += 1;
        }
        day_elapsed.push(began.elapsed());
    }
    Ok(SiteStats {
        racks,
        trays: trays.len(),
        gpus,
        days,
        runs,
        day_elapsed,
        swapped_serial,
        first_tray: trays.first().map(|(_, n, _)| n.clone()).unwrap_or_default(),
    })
}
