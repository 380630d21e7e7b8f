//! The pipeline under both the write and the verify pass: this thread fills
//! buffers in order, a pool of threads hashes them, one thread consumes them
//! (writes them to the target, or nothing), and optionally a second pool
//! looks at them once more after that (reads the written range back).
//!
//! SHA-256 runs at about the speed of a fast disk on one core, so hashing on
//! one thread would make the hash, not the disk, the limit. Block map ranges
//! are at most one buffer long, so each buffer is one whole range and the
//! ranges hash independently on as many cores as there are.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Mutex};

use super::aligned::AlignedBuf;

/// A filled buffer: job `index`, `len` bytes.
pub struct Filled {
    pub index: usize,
    pub buf: AlignedBuf,
    pub len: usize,
}

/// How many hashing threads: every core, at least one, at most eight (enough
/// to keep up with a fast NVMe disk; more would only queue behind it).
pub fn hash_threads() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).clamp(1, 8)
}

/// Fills job `i`'s buffer (on the calling thread, in order); answers the length.
pub type Fill<'a, E> = &'a mut dyn FnMut(usize, &mut [u8]) -> Result<usize, E>;
/// Checks job `i`'s bytes (on the pool).
pub type Check<'a, E> = &'a (dyn Fn(usize, &[u8]) -> Result<(), E> + Sync);
/// Consumes job `i`'s bytes (on one thread).
pub type Consume<'a, E> = &'a mut (dyn FnMut(usize, &[u8]) -> Result<(), E> + Send);
/// A stage that runs on a pool after `consume`, with a scratch buffer of its own.
pub type After<'a, E> = &'a (dyn Fn(usize, &[u8], &mut [u8]) -> Result<(), E> + Sync);

