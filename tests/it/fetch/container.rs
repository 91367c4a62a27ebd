//! `Kind=container`: a host fetches container images published with `tako store
//! --container`, from a static directory over HTTP and from a registry; a layer shared
//! between versions travels once, `latest` names a complete tree, and a hostile origin
//! leaves the installed tree as it was.

use std::fs;
use std::path::{Path, PathBuf};

use crate::image::Lab;
use crate::support;
use support::http_server::Server;
use support::images::{
    Format, Image, Index, Platform, app_base_layer as base_layer, app_index, app_layer,
    sha256_digest,
};
use support::tako::*;

pub(super) fn hex(digest: &str) -> String {
    digest.trim_start_matches("sha256:").to_owned()
}

/// Pushes `index` as `app:<version>` and publishes it to `output` as `version`; returns
/// the index digest's hex.
pub(super) fn publish(lab: &Lab, output: &str, index: &Index, version: &str) -> String {
    let digest = lab.push_index(index, &format!("app:{version}"));
    let o = store_container(output, &lab.image(&format!("app:{version}")), version);
    assert_exit(&o, 0);
    hex(&digest)
}

/// A host config of `Kind=container` for `origin`, trusting the test key: (config, DEST).
pub(super) fn host_config(lab: &Lab, origin: &str) -> (PathBuf, PathBuf) {
    let dest = lab.path("dest");
    fs::create_dir_all(&dest).unwrap();
    let config = lab.path("host.conf");
    fs::write(
        &config,
        format!(
            "Origin={origin}\nPublicKey={TEST_PUBLIC}\nDestination={}\nVersion=*\nKind=container\n",
            dest.display()
        ),
    )
    .unwrap();
    (config, dest)
}

