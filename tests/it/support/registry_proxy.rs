//! A recording, fault-injecting reverse proxy in front of a real registry, on 127.0.0.1.
//!
//! The image tests point tako at it instead of at the registry, to see what tako asks for
//! (which blobs it downloads, with which `Range`) and to make the registry misbehave in
//! ways a real one cannot be made to: answer with another manifest under a lying
//! `Docker-Content-Digest`, serve a blob with other bytes, or go silent after a byte count
//! the test chooses, so a pull can be killed at a known point of a download.
//!
//! Std only, one thread per connection, every answer closes its connection. The upstream
//! answer is read whole before it is passed on (the tests' blobs are small), which keeps
//! rewriting it simple. Every blocking call has a short timeout and looks at the stop flag,
//! so dropping the proxy ends its threads promptly.

use std::collections::{HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

const TICK: Duration = Duration::from_millis(20);
/// How long the upstream may take to answer one request.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(60);

/// What to do with the answer to one path instead of passing it on as it is.
#[derive(Debug, Clone, Default)]
pub struct Rule {
    /// Ask the upstream for this path instead (a lying registry serving another manifest).
    pub upstream_path: Option<String>,
    /// Headers set on the answer, replacing those of the same name.
    pub headers: Vec<(String, String)>,
    /// The body replaced by these bytes (a registry serving a damaged blob).
    pub body: Option<Vec<u8>>,
    /// Announce the whole body, send it up to byte `n` of the blob, then go silent (without
    /// closing) until the client hangs up. `n` counts from the start of the blob, also in an
    /// answer to a `Range` request, so a resumed download stalls at the same place. Each
    /// stall is counted once its bytes are sent.
    pub stall_after: Option<u64>,
    /// Send the body `chunk` bytes at a time with `delay` between them.
    pub throttle: Option<(usize, Duration)>,
}

impl Rule {
    pub fn stall_after(bytes: u64) -> Rule {
        Rule {
            stall_after: Some(bytes),
            ..Rule::default()
        }
    }

    pub fn throttle(chunk: usize, delay: Duration) -> Rule {
        Rule {
            throttle: Some((chunk, delay)),
            ..Rule::default()
        }
    }

    /// Answers with what the upstream has at `path`, under this `Docker-Content-Digest`.
    pub fn substitute(path: &str, claimed_digest: &str) -> Rule {
        Rule {
            upstream_path: Some(path.to_owned()),
            headers: vec![("Docker-Content-Digest".into(), claimed_digest.to_owned())],
            ..Rule::default()
        }
    }

    pub fn header(name: &str, value: &str) -> Rule {
        Rule {
            headers: vec![(name.to_owned(), value.to_owned())],
            ..Rule::default()
        }
    }

    pub fn body(bytes: Vec<u8>) -> Rule {
        Rule {
            body: Some(bytes),
            ..Rule::default()
        }
    }
}

/// One request as the proxy saw it.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// The request target as sent, query included.
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

    /// The path without its query.
    pub fn route(&self) -> &str {
        self.path.split('?').next().unwrap_or("")
    }

    /// Whether this is a `GET` of the blob `digest` (in any repository).
    pub fn gets_blob(&self, digest: &str) -> bool {
        self.method == "GET" && self.route().ends_with(&format!("/blobs/{digest}"))
    }

    /// The first byte a `Range: bytes=N-…` asks for.
    pub fn range_start(&self) -> Option<u64> {
        let range = self.header("range")?.strip_prefix("bytes=")?;
        range.split('-').next()?.parse().ok()
    }
}

struct Shared {
    upstream: SocketAddr,
    rules: Mutex<HashMap<String, Rule>>,
    once: Mutex<HashMap<String, VecDeque<Rule>>>,
    requests: Mutex<Vec<Request>>,
    stalls: Mutex<HashMap<String, usize>>,
    stalled: Condvar,
    workers: Mutex<Vec<JoinHandle<()>>>,
    stop: AtomicBool,
}

impl Shared {
    fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }
}

