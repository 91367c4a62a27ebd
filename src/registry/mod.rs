//! OCI registries as origins (issue 13): the few registry calls Tako needs.
//!
//! Tako's signed manifest stays the root of trust; the registry is only a content-addressed
//! store for it. The layout in a repository is described in docs/registries.md and built in
//! `origin::registry_layout`. Nothing a registry says is trusted: every blob read is checked
//! against the digest it was asked for, and everything from the network is printed through
//! `text::untrusted`. Credentials and tokens are never printed.
//!
//! Every request goes through the [`Transport`] web origins use, so proxies
//! (`http_proxy`, `https_proxy`, `no_proxy`), `--max-time`, the low-speed check,
//! `--limit-rate`, `--idle-timeout`, a config's `CACertificate=` and the plain-words
//! failure messages apply to manifests, tokens, blobs and uploads alike. What is the
//! registry's own stays here: answering its authentication challenge, never sending
//! credentials to a plain-http realm of an https registry, following blob redirects to
//! storage without `Authorization` and never from https down to http.

pub mod auth;
mod copy;
pub mod image;
mod tags;

use std::io::Read;
use std::sync::{Mutex, OnceLock};

use crate::format::http_fields::status_is_transient;
use crate::format::oci::digest::Digest;
use crate::format::registry_auth::{Challenge, parse_challenge, parse_token_answer};
use crate::format::registry_url::RegistryUrlError;
use crate::format::text::{untrusted, untrusted_bytes};
use crate::format::transport_config::TransportConfig;
use crate::net::{Body, Call, Method, Reply, Transport, TransportError};

pub use crate::format::registry_auth::RegistryCredentials as Credentials;
/// A registry origin, `oci://…` or `oci+http://…` (see `format::registry_url`).
pub use crate::format::registry_url::RegistryUrl as Reference;
pub use tags::Deleted;

