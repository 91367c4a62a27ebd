//! The host's signature policy (containers-policy.json(5)): which file, read bounded, and
//! whether it lets an image be pulled; the file is parsed by `format::oci::policy`.
//!
//! The file is `--policy FILE` if given; else `$XDG_CONFIG_HOME/containers/policy.json`
//! (`~/.config/…` without it) if it exists; else `/etc/containers/policy.json`. No file at
//! all is no policy: images are pulled as before, not signature-checked. A file that
//! cannot be read or does not parse stops the pull.
//!
//! What is decided before any request ([`check`]): `reject`, and requirements tako does
//! not check (`signedBy`, keyless or Rekor `sigstoreSigned`), which refuse the image: a
//! host that asks for signatures never gets an unsigned image through tako. The keys of
//! `sigstoreSigned` requirements are read then too. Once the manifest is known,
//! [`verify`] reads its cosign signatures from the registry (the tag `sha256-<hex>.sig`)
//! and each `sigstoreSigned` requirement must be satisfied by one of them; for an image
//! chosen from an index, a signature of the index or of the chosen manifest will do (issue
//! 21; skopeo 1.9, copying one platform, reads the chosen manifest's only). Image layouts
//! (`oci:`, in the experimental image proxy) are scoped by the `oci` transport
//! ([`check_layout`]); they carry no signature tako reads.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::pull::{PullError, Report};
use super::resolve::Source;
use crate::format::oci::digest::Digest;
use crate::format::oci::manifest::ParsedManifest;
use crate::format::oci::policy::{
    KeySource, Policy, PolicyError, Requirement, Scope, Verdict, verdict,
};
use crate::format::oci::reference::Reference;
use crate::format::oci::sigstore::{
    self, KeyError, MAX_KEY, MAX_PAYLOAD, MAX_SIGNATURES, PublicKey, SignatureLayer,
};
use crate::format::text::untrusted;
use crate::fs::bounded::{ReadError, read_bounded};
use crate::update::retry::RetryPolicy;

/// The largest policy.json read.
const MAX_FILE: u64 = 1024 * 1024;
const SYSTEM_FILE: &str = "/etc/containers/policy.json";

/// Which policy to apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyChoice {
    /// The host's file (see the module comment).
    Host,
    /// `--policy FILE`: must exist.
    File(PathBuf),
    /// `--insecure-policy`: none.
    Insecure,
}

#[derive(Debug, thiserror::Error)]
pub enum PolicyCheckError {
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error("the policy file {file} does not parse: {source}")]
    Parse {
        file: String,
        #[source]
        source: PolicyError,
    },
    #[error("policy.json {file} rejects {image} (scope {scope})")]
    Rejected {
        file: String,
        image: String,
        scope: String,
    },
    #[error(
        "policy.json {file} requires a signature ({requirement}) for {image} (scope {scope}), which tako does not check: refused (--insecure-policy pulls without the policy)"
    )]
    CannotCheck {
        file: String,
        image: String,
        scope: String,
        requirement: &'static str,
    },
    // The read error names the key file already.
    #[error("policy.json {file}: {source}")]
    KeyRead {
        file: String,
        key: String,
        #[source]
        source: ReadError,
    },
    #[error("policy.json {file}: the sigstore key {key}: {source}")]
    Key {
        file: String,
        key: String,
        #[source]
        source: KeyError,
    },
    #[error(
        "policy.json {file} requires a sigstore signature for {image} (scope {scope}), but no signature was found: the registry has no tag {tags}: refused"
    )]
    NoSignature {
        file: String,
        image: String,
        scope: String,
        tags: String,
    },
    #[error(
        "policy.json {file} requires a sigstore signature for {image} (scope {scope}), but an image layout carries no signature tako reads: refused"
    )]
    LayoutUnsigned {
        file: String,
        image: String,
        scope: String,
    },
    #[error(
        "policy.json {file} requires a sigstore signature for {image} (scope {scope}, requirement {requirement}), and no signature found satisfies it: {reasons}: refused"
    )]
    NotAccepted {
        file: String,
        image: String,
        scope: String,
        requirement: usize,
        reasons: String,
    },
}

