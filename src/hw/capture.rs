//! `kiln capture`: inspect a node while recording every access, then write exactly
//! what was used into a directory that replays as the same node.
//!
//! Format (see docs/capture-format.md): sysfs/procfs files at their relative
//! paths with the contents inspection read; directories and symlinks met on
//! the way recreated as such (symlink targets kept as stored, absolute ones
//! made relative); entries of a listed directory present, empty when never
//! read; `kiln/nvml.json`, `kiln/arch`, and `kiln/unreadable.json` listing
//! operations that failed live, which `ReplayTree` fails again.
//!
//! Contents are those inspection saw, not a second read, so a counter that
//! moves during the capture cannot make the replay differ.

use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;

use thiserror::Error;

use super::gpu::{GpuSource, NVML_DUMP_PATH};
use super::host::ARCH_PATH;
use super::inspect::inspect;
use super::replay::{Operation, RecordedError, UnreadableList, UNREADABLE_PATH};
use super::root::SysTree;
use crate::model::Node;

#[derive(Debug, Error)]
pub enum CaptureError {
    #[error("{dir} exists and is not an empty directory")]
    NotEmpty { dir: PathBuf },
    #[error("cannot create {path}")]
    Create {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot walk {path} in the source tree")]
    Walk {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot serialize the gpu inventory")]
    Serialize(#[source] serde_json::Error),
}

/// What a capture wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct CaptureSummary {
    /// The node as inspected while capturing; replaying the capture gives it back.
    pub node: Node,
    pub files: usize,
    pub symlinks: usize,
    pub directories: usize,
    /// Operations that failed live and are listed in `kiln/unreadable.json`.
    pub unreadable: usize,
}

/// One access inspection made, with what it got.
enum Access {
    Read { rel: PathBuf, outcome: ReadOutcome },
    List { rel: PathBuf, outcome: Result<Vec<String>, Option<RecordedError>> },
    ReadLink { rel: PathBuf, failed: Option<RecordedError> },
    Resolve { rel: PathBuf, failed: Option<RecordedError> },
    Exists { rel: PathBuf },
}

enum ReadOutcome {
    Text(String),
    /// Not UTF-8, or read as bytes (an SMBIOS table): the bytes are copied from the source, so
    /// the replay reads (or fails to read as text) the same.
    NotText,
    Absent,
    Failed(RecordedError),
}

/// A `SysTree` that logs every access and its outcome.
struct Recorder<'a> {
    inner: &'a dyn SysTree,
    log: Mutex<Vec<Access>>,
}

impl Recorder<'_> {
    fn push(&self, access: Access) {
        if let Ok(mut log) = self.log.lock() {
            log.push(access);
        }
    }
}

fn failure(operation: Operation, rel: &Path, e: &io::Error) -> Option<RecordedError> {
    (e.kind() != io::ErrorKind::NotFound).then(|| RecordedError::new(operation, rel, e))
}

impl SysTree for Recorder<'_> {
    fn read(&self, rel: &Path) -> io::Result<String> {
        let result = self.inner.read(rel);
        let outcome = match &result {
            Ok(text) => ReadOutcome::Text(text.clone()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => ReadOutcome::Absent,
            Err(e) if e.kind() == io::ErrorKind::InvalidData => ReadOutcome::NotText,
            Err(e) => ReadOutcome::Failed(RecordedError::new(Operation::Read, rel, e)),
        };
        self.push(Access::Read { rel: rel.to_path_buf(), outcome });
        result
    }

    fn read_bytes(&self, rel: &Path) -> io::Result<Vec<u8>> {
        let result = self.inner.read_bytes(rel);
        let outcome = match &result {
            Ok(_) => ReadOutcome::NotText,
            Err(e) if e.kind() == io::ErrorKind::NotFound => ReadOutcome::Absent,
            Err(e) => ReadOutcome::Failed(RecordedError::new(Operation::Read, rel, e)),
        };
        self.push(Access::Read { rel: rel.to_path_buf(), outcome });
        result
    }

    fn list(&self, rel: &Path) -> io::Result<Vec<String>> {
        let result = self.inner.list(rel);
        let outcome = match &result {
            Ok(names) => Ok(names.clone()),
            Err(e) => Err(failure(Operation::List, rel, e)),
        };
        self.push(Access::List { rel: rel.to_path_buf(), outcome });
        result
    }

    fn read_link(&self, rel: &Path) -> io::Result<PathBuf> {
        let result = self.inner.read_link(rel);
        let failed = result.as_ref().err().and_then(|e| failure(Operation::ReadLink, rel, e));
        self.push(Access::ReadLink { rel: rel.to_path_buf(), failed });
        result
    }

    fn resolve(&self, rel: &Path) -> io::Result<PathBuf> {
        let result = self.inner.resolve(rel);
        let failed = result.as_ref().err().and_then(|e| failure(Operation::Resolve, rel, e));
        self.push(Access::Resolve { rel: rel.to_path_buf(), failed });
        result
    }

    fn exists(&self, rel: &Path) -> bool {
        let found = self.inner.exists(rel);
        if found {
            self.push(Access::Exists { rel: rel.to_path_buf() });
        }
        found
    }

    fn root(&self) -> &Path {
        self.inner.root()
    }
}

