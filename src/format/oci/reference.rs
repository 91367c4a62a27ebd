//! Image references as docker and podman write them, tako's `oci://` registry URLs, skopeo's
//! `oci:PATH[:TAG]` layout references, and the `TRANSPORT:` names of the image proxy.
//!
//! `[REGISTRY[:PORT]/]REPOSITORY[:TAG][@sha256:HEX]`, optionally after `docker://`: a first
//! component with a `.` or a `:`, or `localhost`, is a registry; anything else is a Docker
//! Hub repository (`docker.io`, reached at `registry-1.docker.io`, one-component names under
//! `library/`). Without a tag or digest the tag is `latest`; with both, both are kept (the
//! digest is what is pulled, and the caller checks that the tag names it).
//! `oci://REGISTRY/REPO[:TAG|@DIGEST]` names a registry explicitly (HTTPS) and
//! `oci+http://HOST:PORT/REPO…` a plain-HTTP one. Names follow the distribution spec's
//! grammar; a repository with uppercase letters is refused with its lowercase spelling as
//! a hint. Credentials in a reference are refused without being echoed.

use std::fmt;

use super::digest::{Digest, DigestError};
use crate::format::text::untrusted;

/// Docker Hub, as references name it.
pub const DOCKER_HUB: &str = "docker.io";
/// The host Docker Hub's registry API answers on.
pub const DOCKER_HUB_API: &str = "registry-1.docker.io";
/// Docker Hub's old name, which means the same registry.
const DOCKER_HUB_LEGACY: &str = "index.docker.io";
/// The tag of a reference that names none.
pub const DEFAULT_TAG: &str = "latest";
/// The longest name (registry and repository) accepted, as the distribution spec says.
pub const MAX_NAME: usize = 255;
/// The longest reference read at all.
const MAX_REFERENCE: usize = 1024;
/// The longest layout path read.
const MAX_PATH: usize = 4096;

/// What is wrong with a reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    #[error("it is empty")]
    Empty,
    #[error("it is {0} bytes long, more than {MAX_REFERENCE}")]
    TooLong(usize),
    #[error(
        "credentials are not accepted in an image reference: put them in an auth file (containers-auth.json)"
    )]
    Credentials,
    #[error("it names no repository")]
    NoRepository,
    #[error("'{0}' is not a registry host (HOST[:PORT])")]
    Host(String),
    #[error("port '{0}' is not a number from 1 to 65535")]
    Port(String),
    #[error(
        "'{0}' is not a repository path component (lowercase letters and digits, joined by '.', '_', '__' or dashes)"
    )]
    Component(String),
    #[error("repository names are lowercase: did you mean '{0}'?")]
    Uppercase(String),
    #[error("the name is {0} characters long, more than {MAX_NAME}")]
    NameTooLong(usize),
    #[error(
        "'{0}' is not a tag (letters, digits, '_', '.' and '-', at most 128, starting with a letter, digit or '_')"
    )]
    Tag(String),
    #[error(transparent)]
    Digest(#[from] DigestError),
    #[error(
        "'{0}' is not an image name in an OCI layout (letters and digits, joined by '.', '_', '-', '--', '@' or '+')"
    )]
    LayoutTag(String),
    #[error("the layout path is empty, longer than {MAX_PATH} bytes or holds a NUL byte")]
    LayoutPath,
    #[error(
        "oci://… names a registry; an OCI layout directory is oci:PATH[:TAG] with one slash or none (oci:/srv/image)"
    )]
    LayoutIsRegistry,
    #[error(
        "the transport '{0}' is not supported: use docker://REFERENCE, oci:PATH[:TAG] or tako:CONFIG"
    )]
    Transport(String),
    #[error("write docker://REFERENCE, with two slashes")]
    DockerSlashes,
    #[error("it names no transport: use docker://REFERENCE, oci:PATH[:TAG] or tako:CONFIG")]
    NoTransport,
    #[error("tako:CONFIG needs the path of a tako config")]
    TakoConfig,
}

