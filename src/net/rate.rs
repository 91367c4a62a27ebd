//! `--limit-rate`: one token bucket that every download of a run draws from.
//!
//! The bucket is shared (behind an `Arc`) by every clone of a [`super::Transport`], so two
//! configs fetched in one run together stay under the limit, as a fleet operator expects
//! when the point is not to starve the host's applications. Reads are throttled by sleeping
//! in the reading thread: tako downloads one thing at a time, so nothing else waits.

use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

/// A rate as curl writes it: a whole number of bytes per second with an optional `K`, `M`
/// or `G` suffix (powers of 1024, either case); the reason for anything else.
pub fn parse_rate(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (digits, unit) = match text.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&text[..i], Some(c.to_ascii_uppercase())),
        _ => (text, None),
    };
    let shift = match unit {
        None => 0,
        Some('K') => 10,
        Some('M') => 20,
        Some('G') => 30,
        Some(_) => {
            return Err(
                "unknown unit; write bytes per second as a whole number, optionally followed \
                 by K, M or G (as in 500K or 10M)"
                    .to_owned(),
            );
        }
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(
            "not a rate; write bytes per second as a whole number, optionally followed by K, \
             M or G (as in 500K or 10M)"
                .to_owned(),
        );
    }
    let number: u64 = digits
        .parse()
        .map_err(|_| "the number is too large".to_owned())?;
    let rate = number
        .checked_mul(1 << shift)
        .ok_or_else(|| "the number is too large".to_owned())?;
    if rate == 0 {
        return Err("the rate must be at least 1 byte per second".to_owned());
    }
    Ok(rate)
}

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
    /// in debt.
    pub(super) fn spend(&self, n: usize) {
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
        if !wait.is_zero() {
            thread::sleep(wait);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_use_curls_syntax_with_binary_units() {
        assert_eq!(parse_rate("1"), Ok(1));
        assert_eq!(parse_rate("500K"), Ok(500 * 1024));
        assert_eq!(parse_rate("500k"), Ok(500 * 1024));
        assert_eq!(parse_rate("10M"), Ok(10 << 20));
        assert_eq!(parse_rate("1G"), Ok(1 << 30));
        assert_eq!(parse_rate(" 256K "), Ok(256 * 1024));
    }

    #[test]
    fn nonsense_rates_are_refused_with_a_reason() {
        for bad in [
            "", "K", "0", "0K", "-1", "1.5M", "10X", "10 M", "abc", "1KB",
        ] {
            assert!(parse_rate(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(parse_rate("99999999999999999999").is_err());
        assert!(
            parse_rate("99999999999G")
                .unwrap_err()
                .contains("too large")
        );
    }

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
        limit.spend(1000);
        limit.spend(1800);
        assert!(start.elapsed() >= Duration::from_millis(200));
    }
}
