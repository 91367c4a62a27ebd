//! Key rotation: several trusted keys, `manifest.<keyid>` files, `tako key-id`, and the
//! emergency replacement of a leaked key, seen from the publisher's directory and the hosts.

use crate::support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use support::http_server::{Fault, Server};
use support::tako::*;

/// The test key's id: `base64 -d | sha256sum | cut -c1-16` of its public key.
const TEST_KEY_ID: &str = "9ee3a79654281274";

/// A key pair as `tako gen-key` prints it, with its id from `tako key-id`.
#[derive(Clone)]
struct Key {
    secret: String,
    public: String,
    id: String,
}

impl Key {
    fn generate() -> Key {
        let o = tako(&["gen-key"]);
        assert_exit(&o, 0);
        let lines: Vec<String> = stdout(&o).lines().map(str::to_string).collect();
        let (secret, public) = (lines[1].clone(), lines[4].clone());
        let id = key_id(&public);
        Key { secret, public, id }
    }

    fn vector() -> Key {
        Key {
            secret: test_secret(),
            public: TEST_PUBLIC.to_string(),
            id: TEST_KEY_ID.to_string(),
        }
    }

    fn manifest_name(&self) -> String {
        format!("manifest.{}", self.id)
    }
}

fn key_id(public: &str) -> String {
    let o = tako(&["key-id", public]);
    assert_exit(&o, 0);
    stdout(&o).trim_end().to_string()
}

fn content(version: &str) -> Vec<u8> {
    format!("image of version {version}\n").into_bytes()
}

fn warnings(o: &Output) -> Vec<String> {
    stderr(o)
        .lines()
        .filter(|l| l.starts_with("tako: warning:"))
        .map(str::to_string)
        .collect()
}

/// Does `bytes` verify as a manifest with `key`, and with which entries?
fn entry_lines(bytes: &[u8], key: &Key) -> Result<Vec<String>, String> {
    verified_entries(bytes, &key.public)
}

/// A publisher's server directory, served over HTTP on 127.0.0.1.
struct Origin {
    dir: tempfile::TempDir,
    server: Server,
}

impl Origin {
    fn new() -> Origin {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("out")).unwrap();
        let server = Server::serve_dir(dir.path().join("out"));
        Origin { dir, server }
    }

    fn out(&self) -> PathBuf {
        self.dir.path().join("out")
    }

    fn file(&self, name: &str) -> Option<Vec<u8>> {
        fs::read(self.out().join(name)).ok()
    }

    /// The manifest files in the directory, sorted.
    fn manifest_files(&self) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(self.out())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.starts_with("manifest"))
            .collect();
        names.sort();
        names
    }

    /// `tako store` with each key from its own key file, in order.
    fn store(&self, keys: &[&Key], extra: &[&str], version: &str, image: &[u8]) -> Output {
        let image_path = self.dir.path().join(format!("image-{version}"));
        fs::write(&image_path, image).unwrap();
        let mut args: Vec<String> = vec!["store".into()];
        for key in keys {
            let path = self.dir.path().join(format!("{}.key", key.id));
            fs::write(&path, format!("{}\n", key.secret)).unwrap();
            args.extend(["--key-file".into(), path.display().to_string()]);
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        args.extend([
            "-o".into(),
            self.out().display().to_string(),
            "--".into(),
            image_path.display().to_string(),
            version.into(),
        ]);
        run_bounded(tako_cmd().args(&args))
    }

    /// Publishes `version` with `keys` (and `extra` options); returns its digest.
    fn publish(&self, keys: &[&Key], extra: &[&str], version: &str) -> String {
        let o = self.store(keys, extra, version, &content(version));
        assert_exit(&o, 0);
        sha256_hex(&content(version))
    }

    /// Requests for manifest files made while running `f`.
    fn manifest_requests<T>(&self, f: impl FnOnce() -> T) -> (T, Vec<String>) {
        let before = self.server.requests().len();
        let result = f();
        let requests = self.server.requests()[before..]
            .iter()
            .filter(|p| p.starts_with("/manifest"))
            .cloned()
            .collect();
        (result, requests)
    }
}

/// A host with its own destination and config.
struct Host {
    dir: tempfile::TempDir,
    name: &'static str,
}

impl Host {
    fn new(name: &'static str) -> Host {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("dest")).unwrap();
        Host { dir, name }
    }

    fn dest(&self) -> PathBuf {
        self.dir.path().join("dest")
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("host.tako")
    }