/// What the policy says of an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The file, shown.
    pub file: String,
    pub scope: Scope,
    pub requirements: Vec<Requirement>,
    pub verdict: Verdict,
    /// The signatures that satisfied the `sigstoreSigned` requirements, once [`verify`]
    /// found them; one per requirement.
    pub signatures: Vec<Signed>,
    /// The keys of each `sigstoreSigned` requirement (by its index), read by [`apply`].
    keys: Vec<(usize, Vec<Key>)>,
}

/// A trusted key and where the policy named it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Key {
    shown: String,
    key: PublicKey,
}

/// The signature that satisfied one `sigstoreSigned` requirement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    /// The requirement's place in the scope's list, from 1.
    pub requirement: usize,
    /// The key: its file, or `keyData` and its place.
    pub key: String,
    /// The manifest or index signed.
    pub digest: Digest,
    /// Whether that is the index the image was chosen from.
    pub index: bool,
}

impl Signed {
    /// The signature, described: "key /etc/k.pub signed the index sha256:…".
    pub fn describe(&self) -> String {
        format!(
            "key {} signed the {} {}",
            self.key,
            if self.index { "index" } else { "manifest" },
            self.digest
        )
    }
}

impl Applied {
    /// What accepted the image, for a line: "accepted by sigstoreSigned (scope default of
    /// /etc/containers/policy.json); requirement 1: key /etc/k.pub signed the manifest …".
    pub fn describe(&self) -> String {
        let names: Vec<&str> = self.requirements.iter().map(Requirement::name).collect();
        let signatures: String = self
            .signatures
            .iter()
            .map(|s| format!("; requirement {}: {}", s.requirement, s.describe()))
            .collect();
        format!(
            "accepted by {} (scope {} of {}){signatures}",
            names.join(", "),
            self.scope,
            self.file
        )
    }

    /// The refusal, if the policy refuses the image (`image` as shown), before any
    /// signature is read.
    pub fn refusal(&self, image: &str) -> Option<PolicyCheckError> {
        let (file, image, scope) = (self.file.clone(), image.to_owned(), self.scope.to_string());
        match self.verdict {
            Verdict::Accepted | Verdict::NeedsSignatures => None,
            Verdict::Rejected => Some(PolicyCheckError::Rejected { file, image, scope }),
            Verdict::CannotCheck(requirement) => Some(PolicyCheckError::CannotCheck {
                file,
                image,
                scope,
                requirement,
            }),
        }
    }
}

/// The user's policy.json, if the user has one.
fn user_file() -> Option<PathBuf> {
    let config_home = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| {
            std::env::var_os("HOME")
                .map(PathBuf::from)
                .filter(|p| p.is_absolute())
                .map(|home| home.join(".config"))
        })?;
    Some(config_home.join("containers/policy.json")).filter(|p| p.exists())
}

/// The policy file `choice` names and its content; `None` for no policy.
fn load(choice: &PolicyChoice) -> Result<Option<(PathBuf, Policy)>, PolicyCheckError> {
    let (path, required) = match choice {
        PolicyChoice::Insecure => return Ok(None),
        PolicyChoice::File(path) => (path.clone(), true),
        PolicyChoice::Host => match user_file() {
            Some(path) => (path, true),
            None => (PathBuf::from(SYSTEM_FILE), false),
        },
    };
    parse_file(&path, required).map(|p| p.map(|p| (path, p)))
}

