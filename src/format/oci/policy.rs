//! containers-policy.json(5): the host's signature policy for pulled images, and which of
//! its requirements apply to an image of the `docker` transport.
//!
//! Pure: the caller reads the file and hands its bytes here. Parsing is strict, as
//! containers/image's is: an unknown key or requirement type, an empty requirement list or
//! a missing `default` is an error, since a policy misread as more lenient than written
//! would let through what the host meant to refuse. Requirements of transports other than
//! `docker` and `oci` are checked too (a typo there is still a broken file) but never
//! applied.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine;
use serde_json::{Map, Value};

use super::reference::Reference;
use crate::format::text::untrusted;

/// The most scopes in all transports, and requirements in one list: a bound on what a
/// hostile file makes each lookup walk through.
pub const MAX_ENTRIES: usize = 10_000;

/// Why a policy.json is refused. The caller adds the file's name.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PolicyError {
    #[error("it is not JSON: {0}")]
    Json(String),
    #[error("{at}: {what}")]
    Invalid { at: String, what: String },
    #[error("more than {MAX_ENTRIES} scopes or requirements")]
    TooMany,
}

fn invalid(at: &str, what: impl Into<String>) -> PolicyError {
    PolicyError::Invalid {
        at: at.to_owned(),
        what: what.into(),
    }
}

/// How the identity a signature names must relate to the image pulled
/// (`signedIdentity`); `matchRepoDigestOrExact` when the policy names none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignedIdentity {
    MatchExact,
    MatchRepoDigestOrExact,
    MatchRepository,
    ExactReference(String),
    ExactRepository(String),
    RemapIdentity {
        prefix: String,
        signed_prefix: String,
    },
}

/// Where a `sigstoreSigned` requirement's public keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// `keyPath` or `keyPaths`: PEM files.
    Paths(Vec<String>),
    /// `keyData` or `keyDatas`: PEM, base64-encoded in the policy.
    Data(Vec<Vec<u8>>),
    /// `fulcio` or `pki`: certificates rather than keys (keyless signing).
    Certificates,
}

/// One requirement of a scope; all of a scope's must hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    InsecureAcceptAnything,
    Reject,
    SigstoreSigned {
        keys: KeySource,
        identity: SignedIdentity,
        /// Whether a Rekor transparency-log key is named (`rekorPublicKey…`): such a
        /// signature must carry a Rekor bundle, which tako cannot check.
        rekor: bool,
    },
    /// A GPG (simple signing) signature: read so that a valid file parses, never accepted.
    SignedBy {
        identity: SignedIdentity,
    },
}

impl Requirement {
    /// The requirement's `type`, as the file writes it.
    pub fn name(&self) -> &'static str {
        match self {
            Requirement::InsecureAcceptAnything => "insecureAcceptAnything",
            Requirement::Reject => "reject",
            Requirement::SigstoreSigned { .. } => "sigstoreSigned",
            Requirement::SignedBy { .. } => "signedBy",
        }
    }
}

/// A parsed policy.json: the top `default`, and the scopes of the `docker` transport and
/// of the `oci` transport (image layouts, which the experimental image proxy opens).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    default: Vec<Requirement>,
    docker: BTreeMap<String, Vec<Requirement>>,
    oci: BTreeMap<String, Vec<Requirement>>,
}

/// Which entry of the file applied to an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// A `transports.docker` scope other than `""`.
    Docker(String),
    /// `transports.docker[""]`: the transport's default.
    TransportDefault,
    /// A `transports.oci` scope other than `""`.
    Oci(String),
    /// `transports.oci[""]`.
    OciDefault,
    /// The top `default`.
    Default,
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Docker(scope) => write!(f, "docker {}", untrusted(scope)),
            Scope::TransportDefault => f.write_str("docker \"\" (the transport's default)"),
            Scope::Oci(scope) => write!(f, "oci {}", untrusted(scope)),
            Scope::OciDefault => f.write_str("oci \"\" (the transport's default)"),
            Scope::Default => f.write_str("default"),
        }
    }
}

