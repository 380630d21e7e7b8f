//! Reading the target back after a write and comparing it with what was
//! meant to be written. This reads the target, never the image again.
//!
//! Each mapped range is read from the device (O_DIRECT, or with its cached
//! pages dropped first) and hashed; its SHA-256 must equal the block map's,
//! or, for a plain image without a map, the digest computed while the image
//! streamed past. The partition-table pieces, written last, are compared
//! byte for byte with the copy kept in memory.

use std::ops::Range;
use std::sync::mpsc;

use sha2::{Digest as _, Sha256};

use super::aligned::AlignedBuf;
use super::bmap::BlockMap;
use super::digest::Digest;
use super::error::WriteError;
use super::plan::{pieces, Piece};
use super::progress::Progress;
use super::target::Target;
use super::write::{Deferred, DEPTH};

/// Read back every mapped range (deferred pieces taken from memory, since
/// they are not on the target yet) and compare digests with `expected`.
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
    let (free_tx, free_rx) = mpsc::sync_channel::<AlignedBuf>(DEPTH);
    for _ in 0..DEPTH {
        let _ = free_tx.send(AlignedBuf::new(chunk));
    }
    let (full_tx, full_rx) = mpsc::sync_channel::<(AlignedBuf, Piece)>(DEPTH);
    let all: Vec<Vec<Piece>> = map.ranges.iter().map(|r| pieces(r.range(), tables, chunk)).collect();
    let all_ref = &all;
    std::thread::scope(|s| {
        let reader = s.spawn(move || -> Result<(), WriteError> {
            for piece in all_ref.iter().flatten() {
                let Ok(mut buf) = free_rx.recv() else { return Ok(()) };
                let dest = &mut buf.as_mut_slice()[..piece.len];
                match deferred.get(&piece.offset).filter(|_| piece.deferred) {
                    Some(kept) if kept.len() == piece.len => dest.copy_from_slice(kept),
                    _ => target.read_back(dest, piece.offset).map_err(|source| WriteError::ReadBack {
                        path: target.path.clone(),
                        offset: piece.offset,
                        source,
                    })?,
                }
                if full_tx.send((buf, *piece)).is_err() {
                    return Ok(());
                }
            }
            Ok(())
        });
        let mut done = 0u64;
        let mut outcome = Ok(0);
        'ranges: for (i, range) in map.ranges.iter().enumerate() {
            let mut hasher = Sha256::new();
            for _ in &all[i] {
                let Ok((buf, piece)) = full_rx.recv() else {
                    // The reader stopped early; its error says why.
                    break 'ranges;
                };
                hasher.update(&buf.as_slice()[..piece.len]);
                done += piece.len as u64;
                progress.update(done);
                let _ = free_tx.send(buf);
            }
            let actual = Digest::from_hasher(hasher);
            let want = range.sha256.or_else(|| expected.get(i).copied());
            if let Some(want) = want {
                if want != actual {
                    outcome = Err(WriteError::VerifyMismatch {
                        path: target.path.clone(),
                        start: range.start,
                        end: range.end,
                        expected: want,
                        actual,
                    });
                    break;
                }
            }
            outcome = Ok(i + 1);
        }
        drop(full_rx);
        drop(free_tx);
        let read = reader.join().unwrap_or(Err(WriteError::WriterLost));
        read?;
        let verified = outcome?;
        if verified < map.ranges.len() {
            return Err(WriteError::WriterLost);
        }
        Ok(verified)
    })
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
