//! `ReplayTree`: a captured tree on disk, plus the read errors the live machine gave.
//!
//! A file can exist on the live machine and still fail to read (a DMI serial
//! for a non-root user, the `speed` of a link that is down). A capture cannot
//! store such a file, so it lists each failure in `UNREADABLE_PATH` and the
//! replay fails the same operation on the same path with the same error. With
//! that, inspecting a capture gives the same `Node` as inspecting the machine.

use std::collections::BTreeMap;
use std::io;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::root::{FsTree, SysTree};

/// Where a capture lists the operations that failed on the live machine,
/// relative to the capture root.
pub const UNREADABLE_PATH: &str = "kiln/unreadable.json";

/// A `SysTree` operation, as named in `UNREADABLE_PATH`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    Read,
    List,
    ReadLink,
    Resolve,
}

/// One operation that failed on the live machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedError {
    pub operation: Operation,
    /// Relative to the root, as inspection asked for it.
    pub path: String,
    /// The OS error number, when the failure was one (`13` permission denied).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errno: Option<i32>,
    /// The error as it printed, for errors that are not OS errors.
    pub message: String,
}

impl RecordedError {
    pub fn new(operation: Operation, path: &Path, error: &io::Error) -> Self {
        RecordedError {
            operation,
            path: normalize(path).to_string_lossy().into_owned(),
            errno: error.raw_os_error(),
            message: error.to_string(),
        }
    }

    /// The same error again: same errno (and so the same kind and message),
    /// or the same message for errors that have none.
    pub fn to_io(&self) -> io::Error {
        match self.errno {
            Some(errno) => io::Error::from_raw_os_error(errno),
            None => io::Error::other(self.message.clone()),
        }
    }
}

/// The contents of `UNREADABLE_PATH`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnreadableList {
    #[serde(default)]
    pub errors: Vec<RecordedError>,
}

#[derive(Debug, Error)]
pub enum ReplayError {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("malformed {path}")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

/// A capture directory read as the machine it came from.
#[derive(Debug, Clone)]
pub struct ReplayTree {
    inner: FsTree,
    errors: BTreeMap<(Operation, PathBuf), RecordedError>,
}

impl ReplayTree {
    /// Opens a capture. A tree without `UNREADABLE_PATH` (a hand-built
    /// fixture, a plain copy of `/sys`) replays with no injected errors.
    pub fn open(root: &Path) -> Result<Self, ReplayError> {
        let path = root.join(UNREADABLE_PATH);
        let list = match crate::input::read_to_string(&path, crate::input::Input::CaptureIndex) {
            Ok(text) => serde_json::from_str::<UnreadableList>(&text)
                .map_err(|source| ReplayError::Parse { path: path.clone(), source })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => UnreadableList::default(),
            Err(source) => return Err(ReplayError::Read { path, source }),
        };
        let errors = list.errors.into_iter().map(|e| ((e.operation, PathBuf::from(&e.path)), e)).collect();
        Ok(ReplayTree { inner: FsTree::at(root), errors })
    }

    fn injected(&self, operation: Operation, rel: &Path) -> Option<io::Error> {
        self.errors.get(&(operation, normalize(rel))).map(RecordedError::to_io)
    }
}

/// A relative path without a leading `/` or `.` components, as the error list keys it.
fn normalize(rel: &Path) -> PathBuf {
    rel.components().filter(|c| matches!(c, Component::Normal(_) | Component::ParentDir)).collect()
}

impl SysTree for ReplayTree {
    fn read(&self, rel: &Path) -> io::Result<String> {
        match self.injected(Operation::Read, rel) {
            Some(e) => Err(e),
            None => self.inner.read(rel),
        }
    }

    fn read_bytes(&self, rel: &Path) -> io::Result<Vec<u8>> {
        match self.injected(Operation::Read, rel) {
            Some(e) => Err(e),
            None => self.inner.read_bytes(rel),
        }
    }

    fn list(&self, rel: &Path) -> io::Result<Vec<String>> {
        match self.injected(Operation::List, rel) {
            Some(e) => Err(e),
            None => self.inner.list(rel),
        }
    }

    fn read_link(&self, rel: &Path) -> io::Result<PathBuf> {
        match self.injected(Operation::ReadLink, rel) {
            Some(e) => Err(e),
            None => self.inner.read_link(rel),
        }
    }

    fn resolve(&self, rel: &Path) -> io::Result<PathBuf> {
        match self.injected(Operation::Resolve, rel) {
            Some(e) => Err(e),
            None => self.inner.resolve(rel),
        }
    }

    fn exists(&self, rel: &Path) -> bool {
        self.inner.exists(rel)
    }

    fn root(&self) -> &Path {
        self.inner.root()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_errors_come_back_identical() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        std::fs::create_dir_all(root.join("kiln")).expect("mkdir");
        std::fs::create_dir_all(root.join("sys/class/net/eth0")).expect("mkdir");
        std::fs::write(root.join("sys/class/net/eth0/speed"), "").expect("write");
        let live = io::Error::from_raw_os_error(22);
        let list = UnreadableList {
            errors: vec![
                RecordedError::new(Operation::Read, Path::new("sys/class/net/eth0/speed"), &live),
                RecordedError::new(Operation::List, Path::new("/sys/odd"), &io::Error::other("strange")),
            ],
        };
        std::fs::write(root.join(UNREADABLE_PATH), serde_json::to_string(&list).expect("json")).expect("write");
        let tree = ReplayTree::open(root).expect("open");
        let err = tree.read(Path::new("sys/class/net/eth0/speed")).expect_err("injected");
        assert_eq!(err.raw_os_error(), Some(22));
        assert_eq!(err.to_string(), live.to_string());
        assert_eq!(tree.list(Path::new("sys/odd")).expect_err("injected").to_string(), "strange");
        assert!(tree.list(Path::new("sys/class/net")).is_ok());
    }

    #[test]
    fn malformed_error_list_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("kiln")).expect("mkdir");
        std::fs::write(dir.path().join(UNREADABLE_PATH), "[1, 2").expect("write");
        let err = ReplayTree::open(dir.path()).expect_err("garbage must not open");
        assert!(err.to_string().contains("kiln/unreadable.json"), "{err}");
    }
}