/// Run jobs `0..count`. `fill(i, buf)` runs here, in order, and answers how
/// many bytes it put in `buf`; `check(i, bytes)` runs on the pool; `consume(i,
/// bytes)` runs on one thread after `check` passed; `after(i, bytes, scratch)`,
/// when given, runs on a second pool after `consume`. The first error stops
/// everything and is returned.
pub fn run<E: Send>(
    count: usize,
    buf_size: usize,
    fill: Fill<'_, E>,
    check: Check<'_, E>,
    consume: Consume<'_, E>,
    after: Option<After<'_, E>>,
) -> Result<(), E> {
    let workers = hash_threads();
    let depth = 3 * workers + 2;
    let stop = AtomicBool::new(false);
    let first_error: Mutex<Option<E>> = Mutex::new(None);
    let fail = |e: E| {
        stop.store(true, Ordering::SeqCst);
        if let Ok(mut slot) = first_error.lock() {
            slot.get_or_insert(e);
        }
    };
    let (free_tx, free_rx) = mpsc::sync_channel::<AlignedBuf>(depth);
    for _ in 0..depth {
        let _ = free_tx.send(AlignedBuf::new(buf_size));
    }
    let (work_tx, work_rx) = mpsc::sync_channel::<Filled>(depth);
    let work_rx = Mutex::new(work_rx);
    let (done_tx, done_rx) = mpsc::sync_channel::<Filled>(depth);
    let (after_tx, after_rx) = mpsc::sync_channel::<Filled>(depth);
    let after_rx = Mutex::new(after_rx);
    std::thread::scope(|s| {
        for _ in 0..workers {
            let done_tx = done_tx.clone();
            let (work_rx, stop, fail) = (&work_rx, &stop, &fail);
            s.spawn(move || loop {
                let job = match work_rx.lock() {
                    Ok(rx) => rx.recv(),
                    Err(_) => return,
                };
                let Ok(job) = job else { return };
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                match check(job.index, &job.buf.as_slice()[..job.len]) {
                    Ok(()) => {
                        if done_tx.send(job).is_err() {
                            return;
                        }
                    }
                    Err(e) => return fail(e),
                }
            });
        }
        drop(done_tx);
        // After `consume`, buffers go to the `after` pool when there is one,
        // else straight back to the free list.
        if let Some(after) = after {
            for _ in 0..workers {
                let free_tx = free_tx.clone();
                let (after_rx, stop, fail) = (&after_rx, &stop, &fail);
                s.spawn(move || {
                    let mut scratch = AlignedBuf::new(buf_size);
                    loop {
                        let job = match after_rx.lock() {
                            Ok(rx) => rx.recv(),
                            Err(_) => return,
                        };
                        let Ok(job) = job else { return };
                        if stop.load(Ordering::SeqCst) {
                            return;
                        }
                        if let Err(e) = after(job.index, &job.buf.as_slice()[..job.len], scratch.as_mut_slice()) {
                            return fail(e);
                        }
                        let _ = free_tx.send(job.buf);
                    }
                });
            }
        }
        let (stop_ref, fail_ref) = (&stop, &fail);
        let has_after = after.is_some();
        s.spawn(move || {
            let free_tx = free_tx;
            let after_tx = after_tx;
            for job in done_rx.iter() {
                if stop_ref.load(Ordering::SeqCst) {
                    return;
                }
                if let Err(e) = consume(job.index, &job.buf.as_slice()[..job.len]) {
                    return fail_ref(e);
                }
                let next =
                    if has_after { after_tx.send(job).map_err(|_| ()) } else { free_tx.send(job.buf).map_err(|_| ()) };
                if next.is_err() {
                    return;
                }
            }
        });
        for index in 0..count {
            if stop.load(Ordering::SeqCst) {
                break;
            }
            let Ok(mut buf) = free_rx.recv() else { break };
            match fill(index, buf.as_mut_slice()) {
                Ok(len) => {
                    if work_tx.send(Filled { index, buf, len }).is_err() {
                        break;
                    }
                }
                Err(e) => {
                    fail(e);
                    break;
                }
            }
        }
        drop(work_tx);
    });
    match first_error.into_inner() {
        Ok(Some(e)) => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    fn ok_fill(_: usize, _: &mut [u8]) -> Result<usize, String> {
        Ok(1)
    }

    #[test]
    fn every_job_is_filled_checked_consumed_and_looked_at_after_once() {
        let checked = AtomicUsize::new(0);
        let after_seen = AtomicUsize::new(0);
        let mut consumed = Vec::new();
        let after = |i: usize, bytes: &[u8], scratch: &mut [u8]| {
            scratch[0] = bytes[0];
            assert_eq!(scratch[0], i as u8);
            after_seen.fetch_add(1, Ordering::SeqCst);
            Ok(())
        };
        let r: Result<(), String> = run(
            100,
            4096,
            &mut |i, buf| {
                buf[0] = i as u8;
                Ok(1)
            },
            &|i, bytes| {
                assert_eq!(bytes, [i as u8]);
                checked.fetch_add(1, Ordering::SeqCst);
                Ok(())
            },
            &mut |i, _| {
                consumed.push(i);
                Ok(())
            },
            Some(&after),
        );
        assert!(r.is_ok());
        assert_eq!(checked.load(Ordering::SeqCst), 100);
        assert_eq!(after_seen.load(Ordering::SeqCst), 100);
        consumed.sort_unstable();
        assert_eq!(consumed, (0..100).collect::<Vec<_>>());
    }

    #[test]
    fn the_first_error_of_any_stage_stops_the_run() {
        let bad_check = |i: usize, _: &[u8]| if i == 17 { Err(format!("bad {i}")) } else { Ok(()) };
        let r = run(1000, 4096, &mut ok_fill, &bad_check, &mut |_, _| Ok(()), None);
        assert_eq!(r, Err("bad 17".to_string()));

        let mut bad_fill = |i: usize, _: &mut [u8]| if i == 5 { Err("read".to_string()) } else { Ok(1) };
        let r = run(1000, 4096, &mut bad_fill, &|_, _| Ok(()), &mut |_, _| Ok(()), None);
        assert_eq!(r, Err("read".to_string()));

        let mut n = 0;
        let mut bad_consume = |_: usize, _: &[u8]| {
            n += 1;
            if n == 3 {
                Err("write".to_string())
            } else {
                Ok(())
            }
        };
        let r = run(1000, 4096, &mut ok_fill, &|_, _| Ok(()), &mut bad_consume, None);
        assert_eq!(r, Err("write".to_string()));

        let bad_after = |i: usize, _: &[u8], _: &mut [u8]| if i == 40 { Err("after".to_string()) } else { Ok(()) };
        let r = run(1000, 4096, &mut ok_fill, &|_, _| Ok(()), &mut |_, _| Ok(()), Some(&bad_after));
        assert_eq!(r, Err("after".to_string()));
    }
}
