//! Running the built `tako` binary in a per-test temporary directory.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

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
    ] {
        cmd.env_remove(var);
    }
    // A developer's own ~/.netrc must not change what a test sees; a test that
    // wants one sets HOME itself.
    cmd.env("HOME", "/nonexistent/tako-test-home");
    cmd
}

pub fn tako(args: &[&str]) -> Output {
    tako_cmd().args(args).output().expect("run tako")
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

/// How long a tako run may take in a test before it counts as hung.
pub const HANG_GUARD: std::time::Duration = std::time::Duration::from_secs(30);

/// Runs `cmd` with no input, killing it and failing the test if it has not ended within
/// [`HANG_GUARD`]: a guard against hangs, not a measure of speed.
#[track_caller]
pub fn run_bounded(cmd: &mut Command) -> Output {
    run_bounded_within(cmd, HANG_GUARD)
}

/// [`run_bounded`] with a longer guard, for runs that are slow on purpose (a rate-limited
/// server, retries with backoff).
#[track_caller]
pub fn run_bounded_within(cmd: &mut Command, guard: std::time::Duration) -> Output {
    use std::process::Stdio;
    use std::time::{Duration, Instant};
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start tako");
    let start = Instant::now();
    while child.try_wait().expect("wait for tako").is_none() {
        if start.elapsed() > guard {
            let _ = child.kill();
            let o = child.wait_with_output().expect("collect tako's output");
            panic!(
                "tako did not finish within {guard:?} and was killed\nstdout:\n{}\nstderr:\n{}",
                stdout(&o),
                stderr(&o)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("collect tako's output")
}

/// Deterministic pseudo-random bytes (xorshift): content-defined chunking cuts them into
/// chunks whose boundaries depend on the content, as on a real image.
pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}