/// The media type a manifest is asked for and pushed as.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// An artifact manifest is small; more than this is not read.
const MAX_OCI_MANIFEST: u64 = 4 * 1024 * 1024;
/// Blobs up to this size are uploaded in one PUT; larger ones in PATCH chunks of this size.
pub const CHUNK: usize = 8 * 1024 * 1024;
/// Redirects followed for one GET of a registry (to its storage, or a mirror).
const MAX_REDIRECTS: usize = 5;
/// A token service's answer is a small JSON object; more than this is not read.
const MAX_TOKEN_ANSWER: u64 = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum OciError {
    #[error(transparent)]
    BadReference(#[from] RegistryUrlError),
    #[error(transparent)]
    Auth(#[from] auth::AuthError),
    /// The request got no answer, or its body could not be read: the connection, TLS,
    /// the proxy, the low-speed check or `--max-time`, in the transport's words.
    #[error("{what} at registry {registry}: {}", .source.detail())]
    Transport {
        what: String,
        registry: String,
        source: Box<TransportError>,
    },
    /// The registry answered a TLS handshake in plain HTTP.
    #[error(
        "{what} at registry {registry}: the registry did not answer in TLS; if it serves plain HTTP, name it oci+http://{registry}/{repository}"
    )]
    NotTls {
        what: String,
        registry: String,
        repository: String,
    },
    /// The bytes to upload could not be read.
    #[error("{what} at registry {registry}: {reason}")]
    Network {
        what: String,
        registry: String,
        reason: String,
    },
    #[error("{what} at registry {registry}: HTTP {status}{detail}")]
    Status {
        what: String,
        registry: String,
        status: u16,
        detail: String,
    },
    #[error(
        "registry {registry} wants credentials for {repository} ({what}): none found in {looked_in}"
    )]
    NoCredentials {
        what: String,
        registry: String,
        repository: String,
        /// The auth files looked in, by path (see `auth::looked_in`).
        looked_in: String,
    },
    #[error(
        "registry {registry} refused the credentials for {repository} ({what}); they came from the {from}"
    )]
    Refused {
        what: String,
        registry: String,
        repository: String,
        /// Where the credentials came from, e.g. "registry auth file /root/.docker/config.json".
        from: String,
    },
    #[error("token service {realm} of registry {registry}: {reason}")]
    Token {
        realm: String,
        registry: String,
        reason: String,
    },
    #[error("{what} at registry {registry}: larger than {max} bytes")]
    TooLarge {
        what: String,
        registry: String,
        max: u64,
    },
    #[error("{what} at registry {registry}: the content does not match digest {digest}")]
    DigestMismatch {
        what: String,
        registry: String,
        digest: String,
    },
    #[error("{what} at registry {registry}: {reason}")]
    Invalid {
        what: String,
        registry: String,
        reason: String,
    },
    #[error("cannot read {}: {source}", path.display())]
    ReadImage {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

impl OciError {
    /// Whether trying again, or another mirror, may go better: the connection failed or
    /// was too slow (as the transport judges it), or the registry answered with a server
    /// error or asked to slow down.
    pub fn is_transient(&self) -> bool {
        match self {
            OciError::Transport { source, .. } => source.is_transient(),
            OciError::Network { .. } => true,
            OciError::Status { status, .. } => status_is_transient(*status),
            _ => false,
        }
    }
}

/// A manifest as the registry served it.
pub struct Fetched {
    pub bytes: Vec<u8>,
    /// `sha256:<hex>` of `bytes`.
    pub digest: String,
}

/// A blocking client for one repository of one registry.
pub struct Client {
    transport: Transport,
    pub reference: Reference,
    /// The credentials, once known: given, or looked up when the registry first asks.
    credentials: OnceLock<Option<auth::Found>>,
    /// The registry names to look up in the auth files when the registry asks for
    /// credentials (a registry may be filed under two names, as Docker Hub is).
    lookup: Vec<String>,
    /// Whether pushes will be made: the token scope then asks for `pull,push`.
    push: bool,
    /// The `Authorization` value that worked last (Basic or a Bearer token).
    authorization: Mutex<Option<String>>,
}

/// `http(s)://registry/v2/repository`, where the repository's API calls go.
fn api_base(reference: &Reference) -> String {
    let scheme = if reference.https { "https" } else { "http" };
    format!(
        "{scheme}://{}/v2/{}",
        reference.registry, reference.repository
    )
}

fn host_of(url: &str) -> Option<String> {
    url::Url::parse(url).ok().map(|u| {
        format!(
            "{}://{}:{}",
            u.scheme(),
            u.host_str().unwrap_or(""),
            u.port_or_known_default().unwrap_or(0)
        )
    })
}

/// Where a request goes, and what it sends.
struct Request<'a> {
    method: Method,
    url: &'a str,
    headers: &'a [(&'a str, &'a str)],
    body: Option<&'a [u8]>,
}

impl Client {
    /// A client with credentials from the usual auth files (see [`auth`]), on a transport
    /// with the default limits and the proxies of the environment; see
    /// [`Client::with_transport`] for a configured one. The files are read, and their
    /// credential helpers run, only when the registry asks for credentials: a run that
    /// needs none (an anonymous registry, `fetch --init` with an image in place) is not
    /// held up by a helper or failed by an unreadable file.
    pub fn new(reference: Reference, push: bool) -> Client {
        let names = vec![reference.registry.clone()];
        Client::looking_up(reference, names, push)
    }

    /// As [`Client::new`], looking up the credentials under each of `names` in turn.
    pub fn looking_up(reference: Reference, names: Vec<String>, push: bool) -> Client {
        Client {
            transport: Transport::new(TransportConfig::default()),
            reference,
            credentials: OnceLock::new(),
            lookup: names,
            push,
            authorization: Mutex::new(None),
        }
    }

    /// A client with these credentials (or none), which reads no auth file.
    pub fn with_credentials(
        reference: Reference,
        credentials: Option<auth::Found>,
        push: bool,
    ) -> Client {
        let client = Client::looking_up(reference, Vec::new(), push);
        let _ = client.credentials.set(credentials);
        client
    }

