//! A real HTTP/1.1 file server on 127.0.0.1 with per-path fault injection, for tests.
//!
//! Std only. One thread accepts, one thread serves each connection, and every response
//! closes its connection, which keeps the bookkeeping trivial. Every blocking socket call
//! has a short timeout and re-checks the stop flag, so dropping the `Server` ends all of
//! its threads within a fraction of a second, whatever a client is doing.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// How often blocked threads look at the stop flag.
const TICK: Duration = Duration::from_millis(20);
const CHUNK: usize = 64 * 1024;
/// The length `Fault::Endless { content_length: true }` announces: far more than any test
/// would read.
pub const ENDLESS_LENGTH: u64 = 1 << 40;

/// What to do instead of serving the file at a path.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer with this status and a short text body.
    Status(u16),
    /// Serve these bytes with status 200.
    Body(Vec<u8>),
    /// Stream bytes until the client goes away, announcing [`ENDLESS_LENGTH`] or, without
    /// `content_length`, using chunked encoding.
    Endless { content_length: bool },
    /// Read the request and never answer (the connection stays open).
    Hang,
    /// `302 Found` to this `Location`, sent verbatim.
    Redirect(String),
    /// Serve the real file, `chunk` bytes every `delay`.
    Slow { chunk: usize, delay: Duration },
    /// Announce the real file's length, send its first `after` bytes, then close.
    Truncate { after: u64 },
    /// Announce the real file's length, send its first `after` bytes, then go silent
    /// without closing. Each stall is counted when it begins, so a test can wait for the
    /// client to hold exactly those bytes ([`Server::wait_for_stalls`]).
    Stall { after: u64 },
    /// Serve `body` with status 200 and `Content-Encoding: <encoding>`, as a server that
    /// compresses on its own does.
    Encoded { encoding: String, body: Vec<u8> },
    /// Answer with this status, these extra header lines (`Retry-After: 1`) and a short
    /// text body.
    StatusWith { status: u16, headers: Vec<String> },
    /// Answer with this status, these extra header lines and this body (its
    /// `Content-Length` added), whatever was asked: a `206` no client can use, say.
    Response {
        status: u16,
        headers: Vec<String>,
        body: Vec<u8>,
    },
    /// A registry path behind a Bearer token: without `Authorization: Bearer <token>`,
    /// `401` with `WWW-Authenticate: <challenge>`; with it, the file, or with `redirect` a
    /// `307` to that `Location` (a registry sending a blob to its storage).
    Bearer {
        token: String,
        challenge: String,
        redirect: Option<String>,
    },
}

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// The request target as sent, e.g. `/store/ab12?x`.
    pub path: String,
    /// Header names in lower case, in the order sent.
    pub headers: Vec<(String, String)>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

struct Shared {
    root: PathBuf,
    faults: Mutex<HashMap<String, Fault>>,
    /// Faults for the next requests of a path, one each, before `faults` applies again.
    sequences: Mutex<HashMap<String, std::collections::VecDeque<Fault>>>,
    /// Whether files are served with `ETag` and `Last-Modified`, answer `If-None-Match` and
    /// `If-Modified-Since` with 304, and honour `Range` (with `If-Range`) with 206.
    http_features: AtomicBool,
    /// Whether files are served as `python3 -m http.server` does, with `Last-Modified` only
    /// (no `ETag`), 304 when the file is not newer than `If-Modified-Since`, and a `Date`
    /// in the very second of the file's mtime: a response made right after a publish.
    same_second_dates: AtomicBool,
    /// See [`Server::ignore_multiple_ranges`].
    single_ranges: AtomicBool,
    /// Body bytes sent in answers, by path: what a client was made to transfer.
    sent: Mutex<HashMap<String, u64>>,
    /// Responses that went silent under [`Fault::Stall`], by path, and a signal for each.
    stalls: Mutex<HashMap<String, usize>>,
    stalled: Condvar,
    requests: Mutex<Vec<Request>>,
    workers: Mutex<Vec<JoinHandle<()>>>,
    stop: AtomicBool,
    /// Whether `CONNECT host:port` opens a tunnel, making this an HTTP proxy.
    tunnel: bool,
    /// Whether requests in absolute form (`GET http://host/path`) are forwarded, as an
    /// HTTP proxy does for plain HTTP.
    forward: bool,
    /// Whether CONNECT is refused (403) to any port but 443, as many proxies do.
    connect_only_443: bool,
}

