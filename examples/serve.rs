//! A tiny static file server for trying out and benchmarking `tako fetch` on this machine.
//!
//! ```text
//! cargo run --release --example serve -- DIR [ADDR]
//! ```
//!
//! Serves the files under `DIR` over plain HTTP/1.1 (GET and HEAD only) on `ADDR`, by default
//! `127.0.0.1:8080`. Port 0 picks a free port. The first line on standard output is the URL
//! it listens on (`http://127.0.0.1:PORT`), so a script can start it in the background and
//! read where to point its `Origin=`. One request per connection (`Connection: close`), one
//! thread per connection, one log line per request on standard error.
//!
//! File bodies are copied with 1 MiB reads and writes (`std::io::copy` through a 1 MiB
//! `BufWriter`; std does not use `sendfile` from a file to a socket). On a 2-CPU VM that
//! costs about 0.3 s of CPU per GiB and serves loopback at 1.5 to 1.9 GB/s, more than `tako`
//! needs to hash what it receives; `sendfile` measured no faster there. It is meant for
//! loopback or a trusted network: no TLS, no authentication, no directory listings, no
//! ranges; paths with a `..` segment are refused and at most 256 connections are served at
//! once.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

const DEFAULT_ADDR: &str = "127.0.0.1:8080";
/// The request line and headers must fit in this many bytes.
const MAX_HEAD: usize = 16 * 1024;
/// A client that sends nothing (or takes no data) for this long is dropped.
const IDLE: Duration = Duration::from_secs(60);
/// The copy buffer for file bodies: large, so that each system call moves a lot.
const CHUNK: usize = 1 << 20;
/// More connections than this at once get a 503 instead of a thread each.
const MAX_CONNECTIONS: usize = 256;

fn main() -> ExitCode {
    let args: Vec<_> = std::env::args_os().skip(1).collect();
    if args.is_empty() || args.len() > 2 || args.iter().any(|a| a == "-h" || a == "--help") {
        eprintln!("usage: serve DIR [ADDR]   (ADDR defaults to {DEFAULT_ADDR}; port 0 picks one)");
        return ExitCode::from(2);
    }
    let root = PathBuf::from(&args[0]);
    if !root.is_dir() {
        eprintln!("serve: {} is not a directory", root.display());
        return ExitCode::from(2);
    }
    let addr = match args.get(1) {
        None => DEFAULT_ADDR.to_owned(),
        Some(a) => match a.to_str() {
            Some(a) => a.to_owned(),
            None => {
                eprintln!("serve: the address is not UTF-8");
                return ExitCode::from(2);
            }
        },
    };
    let listener = match TcpListener::bind(&addr) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("serve: cannot listen on {addr}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let local = match listener.local_addr() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("serve: cannot read the listening address: {e}");
            return ExitCode::FAILURE;
        }
    };
    // The first line of standard output is the contract with scripts: flush it now, since
    // standard output may be a pipe that would otherwise hold it back. A wildcard address
    // (0.0.0.0, ::) is printed as loopback, which is where a local client can reach it.
    let mut shown = local;
    if shown.ip().is_unspecified() {
        shown.set_ip(match shown {
            SocketAddr::V4(_) => Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => Ipv6Addr::LOCALHOST.into(),
        });
    }
    let mut stdout = io::stdout().lock();
    if writeln!(stdout, "http://{shown}")
        .and_then(|()| stdout.flush())
        .is_err()
    {
        eprintln!("serve: cannot write the URL to standard output");
        return ExitCode::FAILURE;
    }
    drop(stdout);
    eprintln!("serve: serving {} on http://{local}", root.display());

    let root = Arc::new(root);
    let active = Arc::new(AtomicUsize::new(0));
    for conn in listener.incoming() {
        let stream = match conn {
            Ok(s) => s,
            Err(e) => {
                // Out of descriptors and the like: back off instead of spinning.
                eprintln!("serve: accept failed: {e}");
                thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        if active.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
            active.fetch_sub(1, Ordering::SeqCst);
            busy(stream);
            continue;
        }
        let root = Arc::clone(&root);
        let done = Arc::clone(&active);
        let spawned = thread::Builder::new().name("conn".into()).spawn(move || {
            handle(stream, &root);
            done.fetch_sub(1, Ordering::SeqCst);
        });
        if let Err(e) = spawned {
            active.fetch_sub(1, Ordering::SeqCst);
            eprintln!("serve: cannot start a thread: {e}");
        }
    }
    ExitCode::SUCCESS
}