    /// Writes the config with one `PublicKey=` line per key, in order.
    fn trust(&self, origin: &Origin, keys: &[&Key]) {
        let mut text = format!(
            "Origin={}\nDestination={}\nVersion=*\n",
            origin.server.url(),
            self.dest().display()
        );
        for key in keys {
            text.push_str(&format!("PublicKey={}\n", key.public));
        }
        fs::write(self.config(), text).unwrap();
    }

    fn fetch(&self, args: &[&str]) -> Output {
        fetch(args, &[&self.config()])
    }

    fn latest(&self) -> Option<PathBuf> {
        fs::read_link(self.dest().join("latest")).ok()
    }

    #[track_caller]
    fn assert_has(&self, version: &str) {
        let digest = sha256_hex(&content(version));
        assert_eq!(
            self.latest(),
            Some(Path::new("store").join(&digest)),
            "host {}: where latest points",
            self.name
        );
        assert_eq!(
            fs::read(self.dest().join("latest")).unwrap(),
            content(version),
            "host {}",
            self.name
        );
    }

    fn local_manifest(&self) -> Vec<u8> {
        fs::read(self.dest().join("manifest")).unwrap()
    }
}

/// Runs `fetch --init` and then `fetch` on `host`, both of which must succeed and leave
/// `version` installed; returns the warnings both printed.
#[track_caller]
fn update(host: &Host, version: &str) -> Vec<String> {
    let init = host.fetch(&["--init"]);
    assert_exit(&init, 0);
    let fetch = host.fetch(&[]);
    assert_exit(&fetch, 0);
    host.assert_has(version);
    let mut all = warnings(&init);
    all.extend(warnings(&fetch));
    all
}

#[test]
fn a_whole_key_rotation_keeps_every_host_updating_with_one_config_change_each() {
    let k1 = Key::generate();
    let k2 = Key::generate();
    let origin = Origin::new();

    // Before: K1 alone.
    origin.publish(&[&k1], &[], "1.0");
    let early = Host::new("early");
    let k1_first = Host::new("k1-first");
    let laggard = Host::new("laggard");
    let mut hosts = vec![&early, &k1_first, &laggard];
    for host in &hosts {
        host.trust(&origin, &[&k1]);
        assert_eq!(update(host, "1.0"), Vec::<String>::new());
    }

    // (1) The publisher adds K2: `manifest` stays K1's, `manifest.<K2>` appears.
    origin.publish(&[&k1, &k2], &[], "1.1");
    assert_eq!(
        origin.manifest_files(),
        ["manifest".to_string(), k2.manifest_name()]
    );
    let lines = entry_lines(&origin.file("manifest").unwrap(), &k1).unwrap();
    assert_eq!(
        entry_lines(&origin.file(&k2.manifest_name()).unwrap(), &k2).unwrap(),
        lines
    );
    for host in &hosts {
        assert_eq!(update(host, "1.1"), Vec::<String>::new());
    }

    // (2) Some hosts trust both keys, in either order; one host is set up
    // with K2 alone; the laggard is not touched yet.
    early.trust(&origin, &[&k2, &k1]);
    k1_first.trust(&origin, &[&k1, &k2]);
    let fresh_both = Host::new("fresh-both");
    fresh_both.trust(&origin, &[&k2, &k1]);
    let fresh_k2 = Host::new("fresh-k2");
    fresh_k2.trust(&origin, &[&k2]);
    origin.publish(&[&k1, &k2], &[], "1.2");
    hosts.extend([&fresh_both, &fresh_k2]);
    for host in &hosts {
        assert_eq!(update(host, "1.2"), Vec::<String>::new(), "{}", host.name);
    }

    // (3) K2 becomes the primary key: `manifest` is K2's, `manifest.<K1>`
    // serves the hosts that trust only K1, and `manifest.<K2>` is gone.
    origin.publish(&[&k2, &k1], &[], "1.3");
    assert_eq!(
        origin.manifest_files(),
        ["manifest".to_string(), k1.manifest_name()]
    );
    assert!(entry_lines(&origin.file("manifest").unwrap(), &k2).is_ok());
    let fresh_k1 = Host::new("fresh-k1");
    fresh_k1.trust(&origin, &[&k1]);
    hosts.push(&fresh_k1);
    for host in &hosts {
        assert_eq!(update(host, "1.3"), Vec::<String>::new(), "{}", host.name);
    }
    // The laggard still trusts K1 alone, and reads its own copy.
    let local = laggard.local_manifest();
    assert!(entry_lines(&local, &k1).is_ok());
    assert_eq!(Some(local), origin.file(&k1.manifest_name()));

    // (4) Hosts drop K1; the laggard goes straight from K1 to K2. Its copy
    // of the manifest is signed by K1, so it says so, once.
    for host in [&early, &k1_first, &laggard, &fresh_both, &fresh_k1] {
        host.trust(&origin, &[&k2]);
    }
    origin.publish(&[&k2, &k1], &[], "1.4");
    for host in &hosts {
        let warned = update(host, "1.4");
        if host.name == "laggard" || host.name == "fresh-k1" {
            assert_eq!(warned.len(), 1, "{}: {warned:?}", host.name);
            assert!(warned[0].contains("not signed by any configured key"));
        } else {
            assert_eq!(warned, Vec::<String>::new(), "{}", host.name);
        }
    }
    // Then the publisher retires K1, and only `manifest` remains.
    origin.publish(&[&k2], &["--retire-key", &k1.public], "1.5");
    assert_eq!(origin.manifest_files(), ["manifest"]);
    let late = Host::new("late");
    late.trust(&origin, &[&k2]);
    hosts.push(&late);
    for host in &hosts {
        assert_eq!(update(host, "1.5"), Vec::<String>::new(), "{}", host.name);
        assert!(entry_lines(&host.local_manifest(), &k2).is_ok());
    }
}

