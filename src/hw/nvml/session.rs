//! `NvmlSession`: NVML loaded and initialized once, handing out devices.
//!
//! Inspection and burn-in telemetry both open devices through this, so "is
//! there a driver at all" is decided in one place.

use std::ffi::OsStr;

use nvml_wrapper::error::NvmlError;
use nvml_wrapper::{Device, Nvml};
use thiserror::Error;

/// The library NVML ships as on Linux (the unversioned `.so` comes only with
/// development packages, so the `.1` name is the one every driver install has).
pub const NVML_LIBRARY: &str = "libnvidia-ml.so.1";

/// Why NVML could not be opened.
#[derive(Debug, Error)]
pub enum OpenError {
    /// No NVML library on the machine, or the kernel driver is not loaded: a
    /// CPU-only node or a node before driver install.
    #[error("no NVIDIA driver")]
    NoDriver(#[source] NvmlError),
    /// The library loaded but could not start (permissions, a driver/library
    /// version mismatch after an upgrade without reboot, a broken install).
    #[error("nvml init failed")]
    Init(#[source] NvmlError),
}

impl OpenError {
    /// Whether this is the "no driver" state rather than a broken one.
    pub fn is_no_driver(&self) -> bool {
        matches!(self, OpenError::NoDriver(_))
    }

    /// The whole chain in one line, for a `GpuInventory::NotInspected` reason.
    pub fn reason(&self) -> String {
        match self {
            OpenError::NoDriver(_) => crate::hw::gpu::NO_DRIVER.to_string(),
            OpenError::Init(cause) => format!("{self}: {cause}"),
        }
    }
}

/// Sorts an init failure into "no driver" or "broken". A library that cannot be
/// found is no driver; a library that exists but cannot be loaded (wrong
/// architecture, corrupt file) is a broken install and says so.
fn classify(error: NvmlError) -> OpenError {
    match &error {
        NvmlError::DriverNotLoaded | NvmlError::LibraryNotFound => OpenError::NoDriver(error),
        NvmlError::LibloadingError(cause) if is_missing_library(&cause.to_string()) => OpenError::NoDriver(error),
        _ => OpenError::Init(error),
    }
}

/// dlopen reports a library that is not on the search path with this text
/// (glibc's `ENOENT` message); anything else means the file was there.
fn is_missing_library(dlerror: &str) -> bool {
    dlerror.contains("No such file or directory") || dlerror.contains("cannot open shared object file")
}

/// NVML, initialized. Dropping it shuts NVML down.
#[derive(Debug)]
pub struct NvmlSession {
    nvml: Nvml,
}

impl NvmlSession {
    /// Loads `libnvidia-ml.so.1` from the library search path and initializes it.
    pub fn open() -> Result<Self, OpenError> {
        Self::open_library(OsStr::new(NVML_LIBRARY))
    }

    /// Loads NVML from a given library path (a driver installed outside the
    /// search path, or a test pointing at a file that is not NVML).
    pub fn open_library(path: &OsStr) -> Result<Self, OpenError> {
        let nvml = Nvml::builder().lib_path(path).init().map_err(classify)?;
        Ok(NvmlSession { nvml })
    }

    /// The wrapper, for calls this type does not cover.
    pub fn nvml(&self) -> &Nvml {
        &self.nvml
    }

    /// How many GPUs NVML sees (including ones this process may not open).
    pub fn device_count(&self) -> Result<u32, NvmlError> {
        self.nvml.device_count()
    }

    /// Opens the GPU with this NVML index. Fails with `GpuLost` or
    /// `NoPermission` for a GPU that is enumerated but unusable.
    pub fn device_by_index(&self, index: u32) -> Result<Device<'_>, NvmlError> {
        self.nvml.device_by_index(index)
    }

    /// Opens the GPU with this UUID (`GPU-...`).
    pub fn device_by_uuid(&self, uuid: &str) -> Result<Device<'_>, NvmlError> {
        self.nvml.device_by_uuid(uuid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unloaded_driver_is_no_driver() {
        assert!(classify(NvmlError::DriverNotLoaded).is_no_driver());
        assert!(classify(NvmlError::LibraryNotFound).is_no_driver());
    }

    #[test]
    fn other_init_failures_name_their_cause() {
        let error = classify(NvmlError::LibRmVersionMismatch);
        assert!(!error.is_no_driver());
        assert_eq!(error.reason(), "nvml init failed: RM detects a driver/library version mismatch");
        assert!(!classify(NvmlError::NoPermission).is_no_driver());
    }

    #[test]
    fn missing_library_file_is_no_driver() {
        // A real dlopen of a path that does not exist, not a made-up error.
        let error = NvmlSession::open_library(OsStr::new("/nonexistent/libnvidia-ml.so.1"))
            .expect_err("a library that does not exist cannot open");
        assert!(error.is_no_driver(), "{error:?}");
        assert_eq!(error.reason(), crate::hw::gpu::NO_DRIVER);
    }

    #[test]
    fn a_library_that_is_not_nvml_is_a_broken_install() {
        // libc loads fine but has no nvmlInit_v2: the init step itself fails.
        let error = NvmlSession::open_library(OsStr::new("libc.so.6")).expect_err("libc is not NVML");
        assert!(!error.is_no_driver(), "{error:?}");
        let reason = error.reason();
        assert!(reason.starts_with("nvml init failed: "), "{reason}");
        assert!(reason.contains("nvmlInit_v2"), "{reason}");
    }
}
