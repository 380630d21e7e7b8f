//! The two `GpuSource` backends: live NVML, and a capture's NVML dump and recorded telemetry.

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::OnceLock;

use thiserror::Error;
use tracing::debug;

use super::dump::{read_dump, DumpError};
use super::inspect::inspect_session;
use super::recorded::{read_recording, RecordingError, ReplayedTelemetry};
use super::session::{NvmlSession, OpenError, NVML_LIBRARY};
use crate::hw::gpu::{GpuSource, NO_DRIVER};
use crate::hw::telemetry::TelemetryAccess;
use crate::model::GpuInventory;

/// Reads the GPUs of this machine through one NVML session, opened when the
/// source is made: inspection and burn-in telemetry share it, and whether
/// there is a driver at all is decided there, once.
#[derive(Debug)]
pub struct NvmlSource {
    session: Result<NvmlSession, OpenError>,
}

impl NvmlSource {
    /// NVML from the library search path (`libnvidia-ml.so.1`).
    pub fn new() -> Self {
        Self::with_library(NVML_LIBRARY)
    }

    /// NVML from a given library file.
    pub fn with_library(library: impl Into<OsString>) -> Self {
        let library = library.into();
        let session = NvmlSession::open_library(&library);
        if let Err(error) = &session {
            debug!(reason = %error.reason(), "nvml not opened");
        }
        NvmlSource { session }
    }
}

impl Default for NvmlSource {
    fn default() -> Self {
        Self::new()
    }
}

impl GpuSource for NvmlSource {
    fn inspect(&self) -> GpuInventory {
        match &self.session {
            Ok(session) => inspect_session(session),
            Err(error) => GpuInventory::NotInspected { reason: error.reason() },
        }
    }

    fn telemetry(&self) -> TelemetryAccess<'_> {
        match &self.session {
            Ok(session) => TelemetryAccess::Live(session),
            Err(error) if error.is_no_driver() => TelemetryAccess::NoDriver,
            Err(error) => TelemetryAccess::Failed(error.reason()),
        }
    }
}

/// Replays the NVML dump of a capture (`<root>/kiln/nvml.json`) and its
/// recorded telemetry (`<root>/kiln/telemetry.json`). A tree without a dump
/// is a node without a driver; a dump that cannot be read or parsed is "not
/// inspected" with the file, line and column in the reason.
#[derive(Debug, Clone)]
pub struct SnapshotGpuSource {
    pub root: PathBuf,
    replayed: OnceLock<Result<ReplayedTelemetry, String>>,
}

impl SnapshotGpuSource {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        SnapshotGpuSource { root: root.into(), replayed: OnceLock::new() }
    }

    /// Like `new`, but a dump or telemetry recording that is present and
    /// cannot be read or parsed is an error (bad input), not a node that
    /// merely shows no GPUs.
    pub fn load(root: impl Into<PathBuf>) -> Result<Self, LoadError> {
        let source = SnapshotGpuSource::new(root);
        match read_dump(&source.root) {
            Ok(_) => {}
            Err(error) if error.is_missing() => {}
            Err(error) => return Err(LoadError::Dump(error)),
        }
        read_recording(&source.root).map_err(LoadError::Telemetry)?;
        Ok(source)
    }

    fn replay(&self) -> Result<ReplayedTelemetry, String> {
        let gpus = match read_dump(&self.root) {
            Ok(GpuInventory::Inspected { gpus, .. }) => gpus,
            Ok(GpuInventory::NotInspected { reason }) => return Err(reason),
            Err(error) if error.is_missing() => return Err(NO_DRIVER.to_string()),
            Err(error) => return Err(error.reason()),
        };
        let recording = read_recording(&self.root).map_err(|e| e.to_string())?;
        Ok(ReplayedTelemetry { gpus, recording })
    }
}

/// Why a capture's GPU side cannot be replayed.
#[derive(Debug, Error)]
pub enum LoadError {
    #[error(transparent)]
    Dump(DumpError),
    #[error(transparent)]
    Telemetry(RecordingError),
}

