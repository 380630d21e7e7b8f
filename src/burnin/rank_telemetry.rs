//! One rank of the collective with its GPUs' telemetry: `kiln nccl-rank` samples every GPU of
//! its tray for the whole rank, at the burn-in's sample period and through the same telemetry
//! source (`sampling::around`), and puts it in the rank report, so the controller judges each
//! tray's telemetry as a burn-in judges its own and the inventory keeps it per tray.

use std::io::Read;
use std::time::Duration;

use super::collective::{run_rank, RankOptions, RankReport};
use super::sampling::{self, Watched};
use crate::hw::telemetry::TelemetryAccess;
use crate::model::{GpuInventory, Node};

/// Why a rank replayed from a capture runs no collective.
pub const REPLAY_NO_COLLECTIVE: &str =
    "replayed from a capture (--root): the collective runs only on this machine's own GPUs";

/// Runs one rank (`run_rank`) with telemetry over every GPU `node` holds (the node as inspected
/// from the same source; `None` when there was no GPU to inspect). `gpus` is that source's
/// telemetry: live NVML samples while the rank runs;
/// a capture (`--root`) gives its recording and runs no collective (the GPUs are not here);
/// without a driver, or with NVML broken, the rank runs unsampled and `telemetry_note` says
/// why. Problems of single queries stay with each GPU's telemetry, never fail the rank here:
/// the controller judges them.
pub fn run_rank_sampled(
    opts: &RankOptions,
    input: &mut dyn Read,
    node: Option<&Node>,
    gpus: TelemetryAccess<'_>,
    period: Duration,
) -> RankReport {
    let watched = node.map(watched_gpus).unwrap_or_default();
    match gpus {
        TelemetryAccess::Live(t) if !watched.is_empty() => {
            let (mut report, telemetry, outside) = sampling::around(t, &watched, period, || run_rank(opts, input));
            report.telemetry = telemetry;
            note_outside(&mut report, &outside);
            report
        }
        TelemetryAccess::Replay(t) => {
            let (mut report, telemetry, outside) =
                sampling::around(t, &watched, period, || RankReport::not_run(opts, REPLAY_NO_COLLECTIVE));
            report.telemetry = telemetry;
            if watched.is_empty() {
                report.telemetry_note = Some(no_gpu_note(node));
            }
            note_outside(&mut report, &outside);
            report
        }
        TelemetryAccess::Live(_) => {
            let mut report = run_rank(opts, input);
            report.telemetry_note = Some(no_gpu_note(node));
            report
        }
        TelemetryAccess::NoDriver => {
            let mut report = run_rank(opts, input);
            report.telemetry_note = Some(format!("not sampled: {}", crate::hw::gpu::NO_DRIVER));
            report
        }
        TelemetryAccess::Failed(why) => {
            let mut report = run_rank(opts, input);
            report.telemetry_note = Some(format!("not sampled: {why}"));
            report
        }
    }
}

/// Every GPU of the inspection that can be named (one NVML gave no PCI address cannot).
fn watched_gpus(node: &Node) -> Vec<Watched> {
    match &node.gpus {
        GpuInventory::Inspected { gpus, .. } => gpus
            .iter()
            .filter_map(|g| {
                sampling::identity(node, g).map(|identity| Watched { identity, power_limit_w: g.power_limit_watts })
            })
            .collect(),
        GpuInventory::NotInspected { .. } => Vec::new(),
    }
}

fn no_gpu_note(node: Option<&Node>) -> String {
    match node.map(|n| &n.gpus) {
        None => "not sampled: no GPU inspected".into(),
        Some(GpuInventory::NotInspected { reason }) => format!("not sampled: {reason}"),
        Some(GpuInventory::Inspected { gpus, .. }) if gpus.is_empty() => "not sampled: NVML lists no GPU".into(),
        Some(GpuInventory::Inspected { .. }) => "not sampled: NVML gave no PCI address for any GPU".into(),
    }
}

