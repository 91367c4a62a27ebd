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
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::format::registry_auth::{
    AuthFile, RegistryCredentials, is_plain_helper_name, parse_helper_answer,
};
use crate::fs::bounded::{ReadError, read_bounded};
use crate::fs::warnings;

/// More than any real auth file; a larger one is refused, not read into memory.
const MAX_AUTH_FILE: u64 = 1024 * 1024;

/// The longest a credential helper may take to answer (less when `--max-time` leaves
/// less): a helper that hangs (a locked keyring waiting for a password nobody types) must
/// not hold up a service's start or a timer's run.
pub const HELPER_TIME: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("cannot read registry auth file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// `REGISTRY_AUTH_FILE` names a file that is not there: a typo, which silently reading
    /// no credentials would hide.
    #[error(
        "cannot read registry auth file {} (named by REGISTRY_AUTH_FILE): {source}",
        path.display()
    )]
    Named {
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
    #[error(
        "credential helper docker-credential-{helper} (named in {}) for {registry} failed: {reason}",
        path.display()
    )]
    Helper {
        helper: String,
        path: PathBuf,
        registry: String,
        reason: String,
    },
}

/// One registry auth file to look in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthPath {
    pub path: PathBuf,
    /// Named by `REGISTRY_AUTH_FILE`: it must be there and readable. The others are looked
    /// for on the off chance.
    pub named: bool,
}

/// Credentials found, with where they came from: a registry that refuses them is fixed
/// there, so its message names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub credentials: RegistryCredentials,
    /// "registry auth file /root/.docker/config.json", "credential helper …".
    pub from: String,
}

/// The auth files to look in, in order, from the environment.
pub fn auth_files(env: impl Fn(&str) -> Option<String>) -> Vec<AuthPath> {
    let mut files = Vec::new();
    if let Some(path) = env("REGISTRY_AUTH_FILE").filter(|p| !p.is_empty()) {
        files.push(AuthPath {
            path: PathBuf::from(path),
            named: true,
        });
    }
    let optional = |path: PathBuf| AuthPath { path, named: false };
    if let Some(dir) = env("XDG_RUNTIME_DIR").filter(|p| !p.is_empty()) {
        files.push(optional(Path::new(&dir).join("containers/auth.json")));
    }
    if let Some(home) = env("HOME").filter(|p| !p.is_empty()) {
        files.push(optional(Path::new(&home).join(".docker/config.json")));
    }
    files
}