    /// The credentials, looked up in the auth files the first time they are wanted; a
    /// credential helper gets [`auth::HELPER_TIME`] or what is left of `--max-time`.
    fn credentials(&self) -> Result<Option<&Credentials>, OciError> {
        Ok(self.found()?.map(|found| &found.credentials))
    }

    fn found(&self) -> Result<Option<&auth::Found>, OciError> {
        if let Some(found) = self.credentials.get() {
            return Ok(found.as_ref());
        }
        let files = auth::auth_files(|name| std::env::var(name).ok());
        let limit = self
            .transport
            .time_left()
            .map_or(auth::HELPER_TIME, |left| left.min(auth::HELPER_TIME));
        let mut found = None;
        for name in &self.lookup {
            found = auth::lookup(&files, name, &self.reference.repository, limit)?;
            if found.is_some() {
                break;
            }
        }
        Ok(self.credentials.get_or_init(|| found).as_ref())
    }

    /// The error for credentials the registry did not take.
    fn refused(&self, what: &str) -> OciError {
        OciError::Refused {
            what: what.to_string(),
            registry: self.reference.registry.clone(),
            repository: self.reference.repository.clone(),
            from: self
                .credentials
                .get()
                .and_then(Option::as_ref)
                .map_or_else(|| "caller".to_owned(), |f| f.from.clone()),
        }
    }

    /// This client on `transport`: its proxies, limits, deadline and TLS setup. The
    /// transport's own credentials are dropped: what a registry is sent is answered to its
    /// own challenge, here.
    pub fn with_transport(self, transport: Transport) -> Client {
        Client {
            transport: transport.with_credentials(None),
            ..self
        }
    }

    fn transport_error(&self, what: &str, source: TransportError) -> OciError {
        match source {
            TransportError::TooLarge { max, .. } => OciError::TooLarge {
                what: what.to_string(),
                registry: self.reference.registry.clone(),
                max,
            },
            // A plain-HTTP registry named oci://: the hint names the scheme that reaches it.
            source if source.detail().contains(crate::net::NOT_TLS) => OciError::NotTls {
                what: what.to_string(),
                registry: self.reference.registry.clone(),
                repository: self.reference.repository.clone(),
            },
            source => OciError::Transport {
                what: what.to_string(),
                registry: self.reference.registry.clone(),
                source: Box::new(source),
            },
        }
    }

    fn status(&self, what: &str, reply: &mut Reply) -> OciError {
        // The registry's error body (JSON with a code and message) says why, shortened; a
        // body that cannot be read adds nothing.
        let mut body = Vec::new();
        let _ = reply.body().take(4096).read_to_end(&mut body);
        let detail = if body.is_empty() {
            String::new()
        } else {
            format!(": {}", untrusted_bytes(&body))
        };
        OciError::Status {
            what: what.to_string(),
            registry: self.reference.registry.clone(),
            status: reply.status(),
            detail,
        }
    }

    fn current_authorization(&self) -> Option<String> {
        self.authorization.lock().map(|a| a.clone()).unwrap_or(None)
    }

    /// The `Authorization` value that the registry accepted last, if it wanted one: for
    /// requests made elsewhere (the image download) to the registry's own host only.
    pub fn authorization(&self) -> Option<String> {
        self.current_authorization()
    }

    /// The URL of a blob of this repository.
    pub fn blob_url(&self, digest: &str) -> String {
        format!("{}/blobs/{digest}", api_base(&self.reference))
    }

    /// One request as it is, with `authorization` if given (none goes to a registry's
    /// storage); no challenge is answered.
    fn call(
        &self,
        what: &str,
        request: &Request,
        authorization: Option<&str>,
    ) -> Result<Reply, OciError> {
        self.transport
            .send(&Call {
                method: request.method,
                url: request.url,
                headers: request.headers,
                authorization,
                body: request.body,
            })
            .map_err(|e| self.transport_error(what, e))
    }

