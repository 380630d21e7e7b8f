//! The GPU surface: a `GpuSource` yields the node's `GpuInventory`.
//!
//! The live backend talks to NVML; the snapshot backend reads the NVML dump
//! that `kiln capture` writes at `NVML_DUMP_PATH` under the capture root.

use crate::model::GpuInventory;

/// Where a capture keeps its NVML dump, relative to the capture root.
pub const NVML_DUMP_PATH: &str = "kiln/nvml.json";

/// Reason given when no NVML library could be loaded.
pub const NO_DRIVER: &str = "no NVIDIA driver";

pub trait GpuSource {
    /// Inspects every GPU. Never fails as a whole: a missing driver is
    /// `GpuInventory::NotInspected`, a failed query is a problem on that GPU.
    fn inspect(&self) -> GpuInventory;
}
