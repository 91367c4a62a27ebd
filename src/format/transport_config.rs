//! The limits of talking to an origin or registry: timeouts, the low-speed check and the
//! rate limit, as the command line sets them (`--idle-timeout`, `--speed-limit`,
//! `--speed-time`, `--limit-rate`). Plain numbers, so the command line can build them
//! without knowing anything of the network code that obeys them.

use std::time::Duration;

/// Limits for talking to an origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransportConfig {
    /// Time allowed to resolve the host name and to set up a connection, including any
    /// proxy negotiation and the TLS handshake.
    pub connect_timeout: Duration,
    /// A transfer that delivers no data for this long fails. Not a limit on the total time,
    /// so a slow but steady download of a large image is never cut off.
    pub idle_timeout: Duration,
    /// A transfer slower than this many bytes per second, averaged over `speed_time`,
    /// fails (curl's `--speed-limit`). 0 turns the check off.
    pub speed_limit: u64,
    /// The window over which `speed_limit` is averaged (curl's `--speed-time`).
    pub speed_time: Duration,
    /// The most bytes per second all downloads of the run take together (curl's
    /// `--limit-rate`); `None` for no limit.
    pub limit_rate: Option<u64>,
}

impl Default for TransportConfig {
    fn default() -> Self {
        TransportConfig {
            connect_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            speed_limit: 1024,
            speed_time: Duration::from_secs(60),
            limit_rate: None,
        }
    }
}

impl TransportConfig {
    /// Whether the low-speed check is on.
    pub fn speed_checked(&self) -> bool {
        self.speed_limit > 0 && !self.speed_time.is_zero()
    }

    /// How long one read may wait for data. Silence for the whole speed window means a rate
    /// of 0, so with the speed check on, waiting longer than the window is pointless.
    pub fn read_timeout(&self) -> Duration {
        if self.speed_checked() {
            self.idle_timeout.min(self.speed_time)
        } else {
            self.idle_timeout
        }
    }

    /// Whether a read that timed out was cut off by the speed check rather than by the idle
    /// timeout.
    pub fn read_timeout_is_speed_check(&self) -> bool {
        self.speed_checked() && self.speed_time < self.idle_timeout
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_speed_check_shortens_the_read_timeout_only_when_it_is_on() {
        let cfg = TransportConfig {
            idle_timeout: Duration::from_secs(60),
            speed_time: Duration::from_secs(5),
            ..TransportConfig::default()
        };
        assert_eq!(cfg.read_timeout(), Duration::from_secs(5));
        assert!(cfg.read_timeout_is_speed_check());
        let off = TransportConfig {
            speed_limit: 0,
            ..cfg
        };
        assert_eq!(off.read_timeout(), Duration::from_secs(60));
        assert!(!off.read_timeout_is_speed_check());
        assert!(!TransportConfig::default().read_timeout_is_speed_check());
    }
}
