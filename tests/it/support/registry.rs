//! A real OCI distribution registry (Debian's `docker-registry`) on 127.0.0.1 for the
//! registry tests: storage in a temporary directory, optionally behind htpasswd Basic auth,
//! killed when dropped. Like the nginx tests, a test fails (it does not skip) when the
//! registry is not installed; `.ci/run` installs it.

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where the Debian package installs the registry.
pub const BINARY: &str = "/usr/bin/docker-registry";

pub struct Registry {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

/// Fails the test unless `skopeo` can be run: the interoperability checks are part of what
/// the registry support promises, so a machine without it must not pass them silently.
/// `.ci/run` installs it.
pub fn require_skopeo() {
    let found = Command::new("skopeo")
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "skopeo is missing: install it (`apt-get install skopeo`), as .ci/run does"
    );
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().unwrap().port()
}

impl Registry {
    /// A registry without authentication.
    pub fn start() -> Registry {
        Registry::start_with(Setup::default())
    }

    /// A registry that wants Basic auth with this user and password (htpasswd, bcrypt).
    pub fn with_basic_auth(user: &str, password: &str) -> Registry {
        Registry::start_with(Setup {
            auth: Some((user, password)),
            ..Setup::default()
        })
    }

    /// A registry without authentication that refuses to delete manifests (405
    /// UNSUPPORTED), as the distribution registry does by default.
    pub fn without_deletes() -> Registry {
        Registry::start_with(Setup {
            deletes: false,
            ..Setup::default()
        })
    }

    /// A second registry serving this one's storage over HTTPS with the certificate and
    /// key (PEM) given: images pushed to this one over plain HTTP are pulled from it.
    pub fn tls_beside(&self, cert_pem: &str, key_pem: &str) -> Registry {
        Registry::start_with(Setup {
            storage: Some(self.storage()),
            tls: Some((cert_pem, key_pem)),
            ..Setup::default()
        })
    }

    fn start_with(setup: Setup) -> Registry {
        assert!(
            Path::new(BINARY).is_file(),
            "{BINARY} is missing: install docker-registry (`apt-get install docker-registry`), as .ci/run does"
        );
        // The port is free when looked at, but another process may take it before the
        // registry binds it: try again with a new one.
        for _ in 0..10 {
            if let Some(registry) = Registry::try_start(&setup) {
                return registry;
            }
        }
        panic!("could not start {BINARY} on a free port after 10 attempts");
    }

    fn try_start(setup: &Setup) -> Option<Registry> {
        let dir = tempfile::tempdir().expect("registry temp dir");
        let port = free_port();
        let storage = dir.path().join("storage");
        match &setup.storage {
            Some(shared) => std::os::unix::fs::symlink(shared, &storage).unwrap(),
            None => std::fs::create_dir(&storage).unwrap(),
        }
        let deletes = setup.deletes;
        let mut config = format!(
            "version: 0.1\n\
             log:\n  level: warn\n  accesslog:\n    disabled: true\n\
             storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: {deletes}\n\
             http:\n  addr: 127.0.0.1:{port}\n",
            storage.display()
        );
        if let Some((cert, key)) = setup.tls {
            let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
            std::fs::write(&cert_path, cert).unwrap();
            std::fs::write(&key_path, key).unwrap();
            config.push_str(&format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                cert_path.display(),
                key_path.display()
            ));
        }
        if let Some((user, password)) = setup.auth {
            let hash = bcrypt::hash(password, 5).expect("bcrypt");
            let htpasswd = dir.path().join("htpasswd");
            std::fs::write(&htpasswd, format!("{user}:{hash}\n")).unwrap();
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: tako-test\n    path: {}\n",
                htpasswd.display()
            ));
        }
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).unwrap();
        let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
        let mut child = Command::new(BINARY)
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start docker-registry");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(_)) = child.try_wait() {
                // Most likely the port was taken meanwhile.
                return None;
            }
            if answers(port) {
                return Some(Registry {
                    child,
                    port,
                    _dir: dir,
                });
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                let log = std::fs::read_to_string(dir.path().join("registry.log"));
                panic!("docker-registry did not answer /v2/ within 30 s: {log:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The origin URL of a repository in this registry, over plain HTTP.
    pub fn origin(&self, repository: &str) -> String {
        format!("oci+http://{}/{repository}", self.host())
    }

    /// The registry's storage directory (to damage blobs behind its back).
    pub fn storage(&self) -> PathBuf {
        self._dir.path().join("storage")
    }
}

/// Whether something answers an HTTP request for `/v2/` on the port (any status: 401 with
/// auth on is an answer too).
fn answers(port: u16) -> bool {
    use std::io::Write;
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream
        .write_all(b"GET /v2/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    // A registry serving TLS answers a plain request with "HTTP/1.0 400".
    stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.")
}

/// How a registry is started.
struct Setup<'a> {
    auth: Option<(&'a str, &'a str)>,
    deletes: bool,
    /// Another registry's storage, served too.
    storage: Option<PathBuf>,
    /// A certificate and key (PEM): the registry serves HTTPS.
    tls: Option<(&'a str, &'a str)>,
}

impl Default for Setup<'_> {
    fn default() -> Self {
        Setup {
            auth: None,
            deletes: true,
            storage: None,
            tls: None,
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