/// A reference that was refused: the text (escaped, credentials hidden) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid image reference '{input}': {problem}")]
pub struct ReferenceError {
    pub input: String,
    pub problem: Problem,
}

/// How a registry is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Https,
    Http,
}

impl Scheme {
    #[allow(dead_code)] // Only `api_base` uses it.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Https => "https",
            Scheme::Http => "http",
        }
    }
}

/// An image in a registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    scheme: Scheme,
    registry: String,
    repository: String,
    /// The tag written, or [`DEFAULT_TAG`] when neither a tag nor a digest was.
    tag: Option<String>,
    digest: Option<Digest>,
}

/// The text shown for a refused reference: escaped, and with anything before an `@` that is
/// followed by a `/` (user and password) hidden.
fn shown(text: &str) -> String {
    match text.split_once('@') {
        Some((before, after)) if after.contains('/') => {
            let scheme_end = before.find("://").map(|i| i + 3).unwrap_or(0);
            let scheme = before.get(..scheme_end).unwrap_or("");
            untrusted(&format!("{scheme}***@{after}"))
        }
        _ => untrusted(text),
    }
}

/// Whether a first path component names a registry rather than a Docker Hub namespace.
fn is_registry(component: &str) -> bool {
    component.contains('.') || component.contains(':') || component == "localhost"
}

/// `[a-zA-Z0-9]` or `[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]`.
fn domain_component_ok(c: &str) -> bool {
    !c.is_empty()
        && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !c.starts_with('-')
        && !c.ends_with('-')
}

/// Checks `HOST[:PORT]` (HOST a DNS name, an IPv4 address or `[IPv6]`).
fn check_registry(registry: &str) -> Result<(), Problem> {
    let (host, port) = if let Some(rest) = registry.strip_prefix('[') {
        let (inside, after) = rest
            .split_once(']')
            .ok_or_else(|| Problem::Host(untrusted(registry)))?;
        if inside.is_empty() || !inside.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
            return Err(Problem::Host(untrusted(registry)));
        }
        match after {
            "" => (None, None),
            _ => match after.strip_prefix(':') {
                Some(port) => (None, Some(port)),
                None => return Err(Problem::Host(untrusted(registry))),
            },
        }
    } else {
        match registry.split_once(':') {
            Some((host, port)) => (Some(host), Some(port)),
            None => (Some(registry), None),
        }
    };
    if let Some(host) = host
        && !host.split('.').all(domain_component_ok)
    {
        return Err(Problem::Host(untrusted(registry)));
    }
    if let Some(port) = port {
        let valid = !port.is_empty()
            && port.len() <= 5
            && port.bytes().all(|b| b.is_ascii_digit())
            && port.parse::<u16>().is_ok_and(|p| p != 0);
        if !valid {
            return Err(Problem::Port(untrusted(port)));
        }
    }
    Ok(())
}

/// A repository path component: `[a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*`.
fn component_ok(component: &str) -> bool {
    let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let mut bytes = component.bytes().peekable();
    loop {
        if bytes.next_if(alnum).is_none() {
            return false;
        }
        while bytes.next_if(alnum).is_some() {}
        match bytes.next() {
            None => return true,
            Some(b'.') => {}
            Some(b'_') => {
                bytes.next_if_eq(&b'_');
            }
            Some(b'-') => while bytes.next_if_eq(&b'-').is_some() {},
            Some(_) => return false,
        }
    }
}

fn check_repository(repository: &str) -> Result<(), Problem> {
    if repository.is_empty() {
        return Err(Problem::NoRepository);
    }
    if let Some(bad) = repository.split('/').find(|c| !component_ok(c)) {
        let lower = repository.to_ascii_lowercase();
        if lower != repository && lower.split('/').all(component_ok) {
            return Err(Problem::Uppercase(untrusted(&lower)));
        }
        return Err(Problem::Component(untrusted(bad)));
    }
    Ok(())
}

/// `[\w][\w.-]{0,127}`.
fn tag_ok(tag: &str) -> bool {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    tag.len() <= 128
        && tag.bytes().next().is_some_and(word)
        && tag.bytes().all(|b| word(b) || b == b'.' || b == b'-')
}

