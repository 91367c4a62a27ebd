//! Running the built `tako` binary in a per-test temporary directory.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

// Every test that runs tako imports this module; the runner comes with it.
pub use super::run::{Bounded, HANG_GUARD, Running, SLOW_GUARD, run_bounded};

pub const TEST_PUBLIC: &str = "l0D28J2fiIXvWPbeZP7wkaq+dB55Gl2ysigl9mQH29k=";
pub const TEST_SEED: &[u8; 32] = b"test-key-very-security-such-safe";

pub fn vectors() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors")
}

pub fn vector(name: &str) -> Vec<u8> {
    fs::read(vectors().join(name)).unwrap_or_else(|e| panic!("vector {name}: {e}"))
}

pub fn test_secret() -> String {
    String::from_utf8(vector("test-key.secret"))
        .unwrap()
        .trim()
        .to_string()
}

/// A command for the built binary with a clean environment for Tako's own
/// variables, so a developer's shell cannot change what a test sees.
pub fn tako_cmd() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tako"));
    for var in [
        "TAKO_SECRET_KEY",
        "http_proxy",
        "https_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "all_proxy",
        "ALL_PROXY",
        "no_proxy",
        "NO_PROXY",
        "DBUS_SYSTEM_BUS_ADDRESS",
        // Where netrc credentials come from (issue 10): a test sets them when it wants them.
        "NETRC",
        "CREDENTIALS_DIRECTORY",
        // Where registry credentials come from (issue 13), likewise.
        "REGISTRY_AUTH_FILE",
        "XDG_RUNTIME_DIR",
    ] {
        cmd.env_remove(var);
    }
    // A developer's own ~/.netrc must not change what a test sees; a test that
    // wants one sets HOME itself.
    cmd.env("HOME", "/nonexistent/tako-test-home");
    // Nor the host's registries.conf (issue 21: Debian's skopeo ships shortnames.conf
    // aliases): no file there is no configuration; a test that wants one points this
    // variable at a file it writes.
    cmd.env_remove("XDG_CONFIG_HOME");
    cmd.env(
        "CONTAINERS_REGISTRIES_CONF",
        "/nonexistent/tako-test-registries.conf",
    );
    cmd
}

/// `tako ARGS…` under the hang guard.
#[track_caller]
pub fn tako(args: &[&str]) -> Output {
    run_bounded(tako_cmd().args(args))
}

/// `tako fetch ARGS CONFIGS…` under the hang guard: how a test runs a fetch.
#[track_caller]
pub fn fetch(args: &[&str], configs: &[&Path]) -> Output {
    Fetch::new().run(args, configs)
}

/// [`fetch`] for a run that is slow on purpose (retries with backoff, a rate-limited
/// server), under the longer [`SLOW_GUARD`].
#[track_caller]
pub fn fetch_slow(args: &[&str], configs: &[&Path]) -> Output {
    Fetch::new().within(SLOW_GUARD).run(args, configs)
}

/// A `tako fetch` with more set up than [`fetch`] does: an environment, another guard, or a
/// run started in the background (to run beside others, or to be killed).
pub struct Fetch {
    cmd: Command,
    guard: Duration,
    stderr: Option<Stdio>,
}

impl Fetch {
    pub fn new() -> Fetch {
        Fetch {
            cmd: tako_cmd(),
            guard: HANG_GUARD,
            stderr: None,
        }
    }

    pub fn env(mut self, name: &str, value: impl AsRef<OsStr>) -> Fetch {
        self.cmd.env(name, value);
        self
    }

    pub fn env_remove(mut self, name: &str) -> Fetch {
        self.cmd.env_remove(name);
        self
    }

    pub fn within(mut self, guard: Duration) -> Fetch {
        self.guard = guard;
        self
    }

    /// Sends stderr to `to` (a file, say) instead of capturing it.
    pub fn stderr(mut self, to: impl Into<Stdio>) -> Fetch {
        self.stderr = Some(to.into());
        self
    }

