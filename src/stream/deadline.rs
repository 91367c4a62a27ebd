//! A reader that stops at a point in time: local work on the way to an update (hashing a
//! kept partial download, cutting a local image into chunks) counts against `--max-time`
//! as the network does, so a large file planted in a destination cannot hold a run past it.

use std::io::{self, Read};
use std::time::Instant;

/// What a read past the deadline fails with; the caller names the file.
pub const PAST_MAX_TIME: &str = "the time limit for this config (--max-time) ran out";

/// `inner`, failing with a `TimedOut` error once `deadline` (if any) has passed.
pub struct UntilDeadline<R> {
    inner: R,
    deadline: Option<Instant>,
}

impl<R> UntilDeadline<R> {
    pub fn new(inner: R, deadline: Option<Instant>) -> UntilDeadline<R> {
        UntilDeadline { inner, deadline }
    }
}

impl<R: Read> Read for UntilDeadline<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.deadline.is_some_and(|at| Instant::now() >= at) {
            return Err(io::Error::new(io::ErrorKind::TimedOut, PAST_MAX_TIME));
        }
        self.inner.read(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reader_reads_until_its_deadline_and_then_fails_with_the_max_time_message() {
        let mut open = UntilDeadline::new(&b"bytes"[..], None);
        let mut all = Vec::new();
        open.read_to_end(&mut all).unwrap();
        assert_eq!(all, b"bytes");

        let mut late = UntilDeadline::new(&b"bytes"[..], Some(Instant::now()));
        let err = late.read_to_end(&mut Vec::new()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(err.to_string(), PAST_MAX_TIME);
    }
}
