//! Writing an image onto a disk or file: stream the mapped ranges, hashing
//! them as they pass; make everything else read as zeros; flush; read the
//! target back and compare before declaring success. Fail closed.
//!
//! Order of work, chosen so that no moment leaves a bootable half-written
//! disk, even when the process is killed and no cleanup runs:
//! 1. refuse an image larger than the target (nothing written);
//! 2. zero the unmapped ranges and the partition-table regions (first and
//!    last MiB of the image and of the target), flush;
//! 3. stream every mapped piece outside those regions, hashing each range
//!    while it is read (no second pass over the source); keep the pieces
//!    inside those regions in memory; flush;
//! 4. recompute the whole image's SHA-256 from what was written (the mapped
//!    ranges in order, the zeros between them) and compare it with the block
//!    map's and the artifact manifest's; read the target back and compare
//!    each range's SHA-256;
//! 5. write the kept pieces (the partition tables) last, flush, read back;
//! 6. any failure after step 1 zeroes the partition-table regions again,
//!    unless `preserve_on_error`.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Mutex};
use std::time::Instant;

use super::aligned::AlignedBuf;
use super::bmap::{feed_zeros, BlockMap};
use super::digest::Digest;
use super::error::{TargetState, WriteError, WriteFailure};
use super::pipeline;
use super::plan::pieces;
use super::progress::Progress;
use super::source::ImageSource;
use super::target::{Target, TargetKind, ZeroMethod};
use super::verify;
use super::wipe;
use serde::Serialize;
use sha2::{Digest as _, Sha256};

/// Bytes moved per read and per write: the longest range a block map holds.
pub const CHUNK: usize = super::bmap::MAX_RANGE as usize;

#[derive(Debug, Clone)]
pub struct WriteOptions {
    /// Use O_DIRECT (falls back with a note where refused).
    pub direct: bool,
    /// Leave the target as it is on failure instead of wiping it.
    pub preserve_on_error: bool,
    pub chunk: usize,
    /// The whole image's SHA-256 as the artifact manifest (or the controller, from it) records
    /// it: the digest recomputed from what was written must be this one too.
    pub image_sha256: Option<Digest>,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions { direct: true, preserve_on_error: false, chunk: CHUNK, image_sha256: None }
    }
}

/// What a successful write did.
#[derive(Debug, Clone, Serialize)]
pub struct WriteReport {
    pub image: String,
    pub target: PathBuf,
    pub target_kind: TargetKind,
    pub target_size: u64,
    pub image_size: u64,
    pub mapped_bytes: u64,
    pub bytes_written: u64,
    pub zeroed_bytes: u64,
    pub zero_method: ZeroMethod,
    pub direct_io: bool,
    /// SHA-256 of the whole image now on the target, recomputed from the
    /// mapped ranges as written and the zeros between them (and equal to the
    /// block map's and the manifest's where they give one); every mapped
    /// range was read back and matched, and every other byte was zeroed, so
    /// the target holds exactly that image.
    pub image_sha256: Option<Digest>,
    pub ranges_verified: usize,
    pub seconds: f64,
    pub write_seconds: f64,
    pub verify_seconds: f64,
    pub notes: Vec<String>,
}

/// Kept pieces: (offset, bytes), written after everything else verified.
pub type Deferred = BTreeMap<u64, Vec<u8>>;

/// Write the image `source`, laid out as `map` says, onto `target_path`.
pub fn write_image(
    source: &mut dyn ImageSource,
    map: &BlockMap,
    target_path: &Path,
    opts: &WriteOptions,
    progress: &mut dyn Progress,
) -> Result<WriteReport, WriteFailure> {
    let untouched = |error| WriteFailure { error, target: TargetState::Untouched };
    let mut target = Target::open(target_path, opts.direct).map_err(untouched)?;
    // A block device, or an existing non-empty file (a VM's disk), has a
    // capacity; a new or empty file simply becomes the image's size.
    let has_capacity = target.kind == TargetKind::BlockDevice || (!target.created && target.size > 0);
    if has_capacity && map.image_size > target.size {
        return Err(untouched(WriteError::TooLarge {
            name: source.name(),
            image_size: map.image_size,
            target: target.path.clone(),
            target_size: target.size,
        }));
    }
    tracing::info!(image = %source.name(), target = %target.path.display(), bytes = map.image_size, "writing image");
    let result = run(&mut target, source, map, opts, progress);
    progress.finish();
    result.map_err(|error| {
        let state = if opts.preserve_on_error {
            tracing::warn!(target = %target.path.display(), "write failed; target left as it is (--preserve-on-error)");
            TargetState::Preserved
        } else {
            // The target may be a new file shorter than the image if the
            // failure came before it was sized; wipe what exists.
            match wipe::wipe(&target, map.image_size) {
                Ok(()) => TargetState::Wiped,
                Err(e) => {
                    tracing::error!(target = %target.path.display(), error = %e, "wiping the target failed");
                    TargetState::WipeFailed
                }
            }
        };
        WriteFailure { error, target: state }
    })
}