    /// Sends a request to the registry, answering one authentication challenge: Basic with
    /// the credentials, or Bearer with a token from the realm the registry names.
    fn send(&self, what: &str, request: &Request) -> Result<Reply, OciError> {
        let mut answered = false;
        loop {
            let authorization = self.current_authorization();
            let reply = self.call(what, request, authorization.as_deref())?;
            if reply.status() != 401 {
                return Ok(reply);
            }
            if answered {
                return Err(if self.credentials()?.is_some() {
                    self.refused(what)
                } else {
                    self.no_credentials(what)
                });
            }
            answered = true;
            let challenge = reply
                .header_values("www-authenticate")
                .into_iter()
                .find_map(parse_challenge);
            let authorization = match challenge {
                Some(Challenge::Basic) | None => match self.credentials()? {
                    Some(c) => c.basic(),
                    None => return Err(self.no_credentials(what)),
                },
                Some(Challenge::Bearer {
                    realm,
                    service,
                    scope,
                }) => {
                    let token = self.token(&realm, service.as_deref(), scope.as_deref())?;
                    format!("Bearer {token}")
                }
            };
            if let Ok(mut slot) = self.authorization.lock() {
                *slot = Some(authorization);
            }
        }
    }

    fn no_credentials(&self, what: &str) -> OciError {
        OciError::NoCredentials {
            what: what.to_string(),
            registry: self.reference.registry.clone(),
            repository: self.reference.repository.clone(),
            looked_in: auth::looked_in(&auth::auth_files(|name| std::env::var(name).ok())),
        }
    }

    /// Asks the token service for a Bearer token, with the credentials if there are any.
    fn token(
        &self,
        realm: &str,
        service: Option<&str>,
        scope: Option<&str>,
    ) -> Result<String, OciError> {
        let failed = |reason: String| OciError::Token {
            realm: untrusted(realm),
            registry: self.reference.registry.clone(),
            reason,
        };
        let mut url =
            url::Url::parse(realm).map_err(|_| failed("the realm is not a URL".to_string()))?;
        realm_allowed(self.reference.https, &url).map_err(|reason| failed(reason.to_string()))?;
        // The scope the registry asked for; ours when it named none, and ours too when
        // pushing, since a challenge to a pull may name only `pull`.
        let actions = if self.push { "pull,push" } else { "pull" };
        let ours = format!("repository:{}:{actions}", self.reference.repository);
        let scope = match scope {
            Some(s) if !self.push => s.to_string(),
            _ => ours,
        };
        {
            let mut query = url.query_pairs_mut();
            if let Some(service) = service {
                query.append_pair("service", service);
            }
            query.append_pair("scope", &scope);
        }
        let what = format!("token request to {}", untrusted(realm));
        let credentials = self.credentials()?;
        let basic = credentials.map(Credentials::basic);
        let request = Request {
            method: Method::Get,
            url: url.as_str(),
            headers: &[],
            body: None,
        };
        let mut reply = self.call(&what, &request, basic.as_deref())?;
        let status = reply.status();
        if status == 401 || status == 403 {
            return Err(if credentials.is_some() {
                self.refused("token request")
            } else {
                self.no_credentials("token request")
            });
        }
        if status != 200 {
            return Err(failed(format!("HTTP {status}")));
        }
        let body = reply
            .body()
            .read_capped(MAX_TOKEN_ANSWER)
            .map_err(|e| match e {
                TransportError::TooLarge { .. } => {
                    failed("the answer is larger than 1 MiB".to_string())
                }
                e => self.transport_error(&what, e),
            })?;
        parse_token_answer(&body).map_err(|reason| failed(reason.to_string()))
    }