/// Splits `NAME[:TAG]` at the last `:` that has no `/` after it.
fn split_tag(text: &str) -> (&str, Option<&str>) {
    match text.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => (name, Some(tag)),
        _ => (text, None),
    }
}

impl Reference {
    /// Parses a reference as docker and podman write it (optionally after `docker://`), or
    /// tako's `oci://` and `oci+http://` forms.
    pub fn parse(text: &str) -> Result<Reference, ReferenceError> {
        Reference::parse_inner(text).map_err(|problem| ReferenceError {
            input: shown(text),
            problem,
        })
    }

    /// Whether `text` is written in tako's `oci://` or `oci+http://` form.
    pub fn is_registry_url(text: &str) -> bool {
        text.starts_with("oci://") || text.starts_with("oci+http://")
    }

    fn parse_inner(text: &str) -> Result<Reference, Problem> {
        if text.is_empty() {
            return Err(Problem::Empty);
        }
        if text.len() > MAX_REFERENCE {
            return Err(Problem::TooLong(text.len()));
        }
        let (scheme, explicit, rest) = if let Some(rest) = text.strip_prefix("oci://") {
            (Scheme::Https, true, rest)
        } else if let Some(rest) = text.strip_prefix("oci+http://") {
            (Scheme::Http, true, rest)
        } else {
            (
                Scheme::Https,
                false,
                text.strip_prefix("docker://").unwrap_or(text),
            )
        };
        let (name_tag, digest) = match rest.split_once('@') {
            Some((_, after)) if after.contains('/') => return Err(Problem::Credentials),
            Some((name_tag, digest)) => (name_tag, Some(Digest::parse(digest)?)),
            None => (rest, None),
        };
        // A URL-like form may end in a slash; a name never does.
        let name_tag = if explicit && digest.is_none() {
            name_tag.trim_end_matches('/')
        } else {
            name_tag
        };
        let (name, tag) = split_tag(name_tag);
        if let Some(tag) = tag
            && !tag_ok(tag)
        {
            return Err(Problem::Tag(untrusted(tag)));
        }
        if name.len() > MAX_NAME {
            return Err(Problem::NameTooLong(name.len()));
        }
        let (registry, path) = match name.split_once('/') {
            Some((first, path)) if explicit || is_registry(first) => (first, path),
            _ if explicit => return Err(Problem::NoRepository),
            _ => (DOCKER_HUB, name),
        };
        if registry.is_empty() {
            return Err(Problem::Host(String::new()));
        }
        check_registry(registry)?;
        check_repository(path)?;
        let registry = if registry == DOCKER_HUB_LEGACY {
            DOCKER_HUB
        } else {
            registry
        };
        let repository = if registry == DOCKER_HUB && !path.contains('/') {
            format!("library/{path}")
        } else {
            path.to_string()
        };
        let tag = match (tag, digest) {
            (Some(tag), _) => Some(tag.to_string()),
            (None, None) => Some(DEFAULT_TAG.to_string()),
            (None, Some(_)) => None,
        };
        Ok(Reference {
            scheme,
            registry: registry.to_string(),
            repository,
            tag,
            digest,
        })
    }

    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The registry as the reference names it (`docker.io`, `ghcr.io`, `localhost:5000`):
    /// the name credentials are filed under.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The host (and port) the registry API answers on.
    pub fn api_host(&self) -> &str {
        if self.registry == DOCKER_HUB {
            DOCKER_HUB_API
        } else {
            &self.registry
        }
    }

    /// `scheme://api-host/v2/repository`, the base of the repository's API URLs.
    #[allow(dead_code)] // Part of the reference API; no caller yet.
    pub fn api_base(&self) -> String {
        format!(
            "{}://{}/v2/{}",
            self.scheme.as_str(),
            self.api_host(),
            self.repository
        )
    }

    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The tag: the one written, or `latest` when neither a tag nor a digest was.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    pub fn digest(&self) -> Option<Digest> {
        self.digest
    }