fn run(
    target: &mut Target,
    source: &mut dyn ImageSource,
    map: &BlockMap,
    opts: &WriteOptions,
    progress: &mut dyn Progress,
) -> Result<WriteReport, WriteError> {
    let started = Instant::now();
    let path = target.path.clone();
    let name = source.name();
    let flush = |t: &Target| t.flush().map_err(|source| WriteError::Flush { path: path.clone(), source });

    // Step 2: everything that must read as zeros, and the table regions.
    let tables = wipe::table_ranges(map.image_size, map.image_size);
    let gaps = map.gaps();
    let zeroed_bytes: u64 = gaps.iter().map(|g| g.end - g.start).sum();
    let zero_method = prepare(target, map, &gaps, &tables)?;
    flush(target)?;

    if let Some(len) = source.size() {
        if len < map.image_size {
            return Err(WriteError::Truncated { name, needed: len + 1, image_size: map.image_size });
        }
        if len > map.image_size {
            return Err(WriteError::SizeMismatch { name, expected: map.image_size, actual: len });
        }
    }

    // Steps 3 and 4. On a block device with O_DIRECT each range is read back
    // as soon as it is written, while later ranges are still being written.
    // Not on a file: there a direct read of a range just allocated waits on
    // the inode lock the allocating writes hold, and slows both (measured on
    // ext4: a whole pass afterwards is faster).
    let inline = target.is_direct() && target.kind == TargetKind::BlockDevice;
    progress.phase(if inline { "write+verify" } else { "write" }, map.mapped_bytes);
    let (digests, deferred, written, whole) = write_bulk(target, source, map, &tables, opts.chunk, inline, progress)?;
    // The image's identity is proved, not copied from the block map: a map that leaves out data
    // (its ranges and `mapped_bytes` agreeing) or carries the wrong digest fails here, before the
    // partition tables are written.
    for (reference, expected) in [("its block map", map.image_sha256), ("the artifact manifest", opts.image_sha256)] {
        if let Some(expected) = expected.filter(|e| *e != whole) {
            return Err(WriteError::ImageDigestMismatch { name, reference, expected, actual: whole });
        }
    }
    flush(target)?;
    let write_seconds = started.elapsed().as_secs_f64();

    let verify_start = Instant::now();
    // Through the page cache (asked for, or a fallback happened), reading
    // back before the flush would only see the cache: read everything back
    // now, cached pages dropped, and hash it.
    if !inline || target.wrote_buffered() {
        progress.phase("verify", map.mapped_bytes);
        verify::ranges(target, map, &digests, &tables, &deferred, opts.chunk, progress)?;
    }
    let verified = map.ranges.len();

    // Step 5.
    for (offset, bytes) in &deferred {
        let mut buf = AlignedBuf::new(bytes.len());
        buf.as_mut_slice()[..bytes.len()].copy_from_slice(bytes);
        target.write_at(&buf.as_slice()[..bytes.len()], *offset).map_err(|source| WriteError::WriteTarget {
            path: path.clone(),
            offset: *offset,
            source,
        })?;
    }
    flush(target)?;
    verify::deferred(target, &deferred)?;
    let deferred_bytes: u64 = deferred.values().map(|b| b.len() as u64).sum();
    let verify_seconds = verify_start.elapsed().as_secs_f64();
    tracing::info!(target = %path.display(), "image written and verified");

    Ok(WriteReport {
        image: source.name(),
        target: path.clone(),
        target_kind: target.kind,
        target_size: target.size,
        image_size: map.image_size,
        mapped_bytes: map.mapped_bytes,
        bytes_written: written + deferred_bytes,
        zeroed_bytes,
        zero_method,
        direct_io: target.is_direct(),
        image_sha256: Some(whole),
        ranges_verified: verified,
        seconds: started.elapsed().as_secs_f64(),
        write_seconds,
        verify_seconds,
        notes: target.notes(),
    })
}

/// Make the unmapped ranges and the partition-table regions read as zeros.
fn prepare(
    target: &mut Target,
    map: &BlockMap,
    gaps: &[Range<u64>],
    tables: &[Range<u64>],
) -> Result<ZeroMethod, WriteError> {
    let path = target.path.clone();
    let zero_err = |r: &Range<u64>| {
        let (start, end) = (r.start, r.end);
        let path = path.clone();
        move |source| WriteError::Zero { path, start, end, source }
    };
    // A file the size of the image (or new, or empty) is simply cut to
    // nothing and regrown: all of it reads as zeros, none of it is allocated.
    if target.kind == TargetKind::File && target.size <= map.image_size {
        target.reset_file(map.image_size).map_err(zero_err(&(0..map.image_size)))?;
        return Ok(ZeroMethod::Truncate);
    }
    let target_tail = target.size.saturating_sub(wipe::TABLE_REGION)..target.size;
    let mut method = ZeroMethod::None;
    for r in gaps.iter().chain(tables).chain(std::iter::once(&target_tail)) {
        let m = target.zero(r.clone()).map_err(zero_err(r))?;
        // Report the weakest method used: a fallback anywhere is worth knowing.
        if m == ZeroMethod::WroteZeros || method == ZeroMethod::None {
            method = m;
        }
    }
    Ok(method)
}

