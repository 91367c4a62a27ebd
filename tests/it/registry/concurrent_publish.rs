//! Issue 23, F: two `tako store -o oci://…` runs into one repository at the same time. A
//! registry has no lock and no conditional tag update, so each publisher could read the
//! same manifest, add its own version and push: both exited 0 and one version was missing
//! from the signed manifest (7 of 7 rounds), after which hosts that had seen it refused
//! every later manifest as a rollback.

use crate::support;

use std::fs;

use support::distribution::Repository;
use support::origin::World;
use support::registry::Registry;
use support::tako::{
    Bounded, TEST_PUBLIC, assert_exit, sha256_hex, stderr, tako, tako_cmd, test_secret,
    verified_entries,
};

const ROUNDS: usize = 5;

/// Starts `tako store` of `content` as `version` into `origin`, without waiting for it.
fn spawn_store(w: &World, origin: &str, version: &str, content: &[u8]) -> support::tako::Running {
    let image = w.path(&format!("image-{version}"));
    fs::write(&image, content).unwrap();
    Bounded::new(tako_cmd().args([
        "store",
        "-k",
        &test_secret(),
        "-o",
        origin,
        image.to_str().unwrap(),
        version,
    ]))
    .spawn()
}

#[test]
fn concurrent_stores_into_one_registry_repository_never_both_succeed_with_an_entry_lost() {
    let r = Registry::start();
    let w = World::new();
    let origin = r.origin("fleet/app");
    let mut published: Vec<String> = Vec::new();
    for round in 0..ROUNDS {
        let versions = [format!("1.{round}.0"), format!("1.{round}.1")];
        let contents: Vec<Vec<u8>> = versions
            .iter()
            .map(|v| format!("the image of {v}\n").repeat(50).into_bytes())
            .collect();
        let running: Vec<_> = versions
            .iter()
            .zip(&contents)
            .map(|(v, c)| spawn_store(&w, &origin, v, c))
            .collect();
        let outputs: Vec<_> = running.into_iter().map(|r| r.finish()).collect();

        // What a host's fetch or check sees: the signed manifest under `tako-manifest`,
        // verified with the publisher's key.
        let signed = Repository::of(&origin).signed_manifest();
        let entries = verified_entries(&signed, TEST_PUBLIC).unwrap();
        for ((version, content), o) in versions.iter().zip(&contents).zip(&outputs) {
            let line = format!("{version} {} {}", content.len(), sha256_hex(content));
            if o.status.success() {
                assert!(
                    entries.contains(&line),
                    "round {round}: store of {version} exited 0 but the signed manifest lacks it:\n{}\nstderr: {}",
                    entries.join("\n"),
                    stderr(o)
                );
                published.push(line);
            } else {
                // A publisher that gives up says so, naming the repository.
                assert_exit(o, 1);
                let err = stderr(o);
                assert!(err.starts_with("tako: error: "), "{err}");
                assert!(err.contains("fleet/app"), "{err}");
            }
        }
        // Nothing published in an earlier round was lost either.
        for line in &published {
            assert!(
                entries.contains(line),
                "round {round}: {line} is gone:\n{}",
                entries.join("\n")
            );
        }
    }
    assert!(
        !published.is_empty(),
        "no store succeeded in {ROUNDS} rounds"
    );
    // And `tako check` on a host accepts the final manifest.
    let config = w.config("app.tako", &origin, "*", "");
    let o = tako(&["check", config.to_str().unwrap()]);
    assert_exit(&o, 100);
}
