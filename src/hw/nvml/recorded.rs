//! Replayed burn-in telemetry: what a capture recorded (`kiln/telemetry.json`), else what its
//! NVML dump says, so a burn-in of a capture judges the same counters the capture holds.
//!
//! A recording gives, per GPU, the health counters before and after the run,
//! the samples and Xid events seen, and the queries that failed (format in
//! docs/burnin.md, "Replaying a capture"). A GPU the recording leaves out, or
//! a capture without a recording, gets its counters from the NVML dump for
//! both readings (nothing changed), no sample, and Xid events "not watched".

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::hw::telemetry::{Telemetry, When, TELEMETRY_PATH};
use crate::model::{Gpu, HealthCounters, Sample, Watch, XidEvent};

#[derive(Debug, Error)]
pub enum RecordingError {
    #[error("could not read recorded telemetry {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("malformed recorded telemetry {}:{}", path.display(), source)]
    Parse { path: PathBuf, source: crate::json_error::JsonError },
}

/// `kiln/telemetry.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryRecording {
    /// Whether Xid events were watched while this was recorded.
    #[serde(default = "watched")]
    pub xid_watch: Watch,
    #[serde(default)]
    pub gpus: Vec<RecordedGpu>,
}

fn watched() -> Watch {
    Watch::Watched
}

/// One GPU's recording, by NVML index.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordedGpu {
    pub index: u32,
    /// Counters before the run; absent: read from the NVML dump.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<HealthCounters>,
    /// Counters after the run; absent: read from the NVML dump.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<HealthCounters>,
    #[serde(default)]
    pub samples: Vec<Sample>,
    #[serde(default)]
    pub xids: Vec<XidEvent>,
    #[serde(default)]
    pub problems: Vec<String>,
}

/// Reads the recording under `root`; `Ok(None)` when the capture has none.
pub fn read_recording(root: &Path) -> Result<Option<TelemetryRecording>, RecordingError> {
    let path = root.join(TELEMETRY_PATH);
    let text = match crate::input::read_to_string(&path, crate::input::Input::TelemetryRecording) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(RecordingError::Read { path, source }),
    };
    crate::json_error::from_str(&text).map(Some).map_err(|source| RecordingError::Parse { path, source })
}

/// The counters an NVML dump holds for one GPU, as the live reader would read them.
pub fn counters_of(gpu: &Gpu) -> HealthCounters {
    let ecc = gpu.ecc.as_ref().filter(|e| e.enabled);
    let active: Vec<_> = gpu.nvlinks.iter().flatten().filter(|l| l.active).collect();
    let nvlink_errors = (!active.is_empty()).then(|| {
        active
            .iter()
            .flat_map(|l| [l.errors.replay, l.errors.recovery, l.errors.crc_flit, l.errors.crc_data])
            .flatten()
            .sum()
    });
    HealthCounters {
        ecc_volatile_uncorrected: ecc.map(|e| e.volatile_uncorrected),
        ecc_volatile_corrected: ecc.map(|e| e.volatile_corrected),
        remap_pending: gpu.remapped_rows.as_ref().map(|r| r.pending),
        remap_failure: gpu.remapped_rows.as_ref().map(|r| r.failure),
        pcie_replay: gpu.pcie.as_ref().and_then(|p| p.replay_counter),
        nvlink_errors,
        nvlink_links: (!active.is_empty()).then_some(active.len() as u32),
    }
}

/// A capture's telemetry: its recording, over the GPUs of its NVML dump.
#[derive(Debug, Clone)]
pub struct ReplayedTelemetry {
    pub gpus: Vec<Gpu>,
    pub recording: Option<TelemetryRecording>,
}

impl ReplayedTelemetry {
    fn recorded(&self, gpu: u32) -> Option<&RecordedGpu> {
        self.recording.as_ref()?.gpus.iter().find(|g| g.index == gpu)
    }

    fn dumped(&self, gpu: u32) -> Option<HealthCounters> {
        self.gpus.iter().find(|g| g.index == gpu).map(counters_of)
    }
}

impl Telemetry for ReplayedTelemetry {
    fn counters(&self, gpu: u32, when: When) -> (HealthCounters, Vec<String>) {
        let recorded = self.recorded(gpu).and_then(|r| match when {
            When::Before => r.before.clone(),
            When::After => r.after.clone(),
        });
        match recorded.or_else(|| self.dumped(gpu)) {
            Some(c) => (c, Vec::new()),
            None => (HealthCounters::default(), vec![format!("GPU {gpu} is not in the capture")]),
        }
    }

    fn sample_until(&self, gpu: u32, _period: Duration, _stop: &AtomicBool) -> (Vec<Sample>, Vec<String>) {
        match self.recorded(gpu) {
            Some(r) => (r.samples.clone(), r.problems.clone()),
            None => (Vec::new(), Vec::new()),
        }
    }

