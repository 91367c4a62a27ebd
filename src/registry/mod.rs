//! OCI registries as origins (issue 13): the few registry calls Tako needs, on blocking ureq.
//!
//! Tako's signed manifest stays the root of trust; the registry is only a content-addressed
//! store for it. The layout in a repository is described in docs/registries.md and built in
//! [`layout`]. Nothing a registry says is trusted: every blob read is checked against the
//! digest it was asked for, and everything from the network is printed through
//! `text::untrusted`. Credentials and tokens are never printed.

pub mod auth;
pub mod image;
mod tags;

use std::io::Read;
use std::sync::Mutex;
use std::time::Duration;

use sha2::{Digest, Sha256};
use ureq::http::{Method, Request, Response};
use ureq::{Agent, AsSendBody, Body};

use crate::format::text::{untrusted, untrusted_bytes};

pub use auth::Credentials;
pub use tags::Deleted;

/// The media type a manifest is asked for and pushed as.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// An artifact manifest is small; more than this is not read.
const MAX_OCI_MANIFEST: u64 = 4 * 1024 * 1024;
/// Blobs up to this size are uploaded in one PUT; larger ones in PATCH chunks of this size.
pub const CHUNK: usize = 8 * 1024 * 1024;
/// Registry redirects to storage followed for one blob.
const MAX_REDIRECTS: usize = 5;

/// `oci://REGISTRY[:PORT]/REPOSITORY` (HTTPS) or `oci+http://HOST:PORT/REPOSITORY`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    pub https: bool,
    /// `host[:port]`.
    pub registry: String,
    pub repository: String,
}

#[derive(Debug, thiserror::Error)]
pub enum OciError {
    #[error(
        "invalid registry origin '{0}': use oci://REGISTRY[:PORT]/REPOSITORY or oci+http://HOST:PORT/REPOSITORY (lowercase repository path)"
    )]
    BadReference(String),
    #[error(transparent)]
    Auth(#[from] auth::AuthError),
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
        "registry {registry} wants credentials for {repository} ({what}): none found in $REGISTRY_AUTH_FILE, $XDG_RUNTIME_DIR/containers/auth.json or ~/.docker/config.json"
    )]
    NoCredentials {
        what: String,
        registry: String,
        repository: String,
    },
    #[error("registry {registry} refused the credentials for {repository} ({what})")]
    Refused {
        what: String,
        registry: String,
        repository: String,
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
    /// Whether trying again, or another mirror, may go better: the connection failed, or
    /// the registry answered with a server error or asked to slow down.
    pub fn is_transient(&self) -> bool {
        match self {
            OciError::Network { .. } => true,
            OciError::Status { status, .. } => {
                matches!(status, 408 | 429) || (500..=599).contains(status)
            }
            _ => false,
        }
    }
}

impl Reference {
    pub fn is_registry_url(text: &str) -> bool {
        text.starts_with("oci://") || text.starts_with("oci+http://")
    }

    pub fn parse(text: &str) -> Result<Reference, OciError> {
        // `show_url` hides a password someone put in the URL anyway.
        let bad = || OciError::BadReference(crate::net::show_url(text));
        let (https, rest) = if let Some(rest) = text.strip_prefix("oci://") {
            (true, rest)
        } else if let Some(rest) = text.strip_prefix("oci+http://") {
            (false, rest)
        } else {
            return Err(bad());
        };
        let (registry, repository) = rest.split_once('/').ok_or_else(bad)?;
        let repository = repository.trim_end_matches('/');
        // Credentials in the URL are refused: they belong in an auth file, where they are
        // not shown by `ps` or written into configs.
        let host_ok = !registry.is_empty()
            && registry
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b));
        if let Some((_, port)) = registry.rsplit_once(':')
            && !registry.ends_with(']')
            && port.parse::<u16>().is_err()
        {
            return Err(bad());
        }
        // The distribution spec's repository grammar: lowercase components separated by
        // `/`, each alphanumerics joined by `.`, `_`, `__` or `-`.
        let component_ok = |c: &str| {
            !c.is_empty()
                && c.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
                && c.as_bytes()[0].is_ascii_alphanumeric()
                && c.as_bytes()[c.len() - 1].is_ascii_alphanumeric()
        };
        if !host_ok || repository.len() > 255 || !repository.split('/').all(component_ok) {
            return Err(bad());
        }
        Ok(Reference {
            https,
            registry: registry.to_string(),
            repository: repository.to_string(),
        })
    }

    /// `http(s)://registry/v2/repository`.
    fn base(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://{}/v2/{}", self.registry, self.repository)
    }
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.https { "oci" } else { "oci+http" };
        write!(f, "{scheme}://{}/{}", self.registry, self.repository)
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
    agent: Agent,
    pub reference: Reference,
    credentials: Option<Credentials>,
    /// Whether pushes will be made: the token scope then asks for `pull,push`.
    push: bool,
    /// The `Authorization` value that worked last (Basic or a Bearer token).
    authorization: Mutex<Option<String>>,
}

