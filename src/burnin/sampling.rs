//! Telemetry around a piece of work: each GPU's health counters before and after it, its samples
//! at a fixed period and the Xid events heard while it runs, through the telemetry source
//! `hw` opened (live NVML or a capture's recording). `kiln burnin` samples its test phases with
//! it, and `kiln nccl-rank` its rank of the collective, so both report the same shape.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::placement;
use super::report::{GpuIdentity, GpuTelemetry, Watch};
use crate::checks::rules::common::Ctx;
use crate::checks::{Component, Finding, Outcome, Severity};
use crate::hw::telemetry::{Telemetry, When};
use crate::model::{Gpu, Node};

/// A GPU to watch: who it is, and the power limit the inspection read.
#[derive(Debug, Clone)]
pub struct Watched {
    pub identity: GpuIdentity,
    pub power_limit_w: Option<f64>,
}

/// Who a GPU of the inspection is, as reports name it; `None` when NVML gave no PCI address
/// (a GPU that cannot be matched to CUDA or found by a technician).
pub fn identity(node: &Node, gpu: &Gpu) -> Option<GpuIdentity> {
    let address = gpu.pci_address?;
    let numa_node = match placement::placement(node, &address) {
        Ok(p) => p.map(|p| p.node),
        Err(e) => {
            tracing::warn!(gpu = gpu.index, "NUMA node unknown: {e}");
            None
        }
    };
    Some(GpuIdentity {
        index: gpu.index,
        pci_address: address,
        serial: gpu.serial.clone().filter(|s| !s.trim().is_empty()),
        uuid: gpu.uuid.clone(),
        name: gpu.name.clone(),
        numa_node,
        slot: Ctx::new(node).gpu_component(gpu).slot,
    })
}

/// Runs `work` with telemetry over `gpus`: counters before and after, samples every `period`
/// and the Xid watch for the whole time. Returns what `work` gave, each GPU's telemetry (in
/// the order of `gpus`), and a finding for each Xid heard from a GPU outside `gpus`, which
/// still matters.
pub fn around<R>(
    t: &dyn Telemetry,
    gpus: &[Watched],
    period: Duration,
    work: impl FnOnce() -> R,
) -> (R, Vec<GpuTelemetry>, Vec<Finding>) {
    let befores: Vec<_> = gpus.iter().map(|g| t.counters(g.identity.index, When::Before)).collect();
    let targets: Vec<(u32, Option<String>)> =
        gpus.iter().map(|g| (g.identity.index, g.identity.uuid.clone())).collect();
    let stop = AtomicBool::new(false);
    let (done, samples, (xid_events, xid_watch)) = std::thread::scope(|s| {
        let stop = &stop;
        let samplers: Vec<_> =
            gpus.iter().map(|g| s.spawn(move || t.sample_until(g.identity.index, period, stop))).collect();
        let targets = &targets;
        let xid = s.spawn(move || t.watch_xids(targets, stop));
        let done = work();
        stop.store(true, Ordering::Relaxed);
        let samples: Vec<_> = samplers
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| (Vec::new(), vec!["telemetry sampler panicked (kiln bug)".into()])))
            .collect();
        let xids = xid
            .join()
            .unwrap_or_else(|_| (Vec::new(), Watch::Failed { reason: "Xid watcher panicked (kiln bug)".into() }));
        (done, samples, xids)
    });
    let mut xids_by_gpu: BTreeMap<u32, Vec<_>> = BTreeMap::new();
    for (i, e) in xid_events {
        xids_by_gpu.entry(i).or_default().push(e);
    }
    let mut telemetry = Vec::new();
    for ((g, (before, mut problems)), (samples, sample_problems)) in gpus.iter().zip(befores).zip(samples) {
        let (after, after_problems) = t.counters(g.identity.index, When::After);
        for p in after_problems.into_iter().chain(sample_problems) {
            if !problems.contains(&p) {
                problems.push(p);
            }
        }
        telemetry.push(GpuTelemetry {
            gpu: g.identity.clone(),
            before,
            after,
            samples,
            xids: xids_by_gpu.remove(&g.identity.index).unwrap_or_default(),
            xid_watch: xid_watch.clone(),
            power_limit_w: g.power_limit_w,
            problems,
        });
    }
    let mut findings = Vec::new();
    for (i, events) in xids_by_gpu {
        for e in events {
            findings.push(
                Finding::new(
                    "burnin.telemetry.xid",
                    Outcome::Fail,
                    Severity::Critical,
                    Component::node(),
                    format!("Xid {} on a GPU outside the burn-in (NVML index {i})", e.xid),
                )
                .action("look up the Xid in checks/xid.toml and follow its action"),
            );
        }
    }
    (done, telemetry, findings)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hw::nvml::{RecordedGpu, ReplayedTelemetry, TelemetryRecording};
    use crate::model::{HealthCounters, Sample, XidEvent};

    fn gpu(index: u32) -> Watched {
        Watched {
            identity: GpuIdentity {
                index,
                pci_address: crate::model::PciAddress::new(0, 0x1b + index as u8, 0, 0).expect("address"),
                serial: Some(format!("serial-{index}")),
                uuid: None,
                name: None,
                numa_node: None,
                slot: None,
            },
            power_limit_w: Some(1200.0),
        }
    }

    #[test]
    fn the_work_runs_once_between_the_counters_and_each_gpu_keeps_its_own_telemetry() {
        let recorded = |index: u32, errors: u64| RecordedGpu {
            index,
            before: Some(HealthCounters { nvlink_errors: Some(0), ..Default::default() }),
            after: Some(HealthCounters { nvlink_errors: Some(errors), ..Default::default() }),
            samples: vec![Sample { at_unix_ms: 1000 + i64::from(index), power_w: Some(900.0), ..Default::default() }],
            xids: if index == 1 { vec![XidEvent { at_unix_ms: 1500, xid: 79 }] } else { Vec::new() },
            problems: Vec::new(),
        };
        let t = ReplayedTelemetry {
            gpus: Vec::new(),
            recording: Some(TelemetryRecording {
                xid_watch: Watch::Watched,
                gpus: vec![recorded(0, 0), recorded(1, 7), recorded(5, 0)],
            }),
        };
        let mut ran = 0;
        let (said, tel, findings) = around(&t, &[gpu(0), gpu(1)], Duration::from_millis(10), || {
            ran += 1;
            "done"
        });
        assert_eq!((said, ran), ("done", 1));
        assert_eq!(tel.len(), 2);
        assert_eq!(tel[1].gpu.index, 1);
        assert_eq!(tel[1].after.nvlink_errors, Some(7));
        assert_eq!(tel[1].xids, [XidEvent { at_unix_ms: 1500, xid: 79 }]);
        assert!(tel[0].xids.is_empty());
        assert_eq!(tel[0].samples.len(), 1);
        assert_eq!(tel[0].power_limit_w, Some(1200.0));
        // GPU 5 is not watched and heard nothing here; nothing outside is reported.
        assert!(findings.is_empty(), "{findings:?}");
    }
}