    /// What goes after `/manifests/` to fetch the image: the digest if pinned, else the tag.
    #[allow(dead_code)] // Part of the reference API; no caller yet.
    pub fn manifest_reference(&self) -> String {
        match (self.digest, &self.tag) {
            (Some(digest), _) => digest.to_string(),
            (None, Some(tag)) => tag.clone(),
            (None, None) => DEFAULT_TAG.to_string(),
        }
    }

    /// The same image pinned to `digest` (a tag resolved), the tag kept.
    #[allow(dead_code)] // Part of the reference API; no caller yet.
    pub fn with_digest(&self, digest: Digest) -> Reference {
        Reference {
            digest: Some(digest),
            ..self.clone()
        }
    }

    /// `:tag` and `@digest`, as present.
    fn suffix(&self) -> String {
        let mut out = String::new();
        if let Some(tag) = &self.tag {
            out.push(':');
            out.push_str(tag);
        }
        if let Some(digest) = self.digest {
            out.push('@');
            out.push_str(&digest.to_string());
        }
        out
    }

    /// The short form docker prints: Docker Hub's `docker.io/` and `library/` left out
    /// (`debian:12`, `acme/app:1`); other registries as in [`Display`](fmt::Display).
    #[allow(dead_code)] // Part of the reference API; no caller yet.
    pub fn familiar(&self) -> String {
        if self.scheme == Scheme::Https && self.registry == DOCKER_HUB {
            let repository = match self.repository.strip_prefix("library/") {
                Some(name) if !name.contains('/') => name,
                _ => &self.repository,
            };
            format!("{repository}{}", self.suffix())
        } else {
            self.to_string()
        }
    }
}

/// The canonical form (`docker.io/library/debian:12`), which parses back to the same
/// reference: a registry that would not read as one, or plain HTTP, keeps its `oci://` or
/// `oci+http://` prefix.
impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.scheme {
            Scheme::Http => f.write_str("oci+http://")?,
            Scheme::Https if !is_registry(&self.registry) => f.write_str("oci://")?,
            Scheme::Https => {}
        }
        write!(f, "{}/{}{}", self.registry, self.repository, self.suffix())
    }
}

/// skopeo's `oci:PATH[:TAG]`: an image in an OCI image layout directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayoutReference {
    pub path: String,
    /// The image's `org.opencontainers.image.ref.name` in the layout's index, if named.
    pub tag: Option<String>,
}

/// An OCI layout's `ref.name` without `/` and `:` (which the split leaves out):
/// alphanumerics joined by one of `-._@+` or `--`.
fn layout_tag_ok(tag: &str) -> bool {
    let mut bytes = tag.bytes().peekable();
    loop {
        if bytes.next_if(u8::is_ascii_alphanumeric).is_none() {
            return false;
        }
        while bytes.next_if(u8::is_ascii_alphanumeric).is_some() {}
        match bytes.next() {
            None => return true,
            Some(b'-') => {
                bytes.next_if_eq(&b'-');
            }
            Some(b'.' | b'_' | b'@' | b'+') => {}
            Some(_) => return false,
        }
    }
}

impl LayoutReference {
    /// Parses `oci:PATH[:TAG]`. The tag is what follows the last `:` when it has no `/`, so
    /// a path may hold colons; `oci:/srv/img:` names no tag.
    pub fn parse(text: &str) -> Result<LayoutReference, ReferenceError> {
        let error = |problem| ReferenceError {
            input: untrusted(text),
            problem,
        };
        let Some(rest) = text.strip_prefix("oci:") else {
            return Err(error(Problem::Transport(untrusted(
                text.split(':').next().unwrap_or(""),
            ))));
        };
        if rest.starts_with("//") {
            return Err(error(Problem::LayoutIsRegistry));
        }
        let (path, tag) = match split_tag(rest) {
            (path, Some("")) => (path, None),
            split => split,
        };
        if path.is_empty() || path.len() > MAX_PATH || path.contains('\0') {
            return Err(error(Problem::LayoutPath));
        }
        if let Some(tag) = tag
            && !layout_tag_ok(tag)
        {
            return Err(error(Problem::LayoutTag(untrusted(tag))));
        }
        Ok(LayoutReference {
            path: path.to_string(),
            tag: tag.map(str::to_string),
        })
    }
}

