//! `--limit-rate`: one token bucket that every download of a run draws from (the rate
//! itself is read by `format::rate`).
//!
//! The bucket is shared (behind an `Arc`) by every clone of a [`super::Transport`], so two
//! configs fetched in one run together stay under the limit, as a fleet operator expects
//! when the point is not to starve the host's applications. Reads are throttled by sleeping
//! in the reading thread: tako downloads one thing at a time, so nothing else waits.

use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

/// A token bucket of `rate` bytes per second.
#[derive(Debug)]
pub(super) struct RateLimit {
    rate: u64,
    /// The most one read may ask for, and the most tokens the bucket holds: about an eighth
    /// of a second's worth, so the rate is even over short windows too.
    burst: u64,
    state: Mutex<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    /// May go negative: a read that took more than was there is paid for by sleeping.
    tokens: f64,
    refilled: Instant,
}

impl RateLimit {
    pub(super) fn new(rate: u64) -> RateLimit {
        let burst = (rate / 8).clamp(1, 256 * 1024);
        RateLimit {
            rate,
            burst,
            state: Mutex::new(Bucket {
                tokens: burst as f64,
                refilled: Instant::now(),
            }),
        }
    }

    pub(super) fn rate(&self) -> u64 {
        self.rate
    }

    /// How many bytes the next read may ask for.
    pub(super) fn chunk(&self, wanted: usize) -> usize {
        wanted.min(usize::try_from(self.burst).unwrap_or(usize::MAX))
    }

    /// Takes `n` bytes that were just read from the bucket, sleeping until it is no longer
    /// in debt, but never past `until` (the run's `--max-time`): `false` if the debt
    /// outlasts it, and the read should fail with the time limit rather than sleep on (a
    /// fast server fills the socket's buffers, which a small rate would drain for minutes).
    pub(super) fn spend(&self, n: usize, until: Option<Instant>) -> bool {
        let wait = {
            // A poisoned lock only means another thread panicked mid-update; the numbers
            // are still usable.
            let mut bucket = self.state.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            let elapsed = now.saturating_duration_since(bucket.refilled).as_secs_f64();
            bucket.tokens = (bucket.tokens + elapsed * self.rate as f64).min(self.burst as f64);
            bucket.refilled = now;
            bucket.tokens -= n as f64;
            if bucket.tokens < 0.0 {
                Duration::from_secs_f64(-bucket.tokens / self.rate as f64)
            } else {
                Duration::ZERO
            }
        };
        if wait.is_zero() {
            return true;
        }
        if let Some(until) = until {
            let left = until.saturating_duration_since(Instant::now());
            if wait > left {
                thread::sleep(left);
                return false;
            }
        }
        thread::sleep(wait);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_cut_to_the_burst_size() {
        let limit = RateLimit::new(256 * 1024);
        assert_eq!(limit.chunk(1 << 20), 32 * 1024);
        assert_eq!(limit.chunk(100), 100);
        assert_eq!(RateLimit::new(3).chunk(100), 1);
    }

    #[test]
    fn spending_more_than_the_bucket_holds_sleeps_for_the_debt() {
        let limit = RateLimit::new(8000);
        let start = Instant::now();
        // The bucket starts with 1000 tokens; 1800 more at 8000/s is 0.225 s.
        assert!(limit.spend(1000, None));
        assert!(limit.spend(1800, None));
        assert!(start.elapsed() >= Duration::from_millis(200));
    }

    #[test]
    fn a_debt_that_outlasts_the_deadline_is_not_slept_off() {
        let limit = RateLimit::new(1000);
        // 10 s of debt, with 50 ms to go: the sleep ends at the deadline, and says so.
        let until = Instant::now() + Duration::from_millis(50);
        assert!(!limit.spend(10_000, Some(until)));
        assert!(Instant::now() >= until);
        // A debt paid before the deadline is slept off as usual.
        let limit = RateLimit::new(1_000_000);
        assert!(limit.spend(1000, Some(Instant::now() + Duration::from_secs(60))));
    }
}