    /// Runs `tako fetch ARGS CONFIGS…` to its end.
    #[track_caller]
    pub fn run(self, args: &[&str], configs: &[&Path]) -> Output {
        self.spawn(args, configs).finish()
    }

    /// Starts `tako fetch ARGS CONFIGS…`, its output captured.
    #[track_caller]
    pub fn spawn(mut self, args: &[&str], configs: &[&Path]) -> Running {
        self.cmd.arg("fetch").args(args).args(configs);
        let run = Bounded::new(&mut self.cmd).within(self.guard);
        match self.stderr {
            Some(to) => run.stderr(to).spawn(),
            None => run.spawn(),
        }
    }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts the exit code, showing the output when it differs.
#[track_caller]
pub fn assert_exit(o: &Output, code: i32) {
    assert_eq!(
        o.status.code(),
        Some(code),
        "stdout:\n{}\nstderr:\n{}",
        stdout(o),
        stderr(o)
    );
}

pub fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// The manifest an independent signer writes for these entry lines,
/// signed with the test key through ed25519-dalek directly.
pub fn signed_manifest(lines: &[String]) -> Vec<u8> {
    use base64::Engine;
    use ed25519_dalek::Signer;
    let mut body = String::from("Tako Manifest 1\n\n");
    for line in lines {
        body.push_str(line);
        body.push('\n');
    }
    body.push('\n');
    let key = ed25519_dalek::SigningKey::from_bytes(TEST_SEED);
    let sig = key.sign(body.as_bytes()).to_bytes();
    let sig = base64::engine::general_purpose::STANDARD.encode(sig);
    format!("{body}{sig}\n").into_bytes()
}

pub use super::images::noise;

/// The entry lines of the signed manifest `bytes` if its signature verifies with the public
/// key `public` (base64, as `tako gen-key` prints it), checked here with ed25519-dalek
/// directly rather than by tako: the header, a blank line, entry lines, a blank line, then
/// one line of base64 signature over everything before it.
pub fn verified_entries(bytes: &[u8], public: &str) -> Result<Vec<String>, String> {
    use base64::Engine;
    let base64 = &base64::engine::general_purpose::STANDARD;
    let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8".to_string())?;
    let body = text
        .strip_prefix("Tako Manifest 1\n\n")
        .ok_or("no `Tako Manifest 1` header and blank line")?;
    let (entries, signature) = body
        .split_once("\n\n")
        .or_else(|| body.strip_prefix('\n').map(|rest| ("", rest)))
        .ok_or("no blank line after the entries")?;
    let signature = signature
        .strip_suffix('\n')
        .filter(|s| !s.contains('\n'))
        .ok_or("not one signature line at the end")?;
    let signed = &bytes[..bytes.len() - signature.len() - 1];
    let signature: [u8; 64] = base64
        .decode(signature)
        .ok()
        .and_then(|s| s.try_into().ok())
        .ok_or("the signature is not base64 of 64 bytes")?;
    let public: [u8; 32] = base64
        .decode(public)
        .ok()
        .and_then(|k| k.try_into().ok())
        .ok_or("the public key is not base64 of 32 bytes")?;
    let key = ed25519_dalek::VerifyingKey::from_bytes(&public).map_err(|e| e.to_string())?;
    key.verify_strict(signed, &ed25519_dalek::Signature::from_bytes(&signature))
        .map_err(|_| "the signature does not verify with the key".to_string())?;
    Ok(entries.lines().map(str::to_string).collect())
}

/// A new secret key (`SECRET+…`) and its public key, as `tako gen-key` prints them.
pub fn gen_key() -> (String, String) {
    let o = tako(&["gen-key"]);
    assert_exit(&o, 0);
    let lines: Vec<String> = stdout(&o).lines().map(str::to_string).collect();
    (lines[1].clone(), lines[4].clone())
}

/// `tako store -k TEST_KEY -o OUTPUT --container IMAGE VERSION`.
pub fn store_container(output: &str, image: &str, version: &str) -> Output {
    tako(&[
        "store",
        "-k",
        &test_secret(),
        "-o",
        output,
        "--container",
        image,
        version,
    ])
}