    /// The manifest tagged `tag`, or `None` when the repository or the tag does not exist.
    pub fn manifest(&self, tag: &str) -> Result<Option<Fetched>, OciError> {
        let what = format!("manifest {}:{tag}", self.reference);
        let url = format!("{}/manifests/{tag}", api_base(&self.reference));
        let mut reply = self.get_following(&what, &url, &[("Accept", OCI_MANIFEST)])?;
        match reply.status() {
            200 => {}
            404 => return Ok(None),
            _ => return Err(self.status(&what, &mut reply)),
        }
        let bytes = reply
            .body()
            .read_capped(MAX_OCI_MANIFEST)
            .map_err(|e| self.transport_error(&what, e))?;
        let digest = Digest::of(&bytes).to_string();
        Ok(Some(Fetched { bytes, digest }))
    }

    /// Pushes a manifest under `tag` and returns its digest.
    pub fn put_manifest(&self, tag: &str, bytes: &[u8]) -> Result<String, OciError> {
        let what = format!("push of manifest {}:{tag}", self.reference);
        let url = format!("{}/manifests/{tag}", api_base(&self.reference));
        let request = Request {
            method: Method::Put,
            url: &url,
            headers: &[("Content-Type", OCI_MANIFEST)],
            body: Some(bytes),
        };
        let mut reply = self.send(&what, &request)?;
        if reply.status() != 201 {
            return Err(self.status(&what, &mut reply));
        }
        Ok(Digest::of(bytes).to_string())
    }

    /// Whether the repository has the blob.
    pub fn has_blob(&self, digest: &str) -> Result<bool, OciError> {
        let what = format!("blob {digest} of {}", self.reference);
        let url = self.blob_url(digest);
        let request = Request {
            method: Method::Head,
            url: &url,
            headers: &[],
            body: None,
        };
        let mut reply = self.send(&what, &request)?;
        match reply.status() {
            200 => Ok(true),
            404 => Ok(false),
            // A registry that redirects HEAD to storage has the blob.
            301 | 302 | 303 | 307 | 308 => Ok(true),
            _ => Err(self.status(&what, &mut reply)),
        }
    }

    /// Opens the blob `digest` for reading, following the registry's redirects to its
    /// storage. `Authorization` goes only to the registry's own scheme, host and port.
    fn open_blob(&self, what: &str, digest: &str) -> Result<Body, OciError> {
        let mut reply = self.get_following(what, &self.blob_url(digest), &[])?;
        match reply.status() {
            200 | 206 => Ok(reply.into_body()),
            _ => Err(self.status(what, &mut reply)),
        }
    }

    /// A GET of `url` with `headers`, following redirects (a registry may send blobs, and
    /// manifests, to its storage or a mirror) up to [`MAX_REDIRECTS`]; the answer at the
    /// end, whatever its status. `Authorization` goes only to the registry's own scheme,
    /// host and port; a loop is reported as one, naming where it started and where it led
    /// last, not as the status of its last hop.
    fn get_following(
        &self,
        what: &str,
        start: &str,
        headers: &[(&str, &str)],
    ) -> Result<Reply, OciError> {
        let home = host_of(start);
        fn get<'a>(url: &'a str, headers: &'a [(&'a str, &'a str)]) -> Request<'a> {
            Request {
                method: Method::Get,
                url,
                headers,
                body: None,
            }
        }
        let invalid = |reason: String| OciError::Invalid {
            what: what.to_string(),
            registry: self.reference.registry.clone(),
            reason,
        };
        let mut url = start.to_owned();
        let mut reply = self.send(what, &get(&url, headers))?;
        let mut redirects = 0;
        while matches!(reply.status(), 301 | 302 | 303 | 307 | 308) {
            let location = reply
                .header("location")
                .ok_or_else(|| invalid("a redirect without a Location".to_string()))?;
            let next = url::Url::parse(&url)
                .and_then(|base| base.join(location))
                .map_err(|_| invalid(format!("a redirect to '{}'", untrusted(location))))?;
            if redirects == MAX_REDIRECTS {
                return Err(invalid(format!(
                    "too many redirects ({MAX_REDIRECTS}) starting at {}; the last Location was {}",
                    untrusted(start),
                    crate::format::origin_url::show_url(next.as_str())
                )));
            }
            if let Err(reason) = redirect_allowed(&url, &next) {
                return Err(invalid(reason.to_string()));
            }
            url = next.to_string();
            redirects += 1;
            reply = if host_of(&url) == home {
                self.send(what, &get(&url, headers))?
            } else {
                self.call(what, &get(&url, headers), None)?
            };
        }
        Ok(reply)
    }

