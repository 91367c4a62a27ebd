//! A real nginx on 127.0.0.1 for one test, with its access log parsed into records.
//!
//! Each `Nginx` gets its own temporary prefix directory holding nginx.conf, the pid file, the
//! error and access logs and nginx's temp directories, so nothing outside it is read or
//! written and tests can run side by side. nginx runs in the foreground as one process
//! (`daemon off; master_process off;`), so killing the child on Drop ends it completely and
//! no worker switches to another user (the served temporary directories stay private).
//!
//! nginx is expected at /usr/sbin/nginx (`.ci/run` installs `nginx-light` where it is
//! missing).

use std::fmt::Write as _;
use std::fs;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

pub const NGINX: &str = "/usr/sbin/nginx";

/// How long nginx may take to accept connections after it was started.
const STARTUP: Duration = Duration::from_secs(15);
/// How many ports are tried when nginx cannot bind the one picked (another process took it
/// between our probe and nginx's bind).
const BIND_ATTEMPTS: usize = 5;

/// Serving over TLS: the server's certificate chain and key (PEM files), and optionally the
/// CA bundle client certificates must chain to, which turns on `ssl_verify_client on`.
#[derive(Debug, Clone)]
pub struct Tls {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: Option<PathBuf>,
}

/// What to serve and how.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub tls: Option<Tls>,
    /// nginx's `limit_rate` for every response, e.g. `"256k"`.
    pub limit_rate: Option<String>,
    /// The socket send buffer (`listen … sndbuf=`), e.g. `"16k"`. A small one keeps nginx
    /// from handing a whole file to the kernel at once, so that the time nginx logs for a
    /// response follows how fast the client reads it.
    pub send_buffer: Option<String>,
    /// Extra directives placed verbatim inside the `server` block, typically
    /// `location … { … }` blocks.
    pub locations: Vec<String>,
}

/// One line of the access log.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub method: String,
    /// The request target as sent, with any query.
    pub uri: String,
    pub status: u16,
    /// The headers as sent, `None` when absent.
    pub range: Option<String>,
    pub if_range: Option<String>,
    pub if_none_match: Option<String>,
    pub if_modified_since: Option<String>,
    /// Whether an `Authorization` header was sent (its value is never logged).
    pub authorization: bool,
    /// Bytes of the body nginx sent (a download cut short shows fewer than the file has).
    pub body_bytes_sent: u64,
    /// Seconds from the first byte of the request to the last byte sent, as nginx measured.
    pub request_time: f64,
    /// `$ssl_client_verify`: `SUCCESS`, `FAILED:…`, or `NONE` / `None` without TLS.
    pub ssl_client_verify: Option<String>,
    /// `$connection`: the serial number of the connection the request came on, so that
    /// requests sharing one keep-alive connection can be told apart from new ones.
    pub connection: u64,
}

/// A running nginx; killed when dropped.
pub struct Nginx {
    prefix: tempfile::TempDir,
    child: Child,
    port: u16,
    tls: bool,
}

impl Nginx {
    /// Plain HTTP serving `root`.
    pub fn serve_dir(root: &Path) -> Nginx {
        Nginx::start(root, Options::default())
    }

