//! The host's signature policy (containers-policy.json(5)): which file, read bounded, and
//! whether it lets an image be pulled; the file is parsed by `format::oci::policy`.
//!
//! The file is `--policy FILE` if given; else `$XDG_CONFIG_HOME/containers/policy.json`
//! (`~/.config/…` without it) if it exists; else `/etc/containers/policy.json`. No file at
//! all is no policy: images are pulled as before, not signature-checked. A file that
//! cannot be read or does not parse stops the pull. Signature requirements
//! (`sigstoreSigned`, `signedBy`) cannot be checked by this version of tako and refuse the
//! image: a host that asks for signatures never gets an unsigned image through tako.

use std::path::{Path, PathBuf};

use crate::format::oci::policy::{Policy, PolicyError, Requirement, Scope, Verdict, verdict};
use crate::format::oci::reference::Reference;
use crate::format::text::untrusted;
use crate::fs::bounded::{ReadError, read_bounded};

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
        "policy.json {file} requires a signature ({requirement}) for {image} (scope {scope}), which this version of tako cannot check: refused (--insecure-policy pulls without the policy)"
    )]
    CannotCheck {
        file: String,
        image: String,
        scope: String,
        requirement: &'static str,
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
}

impl Applied {
    /// The refusal, if the policy refuses the image.
    pub fn refusal(&self, image: &Reference) -> Option<PolicyCheckError> {
        let (file, image, scope) = (self.file.clone(), image.to_string(), self.scope.to_string());
        match self.verdict {
            Verdict::Accepted => None,
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
    Ok(Some(Applied {
        file: untrusted(&path.display().to_string()),
        verdict: verdict(requirements),
        requirements: requirements.to_vec(),
        scope,
    }))
}

/// Checks `image` against the policy before anything of it is fetched: `Ok(None)` when
/// there is no policy, the policy that accepted it, or the refusal.
pub fn check(
    choice: &PolicyChoice,
    image: &Reference,
) -> Result<Option<Applied>, PolicyCheckError> {
    let applied = apply(choice, image)?;
    if let Some(refusal) = applied.as_ref().and_then(|a| a.refusal(image)) {
        return Err(refusal);
    }
    Ok(applied)
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
    fn a_signature_requirement_is_refused_as_uncheckable() {
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
        assert!(
            e.contains("cannot check") && e.contains("sigstoreSigned"),
            "{e}"
        );
        assert!(e.contains("scope default"), "{e}");
    }
}