/// An image as the image proxy names it: `TRANSPORT:REFERENCE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageName {
    /// `docker://REFERENCE` (or tako's `oci://` and `oci+http://`).
    Registry(Reference),
    /// `oci:PATH[:TAG]`.
    Layout(LayoutReference),
    /// `tako:CONFIG`: the newest version a tako config's signed manifest allows.
    Tako(String),
}

/// Transports of containers/image that tako does not read; named so the error can say so.
const OTHER_TRANSPORTS: [&str; 7] = [
    "containers-storage",
    "dir",
    "docker-archive",
    "docker-daemon",
    "oci-archive",
    "ostree",
    "sif",
];

impl ImageName {
    pub fn parse(text: &str) -> Result<ImageName, ReferenceError> {
        let error = |problem| ReferenceError {
            input: shown(text),
            problem,
        };
        if text.starts_with("docker://") || Reference::is_registry_url(text) {
            return Reference::parse(text).map(ImageName::Registry);
        }
        if text.starts_with("oci:") {
            return LayoutReference::parse(text).map(ImageName::Layout);
        }
        if let Some(config) = text.strip_prefix("tako:") {
            if config.is_empty() || config.len() > MAX_PATH || config.contains('\0') {
                return Err(error(Problem::TakoConfig));
            }
            return Ok(ImageName::Tako(config.to_string()));
        }
        if text.starts_with("docker:") {
            return Err(error(Problem::DockerSlashes));
        }
        match text.split_once(':') {
            Some((transport, _)) if OTHER_TRANSPORTS.contains(&transport) => {
                Err(error(Problem::Transport(transport.to_string())))
            }
            _ => Err(error(Problem::NoTransport)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(byte: u8) -> String {
        Digest::from([byte; 32]).hex()
    }

    fn parse(text: &str) -> Reference {
        Reference::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn problem(text: &str) -> Problem {
        match Reference::parse(text) {
            Ok(r) => panic!("{text} parsed as {r:?}"),
            Err(e) => e.problem,
        }
    }

    #[test]
    fn a_single_name_is_an_official_docker_hub_image_tagged_latest() {
        let r = parse("debian");
        assert_eq!(r.registry(), "docker.io");
        assert_eq!(r.api_host(), "registry-1.docker.io");
        assert_eq!(r.repository(), "library/debian");
        assert_eq!(r.tag(), Some("latest"));
        assert_eq!(r.digest(), None);
        assert_eq!(r.scheme(), Scheme::Https);
        assert_eq!(r.to_string(), "docker.io/library/debian:latest");
        assert_eq!(r.familiar(), "debian:latest");
        assert_eq!(r.manifest_reference(), "latest");
        assert_eq!(
            r.api_base(),
            "https://registry-1.docker.io/v2/library/debian"
        );
    }

    #[test]
    fn docker_hub_is_named_in_all_its_spellings() {
        for text in [
            "debian:12",
            "library/debian:12",
            "docker.io/debian:12",
            "docker.io/library/debian:12",
            "index.docker.io/library/debian:12",
            "docker://debian:12",
            "oci://docker.io/debian:12",
        ] {
            let r = parse(text);
            assert_eq!(r.to_string(), "docker.io/library/debian:12", "{text}");
            assert_eq!(r.familiar(), "debian:12", "{text}");
        }
        let r = parse("acme/app:1.0");
        assert_eq!(r.to_string(), "docker.io/acme/app:1.0");
        assert_eq!(r.familiar(), "acme/app:1.0");
    }

    #[test]
    fn a_first_component_with_a_dot_a_colon_or_localhost_is_a_registry() {
        let r = parse("ghcr.io/acme/tools/app:2");
        assert_eq!(
            (r.registry(), r.api_host(), r.repository()),
            ("ghcr.io", "ghcr.io", "acme/tools/app")
        );
        assert_eq!(r.familiar(), "ghcr.io/acme/tools/app:2");
        let r = parse("localhost/app");
        assert_eq!((r.registry(), r.repository()), ("localhost", "app"));
        let r = parse("registry:5000/app");
        assert_eq!((r.registry(), r.repository()), ("registry:5000", "app"));
        assert_eq!(r.tag(), Some("latest"));
        let r = parse("[::1]:5000/app:v1");
        assert_eq!((r.registry(), r.tag()), ("[::1]:5000", Some("v1")));
        assert_eq!(r.api_base(), "https://[::1]:5000/v2/app");
        let r = parse("10.0.0.1:5000/a/b");
        assert_eq!(r.registry(), "10.0.0.1:5000");
    }

    #[test]
    fn a_port_without_a_tag_is_not_read_as_a_tag() {
        let r = parse("localhost:5000/app");
        assert_eq!((r.registry(), r.tag()), ("localhost:5000", Some("latest")));
        let r = parse("localhost:5000/app:5000");
        assert_eq!(r.tag(), Some("5000"));
    }

    #[test]
    fn a_digest_pins_the_image_and_a_tag_beside_it_is_kept() {
        let digest = format!("sha256:{}", hex(7));
        let r = parse(&format!("debian@{digest}"));
        assert_eq!(r.digest().unwrap().to_string(), digest);
        assert_eq!(r.tag(), None);
        assert_eq!(r.manifest_reference(), digest);
        assert_eq!(r.to_string(), format!("docker.io/library/debian@{digest}"));
        let r = parse(&format!("ghcr.io/a/b:1.2@{digest}"));
        assert_eq!(r.tag(), Some("1.2"));
        assert_eq!(r.digest().unwrap().to_string(), digest);
        assert_eq!(r.manifest_reference(), digest);
        assert_eq!(r.to_string(), format!("ghcr.io/a/b:1.2@{digest}"));
        let pinned = parse("ghcr.io/a/b:1.2").with_digest(Digest::from([7; 32]));
        assert_eq!(pinned, r);
    }

    #[test]
    fn other_digest_algorithms_and_malformed_digests_are_refused() {
        let e = Reference::parse(&format!("debian@sha512:{}", "a".repeat(128))).unwrap_err();
        assert!(matches!(
            e.problem,
            Problem::Digest(DigestError::Algorithm { .. })
        ));
        assert!(e.to_string().contains("sha256 digests only"), "{e}");
        assert!(matches!(problem("debian@sha256:abc"), Problem::Digest(_)));
        assert!(matches!(
            problem(&format!("debian@sha256:{}@x", hex(1))),
            Problem::Digest(_)
        ));
    }

    #[test]
    fn oci_urls_name_their_registry_and_scheme() {
        let r = parse("oci://ghcr.io/acme/app:1");
        assert_eq!(
            (r.scheme(), r.registry(), r.repository(), r.tag()),
            (Scheme::Https, "ghcr.io", "acme/app", Some("1"))
        );
        assert_eq!(r.to_string(), "ghcr.io/acme/app:1");
        let r = parse("oci+http://127.0.0.1:5000/app");
        assert_eq!(r.scheme(), Scheme::Http);
        assert_eq!(r.api_base(), "http://127.0.0.1:5000/v2/app");
        assert_eq!(r.to_string(), "oci+http://127.0.0.1:5000/app:latest");
        assert_eq!(r.familiar(), "oci+http://127.0.0.1:5000/app:latest");
        // A registry that would not read as one keeps its prefix, and is never Docker Hub.
        let r = parse("oci://registry/app");
        assert_eq!((r.registry(), r.repository()), ("registry", "app"));
        assert_eq!(r.to_string(), "oci://registry/app:latest");
        assert_eq!(parse("oci://ghcr.io/app/").repository(), "app");
        assert!(Reference::is_registry_url("oci+http://h/a"));
        assert!(!Reference::is_registry_url("docker://h/a"));
    }

    #[test]
    fn the_canonical_form_parses_back_to_the_same_reference() {
        let digest = format!("sha256:{}", hex(9));
        for text in [
            "debian",
            "acme/app:1",
            "ghcr.io/a/b/c:x",
            "localhost:5000/app",
            "oci://registry/app:v1",
            "oci+http://registry:5000/app",
            &format!("quay.io/a/b:t@{digest}"),
            &format!("oci+http://h/a@{digest}"),
            "[::1]/a",
        ] {
            let r = parse(text);
            assert_eq!(parse(&r.to_string()), r, "{text}");
            assert_eq!(parse(&r.familiar()), r, "{text}");
        }
    }

    #[test]
    fn uppercase_repositories_are_refused_with_the_lowercase_spelling() {
        let e = Reference::parse("Ubuntu:22.04").unwrap_err();
        assert_eq!(e.problem, Problem::Uppercase("ubuntu".to_string()));
        assert_eq!(
            e.to_string(),
            "invalid image reference 'Ubuntu:22.04': repository names are lowercase: did you mean 'ubuntu'?"
        );
        assert_eq!(
            problem("ghcr.io/Acme/App"),
            Problem::Uppercase("acme/app".to_string())
        );
        // A registry's name is a host name: any case goes.
        assert_eq!(
            parse("Registry.Example:443/app").registry(),
            "Registry.Example:443"
        );
    }

    #[test]
    fn repository_components_follow_the_distribution_grammar() {
        for good in [
            "a",
            "a.b",
            "a_b",
            "a__b",
            "a-b",
            "a---b",
            "a1.b2_c3__d4-e5",
            "0",
        ] {
            assert!(component_ok(good), "{good}");
        }
        for bad in [
            "", "-a", "a-", ".a", "a.", "_a", "a_", "a..b", "a___b", "a._b", "a.-b", "a b", "é",
        ] {
            assert!(!component_ok(bad), "{bad}");
        }
        assert!(matches!(problem("ghcr.io/a//b"), Problem::Component(_)));
        assert!(matches!(problem("ghcr.io/a/-b"), Problem::Component(_)));
        assert!(matches!(problem("ghcr.io/"), Problem::NoRepository));
        assert!(matches!(problem("oci://ghcr.io"), Problem::NoRepository));
        assert!(matches!(problem("oci://ghcr.io/"), Problem::NoRepository));
    }

    #[test]
    fn tags_follow_the_distribution_grammar() {
        assert_eq!(parse("a:_x.Y-1").tag(), Some("_x.Y-1"));
        assert_eq!(
            parse(&format!("a:{}", "t".repeat(128)))
                .tag()
                .unwrap()
                .len(),
            128
        );
        for bad in [
            "a:".to_string(),
            "a:.x".to_string(),
            "a:-x".to_string(),
            "a:x+y".to_string(),
            format!("a:{}", "t".repeat(129)),
        ] {
            assert!(matches!(problem(&bad), Problem::Tag(_)), "{bad}");
        }
    }

    #[test]
    fn registries_need_a_host_and_a_numeric_port() {
        for (bad, port) in [
            ("localhost:x/app", "x"),
            ("localhost:0/app", "0"),
            ("localhost:65536/app", "65536"),
            ("localhost:/app", ""),
            ("localhost:+80/app", "+80"),
        ] {
            assert_eq!(problem(bad), Problem::Port(port.to_string()), "{bad}");
        }
        for bad in [
            "-bad.example/app",
            "bad-.example/app",
            "a..b/app",
            "[::1/app",
            "[zz]:5000/app",
            "[]:5000/app",
            "[::1]x/app",
            "oci://:5000/app",
            "oci://ex_ample.com/app",
        ] {
            assert!(matches!(problem(bad), Problem::Host(_)), "{bad}");
        }
    }

    #[test]
    fn credentials_are_refused_and_never_echoed() {
        for text in [
            "oci://user:secret@ghcr.io/app",
            "user:secret@ghcr.io/app",
            "docker://user:secret@ghcr.io/app:1",
        ] {
            let e = Reference::parse(text).unwrap_err();
            assert_eq!(e.problem, Problem::Credentials, "{text}");
            assert!(!e.to_string().contains("secret"), "{e}");
            assert!(e.to_string().contains("***@ghcr.io/app"), "{e}");
        }
    }

    #[test]
    fn long_names_and_references_are_refused() {
        let long = format!("ghcr.io/{}", "a".repeat(250));
        assert_eq!(problem(&long), Problem::NameTooLong(258));
        assert!(matches!(problem(&"a".repeat(2000)), Problem::TooLong(2000)));
        assert_eq!(problem(""), Problem::Empty);
    }

    #[test]
    fn refused_references_are_shown_escaped() {
        let e = Reference::parse("debian:\u{1b}[2J").unwrap_err();
        assert!(!e.to_string().contains('\u{1b}'), "{e}");
        let e = Reference::parse("ghcr.io/a\nb").unwrap_err();
        assert!(!e.to_string().contains('\n'), "{e}");
    }

    #[test]
    fn a_layout_reference_is_a_path_and_a_tag_after_the_last_colon() {
        let r = LayoutReference::parse("oci:/srv/images/app:1.0").unwrap();
        assert_eq!(
            (r.path.as_str(), r.tag.as_deref()),
            ("/srv/images/app", Some("1.0"))
        );
        let r = LayoutReference::parse("oci:/srv/images/app").unwrap();
        assert_eq!((r.path.as_str(), r.tag), ("/srv/images/app", None));
        let r = LayoutReference::parse("oci:./a:b/c").unwrap();
        assert_eq!((r.path.as_str(), r.tag), ("./a:b/c", None));
        let r = LayoutReference::parse("oci:/mnt/c:d/img:v2").unwrap();
        assert_eq!(
            (r.path.as_str(), r.tag.as_deref()),
            ("/mnt/c:d/img", Some("v2"))
        );
        let r = LayoutReference::parse("oci:img:").unwrap();
        assert_eq!((r.path.as_str(), r.tag), ("img", None));
        let r = LayoutReference::parse("oci:img:a--b@c+d").unwrap();
        assert_eq!(r.tag.as_deref(), Some("a--b@c+d"));
    }

    #[test]
    fn bad_layout_references_are_refused_with_the_reason() {
        for (text, expected) in [
            ("oci:", Problem::LayoutPath),
            ("oci::tag", Problem::LayoutPath),
            ("oci:/x\0y", Problem::LayoutPath),
            ("oci://ghcr.io/app", Problem::LayoutIsRegistry),
            ("oci:/x:a b", Problem::LayoutTag("a b".to_string())),
            ("oci:/x:-a", Problem::LayoutTag("-a".to_string())),
            ("dir:/x", Problem::Transport("dir".to_string())),
        ] {
            assert_eq!(
                LayoutReference::parse(text).unwrap_err().problem,
                expected,
                "{text}"
            );
        }
    }

    #[test]
    fn proxy_image_names_need_a_transport_tako_reads() {
        assert_eq!(
            ImageName::parse("docker://quay.io/a/b:1").unwrap(),
            ImageName::Registry(parse("quay.io/a/b:1"))
        );
        assert_eq!(
            ImageName::parse("oci+http://127.0.0.1:5000/a").unwrap(),
            ImageName::Registry(parse("oci+http://127.0.0.1:5000/a"))
        );
        assert_eq!(
            ImageName::parse("oci:/srv/x:t").unwrap(),
            ImageName::Layout(LayoutReference {
                path: "/srv/x".to_string(),
                tag: Some("t".to_string())
            })
        );
        assert_eq!(
            ImageName::parse("tako:/etc/tako/app.conf").unwrap(),
            ImageName::Tako("/etc/tako/app.conf".to_string())
        );
        for (text, expected) in [
            (
                "containers-storage:x",
                Problem::Transport("containers-storage".to_string()),
            ),
            ("docker:debian", Problem::DockerSlashes),
            ("debian:12", Problem::NoTransport),
            ("debian", Problem::NoTransport),
            ("tako:", Problem::TakoConfig),
        ] {
            assert_eq!(
                ImageName::parse(text).unwrap_err().problem,
                expected,
                "{text}"
            );
        }
    }
}