impl GpuSource for SnapshotGpuSource {
    fn inspect(&self) -> GpuInventory {
        match read_dump(&self.root) {
            Ok(inventory) => inventory,
            Err(error) if error.is_missing() => GpuInventory::NotInspected { reason: NO_DRIVER.to_string() },
            Err(error) => GpuInventory::NotInspected { reason: error.reason() },
        }
    }

    fn telemetry(&self) -> TelemetryAccess<'_> {
        match self.replayed.get_or_init(|| self.replay()) {
            Ok(replayed) => TelemetryAccess::Replay(replayed),
            Err(reason) if reason == NO_DRIVER => TelemetryAccess::NoDriver,
            Err(reason) => TelemetryAccess::Failed(reason.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::path::Path;

    use super::*;
    use crate::hw::nvml::dump::write_dump;
    use crate::model::{
        EccCounters, FabricInfo, FabricState, Gpu, GpuPcieLink, NvLink, NvLinkErrors, PlatformInfo, ReadProblem,
        RemappedRows,
    };

    /// Whether this machine has a working NVIDIA driver: the kernel module is
    /// loaded and its library opens. Decides what the live test must see.
    fn machine_has_driver() -> bool {
        Path::new("/proc/driver/nvidia/version").exists() && NvmlSession::open().is_ok()
    }

    #[test]
    fn live_source_reports_this_machines_gpus_or_no_driver() {
        let inventory = NvmlSource::new().inspect();
        if machine_has_driver() {
            let GpuInventory::Inspected { driver_version, gpus, .. } = &inventory else {
                panic!("driver present but not inspected: {inventory:?}");
            };
            assert!(!driver_version.is_empty());
            assert!(!gpus.is_empty(), "a loaded driver with no GPUs");
            for gpu in gpus {
                assert!(gpu.pci_address.is_some(), "gpu{} has no PCI address: {:?}", gpu.index, gpu.problems);
                assert!(gpu.uuid.as_deref().is_some_and(|u| u.starts_with("GPU-")), "{:?}", gpu.uuid);
            }
            // Shown with --nocapture, so a GPU machine's run can be saved as a fixture.
            println!("{}", serde_json::to_string_pretty(&inventory).expect("inventory encodes"));
        } else {
            println!("SKIPPED: no GPU (checked the no-driver path instead)");
            assert_eq!(inventory, GpuInventory::NotInspected { reason: NO_DRIVER.to_string() });
        }
    }

    #[test]
    fn live_source_with_missing_library_is_no_driver() {
        let inventory = NvmlSource::with_library("/nonexistent/libnvidia-ml.so.1").inspect();
        assert_eq!(inventory.not_inspected_reason(), Some(NO_DRIVER));
    }

    fn sample_inventory() -> GpuInventory {
        let link = |n: u32, active: bool| NvLink {
            link: n,
            active,
            version: Some(5),
            remote_pci_address: active.then(|| "0000:05:00.0".parse().expect("address")),
            speed_mbps: active.then_some(53125),
            errors: NvLinkErrors { replay: Some(0), recovery: Some(1), crc_flit: None, crc_data: Some(0) },
        };
        let gpu = Gpu {
            index: 0,
            uuid: Some("GPU-0f3e1c2a-5b6d-4e7f-8a9b-0c1d2e3f4a5b".into()),
            name: Some("NVIDIA B200".into()),
            serial: Some("1654925000001".into()),
            board_part_number: Some("692-2G525-0200-000".into()),
            vbios_version: Some("97.00.82.00.2F".into()),
            pci_address: Some("0000:1b:00.0".parse().expect("address")),
            memory_total_bytes: Some(192_265_846_784),
            pcie: Some(GpuPcieLink {
                current_generation: Some(5),
                max_generation: Some(5),
                current_width: Some(16),
                max_width: Some(16),
                replay_counter: Some(0),
            }),
            nvlinks: Some(vec![link(0, true), link(1, false)]),
            ecc: Some(EccCounters { enabled: true, volatile_corrected: 3, ..Default::default() }),
            retired_pages: None,
            remapped_rows: Some(RemappedRows { correctable: 1, uncorrectable: 0, pending: false, failure: false }),
            fabric: Some(FabricInfo {
                state: FabricState::Completed,
                status: 0,
                cluster_uuid: "ab000000-0000-0000-0000-000000000001".into(),
                clique_id: 32766,
                health_mask: 0x155,
            }),
            platform: Some(PlatformInfo {
                chassis_serial: Some("1821724000123".into()),
                slot_number: 3,
                tray_index: 2,
                host_id: 1,
                peer_type: 2,
                module_id: 4,
            }),
            c2c: None,
            power_limit_watts: Some(1000.0),
            problems: vec![ReadProblem::new("nvml", "nvmlDeviceGetSerial", "device fell off the bus").on("gpu0")],
        };
        GpuInventory::Inspected {
            driver_version: "580.82.07".into(),
            nvml_version: Some("13.580.82.07".into()),
            cuda_driver_version: Some(13000),
            gpus: vec![gpu],
        }
    }

    #[test]
    fn snapshot_replays_what_was_dumped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let inventory = sample_inventory();
        let path = write_dump(dir.path(), &inventory).expect("dump writes");
        assert!(path.ends_with("kiln/nvml.json"));
        assert_eq!(SnapshotGpuSource::new(dir.path()).inspect(), inventory);
    }

    #[test]
    fn snapshot_replays_a_not_inspected_dump() {
        let dir = tempfile::tempdir().expect("tempdir");
        let inventory = GpuInventory::NotInspected { reason: "nvml init failed: x".into() };
        write_dump(dir.path(), &inventory).expect("dump writes");
        assert_eq!(SnapshotGpuSource::new(dir.path()).inspect(), inventory);
    }

    #[test]
    fn snapshot_without_dump_is_no_driver() {
        let dir = tempfile::tempdir().expect("tempdir");
        let inventory = SnapshotGpuSource::new(dir.path()).inspect();
        assert_eq!(inventory.not_inspected_reason(), Some(NO_DRIVER));
    }

    #[test]
    fn malformed_dump_names_file_line_and_column() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::create_dir_all(dir.path().join("kiln")).expect("mkdir");
        // Line 3, column 12: a comma where the first element of "gpus" should be.
        fs::write(dir.path().join("kiln/nvml.json"), "{\n  \"status\": \"inspected\",\n  \"gpus\": [,\n}\n")
            .expect("write");
        let inventory = SnapshotGpuSource::new(dir.path()).inspect();
        let reason = inventory.not_inspected_reason().expect("not inspected");
        let expected_prefix = format!("malformed nvml dump {}:3:12: ", dir.path().join("kiln/nvml.json").display());
        assert!(reason.starts_with(&expected_prefix), "{reason}");
        assert!(!reason.contains(" at line "), "position given twice: {reason}");
    }