#[test]
fn a_host_asks_for_at_most_one_more_manifest_during_a_rotation() {
    let k1 = Key::generate();
    let k2 = Key::generate();
    let origin = Origin::new();
    origin.publish(&[&k1, &k2], &[], "1.0");
    let host = Host::new("h");

    // `manifest` is K1's: a host that trusts K1 needs nothing else.
    for keys in [vec![&k1], vec![&k2, &k1], vec![&k1, &k2]] {
        host.trust(&origin, &keys);
        let (o, requests) = origin.manifest_requests(|| host.fetch(&[]));
        assert_exit(&o, 0);
        assert_eq!(requests, ["/manifest"]);
    }
    // A host that trusts K2 alone asks for `manifest.<K2>` next.
    host.trust(&origin, &[&k2]);
    let (o, requests) = origin.manifest_requests(|| host.fetch(&[]));
    assert_exit(&o, 0);
    assert_eq!(
        requests,
        ["/manifest".to_string(), format!("/{}", k2.manifest_name())]
    );
    // An unknown third key is tried in its configured place, and missing is fine.
    let k3 = Key::generate();
    host.trust(&origin, &[&k3, &k2]);
    let (o, requests) = origin.manifest_requests(|| host.fetch(&[]));
    assert_exit(&o, 0);
    assert_eq!(
        requests,
        [
            "/manifest".to_string(),
            format!("/{}", k3.manifest_name()),
            format!("/{}", k2.manifest_name())
        ]
    );
    host.assert_has("1.0");
}

#[test]
fn a_manifest_file_named_for_one_key_must_be_signed_by_that_key() {
    let k1 = Key::generate();
    let k2 = Key::generate();
    let origin = Origin::new();
    origin.publish(&[&k1], &[], "1.0");
    // A hostile origin serves K1's manifest under K2's name to a host that
    // trusts both keys in a way that reaches that file: `manifest` itself is
    // signed by a third key.
    let k3 = Key::generate();
    let other = Origin::new();
    other.publish(&[&k3], &[], "6.6");
    origin
        .server
        .set_fault("/manifest", Fault::Body(other.file("manifest").unwrap()));
    origin.server.set_fault(
        &format!("/{}", k2.manifest_name()),
        Fault::Body(origin.file("manifest").unwrap()),
    );
    let host = Host::new("h");
    host.trust(&origin, &[&k2]);
    let o = host.fetch(&[]);
    assert_exit(&o, 1);
    let err = stderr(&o);
    assert!(err.contains("signature does not verify"), "{err}");
    assert!(err.contains(&k2.manifest_name()), "{err}");
    assert_eq!(host.latest(), None);
    assert!(!host.dest().join("manifest").exists());
}