    /// Serves `root` with `options`. Panics (failing the test) with nginx's error log when it
    /// cannot start.
    pub fn start(root: &Path, options: Options) -> Nginx {
        assert!(
            Path::new(NGINX).exists(),
            "{NGINX} is missing: install nginx-light (`apt-get install nginx-light`), as .ci/run does"
        );
        let prefix = tempfile::tempdir().expect("nginx prefix directory");
        let mut last_error = String::new();
        for _ in 0..BIND_ATTEMPTS {
            let port = free_port();
            let conf = config(prefix.path(), root, port, &options);
            let conf_path = prefix.path().join("nginx.conf");
            fs::write(&conf_path, conf).expect("write nginx.conf");
            let error_log = prefix.path().join("error.log");
            let _ = fs::remove_file(&error_log);
            let stderr = fs::File::create(prefix.path().join("stderr.log")).expect("nginx stderr");
            let mut child = Command::new(NGINX)
                .arg("-p")
                .arg(prefix.path())
                .arg("-c")
                .arg(&conf_path)
                .arg("-e")
                .arg(&error_log)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(stderr)
                .spawn()
                .expect("start nginx");
            match wait_ready(&mut child, port, prefix.path()) {
                Ok(()) => {
                    return Nginx {
                        prefix,
                        child,
                        port,
                        tls: options.tls.is_some(),
                    };
                }
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    if !e.contains("Address already in use") {
                        panic!("nginx did not start:\n{e}");
                    }
                    last_error = e;
                }
            }
        }
        panic!("nginx could not bind a port after {BIND_ATTEMPTS} attempts:\n{last_error}");
    }

    /// `http://127.0.0.1:PORT` or `https://127.0.0.1:PORT`, without a trailing slash.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// `https://localhost:PORT` (or http), for certificates made for the name `localhost`.
    pub fn url_localhost(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://localhost:{}", self.port)
    }

    /// Every request logged so far, in the order nginx finished them.
    pub fn records(&self) -> Vec<Record> {
        let text = fs::read_to_string(self.prefix.path().join("access.log")).unwrap_or_default();
        text.lines()
            .map(|line| {
                parse_record(line).unwrap_or_else(|| panic!("unparsable access log line {line:?}"))
            })
            .collect()
    }

    /// The records once at least `count` requests were logged, waiting up to 10 s: nginx
    /// writes a line when it has finished a request, which can be a moment after the client
    /// has seen the last byte or hung up.
    pub fn wait_records(&self, count: usize) -> Vec<Record> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let records = self.records();
            if records.len() >= count || Instant::now() > deadline {
                return records;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until nginx accepts connections on `port`, or says why it will not.
fn wait_ready(child: &mut Child, port: u16, prefix: &Path) -> Result<(), String> {
    let deadline = Instant::now() + STARTUP;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let log = || {
        let read = |name: &str| fs::read_to_string(prefix.join(name)).unwrap_or_default();
        format!("{}{}", read("stderr.log"), read("error.log"))
    };
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("nginx exited with {status}:\n{}", log()));
        }
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "nginx did not accept connections within {STARTUP:?}:\n{}",
                log()
            ));
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// A port that was free a moment ago: bind port 0, read the port, let it go.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local address").port()
}

/// Fields are separated by tabs; nginx escapes tabs and quotes inside values (`\x09`), so a
/// value can never split a line. An absent header is logged as `-`.
const LOG_FORMAT: &str = "$request_method\t$request_uri\t$status\t$http_range\t$http_if_range\t$http_if_none_match\t$http_if_modified_since\t$tako_authorization\t$body_bytes_sent\t$request_time\t$ssl_client_verify\t$connection";

fn config(prefix: &Path, root: &Path, port: u16, options: &Options) -> String {
    let p = prefix.display();
    let mut server = String::new();
    let sndbuf = options
        .send_buffer
        .as_ref()
        .map_or(String::new(), |size| format!(" sndbuf={size}"));
    match &options.tls {
        Some(tls) => {
            let _ = writeln!(server, "        listen 127.0.0.1:{port} ssl{sndbuf};");
            let _ = writeln!(server, "        ssl_certificate {};", tls.cert.display());
            let _ = writeln!(server, "        ssl_certificate_key {};", tls.key.display());
            if let Some(ca) = &tls.client_ca {
                let _ = writeln!(server, "        ssl_client_certificate {};", ca.display());
                let _ = writeln!(server, "        ssl_verify_client on;");
            }
        }
        None => {
            let _ = writeln!(server, "        listen 127.0.0.1:{port}{sndbuf};");
        }
    }
    if let Some(rate) = &options.limit_rate {
        let _ = writeln!(server, "        limit_rate {rate};");
    }
    for snippet in &options.locations {
        let _ = writeln!(server, "        {snippet}");
    }
    format!(
        "daemon off;
master_process off;
pid {p}/nginx.pid;
error_log {p}/error.log info;
events {{
    worker_connections 256;
}}
http {{
    client_body_temp_path {p}/client_body;
    proxy_temp_path {p}/proxy;
    fastcgi_temp_path {p}/fastcgi;
    uwsgi_temp_path {p}/uwsgi;
    scgi_temp_path {p}/scgi;
    default_type application/octet-stream;
    map $http_authorization $tako_authorization {{
        \"\" no;
        default yes;
    }}
    log_format tako \"{LOG_FORMAT}\";
    access_log {p}/access.log tako;
    server {{
        server_name localhost;
        root {root};
{server}    }}
}}
",
        root = root.display(),
    )
}

fn optional(field: &str) -> Option<String> {
    (field != "-").then(|| field.to_owned())
}

fn parse_record(line: &str) -> Option<Record> {
    let f: Vec<&str> = line.split('\t').collect();
    if f.len() != 12 {
        return None;
    }
    Some(Record {
        method: f[0].to_owned(),
        uri: f[1].to_owned(),
        status: f[2].parse().ok()?,
        range: optional(f[3]),
        if_range: optional(f[4]),
        if_none_match: optional(f[5]),
        if_modified_since: optional(f[6]),
        authorization: f[7] == "yes",
        body_bytes_sent: f[8].parse().ok()?,
        request_time: f[9].parse().ok()?,
        ssl_client_verify: optional(f[10]),
        connection: f[11].parse().ok()?,
    })
}