/// A poisoned lock only means another proxy thread panicked; the data is still usable.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub struct RegistryProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl RegistryProxy {
    /// A proxy passing everything on to the registry at `upstream` (`127.0.0.1:PORT`).
    pub fn start(upstream: &str) -> RegistryProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("the proxy's address");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let shared = Arc::new(Shared {
            upstream: upstream.parse().expect("an upstream address"),
            rules: Mutex::new(HashMap::new()),
            once: Mutex::new(HashMap::new()),
            requests: Mutex::new(Vec::new()),
            stalls: Mutex::new(HashMap::new()),
            stalled: Condvar::new(),
            workers: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
        });
        let acceptor = {
            let shared = Arc::clone(&shared);
            thread::spawn(move || accept_loop(&listener, &shared))
        };
        RegistryProxy {
            addr,
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// The image reference of `repository:tag` (or `repository@digest`) through the proxy,
    /// over plain HTTP, as tako spells it.
    pub fn image(&self, reference: &str) -> String {
        format!("oci+http://{}/{reference}", self.host())
    }

    /// Applies `rule` to every later request for `path` (compared without the query).
    pub fn set_rule(&self, path: &str, rule: Rule) {
        lock(&self.shared.rules).insert(path.to_owned(), rule);
    }

    /// Applies `rule` to the next request for `path` only, before any [`set_rule`] one.
    ///
    /// [`set_rule`]: RegistryProxy::set_rule
    pub fn rule_once(&self, path: &str, rule: Rule) {
        lock(&self.shared.once)
            .entry(path.to_owned())
            .or_default()
            .push_back(rule);
    }

    pub fn clear_rules(&self) {
        lock(&self.shared.rules).clear();
        lock(&self.shared.once).clear();
    }

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<Request> {
        lock(&self.shared.requests).clone()
    }

    /// Forgets the requests so far, so the next ones can be counted alone.
    pub fn clear_requests(&self) {
        lock(&self.shared.requests).clear();
    }

    /// The `GET`s of the blob `digest` so far.
    pub fn blob_gets(&self, digest: &str) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(|r| r.gets_blob(digest))
            .collect()
    }

    /// The digests of every blob fetched with `GET` so far, once each, in order.
    pub fn blobs_fetched(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for request in self.requests() {
            if request.method != "GET" {
                continue;
            }
            if let Some((_, digest)) = request.route().rsplit_once("/blobs/")
                && !out.iter().any(|d| d == digest)
            {
                out.push(digest.to_owned());
            }
        }
        out
    }

    /// Waits until `count` answers for `path` have stalled, for at most `within`.
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
}

impl Drop for RegistryProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
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
                    thread::spawn(move || serve(stream, &shared))
                };
                let mut workers = lock(&shared.workers);
                workers.retain(|w| !w.is_finished());
                workers.push(worker);
            }
            Err(_) => thread::sleep(Duration::from_millis(5)),
        }
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

/// Reads until `\r\n\r\n`; returns the head and whatever came after it.
fn read_head(stream: &mut TcpStream, shared: &Shared) -> Option<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..pos]).into_owned();
            return Some((head, buf[pos + 4..].to_vec()));
        }
        // A TLS handshake (skopeo tries HTTPS first): hang up at once, as a plain HTTP
        // server's error would end it, rather than wait for a head that never comes.
        if buf.len() > 64 * 1024 || buf.first() == Some(&0x16) || shared.stopping() {
            return None;
        }
        match stream.read(&mut chunk) {
            Ok(0) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if is_timeout(&e) => continue,
            Err(_) => return None,
        }
    }
}

fn parse_headers<'a>(lines: impl Iterator<Item = &'a str>) -> Vec<(String, String)> {
    lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect()
}

