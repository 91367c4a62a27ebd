//! Key rotation on a registry origin (docs/key-rotation.md, "On a registry"), against a real
//! distribution registry (`docker-registry`): the extra manifests are the tags
//! `tako-manifest.<keyid>`, retired ones are deleted (or, where the registry refuses,
//! marked), and hosts at every stage update with no manual step.

use crate::support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use support::registry::Registry;
use support::run::run_bounded;
use support::tako::{assert_exit, sha256_hex, stderr, stdout, tako, tako_cmd, verified_entries};

/// A key pair as `tako gen-key` prints it, with its id from `tako key-id`.
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
        let o = tako(&["key-id", &public]);
        assert_exit(&o, 0);
        let id = stdout(&o).trim_end().to_string();
        Key { secret, public, id }
    }

    fn tag(&self) -> String {
        format!("tako-manifest.{}", self.id)
    }
}

/// `tako` (which `tako_cmd` keeps from the developer's registry credentials), under the
/// hang guard.
fn run(args: &[&str]) -> Output {
    run_bounded(tako_cmd().args(args))
}

fn content(version: &str) -> Vec<u8> {
    format!("image of version {version}\n").into_bytes()
}

/// A publisher pushing to one repository of a registry.
struct Publisher {
    dir: tempfile::TempDir,
    origin: String,
}

impl Publisher {
    fn new(registry: &Registry, repository: &str) -> Publisher {
        Publisher {
            dir: tempfile::tempdir().unwrap(),
            origin: registry.origin(repository),
        }
    }

