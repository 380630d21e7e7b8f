//! The GPU surface: a `GpuSource` yields the node's `GpuInventory`, and the
//! telemetry of the same GPUs for burn-in.
//!
//! The live backend talks to NVML through one session; the snapshot backend
//! reads the NVML dump that `kiln capture` writes at `NVML_DUMP_PATH` under
//! the capture root (and recorded telemetry at `telemetry::TELEMETRY_PATH`).

use super::telemetry::TelemetryAccess;
use crate::model::GpuInventory;

/// Where a capture keeps its NVML dump, relative to the capture root.
pub const NVML_DUMP_PATH: &str = "kiln/nvml.json";

/// Reason given when no NVML library could be loaded.
pub const NO_DRIVER: &str = "no NVIDIA driver";

pub trait GpuSource: Sync {
    /// Inspects every GPU. Never fails as a whole: a missing driver is
    /// `GpuInventory::NotInspected`, a failed query is a problem on that GPU.
    fn inspect(&self) -> GpuInventory;

    /// Telemetry of the GPUs `inspect` read, through the same NVML session
    /// (or the same capture).
    fn telemetry(&self) -> TelemetryAccess<'_>;
}
