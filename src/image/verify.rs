//! Reading the target back after a write and comparing it with what was
//! meant to be written. This reads the target, never the image again.
//!
//! Each mapped range is read from the device (O_DIRECT, or with its cached
//! pages dropped first) and hashed; its SHA-256 must equal the block map's,
//! or, for a plain image without a map, the digest computed while the image
//! streamed past. The partition-table pieces, written last, are compared
//! byte for byte with the copy kept in memory.

use std::ops::Range;

use super::aligned::AlignedBuf;
use super::bmap::BlockMap;
use super::digest::Digest;
use super::error::WriteError;
use super::pipeline;
use super::plan::pieces;
use super::progress::Progress;
use super::target::Target;
use super::write::Deferred;

/// Read back every mapped range (deferred pieces taken from memory, since
/// they are not on the target yet) and compare digests with the block map's,
/// or with `expected` (computed while writing) where the map has none.
/// Answers the number of ranges verified.
pub fn ranges(
    target: &Target,
    map: &BlockMap,
    expected: &[Digest],
    tables: &[Range<u64>],
    deferred: &Deferred,
    chunk: usize,
    progress: &mut dyn Progress,
) -> Result<usize, WriteError> {
    let mut done = 0u64;
    let mut fill = |i: usize, buf: &mut [u8]| -> Result<usize, WriteError> {
        let r = &map.ranges[i];
        for piece in pieces(r.range(), tables, chunk) {
            let at = (piece.offset - r.start) as usize;
            let dest = &mut buf[at..at + piece.len];
            match deferred.get(&piece.offset).filter(|_| piece.deferred) {
                Some(kept) if kept.len() == piece.len => dest.copy_from_slice(kept),
                _ => target.read_back(dest, piece.offset).map_err(|source| WriteError::ReadBack {
                    path: target.path.clone(),
                    offset: piece.offset,
                    source,
                })?,
            }
        }
        done += r.len();
        progress.update(done);
        Ok(r.len() as usize)
    };
    let check = |i: usize, bytes: &[u8]| -> Result<(), WriteError> {
        let r = &map.ranges[i];
        let actual = Digest::of(bytes);
        match r.sha256.or_else(|| expected.get(i).copied()) {
            Some(want) if want != actual => Err(WriteError::VerifyMismatch {
                path: target.path.clone(),
                start: r.start,
                end: r.end,
                expected: want,
                actual,
            }),
            Some(_) => Ok(()),
            // Nothing to compare with is a bug in the caller, never a pass.
            None => Err(WriteError::WriterLost),
        }
    };
    pipeline::run(map.ranges.len(), chunk, &mut fill, &check, &mut |_, _| Ok(()))?;
    Ok(map.ranges.len())
}

/// Read back the pieces written last and compare them byte for byte.
pub fn deferred(target: &Target, kept: &Deferred) -> Result<(), WriteError> {
    for (&offset, bytes) in kept {
        let mut buf = AlignedBuf::new(bytes.len());
        let got = &mut buf.as_mut_slice()[..bytes.len()];
        target.read_back(got, offset).map_err(|source| WriteError::ReadBack {
            path: target.path.clone(),
            offset,
            source,
        })?;
        if got != bytes.as_slice() {
            return Err(WriteError::VerifyMismatch {
                path: target.path.clone(),
                start: offset,
                end: offset + bytes.len() as u64,
                expected: Digest::of(bytes),
                actual: Digest::of(got),
            });
        }
    }
    Ok(())
}