/// An Xid from a GPU the rank did not watch (one NVML gave no PCI address for) is kept with the
/// report, in its note, so that it is read beside the GPUs' own.
fn note_outside(report: &mut RankReport, outside: &[crate::checks::Finding]) {
    let said: Vec<&str> =
        report.telemetry_note.iter().map(String::as_str).chain(outside.iter().map(|f| f.message.as_str())).collect();
    if !said.is_empty() {
        report.telemetry_note = Some(said.join("; "));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hw::fixture::{gb200_tray, Gb200Tray};

    fn options() -> RankOptions {
        RankOptions {
            rank: 0,
            ranks: 1,
            sizes: vec![1 << 20],
            ops: super::super::collective::Op::ALL.to_vec(),
            warmup: 0,
            iterations: 1,
            hook: None,
        }
    }

    /// A GB200 tray capture with telemetry recorded for GPU 1 (an NVLink error count that grew
    /// and an Xid), replayed as `kiln nccl-rank --root` replays it.
    #[test]
    fn a_replayed_tray_reports_its_recorded_telemetry_per_gpu_and_runs_no_collective() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut tree = gb200_tray(&Gb200Tray::default());
        tree.file(
            crate::hw::telemetry::TELEMETRY_PATH,
            r#"{"gpus": [{"index": 1, "before": {"nvlink_errors": 0}, "after": {"nvlink_errors": 40},
                 "samples": [{"at_unix_ms": 1000, "power_w": 810.5, "temperature_c": 61}],
                 "xids": [{"at_unix_ms": 1200, "xid": 74}]}]}"#,
        );
        let root = dir.path().join("tray");
        tree.write(&root).expect("write the tray");
        let (tree, gpus) = crate::hw::open(Some(&root)).expect("open the capture");
        let node = crate::hw::inspect(tree.as_ref(), gpus.as_ref());
        let report = run_rank_sampled(
            &options(),
            &mut std::io::empty(),
            Some(&node),
            gpus.telemetry(),
            Duration::from_millis(5),
        );
        assert_eq!(report.verdict, crate::checks::Outcome::Skipped);
        assert_eq!(report.reason.as_deref(), Some(REPLAY_NO_COLLECTIVE));
        assert!(report.results.is_empty());
        let inspected = match &node.gpus {
            GpuInventory::Inspected { gpus, .. } => gpus.len(),
            GpuInventory::NotInspected { reason } => panic!("the tray's GPUs: {reason}"),
        };
        assert_eq!(report.telemetry.len(), inspected, "every GPU of the tray is watched");
        let g1 = report.telemetry.iter().find(|t| t.gpu.index == 1).expect("GPU 1");
        assert_eq!((g1.before.nvlink_errors, g1.after.nvlink_errors), (Some(0), Some(40)));
        assert_eq!(g1.samples.len(), 1);
        assert_eq!(g1.xids.len(), 1);
        assert!(g1.gpu.serial.is_some(), "named by serial: {:?}", g1.gpu);
        assert!(report.telemetry_note.is_none(), "{:?}", report.telemetry_note);
        // The report reads back as the controller reads it.
        let text = serde_json::to_string(&report).expect("encode");
        let back: RankReport = serde_json::from_str(&text).expect("decode");
        assert_eq!(back, report);
    }

    #[test]
    fn without_a_driver_the_rank_says_why_it_has_no_telemetry() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (_tree, gpus) = crate::hw::open(Some(dir.path())).expect("an empty tree opens");
        let report =
            run_rank_sampled(&options(), &mut std::io::empty(), None, gpus.telemetry(), Duration::from_millis(5));
        assert!(report.telemetry.is_empty());
        assert_eq!(report.telemetry_note.as_deref(), Some("not sampled: no NVIDIA driver"));
        // A report of an older kiln, without the fields, still reads.
        let mut value = serde_json::to_value(&report).expect("encode");
        let obj = value.as_object_mut().expect("object");
        obj.remove("telemetry");
        obj.remove("telemetry_note");
        let old: RankReport = serde_json::from_value(value).expect("an older report reads");
        assert!(old.telemetry.is_empty());
    }
}
