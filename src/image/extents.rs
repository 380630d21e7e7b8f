//! Which byte ranges of a file hold data: SEEK_DATA / SEEK_HOLE.
//!
//! A sparse raw image has holes where the guest never wrote; those read as
//! zeros and need not be copied. The filesystem reports data at its own block
//! granularity, so ranges are widened to `block` boundaries (never past the
//! end of the file). A filesystem without SEEK_DATA support reports the whole
//! file as data, which is correct, only slower to copy.

use std::fs::File;
use std::ops::Range;

use nix::errno::Errno;
use nix::unistd::{lseek, Whence};

/// Mapped ranges of `file` (of length `len`), widened to multiples of `block`
/// and merged where they touch, in increasing order.
pub fn data_ranges(file: &File, len: u64, block: u64) -> Result<Vec<Range<u64>>, Errno> {
    let mut raw = Vec::new();
    let mut pos: u64 = 0;
    while pos < len {
        let start = match lseek(file, to_off(pos)?, Whence::SeekData) {
            Ok(s) => s as u64,
            // No data at or after `pos`: the rest is one hole.
            Err(Errno::ENXIO) => break,
            Err(e) => return Err(e),
        };
        if start >= len {
            break;
        }
        let end = match lseek(file, to_off(start)?, Whence::SeekHole) {
            Ok(e) => (e as u64).min(len),
            Err(Errno::ENXIO) => len,
            Err(e) => return Err(e),
        };
        if end <= start {
            // A file changing under us; stop rather than loop forever.
            return Err(Errno::EAGAIN);
        }
        raw.push(start..end);
        pos = end;
    }
    Ok(widen(raw, len, block))
}

fn to_off(v: u64) -> Result<i64, Errno> {
    i64::try_from(v).map_err(|_| Errno::EOVERFLOW)
}

/// Align each range outward to `block` (clamped to `len`) and merge ranges
/// that overlap or touch.
pub fn widen(ranges: Vec<Range<u64>>, len: u64, block: u64) -> Vec<Range<u64>> {
    let block = block.max(1);
    let mut out: Vec<Range<u64>> = Vec::with_capacity(ranges.len());
    for r in ranges {
        let start = r.start / block * block;
        let end = r.end.div_ceil(block).saturating_mul(block).min(len);
        if start >= end {
            continue;
        }
        match out.last_mut() {
            Some(last) if start <= last.end => last.end = last.end.max(end),
            _ => out.push(start..end),
        }
    }
    out
}

/// The gaps between `mapped` ranges within `[0, len)`.
pub fn gaps(mapped: &[Range<u64>], len: u64) -> Vec<Range<u64>> {
    let mut out = Vec::new();
    let mut pos = 0;
    for r in mapped {
        if r.start > pos {
            out.push(pos..r.start.min(len));
        }
        pos = pos.max(r.end);
    }
    if pos < len {
        out.push(pos..len);
    }
    out
}

#[cfg(test)]
#[allow(clippy::single_range_in_vec_init)]
mod tests {
    use super::*;
    use std::io::{Seek, SeekFrom, Write};

    #[test]
    fn widen_aligns_and_merges() {
        assert_eq!(widen(vec![10..20, 4000..4100, 9000..9001], 10_000, 4096), vec![0..10_000]);
        assert_eq!(widen(vec![0..1, 5000..5001], 1 << 20, 4096), vec![0..8192]);
        assert_eq!(widen(vec![0..1, 10_000..10_001], 1 << 20, 4096), vec![0..4096, 8192..12_288]);
    }

    #[test]
    fn gaps_are_the_complement() {
        assert_eq!(gaps(&[4096..8192], 16384), vec![0..4096, 8192..16384]);
        assert_eq!(gaps(&[], 100), vec![0..100]);
        assert_eq!(gaps(&[0..100], 100), Vec::<Range<u64>>::new());
    }

    #[test]
    fn finds_the_data_in_a_sparse_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sparse");
        let mut f = File::create(&path).expect("create");
        f.set_len(8 << 20).expect("set_len");
        f.seek(SeekFrom::Start(1 << 20)).expect("seek");
        f.write_all(&[1u8; 100]).expect("write");
        f.seek(SeekFrom::Start(5 << 20)).expect("seek");
        f.write_all(&[2u8; 70_000]).expect("write");
        f.sync_all().expect("sync");
        let r = data_ranges(&f, 8 << 20, 4096).expect("scan");
        // Filesystems may report data at a coarser granularity than 4 KiB,
        // but the written bytes must be covered and most of the file not.
        assert!(r.iter().any(|x| x.start <= 1 << 20 && x.end >= (1 << 20) + 100), "{r:?}");
        assert!(r.iter().any(|x| x.start <= 5 << 20 && x.end >= (5 << 20) + 70_000), "{r:?}");
        let mapped: u64 = r.iter().map(|x| x.end - x.start).sum();
        assert!(mapped < 4 << 20, "{r:?}");
    }
}
