//! GPU sources that need no NVML: the snapshot of a capture, and "no driver".
//!
//! `SnapshotGpuSource` replays the NVML dump a capture or fixture holds at
//! `NVML_DUMP_PATH`. It is written to the same contract as the NVML helper's
//! snapshot backend (`hw::nvml`); the two should be reconciled into one.

use std::io;
use std::path::{Path, PathBuf};

use thiserror::Error;

use super::gpu::{GpuSource, NO_DRIVER, NVML_DUMP_PATH};
use crate::model::GpuInventory;

#[derive(Debug, Error)]
pub enum SnapshotGpuError {
    #[error("cannot read nvml dump {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("malformed nvml dump {path}")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

/// The `GpuInventory` stored in a capture. A capture without a dump is a node
/// without a driver, which is how `kiln capture` itself records one.
#[derive(Debug, Clone)]
pub struct SnapshotGpuSource {
    inventory: GpuInventory,
}

impl SnapshotGpuSource {
    /// Loads `root/kiln/nvml.json`. A missing file is "no driver"; a file that
    /// is there but unreadable or malformed is an error, not an empty node.
    pub fn load(root: &Path) -> Result<Self, SnapshotGpuError> {
        let path = root.join(NVML_DUMP_PATH);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Ok(SnapshotGpuSource {
                    inventory: GpuInventory::NotInspected { reason: NO_DRIVER.to_string() },
                });
            }
            Err(source) => return Err(SnapshotGpuError::Read { path, source }),
        };
        let inventory = serde_json::from_str(&text).map_err(|source| SnapshotGpuError::Parse { path, source })?;
        Ok(SnapshotGpuSource { inventory })
    }
}

impl GpuSource for SnapshotGpuSource {
    fn inspect(&self) -> GpuInventory {
        self.inventory.clone()
    }
}

/// The live GPU source of a build without an NVML backend: every node is
/// "no driver". The lead replaces it with `hw::nvml::NvmlSource` on merge.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoDriverGpuSource;

impl GpuSource for NoDriverGpuSource {
    fn inspect(&self) -> GpuInventory {
        GpuInventory::NotInspected { reason: NO_DRIVER.to_string() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_dump_is_no_driver_and_garbage_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let source = SnapshotGpuSource::load(dir.path()).expect("missing dump is fine");
        assert_eq!(source.inspect().not_inspected_reason(), Some(NO_DRIVER));
        std::fs::create_dir_all(dir.path().join("kiln")).expect("mkdir");
        std::fs::write(dir.path().join(NVML_DUMP_PATH), "{\"status\": \"inspected\", \"gpus\": 3").expect("write");
        let err = SnapshotGpuSource::load(dir.path()).expect_err("garbage must not load");
        assert!(matches!(err, SnapshotGpuError::Parse { .. }), "{err:?}");
        assert!(err.to_string().contains("kiln/nvml.json"));
    }
}
