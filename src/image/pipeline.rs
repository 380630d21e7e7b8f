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
    // Shutdown never depends on timing: after the first error every stage
    // keeps receiving until its input is closed, and hands each buffer back
    // to the free list instead of working on it. Only this thread closes the
    // first channel; each stage closes the next one when it ends. The free
    // list holds every buffer there is, so handing one back never blocks, and
    // no stage ever waits on a stage that has already returned.
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
    let stopped = || stop.load(Ordering::SeqCst);
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
            let (done_tx, free_tx) = (done_tx.clone(), free_tx.clone());
            let (work_rx, stopped, fail) = (&work_rx, &stopped, &fail);
            s.spawn(move || {
                while let Some(job) = next(work_rx) {
                    if stopped() {
                        let _ = free_tx.send(job.buf);
                        continue;
                    }
                    match check(job.index, &job.buf.as_slice()[..job.len]) {
                        // The consumer drains until this sender closes, so
                        // this send only waits for room.
                        Ok(()) => {
                            let _ = done_tx.send(job);
                        }
                        Err(e) => {
                            fail(e);
                            let _ = free_tx.send(job.buf);
                        }
                    }
                }
            });
        }
        drop(done_tx);
        // After `consume`, buffers go to the `after` pool when there is one,
        // else straight back to the free list.
        if let Some(after) = after {
            for _ in 0..workers {
                let free_tx = free_tx.clone();
                let (after_rx, stopped, fail) = (&after_rx, &stopped, &fail);
                s.spawn(move || {
                    let mut scratch = AlignedBuf::new(buf_size);
                    while let Some(job) = next(after_rx) {
                        if !stopped() {
                            if let Err(e) = after(job.index, &job.buf.as_slice()[..job.len], scratch.as_mut_slice()) {
                                fail(e);
                            }
                        }
                        let _ = free_tx.send(job.buf);
                    }
                });
            }
        }
        let (stopped_ref, fail_ref) = (&stopped, &fail);
        let has_after = after.is_some();
        let consumer_free_tx = free_tx.clone();
        s.spawn(move || {
            let (free_tx, after_tx) = (consumer_free_tx, after_tx);
            for job in done_rx.iter() {
                if stopped_ref() {
                    let _ = free_tx.send(job.buf);
                    continue;
                }
                if let Err(e) = consume(job.index, &job.buf.as_slice()[..job.len]) {
                    fail_ref(e);
                    let _ = free_tx.send(job.buf);
                    continue;
                }
                if has_after {
                    let _ = after_tx.send(job);
                } else {
                    let _ = free_tx.send(job.buf);
                }
            }
        });
        drop(free_tx);
        for index in 0..count {
            if stopped() {
                break;
            }
            // Every buffer comes back to the free list, whatever happens.
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

/// The next job from a shared receiver; `None` once its sender is gone.
fn next(rx: &Mutex<mpsc::Receiver<Filled>>) -> Option<Filled> {
    rx.lock().ok()?.recv().ok()
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

    /// Runs `f` on its own thread and fails the test if it has not returned
    /// after a generous while: a deadlock must fail the suite, not hang it.
    fn finishes(f: impl FnOnce() + Send + 'static) {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            f();
            let _ = tx.send(());
        });
        match rx.recv_timeout(std::time::Duration::from_secs(120)) {
            Ok(()) => {}
            Err(mpsc::RecvTimeoutError::Timeout) => {
                panic!("the pipeline never returned: a stage waits on one that ended")
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => panic!("the pipeline panicked"),
        }
    }

    /// An error in any stage, at any job, with the queues full or empty,
    /// returns that error; the run never waits on a stage that has ended.
    /// (Once a check failed with the work queue full, the filling thread
    /// waited forever for room that no one would make.)
    #[test]
    fn an_error_anywhere_never_hangs_the_run() {
        finishes(|| {
            for round in 0..200usize {
                let at = round % 37;
                let count = 1 + round % 50 * 3;
                let want = if at < count { Err(at) } else { Ok(()) };
                let fail_at = |i: usize| if i == at { Err(i) } else { Ok(()) };
                // A slow consumer fills every queue before the failing check.
                let slow = |_: usize, _: &[u8]| {
                    std::thread::yield_now();
                    Ok(())
                };
                let r = run(count, 64, &mut |_, _| Ok(1), &|i, _| fail_at(i), &mut |i, b| slow(i, b), None);
                assert_eq!(r, want, "check failing at {at} of {count}");
                let r = run(count, 64, &mut |i, _| fail_at(i).map(|()| 1), &|_, _| Ok(()), &mut |_, _| Ok(()), None);
                assert_eq!(r, want, "fill failing at {at} of {count}");
                let r = run(count, 64, &mut |_, _| Ok(1), &|_, _| Ok(()), &mut |i, _| fail_at(i), None);
                assert_eq!(r, want, "consume failing at {at} of {count}");
                let after = |i: usize, _: &[u8], _: &mut [u8]| fail_at(i);
                let r = run(count, 64, &mut |_, _| Ok(1), &|_, _| Ok(()), &mut |_, _| Ok(()), Some(&after));
                assert_eq!(r, want, "after failing at {at} of {count}");
            }
        });
    }
}