/// Turns a connection away without reading its request.
fn busy(mut stream: TcpStream) {
    let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
    let _ = stream.write_all(
        b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
}

/// Serves one request on `stream` and closes it.
fn handle(mut stream: TcpStream, root: &Path) {
    let peer = stream
        .peer_addr()
        .map_or_else(|_| "?".to_owned(), |a: SocketAddr| a.to_string());
    let _ = stream.set_read_timeout(Some(IDLE));
    let _ = stream.set_write_timeout(Some(IDLE));
    let _ = stream.set_nodelay(true);
    let head = match read_head(&mut stream) {
        Ok(Some(head)) => head,
        Err(e) if e.kind() == io::ErrorKind::InvalidData => {
            let _ = error(&mut stream, 431, "Request Header Fields Too Large", false);
            eprintln!("serve: {peer} request head too long: 431");
            return;
        }
        // The client closed without a request, or timed out: nothing to answer.
        Ok(None) | Err(_) => return,
    };
    let (status, detail) = match respond(&mut stream, root, &head) {
        Ok(done) => done,
        Err(e) => (0, format!("failed: {e}")),
    };
    let line = head.split(|&b| b == b'\r').next().unwrap_or(&[]);
    eprintln!(
        "serve: {peer} \"{}\" {status} {detail}",
        String::from_utf8_lossy(line)
    );
}

/// Reads up to the blank line that ends the request head. `None` if the client sent
/// nothing; an error if it closed early, or `InvalidData` if the head is too long.
fn read_head(stream: &mut TcpStream) -> io::Result<Option<Vec<u8>>> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 2048];
    loop {
        let n = match stream.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if n == 0 {
            return if head.is_empty() {
                Ok(None)
            } else {
                Err(io::ErrorKind::UnexpectedEof.into())
            };
        }
        head.extend_from_slice(&buf[..n]);
        if let Some(end) = find(&head, b"\r\n\r\n") {
            head.truncate(end + 2);
            return Ok(Some(head));
        }
        if head.len() > MAX_HEAD {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "request head too long",
            ));
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Answers one parsed request; returns the status and a note for the log.
fn respond(stream: &mut TcpStream, root: &Path, head: &[u8]) -> io::Result<(u16, String)> {
    let request_line = head.split(|&b| b == b'\r').next().unwrap_or(&[]);
    let mut parts = request_line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return error(stream, 400, "Bad Request", false);
    };
    if !version.starts_with(b"HTTP/1.") {
        return error(stream, 400, "Bad Request", false);
    }
    let head_only = match method {
        b"GET" => false,
        b"HEAD" => true,
        _ => return error(stream, 405, "Method Not Allowed", false),
    };
    let Some(path) = local_path(root, target) else {
        return error(stream, 403, "Forbidden", head_only);
    };
    let file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return error(stream, 404, "Not Found", head_only);
        }
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            return error(stream, 403, "Forbidden", head_only);
        }
        Err(_) => return error(stream, 500, "Internal Server Error", head_only),
    };
    let len = match file.metadata() {
        Ok(m) if m.is_file() => m.len(),
        // Directories (and devices, sockets...) are not served.
        Ok(_) => return error(stream, 404, "Not Found", head_only),
        Err(_) => return error(stream, 500, "Internal Server Error", head_only),
    };
    let header = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {len}\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(header.as_bytes())?;
    if head_only {
        return Ok((200, format!("{len} bytes (head)")));
    }
    let sent = send_body(file, len, stream)?;
    if sent != len {
        // The file shrank while it was sent: the client will see a short body.
        return Ok((200, format!("{sent} of {len} bytes (file changed)")));
    }
    Ok((200, format!("{len} bytes")))
}

/// Copies exactly the `len` bytes announced (never more, even if the file grew).
fn send_body(file: File, len: u64, stream: &mut TcpStream) -> io::Result<u64> {
    // `io::copy` into a `BufWriter` reads straight into the writer's buffer: one 1 MiB
    // `read` and one 1 MiB `send` per step.
    let mut body = file.take(len);
    let mut out = BufWriter::with_capacity(CHUNK, stream);
    let sent = io::copy(&mut body, &mut out)?;
    out.flush()?;
    Ok(sent)
}

/// Sends a short plain-text error response.
fn error(
    stream: &mut TcpStream,
    status: u16,
    reason: &str,
    head_only: bool,
) -> io::Result<(u16, String)> {
    let body = format!("{status} {reason}\n");
    let mut response = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Length: {}\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if !head_only {
        response.push_str(&body);
    }
    stream.write_all(response.as_bytes())?;
    Ok((status, String::new()))
}

/// The file under `root` that a request target names, or `None` if the target is not an
/// absolute path or contains a `..` segment (before or after percent-decoding) or a NUL.
fn local_path(root: &Path, target: &[u8]) -> Option<PathBuf> {
    let path = target
        .split(|&b| b == b'?' || b == b'#')
        .next()
        .unwrap_or(&[]);
    // An absolute-form target (`http://host/path`, as sent to proxies) names the same path.
    let path = match find(path, b"://") {
        Some(i) if !path.starts_with(b"/") => {
            let after = path.get(i + 3..).unwrap_or(&[]);
            after
                .iter()
                .position(|&b| b == b'/')
                .and_then(|slash| after.get(slash..))
                .unwrap_or(b"/")
        }
        _ => path,
    };
    if !path.starts_with(b"/") {
        return None;
    }
    let decoded = percent_decode(path)?;
    let mut out = root.to_path_buf();
    for segment in decoded.split(|&b| b == b'/') {
        match segment {
            b"" | b"." => {}
            b".." => return None,
            s if s.contains(&0) => return None,
            s => out.push(OsStr::from_bytes(s)),
        }
    }
    Some(out)
}

/// Decodes `%XX` escapes; `None` for a malformed escape.
fn percent_decode(input: &[u8]) -> Option<Vec<u8>> {
    let hex = |b: u8| char::from(b).to_digit(16);
    let mut out = Vec::with_capacity(input.len());
    let mut rest = input;
    while let Some((&b, tail)) = rest.split_first() {
        if b == b'%' {
            let (&hi, tail) = tail.split_first()?;
            let (&lo, tail) = tail.split_first()?;
            let value = hex(hi)? * 16 + hex(lo)?;
            out.push(u8::try_from(value).ok()?);
            rest = tail;
        } else {
            out.push(b);
            rest = tail;
        }
    }
    Some(out)
}
