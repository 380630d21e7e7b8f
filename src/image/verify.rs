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
use super::bmap::{BlockMap, MappedRange};
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
    pipeline::run(map.ranges.len(), chunk, &mut fill, &check, &mut |_, _| Ok(()), None)?;
    Ok(map.ranges.len())
}

/// Read back the just-written, non-deferred pieces of range `r` (whose
/// bytes are `bytes`) into `scratch` and compare them byte for byte. Used
/// while writing with O_DIRECT: `bytes` already matched the block map's
/// SHA-256, so equal bytes on the target prove the target's range has that
/// digest, without hashing it a second time.
pub fn range_inline(
    target: &Target,
    r: &MappedRange,
    bytes: &[u8],
    tables: &[Range<u64>],
    chunk: usize,
    scratch: &mut [u8],
) -> Result<(), WriteError> {
    for piece in pieces(r.range(), tables, chunk).into_iter().filter(|p| !p.deferred) {
        let at = (piece.offset - r.start) as usize;
        let got = &mut scratch[at..at + piece.len];
        target.read_back(got, piece.offset).map_err(|source| WriteError::ReadBack {
            path: target.path.clone(),
            offset: piece.offset,
            source,
        })?;
        let want = &bytes[at..at + piece.len];
        if got != want {
            return Err(WriteError::VerifyMismatch {
                path: target.path.clone(),
                start: piece.offset,
                end: piece.offset + piece.len as u64,
                expected: Digest::of(want),
                actual: Digest::of(got),
            });
        }
    }
    Ok(())
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

#[cfg(test)]
#[allow(clippy::single_range_in_vec_init)]
mod tests {
    use super::*;
    use crate::image::progress::NoProgress;
    use std::os::unix::fs::FileExt;

    /// A target file holding `data`, written through `Target`, plus a map of it.
    fn setup(dir: &std::path::Path, data: &[u8]) -> (Target, BlockMap) {
        let path = dir.join("t.img");
        let target = Target::open(&path, false).expect("open");
        target.write_at(data, 0).expect("write");
        target.flush().expect("flush");
        let file = std::fs::File::open(&path).expect("open");
        let map = BlockMap::create(&file, &path).expect("map");
        (target, map)
    }

    #[test]
    fn a_target_that_reads_back_wrong_fails_both_checks() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data: Vec<u8> = (0..(3 << 20)).map(|i: u32| (i % 241) as u8 + 1).collect();
        let (target, map) = setup(dir.path(), &data);
        let digests: Vec<Digest> = map.ranges.iter().filter_map(|r| r.sha256).collect();
        let tables = [0..4096u64];
        let ok = ranges(&target, &map, &digests, &tables, &Deferred::new(), 4 << 20, &mut NoProgress);
        assert!(ok.is_ok(), "{ok:?}");

        // Damage one byte on the "disk" behind the writer's back.
        let f = std::fs::OpenOptions::new().write(true).open(&target.path).expect("open");
        f.write_all_at(b"\0", (2 << 20) + 7).expect("damage");
        f.sync_all().expect("sync");
        let err = ranges(&target, &map, &digests, &tables, &Deferred::new(), 4 << 20, &mut NoProgress)
            .expect_err("damage is found");
        assert!(matches!(err, WriteError::VerifyMismatch { .. }), "{err}");

        let r = map.ranges.iter().find(|r| r.start <= (2 << 20) && (2 << 20) < r.end).expect("range");
        let bytes = &data[r.start as usize..r.end as usize];
        let mut scratch = vec![0u8; 4 << 20];
        let err = range_inline(&target, r, bytes, &tables, 4 << 20, &mut scratch).expect_err("inline finds it");
        assert!(
            matches!(err, WriteError::VerifyMismatch { start, end, .. } if start <= (2 << 20) && (2 << 20) < end),
            "{err}"
        );
    }
}
