//! `open`: picks the live machine or a capture directory as the node to inspect.

use std::io;
use std::path::{Path, PathBuf};

use thiserror::Error;

use super::gpu::GpuSource;
use super::nvml::{LoadError, NvmlSource, SnapshotGpuSource};
use super::replay::{ReplayError, ReplayTree};
use super::root::{FsTree, SysTree};

#[derive(Debug, Error)]
pub enum OpenError {
    #[error("cannot open root {path}")]
    Root {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("root {path} is not a directory")]
    NotADirectory { path: PathBuf },
    #[error("cannot open the captured tree")]
    Replay(#[source] ReplayError),
    #[error("cannot open the captured gpu inventory")]
    Gpus(#[source] LoadError),
}

/// What a node command reads: its sysfs/procfs tree and its GPU source.
pub type NodeSource = (Box<dyn SysTree>, Box<dyn GpuSource>);

/// The tree and GPU source for a node command: the live machine when `root`
/// is `None`, else the capture or fixture at `root` (its sysfs/procfs files,
/// recorded read errors, NVML dump and recorded telemetry). The live GPU
/// source holds the one NVML session inspection and telemetry share.
pub fn open(root: Option<&Path>) -> Result<NodeSource, OpenError> {
    let Some(root) = root else {
        return Ok((Box::new(FsTree::live()), Box::new(NvmlSource::new())));
    };
    let meta = std::fs::metadata(root).map_err(|source| OpenError::Root { path: root.to_path_buf(), source })?;
    if !meta.is_dir() {
        return Err(OpenError::NotADirectory { path: root.to_path_buf() });
    }
    let tree = ReplayTree::open(root).map_err(OpenError::Replay)?;
    let gpus = SnapshotGpuSource::load(root).map_err(OpenError::Gpus)?;
    Ok((Box::new(tree), Box::new(gpus)))
}