/// The verdict of the requirements that apply, before any signature is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Every requirement holds without a signature (`insecureAcceptAnything`).
    Accepted,
    /// A `reject` requirement applies.
    Rejected,
    /// A signature is required that tako does not check (`signedBy`, or `sigstoreSigned`
    /// with certificates or Rekor): refused, never accepted.
    CannotCheck(&'static str),
    /// Nothing refuses the image yet, and `sigstoreSigned` requirements with public keys
    /// apply: each must be satisfied by a signature from the registry.
    NeedsSignatures,
}

impl Policy {
    /// Parses a policy.json.
    pub fn parse(bytes: &[u8]) -> Result<Policy, PolicyError> {
        let value: Value =
            serde_json::from_slice(bytes).map_err(|e| PolicyError::Json(e.to_string()))?;
        let top = object(&value, "the file")?;
        let mut default = None;
        let mut docker = BTreeMap::new();
        let mut oci = BTreeMap::new();
        let mut count = 0usize;
        for (key, value) in top {
            match key.as_str() {
                "default" => default = Some(requirements(value, "default", &mut count)?),
                "transports" => {
                    for (transport, scopes) in object(value, "transports")? {
                        let at = format!("transports.{}", untrusted(transport));
                        for (scope, list) in object(scopes, &at)? {
                            let at = format!("{at}[{}]", untrusted(&format!("{scope:?}")));
                            let list = requirements(list, &at, &mut count)?;
                            if transport == "docker" {
                                check_docker_scope(scope, &at)?;
                                docker.insert(scope.clone(), list);
                            } else if transport == "oci" {
                                oci.insert(scope.clone(), list);
                            }
                        }
                    }
                }
                other => {
                    return Err(invalid(
                        "the file",
                        format!("unknown key {}", untrusted(other)),
                    ));
                }
            }
        }
        let default = default.ok_or_else(|| invalid("the file", "no \"default\" policy"))?;
        Ok(Policy {
            default,
            docker,
            oci,
        })
    }

    /// The scope that applies to the image layout at the absolute, resolved directory
    /// `dir` (and `image`, its `ref.name`, if named), as containers/image's `oci`
    /// transport scopes it: `DIR:IMAGE`, `DIR`, each parent directory but `/`, then `""`,
    /// then `default`.
    pub fn for_layout(&self, dir: &str, image: Option<&str>) -> (Scope, &[Requirement]) {
        let mut scopes = Vec::new();
        if let Some(image) = image {
            scopes.push(format!("{dir}:{image}"));
        }
        let mut path = dir;
        scopes.push(path.to_owned());
        while let Some((parent, _)) = path.rsplit_once('/') {
            if parent.is_empty() {
                break;
            }
            scopes.push(parent.to_owned());
            path = parent;
        }
        for scope in scopes {
            if let Some(list) = self.oci.get(&scope) {
                return (Scope::Oci(scope), list);
            }
        }
        match self.oci.get("") {
            Some(list) => (Scope::OciDefault, list),
            None => (Scope::Default, &self.default),
        }
    }

    /// The scope that applies to `image` and its requirements: the most specific `docker`
    /// scope (the image with its tag or digest, its repository, each parent namespace, its
    /// registry, then wildcards of the registry's domain), else `""`, else `default`.
    pub fn for_image(&self, image: &Reference) -> (Scope, &[Requirement]) {
        for scope in scopes_of(image) {
            if let Some(list) = self.docker.get(&scope) {
                return (Scope::Docker(scope), list);
            }
        }
        match self.docker.get("") {
            Some(list) => (Scope::TransportDefault, list),
            None => (Scope::Default, &self.default),
        }
    }
}

