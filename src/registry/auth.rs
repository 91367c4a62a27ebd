//! Registry credentials: which auth files are read, and the credential helpers they name.
//!
//! Credentials come from the files container tools share, in the order podman and skopeo
//! read them: `$REGISTRY_AUTH_FILE`, `$XDG_RUNTIME_DIR/containers/auth.json`, then
//! `~/.docker/config.json`. The first file with an answer for the registry wins. A file's
//! `auths` entry gives a user and password; `credHelpers` (per registry) and `credsStore`
//! (any registry) name a `docker-credential-<name>` program asked with `get`.
//! Credentials are never printed: errors name the file or the helper, never its content.
//! What the files and the helpers' answers mean is read in `format::registry_auth`.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::format::registry_auth::{
    AuthFile, RegistryCredentials, is_plain_helper_name, parse_helper_answer,
};
use crate::fs::bounded::{ReadError, read_bounded};

/// More than any real auth file; a larger one is refused, not read into memory.
const MAX_AUTH_FILE: u64 = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("cannot read registry auth file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("registry auth file {} is larger than 1 MiB", path.display())]
    TooLarge { path: PathBuf },
    /// A FIFO or device is refused before it is read, so it cannot hang or flood the run.
    #[error("registry auth file {} is not a regular file (it is {kind})", path.display())]
    NotAFile { path: PathBuf, kind: &'static str },
    #[error("registry auth file {} is not valid JSON: {source}", path.display())]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error(
        "the entry for {registry} in registry auth file {} is not base64 of USER:PASSWORD",
        path.display()
    )]
    BadEntry { path: PathBuf, registry: String },
    #[error(
        "registry auth file {} names the credential helper '{helper}', which is not a plain program name",
        path.display()
    )]
    BadHelperName { path: PathBuf, helper: String },
    #[error("credential helper docker-credential-{helper} for {registry} failed: {reason}")]
    Helper {
        helper: String,
        registry: String,
        reason: String,
    },
}

/// The auth files to look in, in order, from the environment.
pub fn auth_files(env: impl Fn(&str) -> Option<String>) -> Vec<PathBuf> {
    let mut files = Vec::new();
    if let Some(path) = env("REGISTRY_AUTH_FILE").filter(|p| !p.is_empty()) {
        files.push(PathBuf::from(path));
    }
    if let Some(dir) = env("XDG_RUNTIME_DIR").filter(|p| !p.is_empty()) {
        files.push(Path::new(&dir).join("containers/auth.json"));
    }
    if let Some(home) = env("HOME").filter(|p| !p.is_empty()) {
        files.push(Path::new(&home).join(".docker/config.json"));
    }
    files
}

/// The credentials for `registry` (`host[:port]`) and `repository`, from the first auth
/// file that has an answer; `None` when no file has one (anonymous access).
pub fn lookup(
    files: &[PathBuf],
    registry: &str,
    repository: &str,
) -> Result<Option<RegistryCredentials>, AuthError> {
    for path in files {
        let Some(file) = read_auth_file(path)? else {
            continue;
        };
        if let Some(found) = from_file(path, &file, registry, repository)? {
            return Ok(Some(found));
        }
    }
    Ok(None)
}

fn read_auth_file(path: &Path) -> Result<Option<AuthFile>, AuthError> {
    let bytes = match read_bounded(path, MAX_AUTH_FILE, "registry auth file") {
        Ok(bytes) => bytes,
        Err(e) if e.is_not_found() => return Ok(None),
        Err(ReadError::Io { source, .. }) => {
            return Err(AuthError::Read {
                path: path.to_path_buf(),
                source,
            });
        }
        Err(ReadError::NotAFile { kind, .. }) => {
            return Err(AuthError::NotAFile {
                path: path.to_path_buf(),
                kind,
            });
        }
        Err(ReadError::TooLarge { .. }) => {
            return Err(AuthError::TooLarge {
                path: path.to_path_buf(),
            });
        }
    };
    AuthFile::parse(&bytes)
        .map(Some)
        .map_err(|source| AuthError::Json {
            path: path.to_path_buf(),
            source,
        })
}

fn from_file(
    path: &Path,
    file: &AuthFile,
    registry: &str,
    repository: &str,
) -> Result<Option<RegistryCredentials>, AuthError> {
    let found = file
        .credentials(registry, repository)
        .map_err(|_| AuthError::BadEntry {
            path: path.to_path_buf(),
            registry: registry.to_string(),
        })?;
    if found.is_some() {
        return Ok(found);
    }
    match file.helper(registry) {
        Some(helper) => from_helper(path, helper, registry),
        None => Ok(None),
    }
}

/// Asks `docker-credential-<helper> get` for the registry's credentials. A helper that
/// knows none says so and exits non-zero: that is anonymous access, not an error.
fn from_helper(
    path: &Path,
    helper: &str,
    registry: &str,
) -> Result<Option<RegistryCredentials>, AuthError> {
    if !is_plain_helper_name(helper) {
        return Err(AuthError::BadHelperName {
            path: path.to_path_buf(),
            helper: crate::format::text::untrusted(helper),
        });
    }
    let failed = |reason: String| AuthError::Helper {
        helper: helper.to_string(),
        registry: registry.to_string(),
        reason,
    };
    let mut child = Command::new(format!("docker-credential-{helper}"))
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        // What a helper says on stderr may hold anything; it is not passed on.
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| failed(e.to_string()))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A helper that exits without reading is judged by its exit status below.
        let _ = stdin.write_all(registry.as_bytes());
    }
    let mut out = Vec::new();
    if let Some(stdout) = child.stdout.take() {
        stdout
            .take(MAX_AUTH_FILE)
            .read_to_end(&mut out)
            .map_err(|e| failed(e.to_string()))?;
    }
    let status = child.wait().map_err(|e| failed(e.to_string()))?;
    if !status.success() {
        return Ok(None);
    }
    parse_helper_answer(&out)
        .map(Some)
        .ok_or_else(|| failed("its answer is not the expected JSON".to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    #[test]
    fn looks_up_the_most_specific_entry_and_normalised_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auth.json");
        let enc = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        std::fs::write(
            &path,
            format!(
                r#"{{"auths":{{"https://reg.example:5000/v2/":{{"auth":"{}"}},"reg.example:5000/team":{{"auth":"{}"}}}}}}"#,
                enc("all:pw1"),
                enc("team:pw2")
            ),
        )
        .unwrap();
        let files = vec![dir.path().join("missing.json"), path];
        let found = lookup(&files, "reg.example:5000", "team/app")
            .unwrap()
            .unwrap();
        assert_eq!(found.username, "team");
        let found = lookup(&files, "reg.example:5000", "other")
            .unwrap()
            .unwrap();
        assert_eq!(
            (found.username.as_str(), found.password.as_str()),
            ("all", "pw1")
        );
        assert_eq!(lookup(&files, "elsewhere", "x").unwrap(), None);
        assert!(!format!("{found:?}").contains("pw1"));
    }

    #[test]
    fn a_fifo_as_auth_file_is_refused_at_once_instead_of_hanging_the_run() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("auth.json");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        let err = lookup(std::slice::from_ref(&fifo), "reg.example", "app").unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "registry auth file {} is not a regular file (it is a FIFO)",
                fifo.display()
            )
        );
    }
}