pub(super) fn latest_target(dest: &Path) -> String {
    fs::read_link(dest.join("latest"))
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

pub(super) fn installed_version(dest: &Path) -> String {
    fs::read_to_string(dest.join("latest/rootfs/app/version")).unwrap()
}

/// The blob requests among `requests`, by hex.
pub(super) fn blob_requests(requests: &[String]) -> Vec<String> {
    requests
        .iter()
        .filter_map(|r| r.split("/blobs/sha256/").nth(1))
        .map(|h| h.split(['?', ' ']).next().unwrap_or("").to_owned())
        .collect()
}

#[test]
fn a_host_updates_from_a_static_directory_downloading_only_the_changed_layer() {
    let lab = Lab::new();
    let out = lab.out_dir();
    let server = Server::serve_dir(&out);
    let v1 = app_index(Format::Oci, "1");
    let hex1 = publish(&lab, out.to_str().unwrap(), &v1, "1.0");
    let (config, dest) = host_config(&lab, &server.url());

    let o = fetch(&[], &[&config]);
    assert_exit(&o, 0);
    assert_eq!(latest_target(&dest), format!("store/{hex1}"));
    assert_eq!(installed_version(&dest), "1\n");
    assert_eq!(
        fs::read(dest.join("latest/rootfs/usr/base")).unwrap(),
        noise(7, 200_000)
    );
    assert_eq!(
        fs::read(dest.join("latest/manifest.json")).unwrap(),
        v1.bytes()
    );
    let host_image = &v1.images[0];
    assert_eq!(
        fs::read(dest.join("latest/config.json")).unwrap(),
        host_image.config
    );
    // The foreign platform's layer was never asked for.
    let foreign = sha256_digest(&v1.images[1].layers[1].blob);
    assert!(!blob_requests(&server.requests()).contains(&hex(&foreign)));

    let v2 = app_index(Format::Oci, "2");
    let hex2 = publish(&lab, out.to_str().unwrap(), &v2, "2.0");
    let before = server.requests().len();
    let o = fetch(&[], &[&config]);
    assert_exit(&o, 0);
    assert!(stdout(&o).contains("updated 1.0 -> 2.0"), "{}", stdout(&o));
    assert_eq!(latest_target(&dest), format!("store/{hex2}"));
    assert_eq!(installed_version(&dest), "2\n");
    let asked = blob_requests(&server.requests()[before..]);
    let base = hex(&sha256_digest(&v2.images[0].layers[0].blob));
    let app2 = hex(&sha256_digest(&v2.images[0].layers[1].blob));
    assert!(
        !asked.contains(&base),
        "the shared base layer travelled again: {asked:?}"
    );
    assert!(asked.contains(&app2), "{asked:?}");
    // The old tree stays for whoever still runs it.
    assert!(
        dest.join(format!("store/{hex1}/rootfs/app/version"))
            .exists()
    );

    // Nothing new: nothing downloaded.
    let before = server.requests().len();
    let o = fetch(&[], &[&config]);
    assert_exit(&o, 0);
    assert!(stdout(&o).contains("up to date (2.0)"), "{}", stdout(&o));
    assert!(blob_requests(&server.requests()[before..]).is_empty());

    // Offline with the tree installed, --init starts from it.
    drop(server);
    let o = fetch(&["--init"], &[&config]);
    assert_exit(&o, 0);
    assert!(stdout(&o).contains("present (2.0)"), "{}", stdout(&o));
}

#[test]
fn a_host_updates_from_a_registry_repository() {
    let lab = Lab::new();
    let target = lab.registry.origin("published");
    let hex1 = publish(&lab, &target, &app_index(Format::Oci, "1"), "1.0");
    let (config, dest) = host_config(&lab, &target);
    let o = fetch(&[], &[&config]);
    assert_exit(&o, 0);
    assert_eq!(latest_target(&dest), format!("store/{hex1}"));
    assert_eq!(installed_version(&dest), "1\n");

    let hex2 = publish(&lab, &target, &app_index(Format::Oci, "2"), "2.0");
    let o = fetch(&[], &[&config]);
    assert_exit(&o, 0);
    assert_eq!(latest_target(&dest), format!("store/{hex2}"));
    assert_eq!(installed_version(&dest), "2\n");

    // status says which version's tree is installed, and that it is whole; gc never
    // removes the installed tree.
    let o = run_bounded(tako_cmd().arg("status").arg(&config));
    assert_exit(&o, 0);
    assert!(
        stdout(&o).contains("installed 2.0, intact"),
        "{}",
        stdout(&o)
    );
    let o = run_bounded(tako_cmd().args(["gc", "--keep", "1"]).arg(&config));
    assert_exit(&o, 0);
    assert_eq!(installed_version(&dest), "2\n");
    assert!(!dest.join(format!("store/{hex1}")).exists());
    fs::remove_file(dest.join(format!("store/{hex2}/manifest.json"))).unwrap();
    let o = run_bounded(tako_cmd().arg("status").arg(&config));
    assert_exit(&o, 1);
    assert!(
        stdout(&o).contains("installed 2.0, damaged"),
        "{}",
        stdout(&o)
    );
}

/// Publishes 1.0 to a directory and installs it, then publishes 2.0 and lets `spoil`
/// change the directory; the fetch must fail, naming `expected`, with 1.0's tree in place.
fn refused_with_the_tree_untouched(
    spoil: impl FnOnce(&Path, &Index, &str),
    second: Index,
    expected: &[&str],
) {
    let lab = Lab::new();
    let out = lab.out_dir();
    let hex1 = publish(
        &lab,
        out.to_str().unwrap(),
        &app_index(Format::Oci, "1"),
        "1.0",
    );
    let url = format!("file://{}", out.display());
    let (config, dest) = host_config(&lab, &url);
    assert_exit(&fetch(&[], &[&config]), 0);
    let hex2 = publish(&lab, out.to_str().unwrap(), &second, "2.0");
    spoil(&out, &second, &hex2);
    let o = fetch(&[], &[&config]);
    assert_exit(&o, 1);
    let said = stderr(&o);
    for words in expected {
        assert!(said.contains(words), "{words:?} not in {said}");
    }
    assert_eq!(latest_target(&dest), format!("store/{hex1}"));
    assert_eq!(installed_version(&dest), "1\n");
    assert!(!dest.join(format!("store/{hex2}")).exists());
}

fn replace(path: &Path, bytes: &[u8]) {
    let _ = fs::remove_file(path);
    fs::write(path, bytes).unwrap();
}

#[test]
fn an_image_swapped_for_another_images_json_is_refused() {
    refused_with_the_tree_untouched(
        |out, _, hex2| {
            let other = app_index(Format::Oci, "other").bytes();
            replace(&out.join("store").join(hex2), &other);
            replace(&out.join("blobs/sha256").join(hex2), &other);
        },
        app_index(Format::Oci, "2"),
        &["wrong SHA-256"],
    );
}

#[test]
fn a_layer_that_does_not_match_its_digest_is_refused() {
    refused_with_the_tree_untouched(
        |out, second, _| {
            let mut blob = second.images[0].layers[1].blob.clone();
            let app = hex(&sha256_digest(&blob));
            let middle = blob.len() / 2;
            blob[middle] ^= 0xff;
            replace(&out.join("blobs/sha256").join(&app), &blob);
        },
        app_index(Format::Oci, "2"),
        &["layer 2 of 2", "wrong SHA-256"],
    );
}

#[test]
fn an_index_without_the_hosts_platform_is_refused_with_the_platforms_it_has() {
    let foreign_only = Index::new(
        Format::Oci,
        vec![Image::new(
            Format::Oci,
            Platform::foreign(),
            vec![base_layer(), app_layer("foreign")],
        )],
    );
    let foreign = Platform::foreign();
    let listed = format!("it has {}/{}", foreign.os, foreign.architecture);
    refused_with_the_tree_untouched(|_, _, _| {}, foreign_only, &["has no entry for", &listed]);
}

/// What one published version put in a host's `blobs/sha256/`, by hex: the signed index,
/// the host's platform manifest, its config, and its own (second) layer.
fn own_blobs(index: &Index, top: &str) -> Vec<String> {
    let image = &index.images[0];
    vec![
        top.to_owned(),
        hex(&image.manifest_digest()),
        hex(&sha256_digest(&image.config)),
        hex(&sha256_digest(&image.layers[1].blob)),
    ]
}

/// Publishes versions 1.0, 2.0 and 3.0 (sharing the base layer) to a directory, and has
/// a host fetch each in turn; `keep` is its `Keep=`. Returns the host's config, its
/// destination, and each version's index with its hex, oldest first.
fn three_versions(lab: &Lab, keep: Option<u32>) -> (PathBuf, PathBuf, Vec<(Index, String)>) {
    let out = lab.out_dir();
    let (config, dest) = host_config(lab, &format!("file://{}", out.display()));
    if let Some(keep) = keep {
        let mut text = fs::read_to_string(&config).unwrap();
        text.push_str(&format!("Keep={keep}\n"));
        fs::write(&config, text).unwrap();
    }
    let mut versions = Vec::new();
    for n in ["1", "2", "3"] {
        let index = app_index(Format::Oci, n);
        let top = publish(lab, out.to_str().unwrap(), &index, &format!("{n}.0"));
        let o = fetch(&[], &[&config]);
        assert_exit(&o, 0);
        assert_eq!(installed_version(&dest), format!("{n}\n"));
        versions.push((index, top));
    }
    (config, dest, versions)
}

fn blob_present(dest: &Path, hex: &str) -> bool {
    dest.join("blobs/sha256").join(hex).exists()
}

#[test]
fn gc_removes_old_trees_and_the_blobs_only_they_used_keeping_the_installed_tree_whole() {
    let lab = Lab::new();
    let (config, dest, versions) = three_versions(&lab, None);
    let [(v1, hex1), (v2, hex2), (v3, hex3)] = &versions[..] else {
        unreachable!()
    };
    let base = hex(&sha256_digest(&v3.images[0].layers[0].blob));
    // A symlink planted as an old version's tree, pointing outside the destination.
    let outside = lab.path("outside");
    fs::create_dir_all(&outside).unwrap();
    fs::write(outside.join("precious"), "keep me").unwrap();
    let store = dest.join("store");
    fs::rename(store.join(hex1), lab.path("moved-away")).unwrap();
    std::os::unix::fs::symlink(&outside, store.join(hex1)).unwrap();
    // And a tree a killed run was building.
    fs::create_dir_all(store.join(format!("{hex2}.tako-new/rootfs/app"))).unwrap();

    let gc = |extra: &[&str]| {
        let o = run_bounded(
            tako_cmd()
                .args(["gc", "--keep", "1"])
                .args(extra)
                .arg(&config),
        );
        assert_exit(&o, 0);
        stdout(&o)
    };
    let said = gc(&["--dry-run"]);
    assert!(said.contains("would remove 1.0 ("), "{said}");
    assert!(said.contains("would remove 2.0 ("), "{said}");
    assert!(said.contains("would free "), "{said}");
    assert!(store.join(hex2).join("rootfs/app/version").exists());
    assert!(blob_present(&dest, &own_blobs(v2, hex2)[3]));

    let said = gc(&[]);
    let name = config.display().to_string();
    assert!(
        said.contains(&format!("{name}: removed 1.0 (0 bytes)")),
        "{said}"
    );
    assert!(said.contains(&format!("{name}: removed 2.0 (")), "{said}");
    assert!(
        said.contains(&format!("removed temporary store/{hex2}.tako-new")),
        "{said}"
    );
    assert!(said.contains(&format!("{name}: freed ")), "{said}");
    // The old trees are gone, the planted link as a link: its target is untouched.
    assert!(fs::symlink_metadata(store.join(hex1)).is_err());
    assert!(!store.join(hex2).exists());
    assert!(!store.join(format!("{hex2}.tako-new")).exists());
    assert_eq!(
        fs::read_to_string(outside.join("precious")).unwrap(),
        "keep me"
    );
    // The old versions' own blobs went; the shared base layer and all the installed
    // tree uses stayed.
    for old in own_blobs(v1, hex1).iter().chain(&own_blobs(v2, hex2)) {
        assert!(!blob_present(&dest, old), "{old} was kept");
        assert!(
            said.contains(&format!("removed unused blobs/sha256/{old} (")),
            "{said}"
        );
    }
    for kept in own_blobs(v3, hex3).iter().chain([&base]) {
        assert!(blob_present(&dest, kept), "{kept} was removed");
    }
    assert_eq!(latest_target(&dest), format!("store/{hex3}"));
    assert_eq!(installed_version(&dest), "3\n");
    assert_eq!(
        fs::read(dest.join("latest/rootfs/usr/base")).unwrap(),
        noise(7, 200_000)
    );
    let o = run_bounded(tako_cmd().arg("status").arg(&config));
    assert_exit(&o, 0);
    assert!(
        stdout(&o).contains("installed 3.0, intact"),
        "{}",
        stdout(&o)
    );

    // Nothing more to do.
    let said = gc(&[]);
    assert!(said.contains(&format!("{name}: freed 0 bytes")), "{said}");
    assert_eq!(said.lines().count(), 1, "{said}");
}

#[test]
fn keep_makes_the_fetch_itself_remove_the_oldest_tree_and_its_blobs() {
    let lab = Lab::new();
    let (_, dest, versions) = three_versions(&lab, Some(2));
    let [(v1, hex1), (v2, hex2), (v3, hex3)] = &versions[..] else {
        unreachable!()
    };
    assert!(!dest.join("store").join(hex1).exists());
    assert!(
        dest.join("store")
            .join(hex2)
            .join("rootfs/app/version")
            .exists()
    );
    assert!(
        dest.join("store")
            .join(hex3)
            .join("rootfs/app/version")
            .exists()
    );
    for old in own_blobs(v1, hex1) {
        assert!(!blob_present(&dest, &old), "{old} was kept");
    }
    for kept in own_blobs(v2, hex2).iter().chain(&own_blobs(v3, hex3)) {
        assert!(blob_present(&dest, kept), "{kept} was removed");
    }
    let base = hex(&sha256_digest(&v3.images[0].layers[0].blob));
    assert!(blob_present(&dest, &base));
}

#[test]
fn status_verify_names_each_changed_removed_added_and_rechmodded_path_of_a_tree() {
    use std::os::unix::fs::PermissionsExt;
    let lab = Lab::new();
    let out = lab.out_dir();
    let server = Server::serve_dir(&out);
    let hex1 = publish(
        &lab,
        out.to_str().unwrap(),
        &app_index(Format::Oci, "1"),
        "1.0",
    );
    let (config, dest) = host_config(&lab, &server.url());
    assert_exit(&fetch(&[], &[&config]), 0);
    assert!(dest.join(format!("store/{hex1}/files")).is_file());

    let verify = || run_bounded(tako_cmd().args(["status", "--verify"]).arg(&config));
    let o = verify();
    assert_exit(&o, 0);
    assert!(
        stdout(&o).contains("installed 1.0, intact (every file checked against the record"),
        "{}",
        stdout(&o)
    );

    // Same size, other bytes; a file gone; a mode changed; a file planted.
    let rootfs = dest.join("latest/rootfs");
    let version = rootfs.join("app/version");
    let mode = fs::metadata(&version).unwrap().permissions().mode() & 0o7777;
    fs::set_permissions(&version, fs::Permissions::from_mode(0o600)).unwrap();
    fs::write(&version, "9\n").unwrap();
    fs::remove_file(rootfs.join("usr/base")).unwrap();
    fs::write(rootfs.join("app/planted"), "x").unwrap();
    let o = verify();
    assert_exit(&o, 1);
    let text = stdout(&o);
    assert!(
        text.contains("installed 1.0, damaged (4 differences"),
        "{text}"
    );
    for line in [
        "  app/planted: added".to_owned(),
        "  app/version: changed content".to_owned(),
        format!("  app/version: mode {mode:04o} → 0600"),
        "  usr/base: removed".to_owned(),
    ] {
        assert!(text.contains(&line), "no {line:?} in {text}");
    }
    // Without --verify, status only looks at the tree's presence, as before.
    let o = run_bounded(tako_cmd().arg("status").arg(&config));
    assert_exit(&o, 0);

    // A tree unpacked before trees had a record says so, and is not called damaged.
    fs::remove_file(dest.join(format!("store/{hex1}/files"))).unwrap();
    let o = verify();
    assert_exit(&o, 0);
    assert!(
        stdout(&o).contains("no record of its files"),
        "{}",
        stdout(&o)
    );
}

/// The bytes a host downloads for `index` when it has none of its blobs but `have`.
fn blob_bytes(index: &Index, have: &[String]) -> u64 {
    let image = &index.images[0];
    let mut blobs = vec![index.bytes(), image.manifest(), image.config.clone()];
    blobs.extend(image.layers.iter().map(|l| l.blob.clone()));
    blobs
        .iter()
        .filter(|b| !have.contains(&sha256_digest(b)))
        .map(|b| b.len() as u64)
        .sum()
}

#[test]
fn json_records_of_a_container_config_name_its_kind_platform_and_what_travelled() {
    let lab = Lab::new();
    let out = lab.out_dir();
    let server = Server::serve_dir(&out);
    let (config, _) = host_config(&lab, &server.url());
    let record = |o: &std::process::Output| -> serde_json::Value {
        assert_exit(o, 0);
        serde_json::from_str(stdout(o).trim()).unwrap_or_else(|e| panic!("{e}: {}", stdout(o)))
    };
    let host = Platform::host().to_string();

    let v1 = app_index(Format::Oci, "1");
    publish(&lab, out.to_str().unwrap(), &v1, "1.0");
    let r = record(&fetch(&["--json"], &[&config]));
    assert_eq!(r["outcome"], "updated");
    assert_eq!(r["kind"], "container");
    assert_eq!(r["platform"], host.as_str());
    assert_eq!(r["downloaded_bytes"], blob_bytes(&v1, &[]));
    assert_eq!(r["reused_layers"], 0);
    assert_eq!(r["delta"], false);
    assert_eq!(r["image_bytes"], serde_json::Value::Null);

    // The base layer is shared: the second version reuses it and downloads the rest.
    let v2 = app_index(Format::Oci, "2");
    publish(&lab, out.to_str().unwrap(), &v2, "2.0");
    let o = fetch(&[], &[&config]);
    assert_exit(&o, 0);
    assert!(
        stdout(&o).contains("updated 1.0 -> 2.0 (downloaded ")
            && stdout(&o).contains(", 1 layer reused)"),
        "{}",
        stdout(&o)
    );
    let v3 = app_index(Format::Oci, "3");
    publish(&lab, out.to_str().unwrap(), &v3, "3.0");
    let r = record(&fetch(&["--json"], &[&config]));
    assert_eq!(r["outcome"], "updated");
    assert_eq!(r["from"], "2.0");
    let base = sha256_digest(&v3.images[0].layers[0].blob);
    assert_eq!(r["downloaded_bytes"], blob_bytes(&v3, &[base]));
    assert_eq!(r["reused_layers"], 1);

    // Nothing built, nothing travelled: no costs to report, but still the kind.
    let r = record(&fetch(&["--json"], &[&config]));
    assert_eq!(r["outcome"], "up-to-date");
    assert_eq!(r["kind"], "container");
    assert_eq!(r["platform"], host.as_str());
    assert_eq!(r["downloaded_bytes"], serde_json::Value::Null);
    assert_eq!(r["reused_layers"], serde_json::Value::Null);

    // A Platform= setting is what the records name.
    let mut text = fs::read_to_string(&config).unwrap();
    text.push_str(&format!("Platform={host}\n"));
    fs::write(&config, text).unwrap();
    let o = run_bounded(tako_cmd().args(["status", "--json"]).arg(&config));
    let r = record(&o);
    assert_eq!(r["outcome"], "intact");
    assert_eq!(r["kind"], "container");
    assert_eq!(r["platform"], host.as_str());
    let o = run_bounded(tako_cmd().arg("status").arg(&config));
    assert!(
        stdout(&o).contains(&format!(
            "container image store/{}, for {host}",
            hex(&v3.digest())
        )),
        "{}",
        stdout(&o)
    );
}

#[test]
fn layers_download_side_by_side_so_a_stalled_one_holds_up_no_other() {
    let lab = Lab::new();
    let out = lab.out_dir();
    let server = Server::serve_dir(&out);
    let v1 = app_index(Format::Oci, "1");
    publish(&lab, out.to_str().unwrap(), &v1, "1.0");
    let (config, dest) = host_config(&lab, &server.url());
    let [base, app] = [0, 1].map(|i| hex(&sha256_digest(&v1.images[0].layers[i].blob)));
    let base_path = format!("/blobs/sha256/{base}");
    server.set_fault(
        &base_path,
        support::http_server::Fault::Stall { after: 1000 },
    );
    let run = Fetch::new().spawn(&[], &[&config]);
    assert!(
        server.wait_for_stalls(&base_path, 1, HANG_GUARD),
        "the base layer was never asked for"
    );
    // While the base layer stalls, the application's layer arrives whole.
    let app_blob = dest.join("blobs/sha256").join(&app);
    let arrived =
        crate::image::wait_until(std::time::Duration::from_secs(10), || app_blob.is_file());
    run.kill();
    assert!(
        arrived,
        "the second layer waited for the first: {:?}",
        blob_requests(&server.requests())
    );
    assert!(fs::symlink_metadata(dest.join("latest")).is_err());

    // The next run takes the base layer where the stall left it, and nothing else.
    server.clear_fault(&base_path);
    let before = server.requests().len();
    let o = fetch(&["--json"], &[&config]);
    assert_exit(&o, 0);
    assert_eq!(installed_version(&dest), "1\n");
    let asked = blob_requests(&server.requests()[before..]);
    assert!(!asked.contains(&app), "{asked:?}");
    assert!(asked.contains(&base), "{asked:?}");
    let record: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(record["reused_layers"], 1);
}

/// A new key from `tako gen-key`: (secret, public).
fn new_key() -> (String, String) {
    let o = tako(&["gen-key"]);
    assert_exit(&o, 0);
    let lines: Vec<String> = stdout(&o).lines().map(str::to_owned).collect();
    (lines[1].clone(), lines[4].clone())
}

#[test]
fn container_versions_signed_by_a_rotated_key_reach_hosts_of_either_key_until_the_old_is_retired() {
    let lab = Lab::new();
    let out = lab.out_dir();
    let server = Server::serve_dir(&out);
    let (k1, p1) = new_key();
    let (k2, p2) = new_key();
    let publish_with = |keys: &[&str], extra: &[&str], index: &Index, version: &str| -> String {
        let digest = lab.push_index(index, &format!("app:{version}"));
        let mut args = vec!["store"];
        for key in keys {
            args.extend(["-k", key]);
        }
        args.extend(extra);
        let image = lab.image(&format!("app:{version}"));
        args.extend(["-o", out.to_str().unwrap(), "--container", &image, version]);
        assert_exit(&tako(&args), 0);
        hex(&digest)
    };
    let host = |name: &str, public: &str| -> (PathBuf, PathBuf) {
        let dest = lab.path(&format!("{name}/dest"));
        fs::create_dir_all(&dest).unwrap();
        let config = lab.path(&format!("{name}.conf"));
        fs::write(
            &config,
            format!(
                "Origin={}\nPublicKey={public}\nDestination={}\nVersion=*\nKind=container\n",
                server.url(),
                dest.display()
            ),
        )
        .unwrap();
        (config, dest)
    };
    let (old_config, old_dest) = host("old", &p1);
    let (new_config, new_dest) = host("new", &p2);

    // 1.0 signed by both keys: each host installs it with its own key.
    let hex1 = publish_with(&[&k1, &k2], &[], &app_index(Format::Oci, "1"), "1.0");
    for (config, dest) in [(&old_config, &old_dest), (&new_config, &new_dest)] {
        assert_exit(&fetch(&[], &[config]), 0);
        assert_eq!(latest_target(dest), format!("store/{hex1}"));
    }

    // 2.0 signed by K2 alone, K1 retired: the K2 host updates; the K1 host, still
    // trusting only K1, is refused and keeps 1.0's tree.
    let hex2 = publish_with(
        &[&k2],
        &["--retire-key", &p1],
        &app_index(Format::Oci, "2"),
        "2.0",
    );
    assert_exit(&fetch(&[], &[&new_config]), 0);
    assert_eq!(latest_target(&new_dest), format!("store/{hex2}"));
    assert_eq!(installed_version(&new_dest), "2\n");
    let o = fetch(&[], &[&old_config]);
    assert_ne!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(
        stderr(&o).contains(&format!("does not verify with public key {p1}")),
        "{}",
        stderr(&o)
    );
    assert_eq!(latest_target(&old_dest), format!("store/{hex1}"));
    assert_eq!(installed_version(&old_dest), "1\n");
}

#[test]
fn a_layer_that_fails_stops_the_other_downloads_instead_of_waiting_for_them() {
    let lab = Lab::new();
    let out = lab.out_dir();
    let server = Server::serve_dir(&out);
    let v1 = app_index(Format::Oci, "1");
    publish(&lab, out.to_str().unwrap(), &v1, "1.0");
    let (config, dest) = host_config(&lab, &server.url());
    let [base, app] = [0, 1].map(|i| hex(&sha256_digest(&v1.images[0].layers[i].blob)));
    // The base layer trickles in (hours for all of it), the application's is damaged.
    server.set_fault(
        &format!("/blobs/sha256/{base}"),
        support::http_server::Fault::Slow {
            chunk: 100,
            delay: std::time::Duration::from_millis(200),
        },
    );
    let app_path = out.join("blobs/sha256").join(&app);
    let size = fs::metadata(&app_path).unwrap().len() as usize;
    replace(&app_path, &vec![b'x'; size]);

    // Bounded by the test's hang guard: the run ends when the damaged layer fails.
    let o = fetch(&["--idle-timeout", "600"], &[&config]);
    assert_exit(&o, 1);
    assert!(
        stderr(&o).contains(&app) && !stderr(&o).contains("stopped"),
        "{}",
        stderr(&o)
    );
    assert!(fs::symlink_metadata(dest.join("latest")).is_err());
}