#[test]
fn an_emergency_key_replacement_recovers_hosts_with_one_warning_and_keeps_rollback_protection() {
    let k1 = Key::generate();
    let k2 = Key::generate();
    let origin = Origin::new();
    // K2 was set up beside K1 ahead of time, as the guide recommends.
    origin.publish(&[&k1, &k2], &[], "1.0");
    let old_k2_manifest = origin.file(&k2.manifest_name()).unwrap();
    origin.publish(&[&k1, &k2], &[], "1.1");
    let [a, b, c] = [Host::new("a"), Host::new("b"), Host::new("c")];
    for host in [&a, &b, &c] {
        host.trust(&origin, &[&k1, &k2]);
        assert_eq!(update(host, "1.1"), Vec::<String>::new());
    }
    let b_manifest = b.local_manifest();

    // K1 leaks: every config drops it; the local copies are K1's.
    for host in [&a, &b, &c] {
        host.trust(&origin, &[&k2]);
    }
    // Whoever holds K1 now signs a manifest with a newer version of their
    // own and serves it as `manifest`; hosts no longer trust it, and take
    // the publisher's `manifest.<K2>`.
    let attacker = Origin::new();
    attacker.publish(&[&k1], &[], "1.0");
    attacker.publish(&[&k1], &[], "1.1");
    attacker.publish(&[&k1], &[], "6.6");
    origin
        .server
        .set_fault("/manifest", Fault::Body(attacker.file("manifest").unwrap()));
    let o = a.fetch(&[]);
    assert_exit(&o, 0);
    assert_eq!(warnings(&o).len(), 2, "{}", stderr(&o));
    assert!(
        warnings(&o)[0].contains("not signed by any configured key"),
        "{}",
        stderr(&o)
    );
    // The forged `manifest` lists a version that `manifest.<K2>` lacks: said, not taken.
    assert!(
        warnings(&o)[1].contains("lags behind") && warnings(&o)[1].contains("(the highest 6.6)"),
        "{}",
        stderr(&o)
    );
    a.assert_has("1.1");
    origin.server.clear_fault("/manifest");

    // The publisher signs with K2 alone and retires K1.
    let o = origin.store(
        &[&k2],
        &["--retire-key", &k1.public],
        "1.2",
        &content("1.2"),
    );
    assert_exit(&o, 0);
    assert_eq!(origin.manifest_files(), ["manifest"]);
    assert!(entry_lines(&origin.file("manifest").unwrap(), &k2).is_ok());

    // A host that recovered already updates without a word.
    assert_eq!(update(&a, "1.2"), Vec::<String>::new());

    // A host still holding K1's copy is offered an old manifest with a
    // valid K2 signature: it lacks 1.1, so it is a rollback, refused.
    origin
        .server
        .set_fault("/manifest", Fault::Body(old_k2_manifest.clone()));
    let o = b.fetch(&[]);
    assert_exit(&o, 1);
    assert!(stderr(&o).contains("possible rollback"), "{}", stderr(&o));
    assert!(stderr(&o).contains("1.1 "), "{}", stderr(&o));
    assert_eq!(warnings(&o).len(), 1, "{}", stderr(&o));
    b.assert_has("1.1");
    assert_eq!(b.local_manifest(), b_manifest);
    origin.server.clear_fault("/manifest");

    // Once the origin is honest again, it recovers, with one warning, and
    // then it is quiet.
    let o = b.fetch(&[]);
    assert_exit(&o, 0);
    assert_eq!(warnings(&o).len(), 1, "{}", stderr(&o));
    b.assert_has("1.2");
    assert_eq!(update(&b, "1.2"), Vec::<String>::new());

    // The same old K2 manifest is refused after the recovery too.
    origin
        .server
        .set_fault("/manifest", Fault::Body(old_k2_manifest));
    let o = b.fetch(&[]);
    assert_exit(&o, 1);
    assert!(stderr(&o).contains("possible rollback"), "{}", stderr(&o));
    origin.server.clear_fault("/manifest");

    // A host that boots with `--init` first recovers through the network.
    let o = c.fetch(&["--init"]);
    assert_exit(&o, 0);
    assert_eq!(warnings(&o).len(), 1, "{}", stderr(&o));
    c.assert_has("1.2");
    assert_eq!(update(&c, "1.2"), Vec::<String>::new());
}

#[test]
fn an_emergency_without_a_second_key_set_up_in_advance() {
    let k1 = Key::generate();
    let origin = Origin::new();
    origin.publish(&[&k1], &[], "1.0");
    origin.publish(&[&k1], &[], "1.1");
    let host = Host::new("h");
    host.trust(&origin, &[&k1]);
    assert_eq!(update(&host, "1.1"), Vec::<String>::new());

    // K1 leaks; the publisher makes K2. An id cannot vouch for the
    // signature of `manifest`, so the public key is needed.
    let k2 = Key::generate();
    let before = origin.file("manifest").unwrap();
    let o = origin.store(&[&k2], &["--retire-key", &k1.id], "1.2", &content("1.2"));
    assert_exit(&o, 1);
    let err = stderr(&o);
    assert!(err.contains("signed by another key"), "{err}");
    assert!(err.contains("a key id is not enough"), "{err}");
    assert_eq!(origin.file("manifest").unwrap(), before);

    let o = origin.store(
        &[&k2],
        &["--retire-key", &k1.public],
        "1.2",
        &content("1.2"),
    );
    assert_exit(&o, 0);
    // The publisher is told where the history came from.
    assert!(
        stderr(&o).contains("only the retired key"),
        "{}",
        stderr(&o)
    );
    let lines = entry_lines(&origin.file("manifest").unwrap(), &k2).unwrap();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert_eq!(origin.manifest_files(), ["manifest"]);

    // Each host gets one config change: K1 out, K2 in.
    host.trust(&origin, &[&k2]);
    let o = host.fetch(&[]);
    assert_exit(&o, 0);
    assert_eq!(warnings(&o).len(), 1, "{}", stderr(&o));
    host.assert_has("1.2");
    assert_eq!(update(&host, "1.2"), Vec::<String>::new());
}