/// What a list of requirements says before signatures are read: the first that refuses
/// without one, in order; else whether signatures must be checked.
pub fn verdict(requirements: &[Requirement]) -> Verdict {
    let mut signatures = false;
    for requirement in requirements {
        match requirement {
            Requirement::InsecureAcceptAnything => {}
            Requirement::Reject => return Verdict::Rejected,
            Requirement::SignedBy { .. } => return Verdict::CannotCheck("signedBy (GPG)"),
            Requirement::SigstoreSigned {
                keys: KeySource::Certificates,
                ..
            } => return Verdict::CannotCheck("sigstoreSigned with fulcio or pki (keyless)"),
            Requirement::SigstoreSigned { rekor: true, .. } => {
                return Verdict::CannotCheck("sigstoreSigned with a Rekor key");
            }
            Requirement::SigstoreSigned { .. } => signatures = true,
        }
    }
    if signatures {
        Verdict::NeedsSignatures
    } else {
        Verdict::Accepted
    }
}

/// The `docker` scopes that may name `image`, most specific first.
fn scopes_of(image: &Reference) -> Vec<String> {
    let registry = image.registry();
    let repository = format!("{registry}/{}", image.repository());
    let mut scopes = Vec::new();
    match (image.digest(), image.tag()) {
        (Some(digest), _) => scopes.push(format!("{repository}@{digest}")),
        (None, Some(tag)) => scopes.push(format!("{repository}:{tag}")),
        (None, None) => {}
    }
    let mut name = repository.as_str();
    scopes.push(name.to_owned());
    while let Some((parent, _)) = name.rsplit_once('/') {
        scopes.push(parent.to_owned());
        name = parent;
    }
    // Wildcards match the host's domains, without a port.
    let mut host = registry.split(':').next().unwrap_or(registry);
    while let Some((_, rest)) = host.split_once('.') {
        scopes.push(format!("*.{rest}"));
        host = rest;
    }
    scopes
}

/// Refuses a `docker` scope that could never name an image, so that a mistyped scope
/// meant to reject something is an error rather than silently ignored.
fn check_docker_scope(scope: &str, at: &str) -> Result<(), PolicyError> {
    if scope.is_empty() {
        return Ok(());
    }
    let bad = |why: &str| Err(invalid(at, format!("not a docker scope: {why}")));
    if scope.contains("://") {
        return bad("a scope has no scheme");
    }
    if scope.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad("it holds white space");
    }
    if scope.ends_with('/') || scope.starts_with('/') || scope.contains("//") {
        return bad("an empty path component");
    }
    if let Some(domain) = scope.strip_prefix("*.") {
        if domain.is_empty() || domain.contains(['/', ':', '*', '@']) {
            return bad("a wildcard names a domain only (*.example.com)");
        }
    } else if scope.contains('*') {
        return bad("a wildcard only leads the scope (*.example.com)");
    }
    Ok(())
}

fn object<'a>(value: &'a Value, at: &str) -> Result<&'a Map<String, Value>, PolicyError> {
    value
        .as_object()
        .ok_or_else(|| invalid(at, "not a JSON object"))
}

fn string(value: &Value, at: &str) -> Result<String, PolicyError> {
    value
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| invalid(at, "not a string"))
}

fn strings(value: &Value, at: &str) -> Result<Vec<String>, PolicyError> {
    let list = value
        .as_array()
        .ok_or_else(|| invalid(at, "not a list of strings"))?;
    if list.is_empty() {
        return Err(invalid(at, "an empty list"));
    }
    list.iter().map(|v| string(v, at)).collect()
}

fn requirements(
    value: &Value,
    at: &str,
    count: &mut usize,
) -> Result<Vec<Requirement>, PolicyError> {
    let list = value
        .as_array()
        .ok_or_else(|| invalid(at, "not a list of requirements"))?;
    if list.is_empty() {
        return Err(invalid(
            at,
            "no requirements (write insecureAcceptAnything or reject)",
        ));
    }
    *count = count.saturating_add(list.len()).saturating_add(1);
    if *count > MAX_ENTRIES {
        return Err(PolicyError::TooMany);
    }
    list.iter()
        .enumerate()
        .map(|(i, r)| requirement(r, &format!("{at}, requirement {}", i + 1)))
        .collect()
}

