//! `tako gen-key`: output layout, key validity and uniqueness.

use crate::support;

use support::tako::*;

fn lines(o: &std::process::Output) -> Vec<String> {
    stdout(o).lines().map(str::to_string).collect()
}

#[test]
fn prints_a_key_pair_in_the_documented_layout() {
    let dir = tempfile::tempdir().unwrap();
    let o = run_bounded(tako_cmd().arg("gen-key").current_dir(dir.path()));
    assert_exit(&o, 0);
    let l = lines(&o);
    assert_eq!(l.len(), 5, "{l:?}");
    assert_eq!(
        l[0],
        "Key pair including secret key (save to an encrypted secret store):"
    );
    assert!(l[1].starts_with("SECRET+"));
    assert_eq!(l[1].len(), 135);
    assert_eq!(l[2], "");
    assert_eq!(l[3], "Public key:");
    assert_eq!(l[4].len(), 44);
    assert!(stdout(&o).ends_with('\n'));
    // It writes nothing to disk.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn the_printed_secret_key_belongs_to_the_printed_public_key() {
    let o = tako(&["gen-key"]);
    let l = lines(&o);
    // SECRET+ is followed by the base64 of seed ‖ public ‖ public; the seed alone makes
    // the key pair, and both copies of its public half are the printed public key.
    use base64::Engine;
    let base64 = &base64::engine::general_purpose::STANDARD;
    let secret = base64
        .decode(l[1].strip_prefix("SECRET+").unwrap())
        .unwrap();
    assert_eq!(secret.len(), 96);
    let seed: [u8; 32] = secret[..32].try_into().unwrap();
    let public = ed25519_dalek::SigningKey::from_bytes(&seed).verifying_key();
    assert_eq!(base64.encode(public.as_bytes()), l[4]);
    assert_eq!(base64.encode(&secret[32..64]), l[4]);
    assert_eq!(base64.encode(&secret[64..]), l[4]);
}

#[test]
fn every_run_makes_a_new_key() {
    let a = lines(&tako(&["gen-key"]));
    let b = lines(&tako(&["gen-key"]));
    assert_ne!(a[1], b[1]);
    assert_ne!(a[4], b[4]);
}

#[test]
fn refuses_arguments() {
    let o = tako(&["gen-key", "extra"]);
    assert_exit(&o, 2);
}

#[test]
fn a_full_stdout_is_an_error_not_a_panic() {
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let o = Bounded::new(tako_cmd().arg("gen-key")).stdout(full).run();
    assert_exit(&o, 1);
    assert_eq!(
        stderr(&o),
        "tako: error: cannot write to standard output: No space left on device (os error 28)\n"
    );
}