#[test]
fn a_manifest_signed_with_a_dropped_key_is_never_trusted_for_an_image() {
    // The local copy of a host whose key was dropped is used for nothing but
    // the rollback check: `--init` does not take it as proof of the image.
    let k1 = Key::generate();
    let k2 = Key::generate();
    let origin = Origin::new();
    origin.publish(&[&k1, &k2], &[], "1.0");
    let host = Host::new("h");
    host.trust(&origin, &[&k1]);
    assert_eq!(update(&host, "1.0"), Vec::<String>::new());
    host.trust(&origin, &[&k2]);
    origin.server.set_fault("/manifest", Fault::Status(503));
    // One try, so the 503 is not retried (with a warning each time).
    let o = host.fetch(&["--init", "--retries", "0"]);
    assert_exit(&o, 1);
    assert_eq!(warnings(&o).len(), 1, "{}", stderr(&o));
    assert!(stderr(&o).contains("503"), "{}", stderr(&o));
    // Nothing changed.
    host.assert_has("1.0");
    assert!(entry_lines(&host.local_manifest(), &k1).is_ok());
}

// ---- The publisher's side ------------------------------------------------

#[test]
fn manifest_stays_byte_identical_to_the_originals_when_a_second_key_signs_too() {
    let k2 = Key::generate();
    let vector_key = Key::vector();
    let origin = Origin::new();
    // The vector origin, published with the vector key first and K2 second.
    let manifest = String::from_utf8(vector("origin/manifest")).unwrap();
    let is_entry = |l: &&str| l.split(' ').count() == 3 && !l.starts_with("Tako ");
    for line in manifest.lines().filter(is_entry) {
        let fields: Vec<&str> = line.split(' ').collect();
        let image = vector(&format!("origin/store/{}", fields[2]));
        let o = origin.store(&[&vector_key, &k2], &[], fields[0], &image);
        assert_exit(&o, 0);
    }
    assert_eq!(origin.file("manifest").unwrap(), vector("origin/manifest"));
    let expected: Vec<String> = manifest
        .lines()
        .filter(is_entry)
        .map(str::to_string)
        .collect();
    assert_eq!(
        entry_lines(&origin.file(&k2.manifest_name()).unwrap(), &k2).unwrap(),
        expected
    );

    // A directory holding the one-entry vector, as the original wrote it,
    // gains an entry and a second key; `manifest` is what the original
    // would write for those entries.
    let origin = Origin::new();
    fs::write(origin.out().join("manifest"), vector("manifest-one-entry")).unwrap();
    let o = origin.store(&[&vector_key, &k2], &[], "2.0", b"two");
    assert_exit(&o, 0);
    let first = String::from_utf8(vector("manifest-one-entry"))
        .unwrap()
        .lines()
        .nth(2)
        .unwrap()
        .to_string();
    let lines = [first, format!("2.0 3 {}", sha256_hex(b"two"))];
    assert_eq!(origin.file("manifest").unwrap(), signed_manifest(&lines));
    assert_eq!(
        entry_lines(&origin.file(&k2.manifest_name()).unwrap(), &k2).unwrap(),
        lines
    );
}