impl Shared {
    fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }
}

/// A poisoned lock only means another server thread panicked; the data is still usable and
/// the panic will be reported on its own.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub struct Server {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl Server {
    /// Serves the files under `root` for GET: `/manifest` is `root/manifest`,
    /// `/store/<hex>` is `root/store/<hex>`. Missing files are 404.
    pub fn serve_dir(root: impl Into<PathBuf>) -> Server {
        Server::start(root.into(), false)
    }

    /// An HTTP proxy that tunnels `CONNECT` requests (the only kind ureq sends) and records
    /// them; its `url()` is what `http_proxy` should hold. Other requests get 404.
    // Only the transport's unit tests (src/net/client_tests.rs) use it, not tests/it.
    #[allow(dead_code)]
    pub fn connect_proxy() -> Server {
        Server::start_proxy(true, false, false)
    }

    /// An HTTP proxy as curl expects one: it forwards requests in absolute form
    /// (`GET http://127.0.0.1:PORT/path`) to their target and tunnels `CONNECT`. Records
    /// every request as it arrived.
    pub fn proxy() -> Server {
        Server::start_proxy(true, true, false)
    }

    /// As [`Server::proxy`], but refuses `CONNECT` to any port but 443 with 403 Forbidden,
    /// as proxies in their default setup do.
    pub fn strict_proxy() -> Server {
        Server::start_proxy(true, true, true)
    }

    fn start(root: PathBuf, tunnel: bool) -> Server {
        Server::start_with(root, tunnel, false, false)
    }

    fn start_proxy(tunnel: bool, forward: bool, connect_only_443: bool) -> Server {
        Server::start_with(PathBuf::new(), tunnel, forward, connect_only_443)
    }

    fn start_with(root: PathBuf, tunnel: bool, forward: bool, connect_only_443: bool) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener
            .local_addr()
            .expect("local address of the listener");
        // Non-blocking so the acceptor can notice the stop flag.
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let shared = Arc::new(Shared {
            root,
            faults: Mutex::new(HashMap::new()),
            sequences: Mutex::new(HashMap::new()),
            http_features: AtomicBool::new(false),
            same_second_dates: AtomicBool::new(false),
            single_ranges: AtomicBool::new(false),
            sent: Mutex::new(HashMap::new()),
            stalls: Mutex::new(HashMap::new()),
            stalled: Condvar::new(),
            requests: Mutex::new(Vec::new()),
            workers: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
            tunnel,
            forward,
            connect_only_443,
        });
        let acceptor = {
            let shared = Arc::clone(&shared);
            thread::spawn(move || accept_loop(&listener, &shared))
        };
        Server {
            addr,
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `self.url()` followed by `path`, which should start with `/`.
    pub fn url_for(&self, path: &str) -> String {
        format!("{}{path}", self.url())
    }

    /// Applies `fault` to every later request for `path` (compared without the query).
    pub fn set_fault(&self, path: &str, fault: Fault) {
        lock(&self.shared.faults).insert(path.to_owned(), fault);
    }

    pub fn clear_fault(&self, path: &str) {
        lock(&self.shared.faults).remove(path);
    }

    /// Applies `faults` to the next requests for `path`, one per request, in order; after
    /// them, requests are served as before (or with the fault of [`Server::set_fault`]).
    pub fn set_fault_sequence(&self, path: &str, faults: Vec<Fault>) {
        lock(&self.shared.sequences).insert(path.to_owned(), faults.into());
    }

    /// Serves files as a real static file server does: with a strong `ETag` (from the
    /// content) and `Last-Modified` (from the mtime), 304 for a matching `If-None-Match`
    /// or `If-Modified-Since`, 206 for `Range: bytes=N-` (a `multipart/byteranges` 206 for several ranges) unless an `If-Range` does not
    /// match. Off by default, so older tests see the plain server they were written for.
    pub fn enable_http_features(&self) {
        self.shared.http_features.store(true, Ordering::SeqCst);
    }

    /// With [`Server::enable_http_features`], answers a `Range` of several ranges with the
    /// whole file (200), as a server that does not send `multipart/byteranges` does.
    pub fn ignore_multiple_ranges(&self) {
        self.shared.single_ranges.store(true, Ordering::SeqCst);
    }

    /// Serves files with `Last-Modified` only and a `Date` in the second of each file's mtime,
    /// answering `If-Modified-Since` with 304 when the file is not newer, as a server with
    /// one-second dates does right after a publish.
    pub fn serve_same_second_dates(&self) {
        self.shared.same_second_dates.store(true, Ordering::SeqCst);
    }

    /// Body bytes of files sent for `path` so far (a 304 sends none).
    pub fn body_bytes_sent(&self, path: &str) -> u64 {
        lock(&self.shared.sent).get(path).copied().unwrap_or(0)
    }

    /// The path of every request received so far, in order.
    pub fn requests(&self) -> Vec<String> {
        lock(&self.shared.requests)
            .iter()
            .map(|r| r.path.clone())
            .collect()
    }

    /// Every request received so far, with method and headers.
    pub fn recorded(&self) -> Vec<Request> {
        lock(&self.shared.requests).clone()
    }

    /// Waits until `count` responses for `path` have stalled under [`Fault::Stall`] (each
    /// after sending all of its `after` bytes), for at most `within`; whether they did.
    pub fn wait_for_stalls(&self, path: &str, count: usize, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        let mut stalls = lock(&self.shared.stalls);
        loop {
            if stalls.get(path).copied().unwrap_or(0) >= count {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            stalls = self
                .shared
                .stalled
                .wait_timeout(stalls, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// How many requests asked for `path`.
    pub fn count(&self, path: &str) -> usize {
        lock(&self.shared.requests)
            .iter()
            .filter(|r| r.path == path)
            .count()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        // The acceptor has stopped, so no worker can be added while these are joined.
        let workers = std::mem::take(&mut *lock(&self.shared.workers));
        for worker in workers {
            let _ = worker.join();
        }
    }
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    while !shared.stopping() {
        match listener.accept() {
            Ok((stream, _)) => {
                let worker = {
                    let shared = Arc::clone(shared);
                    thread::spawn(move || serve_connection(stream, &shared))
                };
                let mut workers = lock(&shared.workers);
                workers.retain(|w| !w.is_finished());
                workers.push(worker);
            }
            Err(_) => thread::sleep(Duration::from_millis(5)),
        }
    }
}

fn serve_connection(mut stream: TcpStream, shared: &Shared) {
    // Whether an accepted socket inherits non-blocking mode differs between platforms.
    if stream.set_nonblocking(false).is_err()
        || stream.set_read_timeout(Some(TICK)).is_err()
        || stream.set_write_timeout(Some(TICK)).is_err()
    {
        return;
    }
    let Some(request) = read_request(&mut stream, shared) else {
        return;
    };
    lock(&shared.requests).push(request.clone());
    if shared.tunnel && request.method == "CONNECT" {
        if shared.connect_only_443 && !request.path.ends_with(":443") {
            let _ = send_small(&mut stream, shared, 403, b"CONNECT only to port 443\n");
            return;
        }
        let _ = tunnel(stream, shared, &request.path);
        return;
    }
    if shared.forward && request.path.starts_with("http://") {
        let _ = forward(stream, shared, &request);
        return;
    }
    let route = request.path.split('?').next().unwrap_or("").to_owned();
    let next = lock(&shared.sequences)
        .get_mut(&route)
        .and_then(|faults| faults.pop_front());
    let fault = next.or_else(|| lock(&shared.faults).get(&route).cloned());
    let closing = respond(&mut stream, shared, &request, &route, fault);
    if closing.is_ok() {
        let _ = stream.shutdown(Shutdown::Write);
        drain(&mut stream, shared);
    }
}

/// Reads up to the end of the request headers. GET requests have no body.
fn read_request(stream: &mut TcpStream, shared: &Shared) -> Option<Request> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let end = loop {
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos;
        }
        // Room for the large tokens of some cloud registries (see registry::publish_and_fetch).
        if buf.len() > 1024 * 1024 || shared.stopping() {
            return None;
        }
        match stream.read(&mut chunk) {
            Ok(0) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if is_timeout(&e) => continue,
            Err(_) => return None,
        }
    };
    let text = String::from_utf8_lossy(&buf[..end]);
    let mut lines = text.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_owned();
    let path = first.next()?.to_owned();
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    Some(Request {
        method,
        path,
        headers,
    })
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

/// Writes all of `bytes`, retrying after write timeouts until the server stops.
fn send(stream: &mut TcpStream, shared: &Shared, bytes: &[u8]) -> io::Result<()> {
    let mut pos = 0;
    while pos < bytes.len() {
        if shared.stopping() {
            return Err(io::Error::other("server stopping"));
        }
        match stream.write(&bytes[pos..]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => pos += n,
            Err(e) if is_timeout(&e) => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        301 => "Moved Permanently",
        302 => "Found",
        307 => "Temporary Redirect",
        401 => "Unauthorized",
        400 => "Bad Request",
        206 => "Partial Content",
        304 => "Not Modified",
        403 => "Forbidden",
        404 => "Not Found",
        408 => "Request Timeout",
        416 => "Range Not Satisfiable",
        429 => "Too Many Requests",
        405 => "Method Not Allowed",
        410 => "Gone",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

fn head(status: u16, extra: &[String]) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status} {}\r\n", reason(status));
    for line in extra {
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str("Connection: close\r\n\r\n");
    out.into_bytes()
}

fn send_small(stream: &mut TcpStream, shared: &Shared, status: u16, body: &[u8]) -> io::Result<()> {
    let mut out = head(status, &[format!("Content-Length: {}", body.len())]);
    out.extend_from_slice(body);
    send(stream, shared, &out)
}

fn respond(
    stream: &mut TcpStream,
    shared: &Shared,
    request: &Request,
    route: &str,
    fault: Option<Fault>,
) -> io::Result<()> {
    match fault {
        Some(Fault::Status(status)) => send_small(
            stream,
            shared,
            status,
            format!("{}\n", reason(status)).as_bytes(),
        ),
        Some(Fault::Body(bytes)) => send_small(stream, shared, 200, &bytes),
        Some(Fault::StatusWith { status, headers }) => {
            let body = format!("{}\n", reason(status));
            let mut extra = headers;
            extra.push(format!("Content-Length: {}", body.len()));
            let mut out = head(status, &extra);
            out.extend_from_slice(body.as_bytes());
            send(stream, shared, &out)
        }
        Some(Fault::Response {
            status,
            headers,
            body,
        }) => {
            let mut extra = headers;
            extra.push(format!("Content-Length: {}", body.len()));
            let mut out = head(status, &extra);
            out.extend_from_slice(&body);
            send(stream, shared, &out)
        }
        Some(Fault::Encoded { encoding, body }) => {
            let mut out = head(
                200,
                &[
                    format!("Content-Encoding: {encoding}"),
                    format!("Content-Length: {}", body.len()),
                ],
            );
            out.extend_from_slice(&body);
            send(stream, shared, &out)
        }
        Some(Fault::Redirect(location)) => {
            let out = head(
                302,
                &[format!("Location: {location}"), "Content-Length: 0".into()],
            );
            send(stream, shared, &out)
        }
        Some(Fault::Bearer {
            token,
            challenge,
            redirect,
        }) => {
            let expected = format!("Bearer {token}");
            if request.header("authorization") != Some(expected.as_str()) {
                let body = b"{\"errors\":[{\"code\":\"UNAUTHORIZED\"}]}\n";
                let mut out = head(
                    401,
                    &[
                        format!("WWW-Authenticate: {challenge}"),
                        format!("Content-Length: {}", body.len()),
                    ],
                );
                out.extend_from_slice(body);
                return send(stream, shared, &out);
            }
            match redirect {
                Some(location) => send(
                    stream,
                    shared,
                    &head(
                        307,
                        &[format!("Location: {location}"), "Content-Length: 0".into()],
                    ),
                ),
                None => serve_file(stream, shared, request, route, CHUNK, Duration::ZERO, None),
            }
        }
        Some(Fault::Hang) => {
            hang(stream, shared);
            Err(io::Error::other("hung up"))
        }
        Some(Fault::Endless { content_length }) => endless(stream, shared, content_length),
        Some(Fault::Slow { chunk, delay }) => {
            serve_file(stream, shared, request, route, chunk.max(1), delay, None)
        }
        Some(Fault::Truncate { after }) => serve_file(
            stream,
            shared,
            request,
            route,
            CHUNK,
            Duration::ZERO,
            Some(after),
        ),
        Some(Fault::Stall { after }) => {
            serve_file(
                stream,
                shared,
                request,
                route,
                CHUNK,
                Duration::ZERO,
                Some(after),
            )?;
            *lock(&shared.stalls).entry(route.to_owned()).or_default() += 1;
            shared.stalled.notify_all();
            hang(stream, shared);
            Err(io::Error::other("stalled"))
        }
        None => serve_file(stream, shared, request, route, CHUNK, Duration::ZERO, None),
    }
}

/// Keeps the connection open and silent until the client closes it or the server stops.
fn hang(stream: &mut TcpStream, shared: &Shared) {
    let mut sink = [0u8; 1024];
    while !shared.stopping() {
        match stream.read(&mut sink) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if is_timeout(&e) => {}
            Err(_) => return,
        }
    }
}

fn endless(stream: &mut TcpStream, shared: &Shared, content_length: bool) -> io::Result<()> {
    let framing = if content_length {
        format!("Content-Length: {ENDLESS_LENGTH}")
    } else {
        "Transfer-Encoding: chunked".to_owned()
    };
    send(stream, shared, &head(200, &[framing]))?;
    let data = vec![b'x'; CHUNK];
    let mut chunked = format!("{CHUNK:x}\r\n").into_bytes();
    chunked.extend_from_slice(&data);
    chunked.extend_from_slice(b"\r\n");
    let piece = if content_length { &data } else { &chunked };
    // Ends when the client hangs up (the write fails) or the server stops.
    loop {
        send(stream, shared, piece)?;
    }
}

/// Maps a request path to a file under the root; `None` for anything that could escape it.
fn file_for(root: &Path, route: &str) -> Option<PathBuf> {
    let relative = Path::new(route.strip_prefix('/')?);
    let safe = relative
        .components()
        .all(|c| matches!(c, Component::Normal(_)));
    (safe && !route.contains('\\')).then(|| root.join(relative))
}

/// Serves the file for `route`, `chunk` bytes at a time with `delay` between them, and
/// closes after `limit` bytes if given (still announcing the full length).
fn serve_file(
    stream: &mut TcpStream,
    shared: &Shared,
    request: &Request,
    route: &str,
    chunk: usize,
    delay: Duration,
    limit: Option<u64>,
) -> io::Result<()> {
    if request.method != "GET" {
        return send_small(stream, shared, 405, b"only GET\n");
    }
    let file = file_for(&shared.root, route)
        .and_then(|path| File::open(path).ok())
        .and_then(|file| {
            let meta = file.metadata().ok()?;
            meta.is_file().then_some((file, meta.len()))
        });
    let Some((mut file, len)) = file else {
        return send_small(stream, shared, 404, b"not found\n");
    };
    let mut status = 200;
    let mut headers = vec![format!("Content-Length: {len}")];
    let mut length = len;
    if shared.same_second_dates.load(Ordering::SeqCst) {
        let (_, modified) = validators_of(&mut file);
        let dated = vec![
            format!("Last-Modified: {modified}"),
            format!("Date: {modified}"),
        ];
        let not_newer = request
            .header("if-modified-since")
            .and_then(|ims| httpdate::parse_http_date(ims).ok())
            .zip(httpdate::parse_http_date(&modified).ok())
            .is_some_and(|(ims, mtime)| mtime <= ims);
        if not_newer {
            return send(stream, shared, &head(304, &dated));
        }
        headers.extend(dated);
    } else if shared.http_features.load(Ordering::SeqCst) {
        let (etag, modified) = validators_of(&mut file);
        let fresh = request.header("if-none-match") == Some(etag.as_str())
            || (request.header("if-none-match").is_none()
                && request.header("if-modified-since") == Some(modified.as_str()));
        if fresh {
            return send(
                stream,
                shared,
                &head(
                    304,
                    &[
                        format!("ETag: {etag}"),
                        format!("Last-Modified: {modified}"),
                    ],
                ),
            );
        }
        headers = vec![
            format!("ETag: {etag}"),
            format!("Last-Modified: {modified}"),
        ];
        let if_range_ok = request
            .header("if-range")
            .is_none_or(|v| v == etag || v == modified);
        // `bytes=A-B,C-D,…`: a multipart/byteranges answer, as nginx gives; a server that
        // does not do them serves the whole file (the parse below fails on the list).
        let several = request
            .header("range")
            .and_then(|r| r.strip_prefix("bytes="))
            .filter(|r| r.contains(',') && if_range_ok)
            .filter(|_| !shared.single_ranges.load(Ordering::SeqCst))
            .and_then(|list| {
                list.split(',')
                    .map(|r| {
                        let (a, b) = r.trim().split_once('-')?;
                        Some((a.parse::<u64>().ok()?, b.parse::<u64>().ok()?))
                    })
                    .collect::<Option<Vec<_>>>()
            })
            .filter(|r| r.iter().all(|&(a, b)| a <= b && b < len));
        if let Some(ranges) = several {
            let mut body = Vec::new();
            let mut file_bytes = 0;
            for (first, last) in ranges {
                body.extend_from_slice(
                    format!(
                        "\r\n--{MULTIPART_BOUNDARY}\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes {first}-{last}/{len}\r\n\r\n"
                    )
                    .as_bytes(),
                );
                let at = body.len();
                body.resize(at + (last + 1 - first) as usize, 0);
                io::Seek::seek(&mut file, io::SeekFrom::Start(first))?;
                file.read_exact(&mut body[at..])?;
                file_bytes += last + 1 - first;
            }
            body.extend_from_slice(format!("\r\n--{MULTIPART_BOUNDARY}--\r\n").as_bytes());
            headers.push(format!(
                "Content-Type: multipart/byteranges; boundary={MULTIPART_BOUNDARY}"
            ));
            headers.push(format!("Content-Length: {}", body.len()));
            send(stream, shared, &head(206, &headers))?;
            send(stream, shared, &body)?;
            *lock(&shared.sent).entry(route.to_owned()).or_default() += file_bytes;
            return Ok(());
        }
        // `bytes=FROM-` or `bytes=FROM-LAST`, one range only.
        let range = request
            .header("range")
            .and_then(|r| r.strip_prefix("bytes="))
            .and_then(|r| r.split_once('-'))
            .and_then(|(from, last)| {
                let from = from.parse::<u64>().ok()?;
                let last = if last.is_empty() {
                    None
                } else {
                    Some(last.parse::<u64>().ok()?)
                };
                Some((from, last))
            });
        match range {
            Some((from, _)) if if_range_ok && from >= len => {
                return send_small(stream, shared, 416, b"range not satisfiable\n");
            }
            Some((from, last)) if if_range_ok => {
                let last = last.map_or(len - 1, |l| l.min(len - 1));
                io::Seek::seek(&mut file, io::SeekFrom::Start(from))?;
                status = 206;
                length = last + 1 - from;
                headers.push(format!("Content-Range: bytes {from}-{last}/{len}"));
            }
            _ => {}
        }
        headers.push(format!("Content-Length: {length}"));
    }
    send(stream, shared, &head(status, &headers))?;
    let mut left = limit.unwrap_or(length).min(length);
    let mut buf = vec![0u8; chunk];
    while left > 0 {
        let want = usize::try_from(left).unwrap_or(usize::MAX).min(chunk);
        let n = file.read(&mut buf[..want])?;
        if n == 0 {
            break;
        }
        send(stream, shared, &buf[..n])?;
        *lock(&shared.sent).entry(route.to_owned()).or_default() += n as u64;
        left -= n as u64;
        pause(shared, delay);
    }
    Ok(())
}

/// The boundary of the server's `multipart/byteranges` answers.
const MULTIPART_BOUNDARY: &str = "3d6b6a416f4b1ff2";

/// A strong `ETag` from the file's content (so a changed file gets another one) and a
/// `Last-Modified` from its mtime, in the form HTTP dates take.
fn validators_of(file: &mut File) -> (String, String) {
    use std::hash::{Hash, Hasher};
    let mut bytes = Vec::new();
    let _ = file.read_to_end(&mut bytes);
    let _ = io::Seek::rewind(file);
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut hasher);
    let etag = format!("\"{:x}-{:x}\"", bytes.len(), hasher.finish());
    let modified = file
        .metadata()
        .and_then(|m| m.modified())
        .unwrap_or(std::time::UNIX_EPOCH);
    (etag, httpdate::fmt_http_date(modified))
}

/// Sleeps for `delay`, but wakes up early when the server stops.
fn pause(shared: &Shared, delay: Duration) {
    let until = Instant::now() + delay;
    while !shared.stopping() {
        let now = Instant::now();
        if now >= until {
            return;
        }
        thread::sleep((until - now).min(TICK));
    }
}

/// Reads what the client still sends until it closes, for at most a second, so that
/// closing our side never turns into a reset that could cut off the response in flight.
fn drain(stream: &mut TcpStream, shared: &Shared) {
    let until = Instant::now() + Duration::from_secs(1);
    let mut sink = [0u8; 1024];
    while !shared.stopping() && Instant::now() < until {
        match stream.read(&mut sink) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if is_timeout(&e) => {}
            Err(_) => return,
        }
    }
}

/// Answers a `CONNECT` and then copies bytes both ways until either side closes.
fn tunnel(mut client: TcpStream, shared: &Shared, target: &str) -> io::Result<()> {
    let upstream = match TcpStream::connect(target) {
        Ok(upstream) => upstream,
        Err(_) => return send_small(&mut client, shared, 502, b"cannot reach target\n"),
    };
    upstream.set_read_timeout(Some(TICK))?;
    upstream.set_write_timeout(Some(TICK))?;
    send(
        &mut client,
        shared,
        b"HTTP/1.1 200 Connection established\r\n\r\n",
    )?;
    let (client_in, upstream_in) = (client.try_clone()?, upstream.try_clone()?);
    thread::scope(|scope| {
        scope.spawn(|| pipe(client_in, upstream, shared));
        pipe(upstream_in, client, shared);
    });
    Ok(())
}

/// Passes an absolute-form request on to its target in origin form, then copies the answer
/// back until the target closes. Only `http://` targets, as a proxy handles them.
fn forward(mut client: TcpStream, shared: &Shared, request: &Request) -> io::Result<()> {
    let rest = request.path.strip_prefix("http://").unwrap_or("");
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let mut upstream = match TcpStream::connect(authority) {
        Ok(upstream) => upstream,
        Err(_) => return send_small(&mut client, shared, 502, b"cannot reach target\n"),
    };
    upstream.set_read_timeout(Some(TICK))?;
    upstream.set_write_timeout(Some(TICK))?;
    let mut head = format!("{} {path} HTTP/1.1\r\n", request.method);
    for (name, value) in &request.headers {
        // Hop-by-hop headers stay with the proxy.
        if !matches!(name.as_str(), "proxy-authorization" | "connection") {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    head.push_str("connection: close\r\n\r\n");
    send(&mut upstream, shared, head.as_bytes())?;
    pipe(upstream, client.try_clone()?, shared);
    drain(&mut client, shared);
    Ok(())
}

fn pipe(mut from: TcpStream, mut to: TcpStream, shared: &Shared) {
    let mut buf = vec![0u8; CHUNK];
    while !shared.stopping() {
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if send(&mut to, shared, &buf[..n]).is_err() {
                    break;
                }
            }
            Err(e) if is_timeout(&e) => {}
            Err(_) => break,
        }
    }
    // Passes the end of stream on, so the other direction finishes too.
    let _ = to.shutdown(Shutdown::Write);
}