    /// Reads the whole blob `digest`, at most `max` bytes, checked against its digest.
    pub fn read_blob(&self, digest: &str, max: u64) -> Result<Vec<u8>, OciError> {
        let what = format!("blob {digest} of {}", self.reference);
        let bytes = self
            .open_blob(&what, digest)?
            .read_capped(max)
            .map_err(|e| self.transport_error(&what, e))?;
        if Digest::of(&bytes).to_string() != digest {
            return Err(OciError::DigestMismatch {
                what,
                registry: self.reference.registry.clone(),
                digest: digest.to_string(),
            });
        }
        Ok(bytes)
    }

    /// Uploads a blob from memory unless the registry has it.
    pub fn push_blob(&self, bytes: &[u8]) -> Result<String, OciError> {
        let digest = Digest::of(bytes).to_string();
        if !self.has_blob(&digest)? {
            self.upload(&digest, bytes.len() as u64, &mut &bytes[..])?;
        }
        Ok(digest)
    }

    /// Uploads `size` bytes read from `source` as blob `digest`: in one PUT when they fit
    /// in one chunk, else in PATCH chunks of [`CHUNK`] bytes closed by a PUT. The registry
    /// checks the digest and refuses the upload if the bytes do not match.
    pub fn upload(&self, digest: &str, size: u64, source: &mut dyn Read) -> Result<(), OciError> {
        let what = format!("upload of blob {digest} to {}", self.reference);
        let start = format!("{}/blobs/uploads/", api_base(&self.reference));
        let request = Request {
            method: Method::Post,
            url: &start,
            headers: &[],
            body: Some(&[]),
        };
        let mut reply = self.send(&what, &request)?;
        if reply.status() != 202 {
            return Err(self.status(&what, &mut reply));
        }
        let mut location = self.upload_location(&what, &start, &reply)?;
        let read_error = |e: std::io::Error| OciError::Network {
            what: what.clone(),
            registry: self.reference.registry.clone(),
            reason: untrusted(&e.to_string()),
        };
        if size <= CHUNK as u64 {
            let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(CHUNK));
            source
                .take(size)
                .read_to_end(&mut bytes)
                .map_err(read_error)?;
            let url = with_digest(&location, digest);
            let length = bytes.len().to_string();
            let request = Request {
                method: Method::Put,
                url: &url,
                headers: &[
                    ("Content-Type", "application/octet-stream"),
                    ("Content-Length", &length),
                ],
                body: Some(&bytes),
            };
            let mut reply = self.send(&what, &request)?;
            if reply.status() != 201 {
                return Err(self.status(&what, &mut reply));
            }
            return Ok(());
        }
        let mut offset = 0u64;
        let mut chunk = vec![0u8; CHUNK];
        while offset < size {
            let want = usize::try_from((size - offset).min(CHUNK as u64)).unwrap_or(CHUNK);
            let piece = &mut chunk[..want];
            source.read_exact(piece).map_err(read_error)?;
            let range = format!("{offset}-{}", offset + want as u64 - 1);
            let length = want.to_string();
            let request = Request {
                method: Method::Patch,
                url: &location,
                headers: &[
                    ("Content-Type", "application/octet-stream"),
                    ("Content-Range", &range),
                    ("Content-Length", &length),
                ],
                body: Some(piece),
            };
            let mut reply = self.send(&what, &request)?;
            if reply.status() != 202 {
                return Err(self.status(&what, &mut reply));
            }
            location = self.upload_location(&what, &location, &reply)?;
            offset += want as u64;
        }
        let url = with_digest(&location, digest);
        let request = Request {
            method: Method::Put,
            url: &url,
            headers: &[("Content-Length", "0")],
            body: Some(&[]),
        };
        let mut reply = self.send(&what, &request)?;
        if reply.status() != 201 {
            return Err(self.status(&what, &mut reply));
        }
        Ok(())
    }

    /// The absolute URL an upload goes on at (the `Location` of the last answer). It must
    /// stay on the registry's own host: the request carries `Authorization`.
    fn upload_location(&self, what: &str, base: &str, reply: &Reply) -> Result<String, OciError> {
        let invalid = |reason: &str| OciError::Invalid {
            what: what.to_string(),
            registry: self.reference.registry.clone(),
            reason: reason.to_string(),
        };
        let location = reply
            .header("location")
            .ok_or_else(|| invalid("an upload answer without a Location"))?;
        let url = url::Url::parse(base)
            .and_then(|b| b.join(location))
            .map_err(|_| invalid("an upload Location that is not a URL"))?;
        if host_of(url.as_str()) != host_of(base) {
            return Err(invalid("an upload Location on another host"));
        }
        Ok(url.to_string())
    }
}