#[test]
fn adding_a_key_needs_no_new_version() {
    // Storing a published version again is a no-op for the entries, and
    // still writes the files the keys given call for.
    let k1 = Key::generate();
    let k2 = Key::generate();
    let origin = Origin::new();
    origin.publish(&[&k1], &[], "1.0");
    let before = origin.file("manifest").unwrap();
    let o = origin.store(&[&k1, &k2], &[], "1.0", &content("1.0"));
    assert_exit(&o, 0);
    assert_eq!(
        stdout(&o),
        format!("1.0 -> {}\n", sha256_hex(&content("1.0")))
    );
    assert!(stderr(&o).contains(&format!(
        "created {}",
        origin.out().join(k2.manifest_name()).display()
    )));
    assert_eq!(origin.file("manifest").unwrap(), before);
    assert_eq!(
        entry_lines(&origin.file(&k2.manifest_name()).unwrap(), &k2).unwrap(),
        entry_lines(&before, &k1).unwrap()
    );
    assert_eq!(mode(&origin.out().join(k2.manifest_name())), 0o444);
    // And again: nothing to do, nothing said.
    let o = origin.store(&[&k1, &k2], &[], "1.0", &content("1.0"));
    assert_exit(&o, 0);
    assert_eq!(stderr(&o), "");
}

/// Every manifest file's bytes, to show that a refusal changed nothing.
fn snapshot(origin: &Origin) -> Vec<(String, Vec<u8>)> {
    origin
        .manifest_files()
        .into_iter()
        .map(|n| {
            let bytes = origin.file(&n).unwrap();
            (n, bytes)
        })
        .collect()
}

#[test]
fn store_refuses_to_leave_a_key_file_behind_and_names_it() {
    let k1 = Key::generate();
    let k2 = Key::generate();
    let origin = Origin::new();
    origin.publish(&[&k1, &k2], &[], "1.0");
    let before = snapshot(&origin);
    let o = origin.store(&[&k1], &[], "1.1", &content("1.1"));
    assert_exit(&o, 1);
    let err = stderr(&o);
    assert!(err.starts_with("tako: error: "), "{err}");
    assert!(err.contains(&k2.manifest_name()), "{err}");
    assert!(err.contains(&format!("--retire-key {}", k2.id)), "{err}");
    assert_eq!(snapshot(&origin), before);
    assert!(
        !origin
            .out()
            .join("store")
            .join(sha256_hex(&content("1.1")))
            .exists()
    );
}

#[test]
fn store_refuses_manifest_files_that_disagree_and_names_the_one_that_does() {
    let k1 = Key::generate();
    let k2 = Key::generate();
    let origin = Origin::new();
    origin.publish(&[&k1, &k2], &[], "1.0");
    // A K2 manifest with an entry that `manifest` never had, and without
    // the one it has: not what an interrupted store leaves.
    let other = Origin::new();
    other.publish(&[&k2], &[], "9.9");
    let k2_file = origin.out().join(k2.manifest_name());
    fs::remove_file(&k2_file).unwrap();
    fs::write(&k2_file, other.file("manifest").unwrap()).unwrap();
    let before = snapshot(&origin);
    let o = origin.store(&[&k1, &k2], &[], "1.1", &content("1.1"));
    assert_exit(&o, 1);
    let err = stderr(&o);
    assert!(err.contains("disagree"), "{err}");
    assert!(
        err.contains(&format!("{} lists entries", k2_file.display())),
        "{err}"
    );
    assert!(err.contains("9.9 "), "{err}");
    assert_eq!(snapshot(&origin), before);

    // A file under K2's name that K2 did not sign.
    fs::remove_file(&k2_file).unwrap();
    fs::write(&k2_file, origin.file("manifest").unwrap()).unwrap();
    let before = snapshot(&origin);
    let o = origin.store(&[&k1, &k2], &[], "1.1", &content("1.1"));
    assert_exit(&o, 1);
    let err = stderr(&o);
    assert!(err.contains(&k2_file.display().to_string()), "{err}");
    assert!(err.contains("signature does not verify"), "{err}");
    assert_eq!(snapshot(&origin), before);
}

#[test]
fn a_store_interrupted_between_two_files_is_completed_by_running_it_again() {
    let k1 = Key::generate();
    let k2 = Key::generate();
    let origin = Origin::new();
    origin.publish(&[&k1, &k2], &[], "1.0");
    let old_manifest = origin.file("manifest").unwrap();
    origin.publish(&[&k1, &k2], &[], "1.1");
    // What a crash after `manifest.<K2>` and before `manifest` leaves.
    let path = origin.out().join("manifest");
    fs::remove_file(&path).unwrap();
    fs::write(&path, &old_manifest).unwrap();
    // Every host can still use the directory meanwhile.
    for keys in [vec![&k1], vec![&k2], vec![&k2, &k1]] {
        let host = Host::new("h");
        host.trust(&origin, &keys);
        assert_exit(&host.fetch(&["--init"]), 0);
    }
    let o = origin.store(&[&k1, &k2], &[], "1.1", &content("1.1"));
    assert_exit(&o, 0);
    let lines = entry_lines(&origin.file("manifest").unwrap(), &k1).unwrap();
    assert_eq!(lines.len(), 2);
    assert_eq!(
        entry_lines(&origin.file(&k2.manifest_name()).unwrap(), &k2).unwrap(),
        lines
    );
}