    /// `tako store` of `version` with each key from its own key file, in order.
    fn store(&self, keys: &[&Key], extra: &[&str], version: &str) -> Output {
        let image = self.dir.path().join(format!("image-{version}"));
        fs::write(&image, content(version)).unwrap();
        let mut args: Vec<String> = vec!["store".into()];
        for key in keys {
            let path = self.dir.path().join(format!("{}.key", key.id));
            fs::write(&path, format!("{}\n", key.secret)).unwrap();
            args.extend(["--key-file".into(), path.display().to_string()]);
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        args.extend([
            "-o".into(),
            self.origin.clone(),
            "--".into(),
            image.display().to_string(),
            version.into(),
        ]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run(&args)
    }

    /// Publishes `version` and returns what `tako store` said on standard error.
    #[track_caller]
    fn publish(&self, keys: &[&Key], extra: &[&str], version: &str) -> String {
        let o = self.store(keys, extra, version);
        assert_exit(&o, 0);
        assert_eq!(
            stdout(&o).trim(),
            format!("{version} -> {}", sha256_hex(&content(version)))
        );
        stderr(&o)
    }

    fn location(&self, tag: &str) -> String {
        format!("{}:{tag}", self.origin)
    }
}

/// The repository's tags that are Tako's own manifests, sorted.
fn manifest_tags(registry: &Registry, repository: &str) -> Vec<String> {
    let url = format!("http://{}/v2/{repository}/tags/list", registry.host());
    let body = ureq::get(&url)
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    let parsed: serde_json::Value = serde_json::from_str(&body).unwrap();
    let mut tags: Vec<String> = parsed["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .filter(|t| t.starts_with("tako-manifest"))
        .collect();
    tags.sort();
    tags
}

/// The OCI manifest a tag names, as JSON.
fn artifact(registry: &Registry, repository: &str, tag: &str) -> serde_json::Value {
    let url = format!("http://{}/v2/{repository}/manifests/{tag}", registry.host());
    let body = ureq::get(&url)
        .header("Accept", "application/vnd.oci.image.manifest.v1+json")
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    serde_json::from_str(&body).unwrap()
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
    fn trust(&self, origin: &str, keys: &[&Key]) {
        let mut text = format!(
            "Origin={origin}\nDestination={}\nVersion=*\n",
            self.dest().display()
        );
        for key in keys {
            text.push_str(&format!("PublicKey={}\n", key.public));
        }
        fs::write(self.config(), text).unwrap();
    }

    fn fetch(&self, args: &[&str]) -> Output {
        let config = self.config();
        let mut all = vec!["fetch"];
        all.extend_from_slice(args);
        all.push(config.to_str().unwrap());
        run(&all)
    }

    #[track_caller]
    fn assert_has(&self, version: &str) {
        let digest = sha256_hex(&content(version));
        assert_eq!(
            fs::read_link(self.dest().join("latest")).ok(),
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

    /// Runs `fetch --init` and then `fetch`, both of which must succeed quietly and leave
    /// `version` installed, with a local manifest that `key` verifies.
    #[track_caller]
    fn update(&self, version: &str, key: &Key) {
        for args in [&["--init"][..], &[]] {
            let o = self.fetch(args);
            assert_exit(&o, 0);
            assert!(
                !stderr(&o).contains("warning"),
                "host {}: {}",
                self.name,
                stderr(&o)
            );
        }
        self.assert_has(version);
        let local = fs::read(self.dest().join("manifest")).unwrap();
        assert!(
            verified_entries(&local, &key.public).is_ok(),
            "host {}: the local manifest verifies with key {}",
            self.name,
            key.id
        );
    }
}

#[test]
fn a_key_rotation_on_a_registry_keeps_every_host_updating_and_retires_the_old_tag() {
    let r = Registry::start();
    let repo = "fleet/app";
    let publisher = Publisher::new(&r, repo);
    let origin = publisher.origin.clone();
    let (k1, k2) = (Key::generate(), Key::generate());

    // Before: K1 alone, one tag.
    publisher.publish(&[&k1], &[], "1.0");
    assert_eq!(manifest_tags(&r, repo), ["tako-manifest"]);
    let old = Host::new("old");
    old.trust(&origin, &[&k1]);
    old.update("1.0", &k1);

    // (1) Both keys: `tako-manifest` stays K1's, `tako-manifest.<K2>` appears, the same
    // artifact shape with its key id in an annotation.
    let said = publisher.publish(&[&k1, &k2], &[], "1.1");
    assert_eq!(
        said.trim(),
        format!(
            "tako: created {}, signed by key {}",
            publisher.location(&k2.tag()),
            k2.id
        )
    );
    assert_eq!(
        manifest_tags(&r, repo),
        ["tako-manifest".to_string(), k2.tag()]
    );
    let primary = artifact(&r, repo, "tako-manifest");
    let second = artifact(&r, repo, &k2.tag());
    assert_eq!(second["artifactType"], primary["artifactType"]);
    assert_eq!(second["layers"].as_array().unwrap().len(), 1);
    assert_eq!(second["annotations"]["vnd.tako.key-id"], k2.id.as_str());
    assert!(primary.get("annotations").is_none(), "{primary}");

    let new = Host::new("new");
    new.trust(&origin, &[&k2]);
    let both = Host::new("both");
    both.trust(&origin, &[&k2, &k1]);
    let both_old_first = Host::new("both-old-first");
    both_old_first.trust(&origin, &[&k1, &k2]);
    old.update("1.1", &k1);
    new.update("1.1", &k2);
    both.update("1.1", &k1);
    both_old_first.update("1.1", &k1);

    // (2) K2 becomes the primary key: `tako-manifest` is K2's, `tako-manifest.<K1>` serves
    // the hosts that trust only K1, and K2's own tag goes.
    let said = publisher.publish(&[&k2, &k1], &[], "1.2");
    assert!(
        said.contains(&format!(
            "tako: created {}, signed by key {}",
            publisher.location(&k1.tag()),
            k1.id
        )),
        "{said}"
    );
    assert!(
        said.contains(&format!(
            "tako: {} is now signed by key {} instead of {}",
            publisher.location("tako-manifest"),
            k2.id,
            k1.id
        )),
        "{said}"
    );
    assert!(
        said.contains(&format!(
            "tako: removed {}: its key now signs manifest",
            publisher.location(&k2.tag())
        )),
        "{said}"
    );
    assert_eq!(
        manifest_tags(&r, repo),
        ["tako-manifest".to_string(), k1.tag()]
    );
    old.update("1.2", &k1);
    new.update("1.2", &k2);
    both.update("1.2", &k2);
    both_old_first.update("1.2", &k2);

    // (3) K1 is retired: its tag is deleted, and only `tako-manifest` is left.
    let said = publisher.publish(&[&k2], &["--retire-key", &k1.public], "1.3");
    assert_eq!(
        said.trim(),
        format!(
            "tako: removed {}: its key is retired",
            publisher.location(&k1.tag())
        )
    );
    assert_eq!(manifest_tags(&r, repo), ["tako-manifest"]);
    new.update("1.3", &k2);
    both.update("1.3", &k2);
    both_old_first.update("1.3", &k2);

    // A host left trusting only the retired key is told clearly, and keeps what it has.
    let o = old.fetch(&[]);
    assert_exit(&o, 1);
    let err = stderr(&o);
    assert!(
        err.contains("no manifest.<keyid> file of a configured key verifies either"),
        "{err}"
    );
    assert!(
        err.contains(&format!("{}: not found", publisher.location(&k1.tag()))),
        "{err}"
    );
    old.assert_has("1.2");

    // The next release needs no more --retire-key.
    publisher.publish(&[&k2], &[], "1.4");
    new.update("1.4", &k2);
}

#[test]
fn a_registry_that_refuses_deletes_gets_a_marker_that_hosts_and_publishers_skip() {
    let r = Registry::without_deletes();
    let repo = "app";
    let publisher = Publisher::new(&r, repo);
    let origin = publisher.origin.clone();
    let (k1, k2) = (Key::generate(), Key::generate());
    publisher.publish(&[&k2, &k1], &[], "1.0");
    let old = Host::new("old");
    old.trust(&origin, &[&k1]);
    old.update("1.0", &k1);

    let said = publisher.publish(&[&k2], &["--retire-key", &k1.id], "1.1");
    assert!(
        said.starts_with(&format!(
            "tako: removed {}: its key is retired (the registry does not delete it",
            publisher.location(&k1.tag())
        )),
        "{said}"
    );
    // The tag stays, but names an artifact no host can take for a manifest.
    assert_eq!(
        manifest_tags(&r, repo),
        ["tako-manifest".to_string(), k1.tag()]
    );
    let marker = artifact(&r, repo, &k1.tag());
    assert_eq!(marker["artifactType"], "application/vnd.tako.retired.v1");

    let o = old.fetch(&[]);
    assert_exit(&o, 1);
    let err = stderr(&o);
    assert!(
        err.contains(&format!("{}: not found", publisher.location(&k1.tag()))),
        "{err}"
    );
    old.assert_has("1.0");
    let new = Host::new("new");
    new.trust(&origin, &[&k2]);
    new.update("1.1", &k2);

    // The marker is no manifest file to the publisher either: K2 alone goes on, quietly.
    let said = publisher.publish(&[&k2], &[], "1.2");
    assert_eq!(said, "");
    new.update("1.2", &k2);
}

#[test]
fn a_registry_tag_of_a_key_not_given_is_refused_as_a_file_in_a_directory_is() {
    let r = Registry::start();
    let repo = "app";
    let publisher = Publisher::new(&r, repo);
    let (k1, k2) = (Key::generate(), Key::generate());
    publisher.publish(&[&k1, &k2], &[], "1.0");
    let before = artifact(&r, repo, "tako-manifest");

    // K1 alone would leave K2's tag to go stale: refused, and nothing is pushed.
    let o = publisher.store(&[&k1], &[], "1.1");
    assert_exit(&o, 1);
    assert_eq!(
        stderr(&o).trim(),
        format!(
            "tako: error: {} belongs to key {}, which was not given: give that secret key too, or remove the file with --retire-key {}; refusing to change anything",
            publisher.location(&k2.tag()),
            k2.id,
            k2.id
        )
    );
    assert_eq!(artifact(&r, repo, "tako-manifest"), before);
    let url = format!("http://{}/v2/{repo}/tags/list", r.host());
    let tags = ureq::get(&url)
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    assert!(!tags.contains("\"1.1\""), "{tags}");

    // A manifest in the registry signed by neither key is refused by name.
    let k3 = Key::generate();
    let o = publisher.store(&[&k3], &[], "1.1");
    assert_exit(&o, 1);
    assert!(
        stderr(&o).starts_with(&format!(
            "tako: error: the manifest in {} is signed by another key than the ones given",
            publisher.origin
        )),
        "{}",
        stderr(&o)
    );
}