fn parse_file(path: &Path, required: bool) -> Result<Option<Policy>, PolicyCheckError> {
    let bytes = match read_bounded(path, MAX_FILE, "policy file") {
        Ok(bytes) => bytes,
        Err(e) if e.is_not_found() && !required => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    Policy::parse(&bytes)
        .map(Some)
        .map_err(|source| PolicyCheckError::Parse {
            file: untrusted(&path.display().to_string()),
            source,
        })
}

/// What the policy `choice` names says of `image`; `None` when there is no policy.
pub fn apply(
    choice: &PolicyChoice,
    image: &Reference,
) -> Result<Option<Applied>, PolicyCheckError> {
    let Some((path, policy)) = load(choice)? else {
        return Ok(None);
    };
    let (scope, requirements) = policy.for_image(image);
    let file = untrusted(&path.display().to_string());
    let verdict = verdict(requirements);
    let keys = match verdict {
        Verdict::NeedsSignatures => read_keys(&file, requirements)?,
        _ => Vec::new(),
    };
    Ok(Some(Applied {
        file,
        verdict,
        requirements: requirements.to_vec(),
        scope,
        signatures: Vec::new(),
        keys,
    }))
}

/// The keys of each `sigstoreSigned` requirement: key files read (bounded) and parsed now,
/// so that a missing or broken key stops the pull before any request.
fn read_keys(
    file: &str,
    requirements: &[Requirement],
) -> Result<Vec<(usize, Vec<Key>)>, PolicyCheckError> {
    let mut all = Vec::new();
    for (i, requirement) in requirements.iter().enumerate() {
        let Requirement::SigstoreSigned { keys, .. } = requirement else {
            continue;
        };
        let mut read = Vec::new();
        let pem = |shown: String, bytes: &[u8]| {
            PublicKey::from_pem(bytes)
                .map(|key| Key {
                    shown: shown.clone(),
                    key,
                })
                .map_err(|source| PolicyCheckError::Key {
                    file: file.to_owned(),
                    key: shown,
                    source,
                })
        };
        match keys {
            KeySource::Paths(paths) => {
                for path in paths {
                    let shown = untrusted(path);
                    let bytes = read_bounded(Path::new(path), MAX_KEY, "sigstore key").map_err(
                        |source| PolicyCheckError::KeyRead {
                            file: file.to_owned(),
                            key: shown.clone(),
                            source,
                        },
                    )?;
                    read.push(pem(shown, &bytes)?);
                }
            }
            KeySource::Data(datas) => {
                for (n, bytes) in datas.iter().enumerate() {
                    read.push(pem(format!("keyData {}", n + 1), bytes)?);
                }
            }
            // `verdict` refuses these before keys are read.
            KeySource::Certificates => continue,
        }
        all.push((i, read));
    }
    Ok(all)
}

/// Checks `image` against the policy before anything of it is fetched: `Ok(None)` when
/// there is no policy, the policy that accepted it, or the refusal.
pub fn check(
    choice: &PolicyChoice,
    image: &Reference,
) -> Result<Option<Applied>, PolicyCheckError> {
    let applied = apply(choice, image)?;
    if let Some(refusal) = applied.as_ref().and_then(|a| a.refusal(&image.to_string())) {
        return Err(refusal);
    }
    Ok(applied)
}

/// Checks the image layout at `dir` (its `ref.name` `image`, if named; `shown` names it
/// in messages) against the policy's `oci` transport, as containers/image does for
/// `oci:` images: scoped by the resolved directory. A layout carries no signature tako
/// reads, so a signature requirement refuses it as one without a signature.
pub fn check_layout(
    choice: &PolicyChoice,
    dir: &Path,
    image: Option<&str>,
    shown: &str,
) -> Result<Option<Applied>, PolicyCheckError> {
    let Some((path, policy)) = load(choice)? else {
        return Ok(None);
    };
    // As containers/image resolves it: absolute, symlinks followed. A directory that
    // cannot be resolved is scoped as written; opening it fails next.
    let resolved = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let resolved = resolved.to_string_lossy();
    let (scope, requirements) = policy.for_layout(&resolved, image);
    let applied = Applied {
        file: untrusted(&path.display().to_string()),
        verdict: verdict(requirements),
        requirements: requirements.to_vec(),
        scope,
        signatures: Vec::new(),
        keys: Vec::new(),
    };
    if let Some(refusal) = applied.refusal(shown) {
        return Err(refusal);
    }
    if applied.verdict == Verdict::NeedsSignatures {
        return Err(PolicyCheckError::LayoutUnsigned {
            file: applied.file,
            image: shown.to_owned(),
            scope: applied.scope.to_string(),
        });
    }
    Ok(Some(applied))
}

/// One signature layer as read from the registry.
struct Layer {
    media_type: String,
    signature: Option<String>,
    /// The payload, or why it was not read.
    payload: Result<Vec<u8>, String>,
}

/// The signature layers under the cosign tag of `digest`; `None` when there is no such tag.
fn signatures_of(
    source: &Source,
    digest: &Digest,
    retry: RetryPolicy,
    report: &dyn Report,
) -> Result<Option<Vec<Layer>>, PullError> {
    let tag = sigstore::signature_tag(digest);
    let fetched = match source.fetch(&tag, None, retry, report) {
        Ok(fetched) => fetched,
        Err(PullError::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    let ParsedManifest::Image { manifest, .. } = fetched.parsed else {
        return Err(PullError::Signatures {
            image: source.shown.clone(),
            tag,
            reason: "it is an index, not a manifest of signatures".to_owned(),
        });
    };
    if manifest.layers.len() > MAX_SIGNATURES {
        return Err(PullError::Signatures {
            image: source.shown.clone(),
            tag,
            reason: format!(
                "{} signatures, more than the {MAX_SIGNATURES} tako reads",
                manifest.layers.len()
            ),
        });
    }
    let mut layers = Vec::new();
    // All the payloads of one tag together are read up to MAX_PAYLOAD: a real one is
    // well under a kilobyte, and a hostile tag must not make tako hold 64 big ones.
    let mut budget = MAX_PAYLOAD;
    for layer in &manifest.layers {
        let payload = if layer.media_type != sigstore::SIMPLE_SIGNING {
            // Checked (and refused) by `sigstore::check`; not downloaded.
            Ok(Vec::new())
        } else if layer.size > budget {
            Err(format!(
                "its payload is {} bytes, more than the {budget} left of the {MAX_PAYLOAD} tako reads of one tag's signatures",
                layer.size
            ))
        } else {
            budget -= layer.size;
            let bytes = source.retrying(retry, report, |client| {
                client.read_blob(&layer.digest.to_string(), layer.size)
            })?;
            if bytes.len() as u64 == layer.size {
                Ok(bytes)
            } else {
                Err(format!(
                    "its payload is {} bytes, not the {} its descriptor says",
                    bytes.len(),
                    layer.size
                ))
            }
        };
        layers.push(Layer {
            media_type: layer.media_type.clone(),
            signature: layer
                .annotation(sigstore::SIGNATURE_ANNOTATION)
                .map(str::to_owned),
            payload,
        });
    }
    Ok(Some(layers))
}

/// The most reasons quoted when no signature satisfies a requirement.
const MAX_REASONS: usize = 4;

/// Checks the `sigstoreSigned` requirements of `applied` against the signatures the
/// registry holds for `image` (as the policy named it): each must be satisfied by one
/// signature of one of `candidates`, the digests that may carry them (the index the image
/// was chosen from, marked `true`, and the manifest). Records the signatures that did.
pub fn verify(
    applied: &mut Applied,
    image: &Reference,
    source: &Source,
    candidates: &[(Digest, bool)],
    retry: RetryPolicy,
    report: &dyn Report,
) -> Result<(), PullError> {
    if applied.verdict != Verdict::NeedsSignatures {
        return Ok(());
    }
    let mut found: HashMap<Digest, Option<Vec<Layer>>> = HashMap::new();
    let mut signed = Vec::new();
    for (i, keys) in &applied.keys {
        let Some(Requirement::SigstoreSigned { identity, .. }) = applied.requirements.get(*i)
        else {
            continue;
        };
        let public: Vec<PublicKey> = keys.iter().map(|k| k.key.clone()).collect();
        let mut reasons = Vec::new();
        let mut accepted = None;
        'candidates: for (digest, index) in candidates {
            if !found.contains_key(digest) {
                found.insert(*digest, signatures_of(source, digest, retry, report)?);
            }
            let Some(Some(layers)) = found.get(digest) else {
                continue;
            };
            for (n, layer) in layers.iter().enumerate() {
                let checked = match &layer.payload {
                    Ok(payload) => {
                        let layer = SignatureLayer {
                            media_type: &layer.media_type,
                            signature: layer.signature.as_deref(),
                            payload,
                        };
                        sigstore::check(&layer, &public, digest, image, identity)
                            .map(|key| public.iter().position(|k| k == key).unwrap_or(0))
                            .map_err(|e| e.to_string())
                    }
                    Err(why) => Err(why.clone()),
                };
                match checked {
                    Ok(k) => {
                        accepted = Some(Signed {
                            requirement: i + 1,
                            key: keys.get(k).map(|k| k.shown.clone()).unwrap_or_default(),
                            digest: *digest,
                            index: *index,
                        });
                        break 'candidates;
                    }
                    Err(reason) => reasons.push(format!(
                        "signature {} of {}: {reason}",
                        n + 1,
                        sigstore::signature_tag(digest)
                    )),
                }
            }
        }
        match accepted {
            Some(accepted) => signed.push(accepted),
            None if reasons.is_empty() => {
                let tags: Vec<String> = candidates
                    .iter()
                    .map(|(d, _)| sigstore::signature_tag(d))
                    .collect();
                return Err(PolicyCheckError::NoSignature {
                    file: applied.file.clone(),
                    image: image.to_string(),
                    scope: applied.scope.to_string(),
                    tags: tags.join(" nor "),
                }
                .into());
            }
            None => {
                let more = reasons.len().saturating_sub(MAX_REASONS);
                reasons.truncate(MAX_REASONS);
                if more > 0 {
                    reasons.push(format!("{more} more"));
                }
                return Err(PolicyCheckError::NotAccepted {
                    file: applied.file.clone(),
                    image: image.to_string(),
                    scope: applied.scope.to_string(),
                    requirement: i + 1,
                    reasons: reasons.join("; "),
                }
                .into());
            }
        }
    }
    applied.signatures = signed;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image() -> Reference {
        Reference::parse("r.example/team/app:1").unwrap()
    }

    #[test]
    fn a_missing_host_file_is_no_policy_but_a_missing_named_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            parse_file(&dir.path().join("none.json"), false).unwrap(),
            None
        );
        let e = check(&PolicyChoice::File(dir.path().join("none.json")), &image())
            .unwrap_err()
            .to_string();
        assert!(e.contains("none.json"), "{e}");
        assert_eq!(check(&PolicyChoice::Insecure, &image()).unwrap(), None);
    }

    #[test]
    fn a_rejecting_scope_names_the_file_the_image_and_the_scope() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("policy.json");
        std::fs::write(
            &file,
            r#"{"default":[{"type":"insecureAcceptAnything"}],
                "transports":{"docker":{"r.example/team":[{"type":"reject"}]}}}"#,
        )
        .unwrap();
        let e = check(&PolicyChoice::File(file.clone()), &image())
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            format!(
                "policy.json {} rejects r.example/team/app:1 (scope docker r.example/team)",
                file.display()
            )
        );
        let other = Reference::parse("r.example/solo").unwrap();
        let applied = check(&PolicyChoice::File(file), &other).unwrap().unwrap();
        assert_eq!(applied.scope, Scope::Default);
        assert_eq!(applied.verdict, Verdict::Accepted);
    }

    #[test]
    fn an_image_layout_is_scoped_by_its_resolved_directory_and_never_passes_a_signature_requirement()
     {
        let dir = tempfile::tempdir().unwrap();
        let layouts = dir.path().join("layouts");
        std::fs::create_dir_all(layouts.join("app")).unwrap();
        std::os::unix::fs::symlink(layouts.join("app"), dir.path().join("link")).unwrap();
        let resolved = std::fs::canonicalize(&layouts).unwrap();
        let file = dir.path().join("policy.json");
        let policy = |scoped: &str| {
            std::fs::write(
                &file,
                format!(
                    r#"{{"default":[{{"type":"reject"}}],
                        "transports":{{"oci":{{"{}":[{scoped}]}}}}}}"#,
                    resolved.display()
                ),
            )
            .unwrap();
            PolicyChoice::File(file.clone())
        };
        let accept = policy(r#"{"type":"insecureAcceptAnything"}"#);
        let applied = check_layout(&accept, &dir.path().join("link"), Some("v1"), "oci:link")
            .unwrap()
            .unwrap();
        assert_eq!(
            applied.scope,
            Scope::Oci(resolved.display().to_string()),
            "the symlink is resolved"
        );
        let e = check_layout(&accept, dir.path(), None, "oci:elsewhere")
            .unwrap_err()
            .to_string();
        assert!(e.contains("rejects oci:elsewhere (scope default)"), "{e}");
        let signed = policy(r#"{"type":"sigstoreSigned","keyData":"eA=="}"#);
        let e = check_layout(&signed, &layouts.join("app"), None, "oci:app")
            .unwrap_err()
            .to_string();
        assert!(e.contains("an image layout carries no signature"), "{e}");
    }

    #[test]
    fn a_sigstore_key_that_cannot_be_read_stops_the_pull_before_any_request() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("policy.json");
        std::fs::write(
            &file,
            r#"{"default":[{"type":"sigstoreSigned","keyPath":"/etc/k.pub"}]}"#,
        )
        .unwrap();
        let e = check(&PolicyChoice::File(file), &image())
            .unwrap_err()
            .to_string();
        assert!(e.contains("cannot read the sigstore key /etc/k.pub"), "{e}");
    }
}