#[test]
fn retiring_refuses_a_key_that_still_signs_and_input_that_is_no_key() {
    let k1 = Key::generate();
    let origin = Origin::new();
    origin.publish(&[&k1], &[], "1.0");
    let before = snapshot(&origin);
    for (retire, message) in [
        (k1.public.as_str(), "both to sign and to retire"),
        (k1.id.as_str(), "both to sign and to retire"),
        ("not-a-key", "neither a public key nor a key id"),
        (k1.secret.as_str(), "secret key"),
    ] {
        let o = origin.store(&[&k1], &["--retire-key", retire], "1.1", &content("1.1"));
        assert_exit(&o, 1);
        let err = stderr(&o);
        assert!(err.contains(message), "{retire}: {err}");
        assert!(!err.contains(&k1.secret[7..40]), "{err}");
        assert_eq!(snapshot(&origin), before);
    }
    // Retiring a key that has no file is nothing to do.
    let k9 = Key::generate();
    origin.publish(&[&k1], &["--retire-key", &k9.id], "1.1");
}

#[test]
fn the_same_key_twice_is_refused() {
    let k1 = Key::generate();
    let origin = Origin::new();
    let o = origin.store(&[&k1, &k1], &[], "1.0", b"x");
    assert_exit(&o, 1);
    assert!(stderr(&o).contains(&format!("key with id {} is given twice", k1.id)));
    assert!(origin.manifest_files().is_empty());
}

#[test]
fn several_keys_on_the_command_line_sign_in_the_order_given() {
    let k1 = Key::generate();
    let k2 = Key::generate();
    let origin = Origin::new();
    let image = origin.dir.path().join("img");
    fs::write(&image, b"img").unwrap();
    let out = origin.out();
    let o = tako(&[
        "store",
        "-k",
        &k2.secret,
        "--key",
        &k1.secret,
        "-o",
        out.to_str().unwrap(),
        image.to_str().unwrap(),
        "1.0",
    ]);
    assert_exit(&o, 0);
    assert!(entry_lines(&origin.file("manifest").unwrap(), &k2).is_ok());
    assert!(entry_lines(&origin.file(&k1.manifest_name()).unwrap(), &k1).is_ok());
    // A broken second key names which one it is, and never shows it.
    let o = tako(&[
        "store",
        "-k",
        &k2.secret,
        "-k",
        &k1.secret[..100],
        "-o",
        out.to_str().unwrap(),
        image.to_str().unwrap(),
        "1.0",
    ]);
    assert_exit(&o, 1);
    assert!(stderr(&o).contains("--key number 2"), "{}", stderr(&o));
    assert!(!stderr(&o).contains(&k1.secret[7..40]));
}

// ---- tako key-id -----------------------------------------------------------

#[test]
fn key_id_prints_the_id_of_a_public_key() {
    let o = tako(&["key-id", TEST_PUBLIC]);
    assert_exit(&o, 0);
    assert_eq!(stdout(&o), format!("{TEST_KEY_ID}\n"));
    assert_eq!(stderr(&o), "");
    // The other vector key, computed the same way.
    let other = String::from_utf8(vector("other-key.public")).unwrap();
    assert_eq!(key_id(other.trim()), "fbe6931bfb853cd4");
}

fn key_id_from_stdin(input: &str) -> Output {
    Bounded::new(tako_cmd().args(["key-id", "-"]))
        .input(input)
        .run()
}

#[test]
fn key_id_reads_a_secret_key_from_standard_input_and_never_prints_it() {
    let o = key_id_from_stdin(&format!("{}\n", test_secret()));
    assert_exit(&o, 0);
    assert_eq!(stdout(&o), format!("{TEST_KEY_ID}\n"));
    let o = key_id_from_stdin(&format!("{TEST_PUBLIC}\n"));
    assert_exit(&o, 0);
    assert_eq!(stdout(&o), format!("{TEST_KEY_ID}\n"));
    // The whole output of gen-key is not one key; nothing of it is echoed.
    let generated = stdout(&tako(&["gen-key"]));
    let o = key_id_from_stdin(&generated);
    assert_exit(&o, 1);
    let secret = generated.lines().nth(1).unwrap();
    assert!(!stderr(&o).contains(&secret[7..40]), "{}", stderr(&o));
    assert!(stderr(&o).starts_with("tako: error: "), "{}", stderr(&o));
}

