//! When to try an origin again after a transient failure, and how long to wait first.
//!
//! Exponential backoff with jitter (about 1, 2, 4 s by default), so that a fleet whose
//! origin hiccuped does not come back in lockstep; a server's `Retry-After` is honoured,
//! up to [`MAX_WAIT`], as it knows best when it will be back.

use std::time::Duration;

use rand::TryRng;

/// The longest wait between two tries, whatever a server asks for: a run is a short job,
/// and the next timer comes anyway.
pub const MAX_WAIT: Duration = Duration::from_secs(60);

/// How often and how patiently to retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries after the first (`--retries`).
    pub retries: u32,
    /// The wait before the first retry; each later one doubles it.
    pub base: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            retries: 3,
            base: Duration::from_secs(1),
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `retry` (0 for the first): what the server asked for,
    /// or `base * 2^retry`, give or take a quarter at random; never more than [`MAX_WAIT`].
    pub fn delay(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(asked) = retry_after {
            return asked.min(MAX_WAIT);
        }
        let backoff = self
            .base
            .saturating_mul(1u32.checked_shl(retry.min(16)).unwrap_or(u32::MAX));
        // Without randomness (the source failed), waiting exactly the backoff is fine.
        let fraction = rand::rngs::SysRng
            .try_next_u32()
            .map_or(0.5, |r| f64::from(r) / f64::from(u32::MAX));
        backoff.mul_f64(0.75 + fraction / 2.0).min(MAX_WAIT)
    }
}

/// A wait as it reads in a message: "1.3 s".
pub fn describe_wait(wait: Duration) -> String {
    format!("{:.1} s", wait.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_a_jitter_of_a_quarter() {
        let policy = RetryPolicy::default();
        for (retry, nominal) in [(0, 1.0), (1, 2.0), (2, 4.0), (3, 8.0)] {
            for _ in 0..20 {
                let wait = policy.delay(retry, None).as_secs_f64();
                assert!(
                    wait >= nominal * 0.75 && wait <= nominal * 1.25,
                    "{retry}: {wait}"
                );
            }
        }
    }

    #[test]
    fn retry_after_wins_but_is_capped_at_a_minute() {
        let policy = RetryPolicy::default();
        let asked = Duration::from_secs(7);
        assert_eq!(policy.delay(0, Some(asked)), asked);
        assert_eq!(policy.delay(2, Some(Duration::ZERO)), Duration::ZERO);
        assert_eq!(policy.delay(0, Some(Duration::from_secs(3600))), MAX_WAIT);
        assert!(policy.delay(40, None) <= MAX_WAIT);
    }
}