/// `sha256:<hex>` of bytes.
pub fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn agent() -> Agent {
    let tls = ureq::tls::TlsConfig::builder()
        .root_certs(ureq::tls::RootCerts::PlatformVerifier)
        .build();
    Agent::config_builder()
        .tls_config(tls)
        .http_status_as_error(false)
        // Redirects are followed by hand, to drop `Authorization` on another host.
        .max_redirects(0)
        .proxy(None)
        .user_agent(concat!("tako/", env!("CARGO_PKG_VERSION")))
        .accept_encoding("")
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_per_read(Some(Duration::from_secs(60)))
        .timeout_per_write(Some(Duration::from_secs(60)))
        .build()
        .new_agent()
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

impl Client {
    /// A client with credentials from the usual auth files (see [`auth`]).
    pub fn new(reference: Reference, push: bool) -> Result<Client, OciError> {
        let files = auth::auth_files(|name| std::env::var(name).ok());
        let credentials = auth::lookup(&files, &reference.registry, &reference.repository)?;
        Ok(Client::with_credentials(reference, credentials, push))
    }

    pub fn with_credentials(
        reference: Reference,
        credentials: Option<Credentials>,
        push: bool,
    ) -> Client {
        Client {
            agent: agent(),
            reference,
            credentials,
            push,
            authorization: Mutex::new(None),
        }
    }

    fn network(&self, what: &str, e: impl std::error::Error + 'static) -> OciError {
        OciError::Network {
            what: what.to_string(),
            registry: self.reference.registry.clone(),
            reason: crate::net::describe_failure(&e),
        }
    }

    fn status(&self, what: &str, response: &mut Response<Body>) -> OciError {
        // The registry's error body (JSON with a code and message) says why, shortened.
        let body = response
            .body_mut()
            .with_config()
            .limit(4096)
            .read_to_vec()
            .unwrap_or_default();
        let detail = if body.is_empty() {
            String::new()
        } else {
            format!(": {}", untrusted_bytes(&body))
        };
        OciError::Status {
            what: what.to_string(),
            registry: self.reference.registry.clone(),
            status: response.status().as_u16(),
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
        format!("{}/blobs/{digest}", self.reference.base())
    }

    /// Sends a request to the registry, answering one authentication challenge: Basic with
    /// the credentials, or Bearer with a token from the realm the registry names.
    fn send<B: AsSendBody + Copy>(
        &self,
        what: &str,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: B,
    ) -> Result<Response<Body>, OciError> {
        let mut answered = false;
        loop {
            let mut request = Request::builder().method(method.clone()).uri(url);
            for (name, value) in headers {
                request = request.header(*name, *value);
            }
            if let Some(authorization) = self.current_authorization() {
                request = request.header("Authorization", authorization);
            }
            let request = request.body(body).map_err(|e| self.network(what, e))?;
            let response = self.agent.run(request).map_err(|e| self.network(what, e))?;
            if response.status().as_u16() != 401 {
                return Ok(response);
            }
            if answered {
                return Err(if self.credentials.is_some() {
                    OciError::Refused {
                        what: what.to_string(),
                        registry: self.reference.registry.clone(),
                        repository: self.reference.repository.clone(),
                    }
                } else {
                    self.no_credentials(what)
                });
            }
            answered = true;
            let challenge = response
                .headers()
                .get_all("www-authenticate")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .find_map(auth::parse_challenge);
            let authorization = match challenge {
                Some(auth::Challenge::Basic) | None => match &self.credentials {
                    Some(c) => c.basic(),
                    None => return Err(self.no_credentials(what)),
                },
                Some(auth::Challenge::Bearer {
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
        let mut request = self.agent.get(url.as_str());
        if let Some(credentials) = &self.credentials {
            request = request.header("Authorization", &credentials.basic());
        }
        let mut response = request
            .call()
            .map_err(|e| failed(untrusted(&e.to_string())))?;
        let status = response.status().as_u16();
        if status == 401 || status == 403 {
            return Err(if self.credentials.is_some() {
                OciError::Refused {
                    what: "token request".to_string(),
                    registry: self.reference.registry.clone(),
                    repository: self.reference.repository.clone(),
                }
            } else {
                self.no_credentials("token request")
            });
        }
        if status != 200 {
            return Err(failed(format!("HTTP {status}")));
        }
        let body = response
            .body_mut()
            .with_config()
            .limit(1024 * 1024)
            .read_to_vec()
            .map_err(|e| failed(untrusted(&e.to_string())))?;
        #[derive(serde::Deserialize)]
        struct Token {
            token: Option<String>,
            access_token: Option<String>,
        }
        let parsed: Token = serde_json::from_slice(&body)
            .map_err(|_| failed("the answer is not a token".to_string()))?;
        let token = parsed
            .token
            .or(parsed.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| failed("the answer holds no token".to_string()))?;
        // A header value cannot hold control characters; a token that does is refused
        // rather than shown.
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(failed("the token is not printable ASCII".to_string()));
        }
        Ok(token)
    }

    /// The manifest tagged `tag`, or `None` when the repository or the tag does not exist.
    pub fn manifest(&self, tag: &str) -> Result<Option<Fetched>, OciError> {
        let what = format!("manifest {}:{tag}", self.reference);
        let url = format!("{}/manifests/{tag}", self.reference.base());
        let mut response = self.send(&what, Method::GET, &url, &[("Accept", OCI_MANIFEST)], ())?;
        match response.status().as_u16() {
            200 => {}
            404 => return Ok(None),
            _ => return Err(self.status(&what, &mut response)),
        }
        let bytes = read_capped(&mut response, MAX_OCI_MANIFEST).map_err(|e| match e {
            Capped::TooLarge => OciError::TooLarge {
                what: what.clone(),
                registry: self.reference.registry.clone(),
                max: MAX_OCI_MANIFEST,
            },
            Capped::Io(e) => self.network(&what, e),
        })?;
        let digest = digest_of(&bytes);
        Ok(Some(Fetched { bytes, digest }))
    }

    /// Pushes a manifest under `tag` and returns its digest.
    pub fn put_manifest(&self, tag: &str, bytes: &[u8]) -> Result<String, OciError> {
        let what = format!("push of manifest {}:{tag}", self.reference);
        let url = format!("{}/manifests/{tag}", self.reference.base());
        let mut response = self.send(
            &what,
            Method::PUT,
            &url,
            &[("Content-Type", OCI_MANIFEST)],
            bytes,
        )?;
        if response.status().as_u16() != 201 {
            return Err(self.status(&what, &mut response));
        }
        Ok(digest_of(bytes))
    }

    /// Whether the repository has the blob.
    pub fn has_blob(&self, digest: &str) -> Result<bool, OciError> {
        let what = format!("blob {digest} of {}", self.reference);
        let url = format!("{}/blobs/{digest}", self.reference.base());
        let mut response = self.send(&what, Method::HEAD, &url, &[], ())?;
        match response.status().as_u16() {
            200 => Ok(true),
            404 => Ok(false),
            // A registry that redirects HEAD to storage has the blob.
            301 | 302 | 303 | 307 | 308 => Ok(true),
            _ => Err(self.status(&what, &mut response)),
        }
    }

    /// Opens the blob `digest` for reading, following the registry's redirects to its
    /// storage. `Authorization` goes only to the registry's own scheme, host and port.
    /// `range` asks for the bytes from an offset on (the response says whether it got them).
    pub fn open_blob(&self, digest: &str, range: Option<u64>) -> Result<Response<Body>, OciError> {
        let what = format!("blob {digest} of {}", self.reference);
        let mut url = format!("{}/blobs/{digest}", self.reference.base());
        let home = host_of(&url);
        let range_header = range.map(|offset| format!("bytes={offset}-"));
        let mut headers: Vec<(&str, &str)> = Vec::new();
        if let Some(range) = &range_header {
            headers.push(("Range", range));
        }
        let mut response = self.send(&what, Method::GET, &url, &headers, ())?;
        for _ in 0..MAX_REDIRECTS {
            let status = response.status().as_u16();
            if !matches!(status, 301 | 302 | 303 | 307 | 308) {
                break;
            }
            let location = response
                .headers()
                .get("location")
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| OciError::Invalid {
                    what: what.clone(),
                    registry: self.reference.registry.clone(),
                    reason: "a redirect without a Location".to_string(),
                })?;
            let next = url::Url::parse(&url)
                .and_then(|base| base.join(location))
                .map_err(|_| OciError::Invalid {
                    what: what.clone(),
                    registry: self.reference.registry.clone(),
                    reason: format!("a redirect to '{}'", untrusted(location)),
                })?;
            if let Err(reason) = redirect_allowed(&url, &next) {
                return Err(OciError::Invalid {
                    what: what.clone(),
                    registry: self.reference.registry.clone(),
                    reason: reason.to_string(),
                });
            }
            url = next.to_string();
            if host_of(&url) == home {
                response = self.send(&what, Method::GET, &url, &headers, ())?;
            } else {
                let mut request = self.agent.get(&url);
                for (name, value) in &headers {
                    request = request.header(*name, *value);
                }
                response = request.call().map_err(|e| self.network(&what, e))?;
            }
        }
        match response.status().as_u16() {
            200 | 206 => Ok(response),
            _ => Err(self.status(&what, &mut response)),
        }
    }

    /// Reads the whole blob `digest`, at most `max` bytes, checked against its digest.
    pub fn read_blob(&self, digest: &str, max: u64) -> Result<Vec<u8>, OciError> {
        let what = format!("blob {digest} of {}", self.reference);
        let mut response = self.open_blob(digest, None)?;
        let bytes = read_capped(&mut response, max).map_err(|e| match e {
            Capped::TooLarge => OciError::TooLarge {
                what: what.clone(),
                registry: self.reference.registry.clone(),
                max,
            },
            Capped::Io(e) => self.network(&what, e),
        })?;
        if digest_of(&bytes) != digest {
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
        let digest = digest_of(bytes);
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
        let start = format!("{}/blobs/uploads/", self.reference.base());
        let mut response = self.send(&what, Method::POST, &start, &[], &[][..])?;
        if response.status().as_u16() != 202 {
            return Err(self.status(&what, &mut response));
        }
        let mut location = self.upload_location(&what, &start, &response)?;
        let read_error = |e| self.network(&what, e);
        if size <= CHUNK as u64 {
            let mut bytes = Vec::with_capacity(size as usize);
            source
                .take(size)
                .read_to_end(&mut bytes)
                .map_err(read_error)?;
            let url = with_digest(&location, digest);
            let length = bytes.len().to_string();
            let mut response = self.send(
                &what,
                Method::PUT,
                &url,
                &[
                    ("Content-Type", "application/octet-stream"),
                    ("Content-Length", &length),
                ],
                &bytes[..],
            )?;
            if response.status().as_u16() != 201 {
                return Err(self.status(&what, &mut response));
            }
            return Ok(());
        }
        let mut offset = 0u64;
        let mut chunk = vec![0u8; CHUNK];
        while offset < size {
            let want = (size - offset).min(CHUNK as u64) as usize;
            source.read_exact(&mut chunk[..want]).map_err(read_error)?;
            let range = format!("{offset}-{}", offset + want as u64 - 1);
            let length = want.to_string();
            let mut response = self.send(
                &what,
                Method::PATCH,
                &location,
                &[
                    ("Content-Type", "application/octet-stream"),
                    ("Content-Range", &range),
                    ("Content-Length", &length),
                ],
                &chunk[..want],
            )?;
            if response.status().as_u16() != 202 {
                return Err(self.status(&what, &mut response));
            }
            location = self.upload_location(&what, &location, &response)?;
            offset += want as u64;
        }
        let url = with_digest(&location, digest);
        let mut response = self.send(
            &what,
            Method::PUT,
            &url,
            &[("Content-Length", "0")],
            &[][..],
        )?;
        if response.status().as_u16() != 201 {
            return Err(self.status(&what, &mut response));
        }
        Ok(())
    }

    /// The absolute URL an upload goes on at (the `Location` of the last answer). It must
    /// stay on the registry's own host: the request carries `Authorization`.
    fn upload_location(
        &self,
        what: &str,
        base: &str,
        response: &Response<Body>,
    ) -> Result<String, OciError> {
        let invalid = |reason: &str| OciError::Invalid {
            what: what.to_string(),
            registry: self.reference.registry.clone(),
            reason: reason.to_string(),
        };
        let location = response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
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

enum Capped {
    TooLarge,
    Io(std::io::Error),
}

fn read_capped(response: &mut Response<Body>, max: u64) -> Result<Vec<u8>, Capped> {
    let mut bytes = Vec::new();
    response
        .body_mut()
        .as_reader()
        .take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(Capped::Io)?;
    if bytes.len() as u64 > max {
        return Err(Capped::TooLarge);
    }
    Ok(bytes)
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
    fn parses_registry_origins() {
        let r = Reference::parse("oci://ghcr.io/acme/images/app").unwrap();
        assert!(r.https);
        assert_eq!(r.registry, "ghcr.io");
        assert_eq!(r.repository, "acme/images/app");
        assert_eq!(r.base(), "https://ghcr.io/v2/acme/images/app");
        let r = Reference::parse("oci+http://127.0.0.1:5000/app").unwrap();
        assert!(!r.https);
        assert_eq!(r.to_string(), "oci+http://127.0.0.1:5000/app");
        for bad in [
            "oci://ghcr.io",
            "oci://ghcr.io/",
            "oci://user:pw@ghcr.io/app",
            "oci://ghcr.io/App",
            "oci://ghcr.io/a//b",
            "oci://ghcr.io:x/app",
            "oci://ghcr.io/app?x",
            "http://ghcr.io/app",
        ] {
            assert!(Reference::parse(bad).is_err(), "{bad}");
        }
    }
}