#[test]
fn a_secret_key_given_to_key_id_as_a_public_key_is_never_printed() {
    let secret = test_secret();
    let o = tako(&["key-id", &secret]);
    assert_exit(&o, 1);
    assert!(stderr(&o).contains("secret key"), "{}", stderr(&o));
    assert!(!stderr(&o).contains(&secret[7..40]), "{}", stderr(&o));
    assert_eq!(stdout(&o), "");
}

#[test]
fn a_secret_key_pasted_into_a_config_is_never_printed() {
    let secret = test_secret();
    let host = Host::new("h");
    let origin = Origin::new();
    host.trust(&origin, &[]);
    let mut config = fs::read_to_string(host.config()).unwrap();
    config.push_str(&format!("PublicKey={secret}\n"));
    fs::write(host.config(), config).unwrap();
    let o = host.fetch(&[]);
    assert_exit(&o, 1);
    assert!(
        stderr(&o).contains(":4: PublicKey= holds a secret key"),
        "{}",
        stderr(&o)
    );
    assert!(!stderr(&o).contains(&secret[7..40]), "{}", stderr(&o));
}

#[test]
fn key_id_refuses_what_is_not_a_public_key() {
    for bad in ["", "abc", "9ee3a79654281274"] {
        let o = tako(&["key-id", bad]);
        assert_exit(&o, 1);
        assert!(stderr(&o).contains("invalid public key"), "{}", stderr(&o));
    }
    assert_exit(&tako(&["key-id"]), 2);
    assert_exit(&tako(&["key-id", "--help"]), 0);
}

/// Issue 23, item 20: the original Tako's `store` rewrites `manifest` alone, so during a
/// rotation a `manifest.<keyid>` stays behind, and a host that trusts only that key
/// silently stayed on the old release. `fetch` and `check` say so, naming both files.
#[test]
fn a_manifest_keyid_file_left_behind_by_another_tool_is_warned_about_naming_both_files() {
    let k1 = Key::generate();
    let k2 = Key::generate();
    let origin = Origin::new();
    origin.publish(&[&k1, &k2], &[], "1.0");
    let host = Host::new("k2-only");
    host.trust(&origin, &[&k2]);
    let o = host.fetch(&[]);
    assert_exit(&o, 0);
    assert_eq!(warnings(&o), Vec::<String>::new());

    // What a publisher using a tool that knows nothing of `manifest.<keyid>` does: a new
    // `manifest` signed by K1 with 1.1 in it, and `manifest.<K2>` untouched.
    let scratch = origin.dir.path().join("elsewhere");
    fs::create_dir_all(scratch.join("store")).unwrap();
    fs::copy(origin.out().join("manifest"), scratch.join("manifest")).unwrap();
    let image = origin.dir.path().join("image-1.1");
    fs::write(&image, content("1.1")).unwrap();
    let o = tako(&[
        "store",
        "-k",
        &k1.secret,
        "-o",
        scratch.to_str().unwrap(),
        image.to_str().unwrap(),
        "1.1",
    ]);
    assert_exit(&o, 0);
    let digest = sha256_hex(&content("1.1"));
    fs::copy(
        scratch.join("store").join(&digest),
        origin.out().join("store").join(&digest),
    )
    .unwrap();
    fs::remove_file(origin.out().join("manifest")).unwrap();
    fs::copy(scratch.join("manifest"), origin.out().join("manifest")).unwrap();

    let url = origin.server.url();
    let expected = format!(
        "tako: warning: {}: {url}/{} lags behind {url}/manifest: it lacks 1 version that {url}/manifest lists (the highest 1.1), so this host stays on an older release; no configured key verifies {url}/manifest, so either a tool that updates manifest alone published to the origin (during a key rotation only tako store may, see docs/key-rotation.md) or someone else signed it",
        host.config().display(),
        k2.manifest_name()
    );
    let o = host.fetch(&[]);
    assert_exit(&o, 0);
    assert_eq!(warnings(&o), std::slice::from_ref(&expected));
    host.assert_has("1.0");
    let o = run_bounded(tako_cmd().arg("check").arg(host.config()));
    assert_exit(&o, 0);
    assert_eq!(warnings(&o), [expected]);

    // A host that trusts K1 takes `manifest` and has nothing to say.
    host.trust(&origin, &[&k2, &k1]);
    let o = host.fetch(&[]);
    assert_exit(&o, 0);
    assert_eq!(warnings(&o), Vec::<String>::new());
    host.assert_has("1.1");
}