/// The files of [`auth_files`] as a message lists them: "a, b or c".
pub fn looked_in(files: &[AuthPath]) -> String {
    let names: Vec<String> = files
        .iter()
        .map(|f| crate::format::text::untrusted(&f.path.display().to_string()))
        .collect();
    match names.split_last() {
        None => {
            "no registry auth file (REGISTRY_AUTH_FILE, XDG_RUNTIME_DIR and HOME are all unset)"
                .to_owned()
        }
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

/// The credentials for `registry` (`host[:port]`) and `repository`, from the first auth
/// file that has an answer; `None` when no file has one (anonymous access). A credential
/// helper a file names gets `helper_time` to answer.
pub fn lookup(
    files: &[AuthPath],
    registry: &str,
    repository: &str,
    helper_time: Duration,
) -> Result<Option<Found>, AuthError> {
    for file in files {
        let Some(parsed) = read_auth_file(file)? else {
            continue;
        };
        if let Some(found) = from_file(&file.path, &parsed, registry, repository, helper_time)? {
            return Ok(Some(found));
        }
    }
    Ok(None)
}

/// The auth file, or `None` when an optional one is missing or unreadable (the latter with
/// a warning, once per run: a home directory the user may not enter is no reason to fail
/// a pull from a registry that needs no credentials).
fn read_auth_file(file: &AuthPath) -> Result<Option<AuthFile>, AuthError> {
    let path = &file.path;
    let bytes = match read_bounded(path, MAX_AUTH_FILE, "registry auth file") {
        Ok(bytes) => bytes,
        Err(e) if e.is_not_found() && !file.named => return Ok(None),
        Err(e) if !file.named => {
            warnings::once(
                path,
                format!(
                    "{e}; going on without it (set REGISTRY_AUTH_FILE to name the auth file to use)"
                ),
            );
            return Ok(None);
        }
        Err(ReadError::Io { source, .. }) => {
            return Err(AuthError::Named {
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
    helper_time: Duration,
) -> Result<Option<Found>, AuthError> {
    let found = file
        .credentials(registry, repository)
        .map_err(|_| AuthError::BadEntry {
            path: path.to_path_buf(),
            registry: registry.to_string(),
        })?;
    if let Some(credentials) = found {
        return Ok(Some(Found {
            credentials,
            from: format!("registry auth file {}", path.display()),
        }));
    }
    match file.helper(registry) {
        Some(helper) => from_helper(path, helper, registry, helper_time),
        None => Ok(None),
    }
}

/// Asks `docker-credential-<helper> get` for the registry's credentials, giving it `limit`
/// to answer; one that takes longer is killed. A helper that knows none says so and exits
/// non-zero: that is anonymous access, not an error.
fn from_helper(
    path: &Path,
    helper: &str,
    registry: &str,
    limit: Duration,
) -> Result<Option<Found>, AuthError> {
    if !is_plain_helper_name(helper) {
        return Err(AuthError::BadHelperName {
            path: path.to_path_buf(),
            helper: crate::format::text::untrusted(helper),
        });
    }
    let program = format!("docker-credential-{helper}");
    let failed = |reason: String| AuthError::Helper {
        helper: helper.to_string(),
        path: path.to_path_buf(),
        registry: registry.to_string(),
        reason,
    };
    let Some(out) = run_helper(&program, registry, limit).map_err(failed)? else {
        return Ok(None);
    };
    let credentials = parse_helper_answer(&out)
        .ok_or_else(|| failed("its answer is not the expected JSON".to_string()))?;
    Ok(Some(Found {
        credentials,
        from: format!("credential helper {program} (named in {})", path.display()),
    }))
}

/// Runs `program get` with `registry` on its standard input and returns what it printed,
/// or `None` when it exits non-zero. A helper still running after `limit` is killed; the
/// error says so. Its output is read on a thread of its own, so neither a helper that
/// never writes nor one whose children keep the pipe open can block the run.
fn run_helper(program: &str, registry: &str, limit: Duration) -> Result<Option<Vec<u8>>, String> {
    let deadline = Instant::now() + limit;
    let mut child = Command::new(program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        // What a helper says on stderr may hold anything; it is not passed on.
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    if let Some(mut stdin) = child.stdin.take() {
        // A helper that exits without reading is judged by its exit status below; the
        // registry name is far smaller than a pipe's buffer, so this does not block.
        let _ = stdin.write_all(registry.as_bytes());
    }
    let (sender, answer) = mpsc::channel();
    if let Some(stdout) = child.stdout.take() {
        std::thread::spawn(move || {
            let mut out = Vec::new();
            let read = stdout.take(MAX_AUTH_FILE).read_to_end(&mut out);
            let _ = sender.send(read.map(|_| out));
        });
    }
    let timed_out = || {
        let within = if limit.as_secs() > 0 {
            format!("{} s", limit.as_secs())
        } else {
            format!("{} ms", limit.as_millis())
        };
        format!("it did not answer within {within} and was stopped")
    };
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(timed_out());
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(e.to_string()),
        }
    };
    if !status.success() {
        return Ok(None);
    }
    let left = deadline.saturating_duration_since(Instant::now());
    match answer.recv_timeout(left) {
        Ok(Ok(out)) => Ok(Some(out)),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(timed_out()),
    }
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
        let optional = |path: PathBuf| AuthPath { path, named: false };
        let files = vec![
            optional(dir.path().join("missing.json")),
            optional(path.clone()),
        ];
        let found = lookup(&files, "reg.example:5000", "team/app", HELPER_TIME)
            .unwrap()
            .unwrap();
        assert_eq!(found.credentials.username, "team");
        assert_eq!(found.from, format!("registry auth file {}", path.display()));
        let found = lookup(&files, "reg.example:5000", "other", HELPER_TIME)
            .unwrap()
            .unwrap()
            .credentials;
        assert_eq!(
            (found.username.as_str(), found.password.as_str()),
            ("all", "pw1")
        );
        assert_eq!(lookup(&files, "elsewhere", "x", HELPER_TIME).unwrap(), None);
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
        let file = AuthPath {
            path: fifo.clone(),
            named: true,
        };
        let err = lookup(&[file], "reg.example", "app", HELPER_TIME).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "registry auth file {} is not a regular file (it is a FIFO)",
                fifo.display()
            )
        );
    }

    #[test]
    fn a_missing_auth_file_named_by_registry_auth_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let typo = dir.path().join("auth.jsno");
        let file = AuthPath {
            path: typo.clone(),
            named: true,
        };
        let err = lookup(&[file], "reg.example", "app", HELPER_TIME).unwrap_err();
        let text = err.to_string();
        assert!(text.contains(&typo.display().to_string()), "{text}");
        assert!(text.contains("REGISTRY_AUTH_FILE"), "{text}");
    }

    #[test]
    fn the_files_looked_in_are_listed_by_their_paths() {
        let files = auth_files(|name| match name {
            "REGISTRY_AUTH_FILE" => Some("/a/auth.json".to_owned()),
            "HOME" => Some("/home/u".to_owned()),
            _ => None,
        });
        assert_eq!(
            looked_in(&files),
            "/a/auth.json or /home/u/.docker/config.json"
        );
        assert!(looked_in(&[]).contains("REGISTRY_AUTH_FILE"));
    }

    #[test]
    fn a_credential_helper_that_hangs_is_stopped_at_its_time_limit() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let helper = dir.path().join("docker-credential-hangs");
        std::fs::write(&helper, "#!/bin/sh\nexec sleep 60\n").unwrap();
        std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
        let started = Instant::now();
        let err = run_helper(
            helper.to_str().unwrap(),
            "reg.example",
            Duration::from_millis(300),
        )
        .unwrap_err();
        assert!(err.contains("did not answer"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(10));
    }
}
