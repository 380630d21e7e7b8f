//! Errors of the image writer: one variant per failed step, and what state
//! the target was left in.

use std::path::PathBuf;

use serde::Serialize;

use super::bmap::BmapError;
use super::digest::Digest;

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("open image {name}")]
    OpenSource {
        name: String,
        #[source]
        source: std::io::Error,
    },
    #[error("block map for image {name}")]
    BlockMap {
        name: String,
        #[source]
        source: BmapError,
    },
    #[error("open target {}", path.display())]
    OpenTarget {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("target {} is in use (mounted or held open by another program)", path.display())]
    TargetBusy { path: PathBuf },
    #[error("target {} is neither a regular file nor a block device", path.display())]
    UnsupportedTarget { path: PathBuf },
    #[error("read the size of target {}", path.display())]
    TargetSize {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "image {name} ({image_size} bytes) is larger than target {} ({target_size} bytes); nothing was written",
        target.display()
    )]
    TooLarge { name: String, image_size: u64, target: PathBuf, target_size: u64 },
    #[error("image {name} is {actual} bytes but its block map describes {expected} bytes")]
    SizeMismatch { name: String, expected: u64, actual: u64 },
    #[error("image {name} is truncated: it ends before byte {needed} of {image_size}")]
    Truncated { name: String, needed: u64, image_size: u64 },
    #[error("read image {name} at byte {offset}")]
    ReadSource {
        name: String,
        offset: u64,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "image {name}: bytes {start}..{end} have sha256 {actual} but the block map says {expected} \
         (corrupt image or wrong block map)"
    )]
    ChecksumMismatch { name: String, start: u64, end: u64, expected: Digest, actual: Digest },
    #[error(
        "image {name}: what was written has sha256 {actual} as a whole, but {reference} says {expected} \
         (a block map that leaves out data, or the wrong digest)"
    )]
    ImageDigestMismatch { name: String, reference: &'static str, expected: Digest, actual: Digest },
    #[error("zero bytes {start}..{end} of target {}", path.display())]
    Zero {
        path: PathBuf,
        start: u64,
        end: u64,
        #[source]
        source: std::io::Error,
    },
    #[error("write target {} at byte {offset}", path.display())]
    WriteTarget {
        path: PathBuf,
        offset: u64,
        #[source]
        source: std::io::Error,
    },
    #[error("flush target {}", path.display())]
    Flush {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("read back target {} at byte {offset}", path.display())]
    ReadBack {
        path: PathBuf,
        offset: u64,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "verify target {}: bytes {start}..{end} read back with sha256 {actual}, expected {expected}",
        path.display()
    )]
    VerifyMismatch { path: PathBuf, start: u64, end: u64, expected: Digest, actual: Digest },
    #[error("the writer thread stopped unexpectedly")]
    WriterLost,
}

impl WriteError {
    /// True when the image (or its block map) is at fault rather than the
    /// target: decides the exit code.
    pub fn is_bad_image(&self) -> bool {
        matches!(
            self,
            WriteError::OpenSource { .. }
                | WriteError::BlockMap { .. }
                | WriteError::TooLarge { .. }
                | WriteError::SizeMismatch { .. }
                | WriteError::Truncated { .. }
                | WriteError::ReadSource { .. }
                | WriteError::ChecksumMismatch { .. }
                | WriteError::ImageDigestMismatch { .. }
        )
    }
}

/// What a failed write left on the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TargetState {
    /// Nothing was written (the write was refused before it began).
    Untouched,
    /// The first and last MiB were zeroed: no partition table remains.
    Wiped,
    /// Left as it was when the failure happened (`--preserve-on-error`).
    Preserved,
    /// Wiping was attempted and failed too: the disk may hold a half-written
    /// image. The technician must wipe it by hand.
    WipeFailed,
}

impl TargetState {
    /// The word JSON output and the controller's records use.
    pub fn as_str(self) -> &'static str {
        match self {
            TargetState::Untouched => "untouched",
            TargetState::Wiped => "wiped",
            TargetState::Preserved => "preserved",
            TargetState::WipeFailed => "wipe-failed",
        }
    }
}

impl std::fmt::Display for TargetState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TargetState::Untouched => "target untouched",
            TargetState::Wiped => "target wiped (first and last MiB zeroed)",
            TargetState::Preserved => "target left as it was (--preserve-on-error)",
            TargetState::WipeFailed => "WIPING THE TARGET FAILED TOO: wipe it by hand before booting it",
        })
    }
}

/// A failed write and the state of the target afterwards. Displays as the
/// error itself; the caller reports `target` beside it.
#[derive(Debug)]
pub struct WriteFailure {
    pub error: WriteError,
    pub target: TargetState,
}

impl std::fmt::Display for WriteFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl std::error::Error for WriteFailure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&self.error)
    }
}