/// Inspects the node behind `tree` and `gpus` and writes a capture of it
/// into `dest` (created if absent; must be empty if present).
pub fn capture(tree: &dyn SysTree, gpus: &dyn GpuSource, dest: &Path) -> Result<CaptureSummary, CaptureError> {
    prepare_dest(dest)?;
    let recorder = Recorder { inner: tree, log: Mutex::new(Vec::new()) };
    let node = inspect(&recorder, gpus);
    let log = recorder.log.into_inner().unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut writer = Writer { src: tree.root().to_path_buf(), dest: dest.to_path_buf(), ..Writer::default() };
    let mut unreadable = UnreadableList::default();

    // Structure first (directories, symlinks, placeholders for listed
    // entries), then contents, so a read overwrites a placeholder.
    for access in &log {
        match access {
            Access::List { rel, outcome } if !is_ours(rel) => match outcome {
                Ok(names) => writer.listed(rel, names)?,
                Err(e) => unreadable.errors.extend(e.clone()),
            },
            Access::ReadLink { rel, failed } if !is_ours(rel) => match failed {
                None => writer.materialize(rel, false).map(drop)?,
                Some(e) => unreadable.errors.push(e.clone()),
            },
            Access::Resolve { rel, failed } if !is_ours(rel) => match failed {
                None => writer.materialize(rel, true).map(drop)?,
                Some(e) => unreadable.errors.push(e.clone()),
            },
            Access::Exists { rel } if !is_ours(rel) => writer.existing(rel)?,
            _ => {}
        }
    }
    for access in &log {
        if let Access::Read { rel, outcome } = access {
            if is_ours(rel) {
                continue;
            }
            match outcome {
                ReadOutcome::Text(text) => writer.file(rel, Some(text.as_bytes()))?,
                ReadOutcome::NotText => writer.file(rel, None)?,
                ReadOutcome::Absent => {}
                ReadOutcome::Failed(e) => {
                    writer.existing(rel)?;
                    unreadable.errors.push(e.clone());
                }
            }
        }
    }
    unreadable.errors.sort_by(|a, b| (a.operation, &a.path).cmp(&(b.operation, &b.path)));
    unreadable.errors.dedup();

    let nvml = serde_json::to_string_pretty(&node.gpus).map_err(CaptureError::Serialize)?;
    writer.own_file(NVML_DUMP_PATH, format!("{nvml}\n").as_bytes())?;
    writer.own_file(ARCH_PATH, format!("{}\n", node.cpus.architecture).as_bytes())?;
    if let Some((path, text)) = super::imex::recording(node.imex.as_ref()) {
        writer.own_file(path, text.as_bytes())?;
    }
    let list = serde_json::to_string_pretty(&unreadable).map_err(CaptureError::Serialize)?;
    writer.own_file(UNREADABLE_PATH, format!("{list}\n").as_bytes())?;

    Ok(CaptureSummary {
        node,
        files: writer.files,
        symlinks: writer.symlinks,
        directories: writer.directories,
        unreadable: unreadable.errors.len(),
    })
}

/// Paths under `kiln/` are written by the capture itself, never copied.
fn is_ours(rel: &Path) -> bool {
    clean(rel).components().next().and_then(|c| c.as_os_str().to_str()) == Some("kiln")
}

fn clean(rel: &Path) -> PathBuf {
    rel.components().filter(|c| matches!(c, Component::Normal(_) | Component::ParentDir)).collect()
}

fn prepare_dest(dest: &Path) -> Result<(), CaptureError> {
    match std::fs::read_dir(dest) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(CaptureError::NotEmpty { dir: dest.to_path_buf() });
            }
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dest).map_err(|source| CaptureError::Create { path: dest.to_path_buf(), source })
        }
        Err(_) => Err(CaptureError::NotEmpty { dir: dest.to_path_buf() }),
    }
}

/// Recreates source paths under `dest`, counting what it made.
#[derive(Default)]
struct Writer {
    src: PathBuf,
    dest: PathBuf,
    files: usize,
    symlinks: usize,
    directories: usize,
}

/// What a path turned out to be in the source.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    File,
    Dir,
    Symlink,
}

