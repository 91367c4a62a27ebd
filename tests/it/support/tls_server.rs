//! An HTTPS file server on 127.0.0.1 for tests, and certificates for it made with rcgen.
//!
//! Certificates come from a test CA (or are self-signed) so that each TLS failure a user can
//! meet can be produced on purpose: the client is pointed at the test CA with
//! `SSL_CERT_FILE`, which the system certificate loader honours, and never at the real
//! system store.

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, date_time_ymd,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

const TICK: Duration = Duration::from_millis(20);

/// A certificate and its private key, as a server presents them.
pub struct Leaf {
    pub cert: CertificateDer<'static>,
    key: Vec<u8>,
}

/// A certificate authority made for one test.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

fn params(common_name: &str, names: &[&str]) -> CertificateParams {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let mut params = CertificateParams::new(names).expect("certificate parameters");
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params
}

impl TestCa {
    pub fn new(name: &str) -> TestCa {
        let mut params = params(name, &[]);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let key = KeyPair::generate().expect("CA key");
        TestCa {
            issuer: CertifiedIssuer::self_signed(params, key).expect("CA certificate"),
        }
    }

    /// The CA certificate in PEM, for `SSL_CERT_FILE`.
    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A server certificate for `names` (host names or IP addresses), valid from 1975 to
    /// 4096 unless `expired`, in which case it was valid only during 2000.
    pub fn leaf(&self, names: &[&str], expired: bool) -> Leaf {
        let mut params = params("tako test server", names);
        if expired {
            params.not_before = date_time_ymd(2000, 1, 1);
            params.not_after = date_time_ymd(2001, 1, 1);
        }
        let key = KeyPair::generate().expect("server key");
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("server certificate");
        Leaf {
            cert: cert.der().clone(),
            key: key.serialize_der(),
        }
    }
}

/// `der` as a PEM block labelled `label` (`CERTIFICATE`, `PRIVATE KEY`), for servers such
/// as nginx and for tako's own `CACertificate=` and `ClientCertificate=` files.
pub fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let text = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in text.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

impl Leaf {
    /// The certificate in PEM.
    pub fn cert_pem(&self) -> String {
        pem("CERTIFICATE", self.cert.as_ref())
    }

    /// The private key (PKCS#8) in PEM.
    pub fn key_pem(&self) -> String {
        pem("PRIVATE KEY", &self.key)
    }
}

/// A certificate for `names` signed by its own key.
pub fn self_signed(names: &[&str]) -> Leaf {
    let key = KeyPair::generate().expect("server key");
    let cert = params("tako self-signed server", names)
        .self_signed(&key)
        .expect("self-signed certificate");
    Leaf {
        cert: cert.der().clone(),
        key: key.serialize_der(),
    }
}

struct Shared {
    root: PathBuf,
    config: Arc<rustls::ServerConfig>,
    requests: Mutex<Vec<String>>,
    workers: Mutex<Vec<JoinHandle<()>>>,
    stop: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Serves the files under a directory over HTTPS, one request per connection.
pub struct TlsServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl TlsServer {
    pub fn serve_dir(root: impl Into<PathBuf>, leaf: &Leaf) -> TlsServer {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf.key.clone()));
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(vec![leaf.cert.clone()], key)
            .expect("server certificate and key");
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let shared = Arc::new(Shared {
            root: root.into(),
            config: Arc::new(config),
            requests: Mutex::new(Vec::new()),
            workers: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
        });
        let acceptor = {
            let shared = Arc::clone(&shared);
            thread::spawn(move || accept_loop(&listener, &shared))
        };
        TlsServer {
            addr,
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The path of every request that got through the handshake, in order.
    pub fn requests(&self) -> Vec<String> {
        lock(&self.shared.requests).clone()
    }
}

impl Drop for TlsServer {
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
    while !shared.stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) => {
                let worker = {
                    let shared = Arc::clone(shared);
                    thread::spawn(move || {
                        let _ = serve(stream, &shared);
                    })
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

/// One connection: handshake, one GET, the file or a 404, close. Gives up after 10 s.
fn serve(stream: TcpStream, shared: &Shared) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(TICK))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    let conn =
        rustls::ServerConnection::new(Arc::clone(&shared.config)).map_err(io::Error::other)?;
    let mut tls = rustls::StreamOwned::new(conn, stream);
    let until = Instant::now() + Duration::from_secs(10);
    let mut request = Vec::new();
    let mut chunk = [0u8; 4096];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        if shared.stop.load(Ordering::SeqCst) || Instant::now() > until || request.len() > 65536 {
            return Ok(());
        }
        match tls.read(&mut chunk) {
            Ok(0) => return Ok(()),
            Ok(n) => request.extend_from_slice(&chunk[..n]),
            Err(e) if is_timeout(&e) => continue,
            Err(e) => return Err(e),
        }
    }
    let text = String::from_utf8_lossy(&request);
    let path = text.split(' ').nth(1).unwrap_or("").to_owned();
    lock(&shared.requests).push(path.clone());
    let file = file_for(&shared.root, &path).and_then(|p| {
        let mut bytes = Vec::new();
        File::open(p).ok()?.read_to_end(&mut bytes).ok()?;
        Some(bytes)
    });
    let (status, body) = match file {
        Some(bytes) => ("200 OK", bytes),
        None => ("404 Not Found", b"not found\n".to_vec()),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    tls.write_all(head.as_bytes())?;
    tls.write_all(&body)?;
    tls.conn.send_close_notify();
    tls.flush()?;
    let _ = tls.sock.shutdown(Shutdown::Write);
    Ok(())
}

fn file_for(root: &Path, route: &str) -> Option<PathBuf> {
    let relative = Path::new(route.strip_prefix('/')?);
    let safe = relative
        .components()
        .all(|c| matches!(c, Component::Normal(_)));
    safe.then(|| root.join(relative))
}