/// Whether a token service may be asked: it gets the registry credentials, so a registry
/// reached over HTTPS may not send them to a plain-HTTP realm.
fn realm_allowed(registry_https: bool, realm: &url::Url) -> Result<(), &'static str> {
    match realm.scheme() {
        "https" => Ok(()),
        "http" if !registry_https => Ok(()),
        "http" => Err("the registry is reached over https:// but names a plain http:// realm"),
        _ => Err("the realm is not an http(s) URL"),
    }
}

/// Whether a redirect from `from` to `to` may be followed: http(s) only, and never from
/// `https` down to plain `http`, as for web origins.
fn redirect_allowed(from: &str, to: &url::Url) -> Result<(), &'static str> {
    match (from.starts_with("https:"), to.scheme()) {
        (_, "https") | (false, "http") => Ok(()),
        (true, "http") => Err("a redirect from https:// to plain http://"),
        _ => Err("a redirect to a URL that is not http(s)"),
    }
}

fn with_digest(location: &str, digest: &str) -> String {
    let separator = if location.contains('?') { '&' } else { '?' };
    format!("{location}{separator}digest={digest}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_never_go_to_a_plain_http_realm_of_an_https_registry() {
        let url = |u: &str| url::Url::parse(u).unwrap();
        assert!(realm_allowed(true, &url("https://auth.example/token")).is_ok());
        assert!(realm_allowed(false, &url("http://127.0.0.1:1/token")).is_ok());
        assert!(realm_allowed(false, &url("https://auth.example/token")).is_ok());
        assert!(realm_allowed(true, &url("http://auth.example/token")).is_err());
        assert!(realm_allowed(false, &url("file:///etc/passwd")).is_err());
    }

    #[test]
    fn blob_redirects_stay_on_http_and_never_leave_https_for_http() {
        let url = |u: &str| url::Url::parse(u).unwrap();
        assert!(redirect_allowed("https://r/v2/a", &url("https://s3.example/x")).is_ok());
        assert!(redirect_allowed("http://r/v2/a", &url("http://storage:9000/x")).is_ok());
        assert!(redirect_allowed("http://r/v2/a", &url("https://s3.example/x")).is_ok());
        assert!(redirect_allowed("https://r/v2/a", &url("http://s3.example/x")).is_err());
        assert!(redirect_allowed("https://r/v2/a", &url("ftp://s3.example/x")).is_err());
    }

    #[test]
    fn the_api_of_a_repository_is_under_v2_on_its_registry() {
        let r = Reference::parse("oci://ghcr.io/acme/images/app").unwrap();
        assert_eq!(api_base(&r), "https://ghcr.io/v2/acme/images/app");
        let r = Reference::parse("oci+http://127.0.0.1:5000/app").unwrap();
        assert_eq!(api_base(&r), "http://127.0.0.1:5000/v2/app");
    }
}