/// Stream the mapped ranges through the pipeline: read here, hash on the
/// pool (a range whose digest differs from the map is never written), write
/// on one thread; meanwhile one more thread hashes the whole image in order
/// (each range as read, the zeros between them). Answers each range's digest,
/// the deferred pieces, the bytes written and the whole image's digest.
fn write_bulk(
    target: &Target,
    source: &mut dyn ImageSource,
    map: &BlockMap,
    tables: &[Range<u64>],
    chunk: usize,
    verify_inline: bool,
    progress: &mut dyn Progress,
) -> Result<(Vec<Digest>, Deferred, u64, Digest), WriteError> {
    // Copies of the ranges, in order, to the whole-image hasher; a few in flight at most.
    let (whole_tx, whole_rx) = mpsc::sync_channel::<(u64, Vec<u8>)>(4);
    let image_size = map.image_size;
    std::thread::scope(|s| {
        let hasher = s.spawn(move || {
            let mut whole = Sha256::new();
            let zeros = vec![0u8; 1 << 20];
            let mut pos = 0u64;
            for (start, bytes) in whole_rx {
                feed_zeros(&mut whole, &zeros, start.saturating_sub(pos));
                whole.update(&bytes);
                pos = start + bytes.len() as u64;
            }
            feed_zeros(&mut whole, &zeros, image_size.saturating_sub(pos));
            Digest::from_hasher(whole)
        });
        let bulk = stream_ranges(target, source, map, tables, chunk, verify_inline, progress, whole_tx);
        // The sender went with `stream_ranges`: the hasher has seen every range and ends.
        let whole = hasher.join().map_err(|_| WriteError::WriterLost)?;
        bulk.map(|(digests, deferred, written)| (digests, deferred, written, whole))
    })
}

#[allow(clippy::too_many_arguments)]
fn stream_ranges(
    target: &Target,
    source: &mut dyn ImageSource,
    map: &BlockMap,
    tables: &[Range<u64>],
    chunk: usize,
    verify_inline: bool,
    progress: &mut dyn Progress,
    whole: mpsc::SyncSender<(u64, Vec<u8>)>,
) -> Result<(Vec<Digest>, Deferred, u64), WriteError> {
    let name = source.name();
    let written = AtomicU64::new(0);
    let digests: Mutex<Vec<Option<Digest>>> = Mutex::new(vec![None; map.ranges.len()]);
    let mut deferred = Deferred::new();
    let mut fill = |i: usize, buf: &mut [u8]| -> Result<usize, WriteError> {
        let r = &map.ranges[i];
        let n = r.len() as usize;
        source.read_exact_at(r.start, &mut buf[..n]).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                WriteError::Truncated { name: name.clone(), needed: r.end, image_size: map.image_size }
            } else {
                WriteError::ReadSource { name: name.clone(), offset: r.start, source: e }
            }
        })?;
        // The hasher only ends when this sender is dropped, so it is there to receive.
        let _ = whole.send((r.start, buf[..n].to_vec()));
        progress.update(written.load(Ordering::Relaxed));
        Ok(n)
    };
    let check = |i: usize, bytes: &[u8]| -> Result<(), WriteError> {
        let r = &map.ranges[i];
        let actual = Digest::of(bytes);
        if let Some(expected) = r.sha256 {
            if expected != actual {
                return Err(WriteError::ChecksumMismatch {
                    name: name.clone(),
                    start: r.start,
                    end: r.end,
                    expected,
                    actual,
                });
            }
        }
        if let Ok(mut d) = digests.lock() {
            d[i] = Some(actual);
        }
        Ok(())
    };
    let mut consume = |i: usize, bytes: &[u8]| -> Result<(), WriteError> {
        let r = &map.ranges[i];
        for piece in pieces(r.range(), tables, chunk) {
            let at = (piece.offset - r.start) as usize;
            let part = &bytes[at..at + piece.len];
            if piece.deferred {
                deferred.insert(piece.offset, part.to_vec());
            } else {
                target.write_at(part, piece.offset).map_err(|source| WriteError::WriteTarget {
                    path: target.path.clone(),
                    offset: piece.offset,
                    source,
                })?;
                written.fetch_add(piece.len as u64, Ordering::Relaxed);
            }
        }
        Ok(())
    };
    let read_back = |i: usize, bytes: &[u8], scratch: &mut [u8]| {
        verify::range_inline(target, &map.ranges[i], bytes, tables, chunk, scratch)
    };
    let after: Option<pipeline::After<'_, WriteError>> = if verify_inline { Some(&read_back) } else { None };
    pipeline::run(map.ranges.len(), chunk, &mut fill, &check, &mut consume, after)?;
    let digests = digests.into_inner().unwrap_or_default();
    // Every range passed `check` when the run succeeded; a missing digest
    // would mean a range was skipped, which is a bug, not a good write.
    let digests: Option<Vec<Digest>> = digests.into_iter().collect();
    let digests = digests.ok_or(WriteError::WriterLost)?;
    Ok((digests, deferred, written.load(Ordering::Relaxed)))
}
