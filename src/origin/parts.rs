//! The bytes of several ranges answered in one `multipart/byteranges` body, read as one
//! stream: the ranges asked for, back to back, and nothing of the parts' heads.
//!
//! Each head is parsed by `format::byteranges` from at most `MAX_HEAD` bytes, each part
//! must be the range asked for in its place, and the stream ends (returns 0) only after
//! the closing delimiter: a body cut short or garbled anywhere is a read error.

use std::collections::VecDeque;
use std::io::{self, Read};

use crate::format::byteranges::{self, ByterangesError, Head, MAX_EPILOGUE, MAX_HEAD};

/// Reads the part bodies of `inner`, a multipart body with `boundary` that answers
/// `asked` (each `start..end`), in order.
pub struct Parts<R> {
    inner: R,
    /// Where the body comes from, fit to print, for the errors.
    url: String,
    boundary: String,
    asked: VecDeque<(u64, u64)>,
    asked_count: usize,
    /// The part being read (or whose head is next), counted from 0.
    part: usize,
    /// Bytes of the current part's body still to come.
    left: u64,
    /// Bytes read from `inner` and not used yet: a head, or the start of a body after it.
    ahead: Vec<u8>,
    done: bool,
}

impl<R: Read> Parts<R> {
    pub fn new(inner: R, url: &str, boundary: &str, asked: &[(u64, u64)]) -> Parts<R> {
        Parts {
            inner,
            url: url.to_owned(),
            boundary: boundary.to_owned(),
            asked: asked.iter().copied().collect(),
            asked_count: asked.len(),
            part: 0,
            left: 0,
            ahead: Vec::new(),
            done: false,
        }
    }

    fn error(&self, e: ByterangesError) -> io::Error {
        io::Error::other(format!("{}: {e}", self.url))
    }

    /// Reads and checks the next head; false after the closing delimiter.
    fn next_head(&mut self) -> io::Result<bool> {
        loop {
            let window = &self.ahead[..self.ahead.len().min(MAX_HEAD)];
            let parsed = byteranges::parse_head(window, &self.boundary, self.part);
            if let Some((used, head)) = parsed.map_err(|e| self.error(e))? {
                self.ahead.drain(..used);
                let asked = self.asked.pop_front();
                let length = byteranges::expect(head, self.part, asked, self.asked_count)
                    .map_err(|e| self.error(e))?;
                if head == Head::End {
                    self.finish()?;
                    return Ok(false);
                }
                self.left = length.unwrap_or(0);
                return Ok(true);
            }
            if self.fill(512)? == 0 {
                return Err(self.error(ByterangesError::CutShort { part: self.part }));
            }
        }
    }

    /// Reads up to `n` more bytes into `ahead`.
    fn fill(&mut self, n: usize) -> io::Result<usize> {
        let start = self.ahead.len();
        self.ahead.resize(start + n, 0);
        let got = loop {
            match self.inner.read(&mut self.ahead[start..]) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                other => break other,
            }
        };
        self.ahead.truncate(start + *got.as_ref().unwrap_or(&0));
        got
    }

    /// Reads the epilogue to the end of the body (so that the connection can be used
    /// again), refusing more than a few bytes of it.
    fn finish(&mut self) -> io::Result<()> {
        self.done = true;
        while self.ahead.len() <= MAX_EPILOGUE {
            if self.fill(512)? == 0 {
                return Ok(());
            }
        }
        Err(self.error(ByterangesError::TrailingBytes))
    }
}

impl<R: Read> Read for Parts<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        while self.left == 0 {
            if self.done || !self.next_head()? {
                return Ok(0);
            }
            if self.left == 0 {
                // An empty part was not asked for; `expect` refuses it. Go on regardless.
                self.part += 1;
            }
        }
        let want = usize::try_from(self.left).map_or(buf.len(), |l| l.min(buf.len()));
        let n = if self.ahead.is_empty() {
            let n = self.inner.read(&mut buf[..want])?;
            if n == 0 {
                return Err(self.error(ByterangesError::CutShort { part: self.part }));
            }
            n
        } else {
            let n = want.min(self.ahead.len());
            buf[..n].copy_from_slice(&self.ahead[..n]);
            self.ahead.drain(..n);
            n
        };
        self.left -= n as u64;
        if self.left == 0 {
            self.part += 1;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A body as nginx writes it, for `ranges` of `file`.
    fn body(file: &[u8], ranges: &[(u64, u64)]) -> Vec<u8> {
        let mut body = Vec::new();
        for &(start, end) in ranges {
            body.extend_from_slice(
                format!(
                    "\r\n--B\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes {start}-{}/{}\r\n\r\n",
                    end - 1,
                    file.len()
                )
                .as_bytes(),
            );
            body.extend_from_slice(&file[start as usize..end as usize]);
        }
        body.extend_from_slice(b"\r\n--B--\r\n");
        body
    }

    /// A reader that hands out at most 3 bytes per call, as a network might.
    struct Trickle<'a>(&'a [u8]);
    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(3).min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn the_stream_is_the_ranges_asked_for_back_to_back_however_the_body_arrives() {
        let file: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
        let asked = [(0, 1), (10, 2000), (4000, 5000)];
        let body = body(&file, &asked);
        let mut expected = file[0..1].to_vec();
        expected.extend_from_slice(&file[10..2000]);
        expected.extend_from_slice(&file[4000..5000]);
        let mut got = Vec::new();
        Parts::new(body.as_slice(), "u", "B", &asked)
            .read_to_end(&mut got)
            .unwrap();
        assert_eq!(got, expected);
        let mut got = Vec::new();
        Parts::new(Trickle(&body), "u", "B", &asked)
            .read_to_end(&mut got)
            .unwrap();
        assert_eq!(got, expected);
    }

    #[test]
    fn a_body_cut_anywhere_is_a_read_error() {
        let file = vec![7u8; 3000];
        let asked = [(0, 1000), (2000, 3000)];
        let body = body(&file, &asked);
        for cut in [0, 10, 80, 1050, body.len() - 4] {
            let mut got = Vec::new();
            let result = Parts::new(&body[..cut], "u", "B", &asked).read_to_end(&mut got);
            assert!(result.is_err(), "cut at {cut}");
        }
    }
}