    fn watch_xids(&self, _gpus: &[(u32, Option<String>)], _stop: &AtomicBool) -> (Vec<(u32, XidEvent)>, Watch) {
        match &self.recording {
            // Every recorded event, also on GPUs outside the burn-in: the live
            // watcher hears those too.
            Some(r) => {
                let events = r.gpus.iter().flat_map(|g| g.xids.iter().map(|x| (g.index, x.clone()))).collect();
                (events, r.xid_watch.clone())
            }
            None => (
                Vec::new(),
                Watch::NotSupported { reason: format!("the capture has no recorded telemetry ({TELEMETRY_PATH})") },
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{EccCounters, GpuPcieLink, NvLink, NvLinkErrors, RemappedRows};

    fn gpu() -> Gpu {
        let link = |n: u32, active: bool, crc: u64| NvLink {
            link: n,
            active,
            version: Some(5),
            remote_pci_address: None,
            speed_mbps: None,
            errors: NvLinkErrors { replay: Some(1), recovery: Some(0), crc_flit: None, crc_data: Some(crc) },
        };
        Gpu {
            index: 2,
            uuid: None,
            name: None,
            serial: None,
            board_part_number: None,
            vbios_version: None,
            pci_address: Some("0000:52:00.0".parse().expect("address")),
            memory_total_bytes: None,
            pcie: Some(GpuPcieLink {
                current_generation: Some(5),
                max_generation: Some(5),
                current_width: Some(16),
                max_width: Some(16),
                replay_counter: Some(4),
            }),
            nvlinks: Some(vec![link(0, true, 2), link(1, false, 100), link(2, true, 0)]),
            ecc: Some(EccCounters {
                enabled: true,
                volatile_uncorrected: 1,
                volatile_corrected: 9,
                ..Default::default()
            }),
            retired_pages: None,
            remapped_rows: Some(RemappedRows { correctable: 0, uncorrectable: 0, pending: true, failure: false }),
            fabric: None,
            platform: None,
            c2c: None,
            power_limit_watts: None,
            problems: vec![],
        }
    }

    #[test]
    fn dump_counters_are_read_like_the_live_reader_reads_them() {
        let c = counters_of(&gpu());
        assert_eq!((c.ecc_volatile_uncorrected, c.ecc_volatile_corrected), (Some(1), Some(9)));
        assert_eq!((c.remap_pending, c.remap_failure, c.pcie_replay), (Some(true), Some(false), Some(4)));
        // Active links only: 1 + 2 on link 0, 1 on link 2; link 1 is down.
        assert_eq!((c.nvlink_errors, c.nvlink_links), (Some(4), Some(2)));
        let mut off = gpu();
        off.ecc.as_mut().expect("ecc").enabled = false;
        off.nvlinks = None;
        let c = counters_of(&off);
        assert_eq!((c.ecc_volatile_uncorrected, c.nvlink_errors, c.nvlink_links), (None, None, None));
    }

    #[test]
    fn a_recording_overrides_the_dump_and_a_capture_without_one_watched_no_xid() {
        let stop = AtomicBool::new(true);
        let bare = ReplayedTelemetry { gpus: vec![gpu()], recording: None };
        let (before, _) = bare.counters(2, When::Before);
        assert_eq!(bare.counters(2, When::After).0, before);
        assert!(matches!(bare.watch_xids(&[], &stop).1, Watch::NotSupported { .. }));
        let after = HealthCounters { ecc_volatile_uncorrected: Some(3), ..before.clone() };
        let recording = TelemetryRecording {
            xid_watch: Watch::Watched,
            gpus: vec![RecordedGpu {
                index: 2,
                after: Some(after.clone()),
                xids: vec![XidEvent { at_unix_ms: 5, xid: 79 }],
                ..Default::default()
            }],
        };
        let t = ReplayedTelemetry { gpus: vec![gpu()], recording: Some(recording) };
        assert_eq!(t.counters(2, When::Before).0, before, "no recorded before: the dump's");
        assert_eq!(t.counters(2, When::After).0, after);
        assert_eq!(t.watch_xids(&[], &stop), (vec![(2, XidEvent { at_unix_ms: 5, xid: 79 })], Watch::Watched));
        assert!(!t.counters(7, When::Before).1.is_empty(), "a GPU the capture lacks is a problem");
    }

    #[test]
    fn a_malformed_recording_names_file_line_and_column() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(read_recording(dir.path()).expect("absent is fine").is_none());
        std::fs::create_dir_all(dir.path().join("kiln")).expect("mkdir");
        std::fs::write(dir.path().join(TELEMETRY_PATH), "{\n  \"gpus\": [{\"index\": 0, \"colour\": 1}]\n}\n")
            .expect("write");
        let e = read_recording(dir.path()).expect_err("unknown field");
        let shown = e.to_string();
        assert!(shown.contains("kiln/telemetry.json:2:"), "{shown}");
        assert!(shown.contains("unknown field `colour`"), "{shown}");
        std::fs::write(
            dir.path().join(TELEMETRY_PATH),
            "{\"gpus\": [{\"index\": 0, \"xids\": [{\"at_unix_ms\": 1, \"xid\": \"79\"}]}]}",
        )
        .expect("write");
        let shown = read_recording(dir.path()).expect_err("type error").to_string();
        assert!(
            shown.contains("kiln/telemetry.json:1:") && shown.contains("field `gpus[0].xids[0].xid`: invalid type"),
            "{shown}"
        );
    }
}