fn requirement(value: &Value, at: &str) -> Result<Requirement, PolicyError> {
    let fields = object(value, at)?;
    let kind = fields
        .get("type")
        .ok_or_else(|| invalid(at, "no \"type\""))
        .and_then(|t| string(t, at))?;
    let allowed: &[&str] = match kind.as_str() {
        "insecureAcceptAnything" | "reject" => &["type"],
        "signedBy" => &[
            "type",
            "keyType",
            "keyPath",
            "keyPaths",
            "keyData",
            "signedIdentity",
        ],
        "sigstoreSigned" => &[
            "type",
            "keyPath",
            "keyPaths",
            "keyData",
            "keyDatas",
            "fulcio",
            "pki",
            "rekorPublicKeyPath",
            "rekorPublicKeyPaths",
            "rekorPublicKeyData",
            "rekorPublicKeyDatas",
            "signedIdentity",
        ],
        other => {
            return Err(invalid(
                at,
                format!("unknown requirement type {}", untrusted(other)),
            ));
        }
    };
    if let Some(key) = fields.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(invalid(
            at,
            format!("unknown key {} for {kind}", untrusted(key)),
        ));
    }
    let identity = || match fields.get("signedIdentity") {
        None => Ok(SignedIdentity::MatchRepoDigestOrExact),
        Some(v) => signed_identity(v, &format!("{at}, signedIdentity")),
    };
    Ok(match kind.as_str() {
        "insecureAcceptAnything" => Requirement::InsecureAcceptAnything,
        "reject" => Requirement::Reject,
        "signedBy" => {
            let sources = ["keyPath", "keyPaths", "keyData"]
                .iter()
                .filter(|k| fields.contains_key(**k))
                .count();
            if sources != 1 {
                return Err(invalid(
                    at,
                    "signedBy needs exactly one of keyPath, keyPaths, keyData",
                ));
            }
            Requirement::SignedBy {
                identity: identity()?,
            }
        }
        _ => Requirement::SigstoreSigned {
            keys: key_source(fields, at)?,
            identity: identity()?,
            rekor: fields.keys().any(|k| k.starts_with("rekorPublicKey")),
        },
    })
}

fn key_source(fields: &Map<String, Value>, at: &str) -> Result<KeySource, PolicyError> {
    let present: Vec<&str> = [
        "keyPath", "keyPaths", "keyData", "keyDatas", "fulcio", "pki",
    ]
    .into_iter()
    .filter(|k| fields.contains_key(*k))
    .collect();
    let [key] = present[..] else {
        return Err(invalid(
            at,
            "sigstoreSigned needs exactly one of keyPath, keyPaths, keyData, keyDatas, fulcio, pki",
        ));
    };
    let value = fields.get(key).unwrap_or(&Value::Null);
    let at = format!("{at}, {key}");
    let decode = |text: String| {
        base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|_| invalid(&at, "not base64"))
    };
    Ok(match key {
        "keyPath" => KeySource::Paths(vec![string(value, &at)?]),
        "keyPaths" => KeySource::Paths(strings(value, &at)?),
        "keyData" => KeySource::Data(vec![decode(string(value, &at)?)?]),
        "keyDatas" => KeySource::Data(
            strings(value, &at)?
                .into_iter()
                .map(decode)
                .collect::<Result<_, _>>()?,
        ),
        _ => {
            object(value, &at)?;
            KeySource::Certificates
        }
    })
}

