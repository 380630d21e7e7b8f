//! A bounded pool of std threads over a work queue (at most N nodes in flight, results in input
//! order), and the counting bound many pools share (`Sessions`: at most N SSH sessions site-wide).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};

/// Calls `f` on every item with at most `parallel` calls at once and returns
/// the results in the order of `items`. A panic in `f` is a bug and is
/// propagated when the threads are joined.
pub(crate) fn map_bounded<T: Sync, R: Send>(items: &[T], parallel: usize, f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<R>>> = Mutex::new((0..items.len()).map(|_| None).collect());
    let workers = parallel.clamp(1, items.len().max(1));
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = items.get(i) else { break };
                let r = f(item);
                if let Ok(mut slots) = results.lock() {
                    slots[i] = Some(r);
                }
            });
        }
    });
    results.into_inner().unwrap_or_else(|p| p.into_inner()).into_iter().flatten().collect()
}

/// At most `limit` holders at once, across every thread that shares it: the site-wide bound on
/// SSH sessions that the racks of one `kiln rack` run share, each rack with its own pool.
#[derive(Debug)]
pub struct Sessions {
    limit: usize,
    held: Mutex<usize>,
    freed: Condvar,
}

/// One held place; given back when dropped.
#[derive(Debug)]
pub struct SessionPermit {
    sessions: Arc<Sessions>,
}

impl Sessions {
    pub fn new(limit: usize) -> Sessions {
        Sessions { limit: limit.max(1), held: Mutex::new(0), freed: Condvar::new() }
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Waits for a free place and takes it.
    pub fn acquire(self: &Arc<Self>) -> SessionPermit {
        // A poisoned lock only means a holder panicked; the count is still right.
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        while *held >= self.limit {
            held = self.freed.wait(held).unwrap_or_else(|p| p.into_inner());
        }
        *held += 1;
        SessionPermit { sessions: Arc::clone(self) }
    }

    /// How many places are held now.
    pub fn held(&self) -> usize {
        *self.held.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for SessionPermit {
    fn drop(&mut self) {
        let mut held = self.sessions.held.lock().unwrap_or_else(|p| p.into_inner());
        *held = held.saturating_sub(1);
        drop(held);
        self.sessions.freed.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    #[test]
    fn keeps_order_and_bounds_concurrency() {
        let in_flight = AtomicUsize::new(0);
        let peak = AtomicUsize::new(0);
        let items: Vec<u32> = (0..20).collect();
        let out = map_bounded(&items, 3, |&i| {
            let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(10));
            in_flight.fetch_sub(1, Ordering::SeqCst);
            i * 2
        });
        assert_eq!(out, items.iter().map(|i| i * 2).collect::<Vec<_>>());
        assert!(peak.load(Ordering::SeqCst) <= 3);
        assert!(peak.load(Ordering::SeqCst) >= 2, "ran in parallel");
    }

    #[test]
    fn sessions_bound_holders_across_pools() {
        let sessions = Arc::new(Sessions::new(3));
        let in_flight = AtomicUsize::new(0);
        let peak = AtomicUsize::new(0);
        let racks: Vec<u32> = (0..4).collect();
        // Four pools of four workers each, sharing three places.
        map_bounded(&racks, 4, |_| {
            let items: Vec<u32> = (0..8).collect();
            map_bounded(&items, 4, |_| {
                let _permit = sessions.acquire();
                let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(5));
                in_flight.fetch_sub(1, Ordering::SeqCst);
            })
        });
        assert_eq!(peak.load(Ordering::SeqCst), 3, "held to the bound, and up to it");
        assert_eq!(sessions.held(), 0, "every permit given back");
    }
}
