//! The telemetry surface burn-in samples: health counters, periodic samples and Xid events of
//! each GPU, from live NVML (the session inspection used) or a capture's recording.
//!
//! Judging what comes back is burn-in's (`burnin::judge`); reading it is here.
//! A query the GPU does not support is left empty (`None`), never read as
//! healthy; any other failure is kept as a problem (`query: error`).

use std::sync::atomic::AtomicBool;
use std::time::Duration;

use crate::model::{HealthCounters, Sample, Watch, XidEvent};

/// Where a capture keeps its recorded telemetry, relative to the capture root.
pub const TELEMETRY_PATH: &str = "kiln/telemetry.json";

/// When health counters are read: once before the GPU phase, once after.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    Before,
    After,
}

/// Telemetry of the GPUs of one node, by NVML index. Shared by the sampling
/// threads of a burn-in, so it is `Sync`.
pub trait Telemetry: Sync {
    /// The counters judged before and after the run, and the queries that failed.
    fn counters(&self, gpu: u32, when: When) -> (HealthCounters, Vec<String>);

    /// Samples GPU `gpu` every `period` until `stop` is set (a recording gives
    /// what it recorded). Problems are kept once per kind.
    fn sample_until(&self, gpu: u32, period: Duration, stop: &AtomicBool) -> (Vec<Sample>, Vec<String>);

    /// Watches critical Xid events on `gpus` (NVML index, UUID) until `stop`:
    /// (NVML index, event) pairs and whether watching worked.
    fn watch_xids(&self, gpus: &[(u32, Option<String>)], stop: &AtomicBool) -> (Vec<(u32, XidEvent)>, Watch);
}

/// What a GPU source offers a burn-in. "No driver" is decided once, where
/// NVML is opened (`nvml::NvmlSession`), and reaches burn-in only as `NoDriver`.
pub enum TelemetryAccess<'a> {
    /// This machine's GPUs: live telemetry, and the GPUs kernels run on.
    Live(&'a dyn Telemetry),
    /// A capture replayed (`--root`): its recorded telemetry; no kernel can
    /// run on GPUs that are not here.
    Replay(&'a dyn Telemetry),
    /// No NVIDIA driver on the machine (or in the capture).
    NoDriver,
    /// NVML is there but could not start, or the recording could not be used.
    Failed(String),
}