fn signed_identity(value: &Value, at: &str) -> Result<SignedIdentity, PolicyError> {
    let fields = object(value, at)?;
    let kind = fields
        .get("type")
        .ok_or_else(|| invalid(at, "no \"type\""))
        .and_then(|t| string(t, at))?;
    let allowed: &[&str] = match kind.as_str() {
        "matchExact" | "matchRepoDigestOrExact" | "matchRepository" => &["type"],
        "exactReference" => &["type", "dockerReference"],
        "exactRepository" => &["type", "dockerRepository"],
        "remapIdentity" => &["type", "prefix", "signedPrefix"],
        other => {
            return Err(invalid(
                at,
                format!("unknown signedIdentity type {}", untrusted(other)),
            ));
        }
    };
    if let Some(key) = fields.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(invalid(
            at,
            format!("unknown key {} for {kind}", untrusted(key)),
        ));
    }
    let field = |name: &str| {
        fields
            .get(name)
            .ok_or_else(|| invalid(at, format!("{kind} needs {name}")))
            .and_then(|v| string(v, at))
    };
    Ok(match kind.as_str() {
        "matchExact" => SignedIdentity::MatchExact,
        "matchRepoDigestOrExact" => SignedIdentity::MatchRepoDigestOrExact,
        "matchRepository" => SignedIdentity::MatchRepository,
        "exactReference" => SignedIdentity::ExactReference(field("dockerReference")?),
        "exactRepository" => SignedIdentity::ExactRepository(field("dockerRepository")?),
        _ => SignedIdentity::RemapIdentity {
            prefix: field("prefix")?,
            signed_prefix: field("signedPrefix")?,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(text: &str) -> Policy {
        Policy::parse(text.as_bytes()).unwrap()
    }

    fn error(text: &str) -> String {
        Policy::parse(text.as_bytes()).unwrap_err().to_string()
    }

    fn scope_for(policy: &Policy, image: &str) -> Scope {
        policy.for_image(&Reference::parse(image).unwrap()).0
    }

    const ACCEPT: &str = r#"[{"type":"insecureAcceptAnything"}]"#;
    const REJECT: &str = r#"[{"type":"reject"}]"#;

    #[test]
    fn debians_default_policy_accepts_anything() {
        let p = policy(r#"{"default":[{"type":"insecureAcceptAnything"}]}"#);
        let (scope, list) = p.for_image(&Reference::parse("debian:12").unwrap());
        assert_eq!(scope, Scope::Default);
        assert_eq!(verdict(list), Verdict::Accepted);
    }

    #[test]
    fn the_most_specific_docker_scope_applies() {
        let text = format!(
            r#"{{"default":{REJECT},"transports":{{"docker":{{
                "":{REJECT},
                "*.example.com":{ACCEPT},
                "reg.example.com:5000":{REJECT},
                "reg.example.com:5000/team":{ACCEPT},
                "reg.example.com:5000/team/app":{REJECT},
                "reg.example.com:5000/team/app:1":{ACCEPT},
                "docker.io/library/debian":{ACCEPT}
            }}}}}}"#
        );
        let p = policy(&text);
        let scope = |image| scope_for(&p, image).to_string();
        assert_eq!(
            scope("reg.example.com:5000/team/app:1"),
            "docker reg.example.com:5000/team/app:1"
        );
        assert_eq!(
            scope("reg.example.com:5000/team/app:2"),
            "docker reg.example.com:5000/team/app"
        );
        assert_eq!(
            scope("reg.example.com:5000/team/other/deep:1"),
            "docker reg.example.com:5000/team"
        );
        assert_eq!(
            scope("reg.example.com:5000/solo"),
            "docker reg.example.com:5000"
        );
        assert_eq!(scope("other.example.com/x"), "docker *.example.com");
        assert_eq!(scope("debian:12"), "docker docker.io/library/debian");
        assert_eq!(
            scope_for(&p, "quay.io/x/y"),
            Scope::TransportDefault,
            "the transport's default before the top default"
        );
    }

    #[test]
    fn a_pinned_image_matches_a_digest_scope_and_not_a_tag_scope() {
        let digest = format!("sha256:{}", "a".repeat(64));
        let text = format!(
            r#"{{"default":{REJECT},"transports":{{"docker":{{
                "r.example/app@{digest}":{ACCEPT},
                "r.example/app:latest":{ACCEPT}
            }}}}}}"#
        );
        let p = policy(&text);
        assert_eq!(
            scope_for(&p, &format!("r.example/app@{digest}")),
            Scope::Docker(format!("r.example/app@{digest}"))
        );
        assert_eq!(
            scope_for(&p, "r.example/app"),
            Scope::Docker("r.example/app:latest".into())
        );
        assert_eq!(scope_for(&p, "r.example/app:2"), Scope::Default);
    }

    #[test]
    fn the_first_requirement_that_does_not_hold_decides() {
        let p = policy(
            r#"{"default":[{"type":"insecureAcceptAnything"},{"type":"reject"}],
                "transports":{"docker":{"a.example":[
                    {"type":"sigstoreSigned","keyPath":"/k.pub"},{"type":"reject"}]}}}"#,
        );
        let (_, list) = p.for_image(&Reference::parse("b.example/x").unwrap());
        assert_eq!(verdict(list), Verdict::Rejected);
        // A reject after a signature requirement refuses before any signature is read.
        let (_, list) = p.for_image(&Reference::parse("a.example/x").unwrap());
        assert_eq!(verdict(list), Verdict::Rejected);
        let p = policy(
            r#"{"default":[{"type":"insecureAcceptAnything"},
                {"type":"sigstoreSigned","keyPath":"/k.pub"}]}"#,
        );
        let (_, list) = p.for_image(&Reference::parse("a.example/x").unwrap());
        assert_eq!(verdict(list), Verdict::NeedsSignatures);
    }

    #[test]
    fn sigstore_requirements_read_their_keys_and_identities() {
        let p = policy(
            r#"{"default":[{"type":"sigstoreSigned","keyDatas":["UEVN","S0VZ"],
                "signedIdentity":{"type":"remapIdentity","prefix":"a.example","signedPrefix":"b.example"}}],
              "transports":{"docker":{"x.example":[{"type":"sigstoreSigned","keyPaths":["/a","/b"],
                "signedIdentity":{"type":"exactRepository","dockerRepository":"x.example/app"}}],
                "y.example":[{"type":"sigstoreSigned","fulcio":{"caPath":"/ca"},"rekorPublicKeyPath":"/r"}]}}}"#,
        );
        assert_eq!(
            p.default,
            vec![Requirement::SigstoreSigned {
                keys: KeySource::Data(vec![b"PEM".to_vec(), b"KEY".to_vec()]),
                identity: SignedIdentity::RemapIdentity {
                    prefix: "a.example".into(),
                    signed_prefix: "b.example".into()
                },
                rekor: false,
            }]
        );
        assert_eq!(
            p.docker.get("x.example").unwrap()[..],
            [Requirement::SigstoreSigned {
                keys: KeySource::Paths(vec!["/a".into(), "/b".into()]),
                identity: SignedIdentity::ExactRepository("x.example/app".into()),
                rekor: false,
            }]
        );
        assert_eq!(
            p.docker.get("y.example").unwrap()[..],
            [Requirement::SigstoreSigned {
                keys: KeySource::Certificates,
                identity: SignedIdentity::MatchRepoDigestOrExact,
                rekor: true,
            }]
        );
        let (_, list) = p.for_image(&Reference::parse("y.example/a").unwrap());
        assert_eq!(
            verdict(list),
            Verdict::CannotCheck("sigstoreSigned with fulcio or pki (keyless)")
        );
    }

    #[test]
    fn signed_by_parses_only_to_be_refused() {
        let p = policy(
            r#"{"default":[{"type":"signedBy","keyType":"GPGKeys","keyPath":"/k.gpg",
                "signedIdentity":{"type":"matchRepository"}}]}"#,
        );
        let (_, list) = p.for_image(&Reference::parse("debian").unwrap());
        assert_eq!(verdict(list), Verdict::CannotCheck("signedBy (GPG)"));
    }

    #[test]
    fn an_image_layout_takes_the_most_specific_oci_scope() {
        let p = policy(&format!(
            r#"{{"default":{REJECT},"transports":{{"oci":{{
                "/srv/images/app:v1":{ACCEPT},
                "/srv/images":{ACCEPT},
                "/srv":{REJECT}}},
                "docker":{{"":{ACCEPT}}}}}}}"#
        ));
        let scope = |dir, image| p.for_layout(dir, image).0.to_string();
        assert_eq!(
            scope("/srv/images/app", Some("v1")),
            "oci /srv/images/app:v1"
        );
        assert_eq!(scope("/srv/images/app", Some("v2")), "oci /srv/images");
        assert_eq!(scope("/srv/other", None), "oci /srv");
        let (scope, list) = p.for_layout("/var/lib/x", None);
        assert_eq!((scope, verdict(list)), (Scope::Default, Verdict::Rejected));
    }

    #[test]
    fn other_transports_are_checked_but_never_apply() {
        let p = policy(&format!(
            r#"{{"default":{ACCEPT},"transports":{{"docker-daemon":{{"":{REJECT}}},
                "atomic":{{"anything goes":{REJECT}}}}}}}"#
        ));
        let (scope, list) = p.for_image(&Reference::parse("debian").unwrap());
        assert_eq!((scope, verdict(list)), (Scope::Default, Verdict::Accepted));
        let e = error(
            r#"{"default":[{"type":"reject"}],"transports":{"oci":{"":[{"type":"acceptAll"}]}}}"#,
        );
        assert!(e.contains("unknown requirement type acceptAll"), "{e}");
    }

    #[test]
    fn whatever_could_be_misread_as_more_lenient_is_an_error() {
        for (text, says) in [
            ("{", "not JSON"),
            (r#"{"transports":{}}"#, "no \"default\""),
            (r#"{"default":[]}"#, "no requirements"),
            (
                r#"{"default":[{"type":"insecureAcceptAnything"}],"defualt":[]}"#,
                "unknown key defualt",
            ),
            (
                r#"{"default":[{"type":"Reject"}]}"#,
                "unknown requirement type Reject",
            ),
            (
                r#"{"default":[{"type":"reject","scope":"x"}]}"#,
                "unknown key scope",
            ),
            (
                r#"{"default":[{"type":"sigstoreSigned"}]}"#,
                "exactly one of",
            ),
            (
                r#"{"default":[{"type":"sigstoreSigned","keyPath":"/a","keyData":"QQ=="}]}"#,
                "exactly one of",
            ),
            (
                r#"{"default":[{"type":"sigstoreSigned","keyData":"!!"}]}"#,
                "not base64",
            ),
            (
                r#"{"default":[{"type":"sigstoreSigned","keyPath":"/a","signedIdentity":{"type":"exactReference"}}]}"#,
                "exactReference needs dockerReference",
            ),
            (
                r#"{"default":[{"type":"sigstoreSigned","keyPath":"/a","signedIdentity":{"type":"matchAll"}}]}"#,
                "unknown signedIdentity type matchAll",
            ),
            (
                r#"{"default":[{"type":"reject"}],"transports":{"docker":{"docker://x.example":[{"type":"reject"}]}}}"#,
                "no scheme",
            ),
            (
                r#"{"default":[{"type":"reject"}],"transports":{"docker":{"x.example/":[{"type":"reject"}]}}}"#,
                "empty path component",
            ),
            (
                r#"{"default":[{"type":"reject"}],"transports":{"docker":{"x.*.example":[{"type":"reject"}]}}}"#,
                "only leads",
            ),
        ] {
            let e = error(text);
            assert!(e.contains(says), "{text}: {e}");
        }
    }

    #[test]
    fn a_huge_policy_is_refused_rather_than_walked() {
        let scopes: Vec<String> = (0..MAX_ENTRIES)
            .map(|i| format!(r#""r{i}.example":{REJECT}"#))
            .collect();
        let text = format!(
            r#"{{"default":{ACCEPT},"transports":{{"docker":{{{}}}}}}}"#,
            scopes.join(",")
        );
        assert_eq!(Policy::parse(text.as_bytes()), Err(PolicyError::TooMany));
    }
}