fn send(stream: &mut TcpStream, shared: &Shared, bytes: &[u8]) -> io::Result<()> {
    let mut pos = 0;
    while pos < bytes.len() {
        if shared.stopping() {
            return Err(io::Error::other("proxy stopping"));
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

fn serve(mut client: TcpStream, shared: &Shared) {
    if client.set_nonblocking(false).is_err()
        || client.set_read_timeout(Some(TICK)).is_err()
        || client.set_write_timeout(Some(TICK)).is_err()
    {
        return;
    }
    let Some((head, mut body)) = read_head(&mut client, shared) else {
        return;
    };
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or("").split(' ');
    let method = first.next().unwrap_or("").to_owned();
    let path = first.next().unwrap_or("").to_owned();
    let headers = parse_headers(lines);
    let request = Request {
        method,
        path,
        headers,
    };
    // A request body (never sent by a pull, but passed on whole all the same).
    let length: usize = request
        .header("content-length")
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    let mut chunk = [0u8; 8192];
    while body.len() < length && !shared.stopping() {
        match client.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => body.extend_from_slice(&chunk[..n]),
            Err(e) if is_timeout(&e) => continue,
            Err(_) => return,
        }
    }
    lock(&shared.requests).push(request.clone());

    let route = request.route().to_owned();
    let next = lock(&shared.once)
        .get_mut(&route)
        .and_then(VecDeque::pop_front);
    let rule = next
        .or_else(|| lock(&shared.rules).get(&route).cloned())
        .unwrap_or_default();
    let upstream_path = rule.upstream_path.clone().unwrap_or(request.path.clone());
    let answer = match ask_upstream(shared, &request, &upstream_path, &body) {
        Ok(answer) => answer,
        Err(e) => {
            let text = format!("proxy: upstream failed: {e}\n");
            let reply = format!(
                "HTTP/1.1 502 Bad Gateway\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
                text.len()
            );
            let _ = send(&mut client, shared, reply.as_bytes());
            return;
        }
    };
    if respond(&mut client, shared, &request, &route, &rule, answer).is_ok() {
        let _ = client.shutdown(Shutdown::Write);
        drain(&mut client, shared);
    }
}

struct Answer {
    status_line: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// Sends the request to the upstream with `Connection: close` and reads its whole answer.
fn ask_upstream(shared: &Shared, request: &Request, path: &str, body: &[u8]) -> io::Result<Answer> {
    let mut upstream = TcpStream::connect_timeout(&shared.upstream, Duration::from_secs(5))?;
    upstream.set_read_timeout(Some(TICK))?;
    upstream.set_write_timeout(Some(TICK))?;
    let mut head = format!("{} {path} HTTP/1.1\r\n", request.method);
    for (name, value) in &request.headers {
        if !matches!(
            name.as_str(),
            "connection" | "keep-alive" | "content-length"
        ) {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    if !body.is_empty() {
        head.push_str(&format!("content-length: {}\r\n", body.len()));
    }
    head.push_str("connection: close\r\n\r\n");
    send(&mut upstream, shared, head.as_bytes())?;
    send(&mut upstream, shared, body)?;

    let mut raw = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let deadline = Instant::now() + UPSTREAM_TIMEOUT;
    loop {
        if shared.stopping() || Instant::now() > deadline {
            return Err(io::Error::other("the upstream did not finish its answer"));
        }
        match upstream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&chunk[..n]),
            Err(e) if is_timeout(&e) => continue,
            Err(e) => return Err(e),
        }
    }
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| io::Error::other("no end of the upstream's headers"))?;
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("").to_owned();
    let headers = parse_headers(lines);
    let mut body = raw[end + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    if chunked {
        body = dechunk(&body)?;
    } else if let Some(length) = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok())
    {
        body.truncate(length);
    }
    Ok(Answer {
        status_line,
        headers,
        body,
    })
}

fn dechunk(mut raw: &[u8]) -> io::Result<Vec<u8>> {
    let bad = || io::Error::other("bad chunked body from the upstream");
    let mut out = Vec::new();
    loop {
        let line_end = raw.windows(2).position(|w| w == b"\r\n").ok_or_else(bad)?;
        let size_text = String::from_utf8_lossy(&raw[..line_end]);
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| bad())?;
        raw = &raw[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        if raw.len() < size + 2 {
            return Err(bad());
        }
        out.extend_from_slice(&raw[..size]);
        raw = &raw[size + 2..];
    }
}

fn respond(
    client: &mut TcpStream,
    shared: &Shared,
    request: &Request,
    route: &str,
    rule: &Rule,
    answer: Answer,
) -> io::Result<()> {
    let body = rule.body.clone().unwrap_or(answer.body);
    let mut out = format!("{}\r\n", answer.status_line);
    let replaced = |name: &str| {
        rule.headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(name))
    };
    let head_only = request.method == "HEAD";
    for (name, value) in &answer.headers {
        let framing = matches!(
            name.as_str(),
            "connection" | "keep-alive" | "transfer-encoding"
        ) || (name == "content-length" && !head_only);
        if !framing && !replaced(name) {
            out.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    for (name, value) in &rule.headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    if !head_only {
        out.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    out.push_str("Connection: close\r\n\r\n");
    send(client, shared, out.as_bytes())?;
    if head_only {
        return Ok(());
    }
    // Where this answer's body starts in the blob: `Content-Range: bytes FIRST-LAST/SIZE`.
    let first = answer
        .headers
        .iter()
        .find(|(n, _)| n == "content-range")
        .and_then(|(_, v)| {
            v.strip_prefix("bytes ")?
                .split('-')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .unwrap_or(0);
    let limit = rule.stall_after.map_or(body.len(), |n| {
        usize::try_from(n.saturating_sub(first)).map_or(body.len(), |n| n.min(body.len()))
    });
    let (step, delay) = rule.throttle.unwrap_or((64 * 1024, Duration::ZERO));
    let mut sent = 0;
    while sent < limit {
        let n = step.max(1).min(limit - sent);
        send(client, shared, &body[sent..sent + n])?;
        sent += n;
        pause(shared, delay);
    }
    if rule.stall_after.is_some() {
        *lock(&shared.stalls).entry(route.to_owned()).or_default() += 1;
        shared.stalled.notify_all();
        hang(client, shared);
        return Err(io::Error::other("stalled"));
    }
    Ok(())
}

fn pause(shared: &Shared, delay: Duration) {
    let until = Instant::now() + delay;
    while !shared.stopping() {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        thread::sleep(left.min(TICK));
    }
}

/// Keeps the connection open and silent until the client closes it or the proxy stops.
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

/// Reads what the client still sends for up to a second, so closing never becomes a reset
/// that cuts off the answer in flight.
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