    #[test]
    fn dump_with_wrong_field_type_is_malformed_not_a_panic() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::create_dir_all(dir.path().join("kiln")).expect("mkdir");
        let text = r#"{"status":"inspected","driver_version":"580.82.07","gpus":[{"index":"zero","pci_address":"0000:1b:00.0"}]}"#;
        fs::write(dir.path().join("kiln/nvml.json"), text).expect("write");
        let reason = SnapshotGpuSource::new(dir.path()).inspect().not_inspected_reason().map(str::to_string);
        let reason = reason.expect("not inspected");
        assert!(reason.contains("malformed nvml dump"), "{reason}");
        assert!(reason.contains("invalid type"), "{reason}");
        // The field and where it is, not 0:0.
        let at = format!("{}:1:74: field `gpus[0].index`: ", dir.path().join("kiln/nvml.json").display());
        assert!(reason.contains(&at), "{reason}");
    }

    #[test]
    fn unreadable_dump_is_not_no_driver() {
        let dir = tempfile::tempdir().expect("tempdir");
        // A directory where the file should be: present, but not readable as text.
        fs::create_dir_all(dir.path().join("kiln/nvml.json")).expect("mkdir");
        let reason = SnapshotGpuSource::new(dir.path()).inspect().not_inspected_reason().map(str::to_string);
        let reason = reason.expect("not inspected");
        assert!(reason.starts_with("could not read nvml dump "), "{reason}");
        assert_ne!(reason, NO_DRIVER);
    }
}
