//! The NVML dump: a capture's `kiln/nvml.json`, the `GpuInventory` exactly as
//! the live source returned it (format in docs/nvml-dump.md).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::hw::gpu::NVML_DUMP_PATH;
use crate::model::GpuInventory;

#[derive(Debug, Error)]
pub enum DumpError {
    #[error("could not read nvml dump {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("malformed nvml dump {}:{}", path.display(), source)]
    Parse { path: PathBuf, source: crate::json_error::JsonError },
    #[error("could not encode nvml dump")]
    Encode(#[source] serde_json::Error),
    #[error("could not write nvml dump {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl DumpError {
    /// Whether the dump simply is not there (a tree captured without a driver,
    /// or built by hand).
    pub fn is_missing(&self) -> bool {
        matches!(self, DumpError::Read { source, .. } if source.kind() == io::ErrorKind::NotFound)
    }

    /// The message and its cause in one line, for a `NotInspected` reason.
    pub fn reason(&self) -> String {
        let cause = match self {
            DumpError::Read { source, .. } | DumpError::Write { source, .. } => source.to_string(),
            // The message already says where and why.
            DumpError::Parse { .. } => return self.to_string(),
            DumpError::Encode(source) => crate::json_error::without_position(&source.to_string()),
        };
        format!("{self}: {cause}")
    }
}

/// Where the dump of the capture under `root` lives.
pub fn dump_path(root: &Path) -> PathBuf {
    root.join(NVML_DUMP_PATH)
}

/// Reads and parses the dump under `root`.
pub fn read_dump(root: &Path) -> Result<GpuInventory, DumpError> {
    let path = dump_path(root);
    let text = crate::input::read_to_string(&path, crate::input::Input::NvmlDump)
        .map_err(|source| DumpError::Read { path: path.clone(), source })?;
    crate::json_error::from_str(&text).map_err(|source| DumpError::Parse { path, source })
}

/// Writes the dump under `root` (creating `kiln/`), pretty-printed so a
/// technician can read and diff it.
pub fn write_dump(root: &Path, inventory: &GpuInventory) -> Result<PathBuf, DumpError> {
    let path = dump_path(root);
    let mut text = serde_json::to_string_pretty(inventory).map_err(DumpError::Encode)?;
    text.push('\n');
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(|source| DumpError::Write { path: dir.to_path_buf(), source })?;
    }
    fs::write(&path, text).map_err(|source| DumpError::Write { path: path.clone(), source })?;
    Ok(path)
}
