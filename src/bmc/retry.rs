//! Bounded retries with exponential backoff and an overall deadline, for BMC requests.
//!
//! BMCs answer 500 or drop connections while they are busy (during a host
//! reset, or right after their own boot), so one failed request is not yet a
//! failed BMC. The loop is bounded twice, by a number of tries and by a
//! deadline, so a dead BMC costs a known, short time.

use std::fmt;
use std::thread;
use std::time::{Duration, Instant};

/// How hard to try one BMC request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (at least 1).
    pub tries: u32,
    /// Wait before the second attempt; doubled before each further one.
    pub first_delay: Duration,
    /// Limit for one attempt (connect, send, receive the whole answer).
    pub request_timeout: Duration,
    /// Limit for opening the TCP connection within an attempt.
    pub connect_timeout: Duration,
    /// Limit for all attempts and waits together.
    pub deadline: Duration,
}

impl Default for RetryPolicy {
    /// 4 tries, waiting 0.25 s, 0.5 s and 1 s between them; 20 s per attempt
    /// (firmware inventory members can be slow on real BMCs); 60 s overall.
    fn default() -> Self {
        RetryPolicy {
            tries: 4,
            first_delay: Duration::from_millis(250),
            request_timeout: Duration::from_secs(20),
            connect_timeout: Duration::from_secs(5),
            deadline: Duration::from_secs(60),
        }
    }
}

/// What one attempt came to.
pub enum Attempt<T, E> {
    Done(T),
    /// Worth another try (5xx, connection refused or reset, timeout).
    Retry(E),
    /// Will not change by trying again (4xx, bad certificate, bad reply).
    Fail(E),
}

/// How many attempts a request took, and whether the deadline stopped it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tries {
    pub count: u32,
    /// The deadline, when it (rather than the number of tries) ended the loop.
    pub deadline_hit: Option<Duration>,
}

impl fmt::Display for Tries {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.count == 1 {
            f.write_str("1 try")?;
        } else {
            write!(f, "{} tries", self.count)?;
        }
        if let Some(d) = self.deadline_hit {
            write!(f, " (deadline of {:.1}s reached)", d.as_secs_f64())?;
        }
        Ok(())
    }
}

/// Run `attempt` until it is done, fails for good, or the policy is spent.
/// `attempt` gets the time it may use (the smaller of the per-attempt limit
/// and what is left of the deadline). Returns the last result and the count.
pub fn with_retries<T, E>(
    policy: &RetryPolicy,
    mut attempt: impl FnMut(Duration) -> Attempt<T, E>,
) -> (Result<T, E>, Tries) {
    let start = Instant::now();
    let tries_allowed = policy.tries.max(1);
    let mut delay = policy.first_delay;
    let mut count = 0;
    loop {
        count += 1;
        let left = policy.deadline.saturating_sub(start.elapsed());
        let budget = policy.request_timeout.min(left).max(Duration::from_millis(1));
        let error = match attempt(budget) {
            Attempt::Done(value) => return (Ok(value), Tries { count, deadline_hit: None }),
            Attempt::Fail(e) => return (Err(e), Tries { count, deadline_hit: None }),
            Attempt::Retry(e) => e,
        };
        if count >= tries_allowed {
            return (Err(error), Tries { count, deadline_hit: None });
        }
        // Only wait when the next attempt would still have time to run.
        let left = policy.deadline.saturating_sub(start.elapsed());
        if left <= delay {
            return (Err(error), Tries { count, deadline_hit: Some(policy.deadline) });
        }
        tracing::debug!(attempt = count, wait_ms = delay.as_millis() as u64, "bmc request failed; trying again");
        thread::sleep(delay);
        delay = delay.saturating_mul(2);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quick(tries: u32, deadline_ms: u64) -> RetryPolicy {
        RetryPolicy {
            tries,
            first_delay: Duration::from_millis(10),
            request_timeout: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(1),
            deadline: Duration::from_millis(deadline_ms),
        }
    }

    #[test]
    fn succeeds_after_transient_failures() {
        let mut calls = 0;
        let (result, tries) = with_retries(&quick(4, 5_000), |_| {
            calls += 1;
            if calls < 3 {
                Attempt::Retry("busy")
            } else {
                Attempt::Done(calls)
            }
        });
        assert_eq!(result, Ok(3));
        assert_eq!(tries.count, 3);
    }

    #[test]
    fn stops_after_the_allowed_tries_with_backoff() {
        let started = Instant::now();
        let (result, tries) = with_retries(&quick(4, 5_000), |_| Attempt::<(), _>::Retry("down"));
        assert_eq!(result, Err("down"));
        assert_eq!(tries.count, 4);
        assert_eq!(tries.to_string(), "4 tries");
        // 10 + 20 + 40 ms of waiting: the delay doubles.
        assert!(started.elapsed() >= Duration::from_millis(70), "{:?}", started.elapsed());
    }

    #[test]
    fn permanent_failure_is_not_retried() {
        let mut calls = 0;
        let (result, tries) = with_retries(&quick(4, 5_000), |_| {
            calls += 1;
            Attempt::<(), _>::Fail("401")
        });
        assert_eq!(result, Err("401"));
        assert_eq!((calls, tries.count), (1, 1));
        assert_eq!(tries.to_string(), "1 try");
    }

    #[test]
    fn deadline_ends_the_loop_before_the_tries_run_out() {
        let (result, tries) = with_retries(&quick(50, 100), |_| {
            thread::sleep(Duration::from_millis(30));
            Attempt::<(), _>::Retry("slow")
        });
        assert!(result.is_err());
        assert!(tries.count < 50, "{tries}");
        assert!(tries.deadline_hit.is_some());
        assert!(tries.to_string().contains("deadline of 0.1s reached"), "{tries}");
    }

    #[test]
    fn attempt_budget_never_exceeds_what_is_left() {
        let policy = RetryPolicy { request_timeout: Duration::from_secs(30), ..quick(1, 200) };
        let (_, _) = with_retries(&policy, |budget| {
            assert!(budget <= Duration::from_millis(200), "{budget:?}");
            Attempt::<(), ()>::Done(())
        });
    }
}
