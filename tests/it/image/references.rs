//! How a pull is asked for and what it reports: the digests it resolved, the warning that an
//! image pulled by tag was not signature-checked, pinned digests (and a tag that disagrees
//! with its digest), `--force` against an existing tree, and where the cache is.

use std::fs;
use std::os::unix::fs::MetadataExt;

use super::*;

#[test]
fn a_pull_by_tag_prints_the_digest_and_says_the_image_was_not_signature_checked() {
    let lab = Lab::new();
    let image = plain_image("tagged");
    let digest = lab.push(&image, "app:v1");
    let o = lab.pull(&[], "app:v1", &lab.path("by-tag"));
    assert_success(&o);
    let text = all_output(&o);
    assert!(text.contains("app"), "the image is not named:\n{text}");
    assert!(
        text.contains(&digest),
        "the resolved digest is not printed:\n{text}"
    );
    assert!(
        text.to_ascii_lowercase().contains("signature"),
        "no word that an image pulled by tag was not signature-checked:\n{text}"
    );

    let o = lab.pull(&[], &format!("app@{digest}"), &lab.path("pinned"));
    assert_success(&o);
    let text = all_output(&o);
    assert!(text.contains(&digest));
    assert!(
        !text.to_ascii_lowercase().contains("signature"),
        "an image pinned by digest was said not to be checked:\n{text}"
    );
    assert_eq!(tree(&lab.path("by-tag")), tree(&lab.path("pinned")));
}

#[test]
fn a_tag_and_a_digest_that_disagree_are_refused() {
    let lab = Lab::new();
    let v1 = lab.push(&plain_image("one"), "app:v1");
    let v2 = lab.push(&plain_image("two"), "app:v2");
    let dir = lab.path("root");
    let o = lab.pull(&[], &format!("app:v1@{v2}"), &dir);
    assert_failure(&o);
    assert!(
        err(&o).contains(&v2) || err(&o).contains("v1"),
        "the error should say the tag does not name that digest:\n{}",
        err(&o)
    );
    assert!(!dir.exists());
    // When they agree, the digest is pulled.
    let o = lab.pull(&[], &format!("app:v1@{v1}"), &dir);
    assert_success(&o);
    assert_eq!(fs::read(dir.join("etc/marker")).unwrap(), b"one\n");
}

#[test]
fn without_force_only_an_absent_or_empty_directory_is_pulled_into() {
    let lab = Lab::new();
    lab.push(&plain_image("new"), "app:new");
    let busy = lab.path("busy");
    fs::create_dir(&busy).unwrap();
    fs::write(busy.join("precious"), "keep me\n").unwrap();
    let before = rootfs::stamp(&busy);
    let o = lab.pull(&[], "app:new", &busy);
    assert_failure(&o);
    assert!(
        err(&o).contains("busy") && err(&o).contains("--force"),
        "the error should name the directory and --force:\n{}",
        err(&o)
    );
    assert_eq!(
        rootfs::stamp(&busy),
        before,
        "a refused pull changed the directory"
    );

    let empty = lab.path("empty");
    fs::create_dir(&empty).unwrap();
    assert_success(&lab.pull(&[], "app:new", &empty));
    assert_eq!(fs::read(empty.join("etc/marker")).unwrap(), b"new\n");
}

#[test]
fn force_replaces_a_tree_whole_by_exchanging_it() {
    let lab = Lab::new();
    lab.push(&plain_image("old"), "app:old");
    lab.push(&plain_image("new"), "app:new");
    let dir = lab.path("root");
    assert_success(&lab.pull(&[], "app:old", &dir));
    fs::write(dir.join("added-by-hand"), "x\n").unwrap();
    let old_inode = fs::metadata(&dir).unwrap().ino();
    let beside = names(lab.work.path());
    assert_success(&lab.pull(&["--force"], "app:new", &dir));
    assert!(
        !dir.join("added-by-hand").exists(),
        "the old tree's files survived"
    );
    assert_eq!(fs::read(dir.join("etc/marker")).unwrap(), b"new\n");
    assert_ne!(
        fs::metadata(&dir).unwrap().ino(),
        old_inode,
        "the tree was rewritten in place, not built beside it and exchanged"
    );
    assert_eq!(
        names(lab.work.path()),
        beside,
        "the old tree or a build directory was left beside the new one"
    );
    let fresh = lab.path("fresh");
    assert_success(&lab.pull(&[], "app:new", &fresh));
    assert_eq!(tree(&dir), tree(&fresh));
}

#[test]
fn the_cache_is_where_tako_cache_says_and_no_cache_keeps_none() {
    let lab = Lab::new();
    let image = plain_image("cached");
    lab.push(&image, "app:v1");
    let env_cache = lab.path("from-env");
    let pull = |args: &[&str], dir: &str| {
        let mut cmd = tako_cmd();
        cmd.env("TAKO_CACHE", &env_cache)
            .args(["image", "pull"])
            .args(args)
            .arg(lab.image("app:v1"))
            .arg(lab.path(dir));
        Bounded::new(&mut cmd).run()
    };
    assert_success(&pull(&[], "one"));
    for digest in image.blob_digests() {
        assert!(
            env_cache.join("blobs/sha256").join(&digest[7..]).is_file(),
            "{digest} is not in $TAKO_CACHE/blobs/sha256"
        );
    }

    fs::remove_dir_all(&env_cache).unwrap();
    lab.proxy.clear_requests();
    assert_success(&pull(&["--no-cache"], "two"));
    assert_success(&pull(&["--cache=no"], "three"));
    assert!(!env_cache.exists(), "--no-cache wrote to the cache");
    let layer = image.layers[0].digest();
    assert_eq!(
        lab.proxy.blob_gets(&layer).len(),
        2,
        "without a cache every pull downloads every blob"
    );
    assert_eq!(tree(&lab.path("one")), tree(&lab.path("three")));
}

#[test]
fn auth_sends_a_service_account_key_as_the_json_key_password() {
    // A key short enough for htpasswd's bcrypt, which reads 72 bytes at most.
    let key = r#"{"type":"service_account","project_id":"tako-test"}"#;
    let lab = Lab::with_basic_auth("_json_key", key);
    lab.push(&plain_image("private"), "app:v1");
    let key_file = lab.path("key.json");
    fs::write(&key_file, key).unwrap();

    let o = lab.pull(&[], "app:v1", &lab.path("refused"));
    assert_failure(&o);
    let o = lab.pull(
        &["--auth", key_file.to_str().unwrap()],
        "app:v1",
        &lab.path("root"),
    );
    assert_success(&o);
    assert_eq!(fs::read(lab.path("root/etc/marker")).unwrap(), b"private\n");
    assert!(
        !all_output(&o).contains("service_account"),
        "the key was printed:\n{}",
        all_output(&o)
    );
}
