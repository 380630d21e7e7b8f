//! The disk or file an image is written to: opening it safely, its size,
//! direct I/O with a fallback, zeroing ranges, flushing, reading back.
//!
//! Block devices are opened with O_EXCL, which Linux turns into an exclusive
//! claim: a mounted disk or one held by another writer answers EBUSY instead
//! of being overwritten under a running system.

use std::fs::{File, OpenOptions};
use std::io;
use std::ops::Range;
use std::os::unix::fs::{FileExt, FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use nix::errno::Errno;
use nix::fcntl::{fallocate, posix_fadvise, FallocateFlags, OFlag, PosixFadviseAdvice};
use serde::Serialize;

use super::aligned::{AlignedBuf, ALIGN};
use super::error::WriteError;
use super::ioctl;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TargetKind {
    File,
    BlockDevice,
}

/// How unmapped ranges were made to read as zeros.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ZeroMethod {
    /// A regular file cut to length 0 and grown again: all holes.
    Truncate,
    /// `fallocate(PUNCH_HOLE)` on a regular file.
    PunchHole,
    /// The BLKZEROOUT ioctl on a block device.
    ZeroOut,
    /// Zeros written like data, where neither of the above was possible.
    WroteZeros,
    /// Nothing needed zeroing.
    None,
}

pub struct Target {
    pub path: PathBuf,
    pub kind: TargetKind,
    /// Size before the write: the device size, or the file's length.
    pub size: u64,
    /// True when the file did not exist and was created by this write.
    pub created: bool,
    /// Logical sector size: direct I/O lengths must be multiples of it.
    pub sector: u64,
    buffered: File,
    direct: Option<File>,
    direct_ok: AtomicBool,
    /// Set once any write went through the page cache: a read-back right
    /// after such a write would see the cache, not the device.
    wrote_buffered: AtomicBool,
    notes: Mutex<Vec<String>>,
}

impl Target {
    /// Open `path` for writing: a block device (exclusively) or a regular
    /// file, created when missing. Direct I/O when `want_direct` and the
    /// filesystem allows it.
    pub fn open(path: &Path, want_direct: bool) -> Result<Target, WriteError> {
        Target::open_with(path, want_direct, true)
    }

    /// Open an existing target that a writer of this process holds: no exclusive claim (a second
    /// O_EXCL open of the device would answer EBUSY), nothing created, no direct I/O. For wiping
    /// the partition-table regions while that writer is stuck (see `deploy::stall`).
    pub fn open_beside_writer(path: &Path) -> Result<Target, WriteError> {
        Target::open_with(path, false, false)
    }