impl Writer {
    /// Walks `rel` in the source the way `FsTree::resolve` does, recreating
    /// every directory and symlink met. Returns the physical path reached and
    /// what it is, or `None` when the path does not exist in the source.
    /// With `follow_last` false a final symlink is recreated, not followed.
    fn materialize(&mut self, rel: &Path, follow_last: bool) -> Result<Option<(PathBuf, Kind)>, CaptureError> {
        let mut out = PathBuf::new();
        let mut pending: Vec<PathBuf> = clean(rel).components().rev().map(|c| PathBuf::from(c.as_os_str())).collect();
        let mut hops = 0;
        let mut kind = Kind::Dir;
        while let Some(part) = pending.pop() {
            if part.as_os_str() == ".." {
                out.pop();
                continue;
            }
            if kind == Kind::File {
                // A file with more components after it: not there.
                return Ok(None);
            }
            let candidate = out.join(&part);
            let meta = match std::fs::symlink_metadata(self.src.join(&candidate)) {
                Ok(meta) => meta,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(source) => return Err(CaptureError::Walk { path: candidate, source }),
            };
            if meta.file_type().is_symlink() {
                let target = std::fs::read_link(self.src.join(&candidate))
                    .map_err(|source| CaptureError::Walk { path: candidate.clone(), source })?;
                self.symlink(&candidate, &target)?;
                if pending.is_empty() && !follow_last {
                    return Ok(Some((candidate, Kind::Symlink)));
                }
                hops += 1;
                if hops > 64 {
                    return Ok(None);
                }
                if target.is_absolute() {
                    out = PathBuf::new();
                }
                pending.extend(clean(&target).components().rev().map(|c| PathBuf::from(c.as_os_str())));
            } else if meta.is_dir() {
                self.dir(&candidate)?;
                out = candidate;
                kind = Kind::Dir;
            } else {
                out = candidate;
                kind = Kind::File;
            }
        }
        Ok(Some((out, kind)))
    }

    /// A listed directory: itself, and each entry as what it is (a symlink
    /// with its target, a directory, or an empty file until read).
    fn listed(&mut self, rel: &Path, names: &[String]) -> Result<(), CaptureError> {
        let Some((dir, Kind::Dir)) = self.materialize(rel, true)? else { return Ok(()) };
        for name in names {
            self.placeholder(&dir.join(name))?;
        }
        Ok(())
    }

    /// Makes a directory entry exist as what it is in the source, without
    /// content and without following it: a listing shows only names.
    fn placeholder(&mut self, rel: &Path) -> Result<(), CaptureError> {
        match self.materialize(rel, false)? {
            Some((path, Kind::File)) => self.empty_file(&path),
            _ => Ok(()),
        }
    }

    /// Makes a path exist, following symlinks to whatever they lead to, as
    /// `exists` saw it; a file stays empty unless it is also read.
    fn existing(&mut self, rel: &Path) -> Result<(), CaptureError> {
        match self.materialize(rel, true)? {
            Some((path, Kind::File)) => self.empty_file(&path),
            _ => Ok(()),
        }
    }

    fn empty_file(&mut self, path: &Path) -> Result<(), CaptureError> {
        if std::fs::symlink_metadata(self.dest.join(path)).is_err() {
            self.write(path, b"")?;
        }
        Ok(())
    }

    /// A file with the content inspection read, or (for content that was not
    /// text) the source's bytes.
    fn file(&mut self, rel: &Path, content: Option<&[u8]>) -> Result<(), CaptureError> {
        let Some((path, Kind::File)) = self.materialize(rel, true)? else { return Ok(()) };
        match content {
            Some(bytes) => self.write(&path, bytes),
            None => {
                let bytes = crate::input::read(&self.src.join(&path), crate::input::Input::SysFile)
                    .map_err(|source| CaptureError::Walk { path: path.clone(), source })?;
                self.write(&path, &bytes)
            }
        }
    }

    /// A file of the capture's own (`kiln/...`).
    fn own_file(&mut self, rel: &str, content: &[u8]) -> Result<(), CaptureError> {
        let path = PathBuf::from(rel);
        if let Some(parent) = path.parent() {
            self.dir(parent)?;
        }
        self.write(&path, content)
    }

    fn write(&mut self, path: &Path, content: &[u8]) -> Result<(), CaptureError> {
        let full = self.dest.join(path);
        let existed = std::fs::symlink_metadata(&full).is_ok();
        std::fs::write(&full, content).map_err(|source| CaptureError::Write { path: full.clone(), source })?;
        if !existed {
            self.files += 1;
        }
        Ok(())
    }

    fn dir(&mut self, path: &Path) -> Result<(), CaptureError> {
        let full = self.dest.join(path);
        if full.is_dir() {
            return Ok(());
        }
        std::fs::create_dir_all(&full).map_err(|source| CaptureError::Create { path: full.clone(), source })?;
        self.directories += 1;
        Ok(())
    }

    /// Recreates a symlink. An absolute target is rewritten relative to the
    /// link's directory, so the OS resolves it inside the capture too.
    fn symlink(&mut self, path: &Path, target: &Path) -> Result<(), CaptureError> {
        let full = self.dest.join(path);
        if std::fs::symlink_metadata(&full).is_ok() {
            return Ok(());
        }
        let target = if target.is_absolute() {
            let depth = path.components().count().saturating_sub(1);
            let mut relative: PathBuf = std::iter::repeat_n("..", depth).collect();
            relative.push(clean(target));
            relative
        } else {
            target.to_path_buf()
        };
        std::os::unix::fs::symlink(&target, &full)
            .map_err(|source| CaptureError::Create { path: full.clone(), source })?;
        self.symlinks += 1;
        Ok(())
    }
}