    /// `claim`: take the exclusive claim on a block device and create a missing file.
    fn open_with(path: &Path, want_direct: bool, claim: bool) -> Result<Target, WriteError> {
        let open_err = |source| WriteError::OpenTarget { path: path.to_path_buf(), source };
        let (kind, created) = match std::fs::metadata(path) {
            Ok(m) if m.file_type().is_block_device() => (TargetKind::BlockDevice, false),
            Ok(m) if m.is_file() => (TargetKind::File, false),
            Ok(_) => return Err(WriteError::UnsupportedTarget { path: path.to_path_buf() }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => (TargetKind::File, true),
            Err(e) => return Err(open_err(e)),
        };
        let open = |extra: OFlag| {
            let mut o = OpenOptions::new();
            o.read(true).write(true);
            if kind == TargetKind::File && claim {
                o.create(true);
            }
            let mut flags = extra;
            if kind == TargetKind::BlockDevice && claim {
                flags |= OFlag::O_EXCL;
            }
            o.custom_flags(flags.bits()).open(path)
        };
        let busy = |e: io::Error| {
            if e.raw_os_error() == Some(Errno::EBUSY as i32) {
                WriteError::TargetBusy { path: path.to_path_buf() }
            } else {
                open_err(e)
            }
        };
        let buffered = open(OFlag::empty()).map_err(busy)?;
        let mut notes = Vec::new();
        let direct = if want_direct {
            // The exclusive claim belongs to the first descriptor; a second
            // O_EXCL open of the same device by us would answer EBUSY.
            let mut o = OpenOptions::new();
            o.read(true).write(true).custom_flags(OFlag::O_DIRECT.bits());
            match o.open(path) {
                Ok(f) => Some(f),
                Err(e) => {
                    notes.push(format!(
                        "direct I/O refused by {} ({e}); writing through the page cache",
                        path.display()
                    ));
                    None
                }
            }
        } else {
            None
        };
        let (size, sector) = match kind {
            TargetKind::BlockDevice => {
                let size = ioctl::device_size(&buffered)
                    .map_err(|e| WriteError::TargetSize { path: path.to_path_buf(), source: e.into() })?;
                let sector = ioctl::logical_sector_size(&buffered).map(u64::from).unwrap_or(512);
                (size, sector)
            }
            TargetKind::File => {
                let size = buffered
                    .metadata()
                    .map_err(|source| WriteError::TargetSize { path: path.to_path_buf(), source })?
                    .len();
                (size, 512)
            }
        };
        let direct_ok = AtomicBool::new(direct.is_some());
        Ok(Target {
            path: path.to_path_buf(),
            kind,
            size,
            created,
            sector,
            buffered,
            direct,
            direct_ok,
            wrote_buffered: AtomicBool::new(false),
            notes: Mutex::new(notes),
        })
    }

    /// Whether writes still go through O_DIRECT.
    pub fn is_direct(&self) -> bool {
        self.direct_ok.load(Ordering::Relaxed)
    }

    /// Things worth telling the operator (fallbacks taken).
    pub fn notes(&self) -> Vec<String> {
        self.notes.lock().map(|n| n.clone()).unwrap_or_default()
    }

    fn note(&self, text: String) {
        tracing::warn!(target_path = %self.path.display(), "{text}");
        if let Ok(mut n) = self.notes.lock() {
            n.push(text);
        }
    }

    fn aligned(&self, offset: u64, len: usize, addr: usize) -> bool {
        offset % ALIGN as u64 == 0 && (len as u64) % self.sector.max(512) == 0 && addr % ALIGN == 0
    }

    /// Write `buf` at `offset`, through O_DIRECT when it is in use and the
    /// request is aligned. A filesystem that accepted O_DIRECT at open but
    /// refuses the write (EINVAL) turns direct I/O off with a note.
    pub fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        if let (Some(direct), true) = (&self.direct, self.is_direct()) {
            if self.aligned(offset, buf.len(), buf.as_ptr() as usize) {
                match direct.write_all_at(buf, offset) {
                    Ok(()) => return Ok(()),
                    Err(e) if e.raw_os_error() == Some(Errno::EINVAL as i32) => {
                        self.direct_ok.store(false, Ordering::Relaxed);
                        self.note(format!("direct write refused ({e}); writing through the page cache"));
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        self.wrote_buffered.store(true, Ordering::Relaxed);
        self.buffered.write_all_at(buf, offset)
    }

    /// Whether any write so far went through the page cache.
    pub fn wrote_buffered(&self) -> bool {
        self.wrote_buffered.load(Ordering::Relaxed)
    }

    /// Read `buf.len()` bytes at `offset` from the device, not from the page
    /// cache: through O_DIRECT when in use, else after dropping the cached
    /// pages of that range (the caller flushed first, so they are clean).
    pub fn read_back(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        if let (Some(direct), true) = (&self.direct, self.is_direct()) {
            if self.aligned(offset, buf.len(), buf.as_ptr() as usize) {
                return direct.read_exact_at(buf, offset);
            }
        }
        let _ = posix_fadvise(&self.buffered, offset as i64, buf.len() as i64, PosixFadviseAdvice::POSIX_FADV_DONTNEED);
        self.buffered.read_exact_at(buf, offset)
    }

    /// Make everything written so far durable.
    pub fn flush(&self) -> io::Result<()> {
        if let Some(direct) = &self.direct {
            direct.sync_data()?;
        }
        self.buffered.sync_data()
    }

    /// Cut a regular file to `len` bytes of zeros (all holes).
    pub fn reset_file(&mut self, len: u64) -> io::Result<()> {
        self.buffered.set_len(0)?;
        self.buffered.set_len(len)?;
        self.size = len;
        Ok(())
    }

    /// Grow a regular file to `len` (the new part reads as zeros).
    pub fn grow_file(&mut self, len: u64) -> io::Result<()> {
        if len > self.size {
            self.buffered.set_len(len)?;
            self.size = len;
        }
        Ok(())
    }

    /// Make `range` read as zeros by the cheapest means the target offers,
    /// falling back to writing zeros. Answers the method used.
    pub fn zero(&self, range: Range<u64>) -> io::Result<ZeroMethod> {
        if range.is_empty() {
            return Ok(ZeroMethod::None);
        }
        let len = range.end - range.start;
        match self.kind {
            TargetKind::File => {
                let flags = FallocateFlags::FALLOC_FL_PUNCH_HOLE | FallocateFlags::FALLOC_FL_KEEP_SIZE;
                match fallocate(&self.buffered, flags, range.start as i64, len as i64) {
                    Ok(()) => return Ok(ZeroMethod::PunchHole),
                    Err(e @ (Errno::EOPNOTSUPP | Errno::ENOSYS | Errno::EINVAL)) => {
                        self.note(format!("hole punching not supported ({e}); writing zeros"));
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            TargetKind::BlockDevice => {
                if range.start % 512 == 0 && len % 512 == 0 {
                    match ioctl::zero_out(&self.buffered, range.start, len) {
                        Ok(()) => return Ok(ZeroMethod::ZeroOut),
                        Err(e @ (Errno::EOPNOTSUPP | Errno::ENOTTY | Errno::EINVAL)) => {
                            self.note(format!("BLKZEROOUT not supported ({e}); writing zeros"));
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
            }
        }
        self.write_zeros(range)?;
        Ok(ZeroMethod::WroteZeros)
    }

    /// Write zeros over `range` like data.
    pub fn write_zeros(&self, range: Range<u64>) -> io::Result<()> {
        let zeros = AlignedBuf::new((1 << 20).min((range.end - range.start) as usize));
        let mut at = range.start;
        while at < range.end {
            let n = ((range.end - at) as usize).min(zeros.capacity());
            self.write_at(&zeros.as_slice()[..n], at)?;
            at += n as u64;
        }
        Ok(())
    }
}
