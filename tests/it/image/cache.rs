//! The blob cache every pull shares (`blobs/sha256/<hex>`), judged by what the registry was
//! asked for, and `tako image purge`, judged by which blobs are left.

use std::collections::BTreeSet;
use std::fs;

use super::*;
use support::images::Entry as E;
use support::registry_proxy::Rule;
use support::tako::SLOW_GUARD;

/// A base layer two images share, and a top layer each has alone.
struct Family {
    base: Layer,
    one: Image,
    two: Image,
}

fn family() -> Family {
    let base = Layer::new(
        &[
            E::dir("usr"),
            E::file("usr/base", noise(11, 256 << 10)),
            E::dir("etc"),
        ],
        Compression::Gzip,
    );
    let top = |name: &str, seed| {
        Layer::new(
            &[E::file(format!("etc/{name}"), noise(seed, 64 << 10))],
            Compression::Gzip,
        )
    };
    Family {
        one: Image::host(Format::Oci, vec![base.clone(), top("one", 12)]),
        two: Image::host(Format::Oci, vec![base.clone(), top("two", 13)]),
        base,
    }
}

fn set(digests: impl IntoIterator<Item = String>) -> BTreeSet<String> {
    digests.into_iter().collect()
}

#[test]
fn a_second_image_sharing_the_base_layer_downloads_only_what_is_new() {
    let lab = Lab::new();
    let f = family();
    lab.push(&f.one, "app:one");
    lab.push(&f.two, "app:two");

    assert_success(&lab.pull(&[], "app:one", &lab.path("one")));
    assert_eq!(set(lab.proxy.blobs_fetched()), set(f.one.blob_digests()));
    assert_eq!(lab.proxy.blob_gets(&f.base.digest()).len(), 1);

    lab.proxy.clear_requests();
    let o = lab.pull(&[], "app:two", &lab.path("two"));
    assert_success(&o);
    let new_layer = f.two.layers[1].digest();
    assert_eq!(
        set(lab.proxy.blobs_fetched()),
        set([f.two.config_digest(), new_layer.clone()]),
        "the second pull downloaded more than its new layer and config"
    );

    // A pull of an image whose blobs are all cached downloads none.
    lab.proxy.clear_requests();
    assert_success(&lab.pull(&[], "app:one", &lab.path("one-again")));
    assert_eq!(lab.proxy.blobs_fetched(), Vec::<String>::new());
    assert_eq!(
        tree(&lab.path("one")),
        tree(&lab.path("one-again")),
        "a tree from cached blobs differs"
    );
}

#[test]
fn two_pulls_at_once_download_each_shared_blob_once() {
    let lab = Lab::new();
    let f = family();
    lab.push(&f.one, "app:one");
    lab.push(&f.two, "app:two");
    // Slow blobs, so the two pulls overlap.
    let slow = Rule::throttle(16 << 10, Duration::from_millis(20));
    for digest in f.one.blob_digests().into_iter().chain(f.two.blob_digests()) {
        lab.proxy.set_rule(&blob_path("app", &digest), slow.clone());
    }
    let first = lab.spawn_pull(SLOW_GUARD, &[], "app:one", &lab.path("one"));
    let second = lab.spawn_pull(SLOW_GUARD, &[], "app:two", &lab.path("two"));
    assert_success(&first.finish());
    assert_success(&second.finish());
    let gets = lab.proxy.blob_gets(&f.base.digest());
    assert_eq!(
        gets.len(),
        1,
        "the shared base layer was downloaded {} times",
        gets.len()
    );
    assert_eq!(
        fs::read(lab.path("two/usr/base")).unwrap(),
        noise(11, 256 << 10)
    );
}

#[test]
fn two_pulls_into_one_directory_at_once_leave_one_whole_image() {
    let lab = Lab::new();
    let f = family();
    lab.push(&f.one, "app:one");
    lab.push(&f.two, "app:two");
    let slow = Rule::throttle(16 << 10, Duration::from_millis(10));
    for digest in f.one.blob_digests().into_iter().chain(f.two.blob_digests()) {
        lab.proxy.set_rule(&blob_path("app", &digest), slow.clone());
    }
    let dir = lab.path("root");
    let first = lab.spawn_pull(SLOW_GUARD, &["--force"], "app:one", &dir);
    let second = lab.spawn_pull(SLOW_GUARD, &["--force"], "app:two", &dir);
    assert_success(&first.finish());
    assert_success(&second.finish());
    lab.proxy.clear_rules();
    let now = tree(&dir);
    let one = lab.path("one");
    let two = lab.path("two");
    assert_success(&lab.pull(&[], "app:one", &one));
    assert_success(&lab.pull(&[], "app:two", &two));
    assert!(
        now == tree(&one) || now == tree(&two),
        "two pulls into one directory left a mix:\n{}",
        rootfs::differences(&tree(&two), &now).join("\n")
    );
}

#[test]
fn purge_frees_exactly_the_blobs_no_pulled_tree_uses() {
    let lab = Lab::new();
    let f = family();
    lab.push(&f.one, "app:one");
    lab.push(&f.two, "app:two");
    let one = lab.path("one");
    let two = lab.path("two");
    assert_success(&lab.pull(&[], "app:one", &one));
    assert_success(&lab.pull(&[], "app:two", &two));
    let only_two = set([f.two.config_digest(), f.two.layers[1].digest()]);
    let all_before = set(lab.cached_blobs());
    assert!(
        all_before.is_superset(&set(f.one.blob_digests()))
            && all_before.is_superset(&set(f.two.blob_digests())),
        "the cache does not hold the pulled blobs as blobs/sha256/<hex>: {all_before:?}"
    );

    // Both trees in use: nothing to free.
    let o = lab.purge(&[]);
    assert_success(&o);
    assert_eq!(
        set(lab.cached_blobs()),
        all_before,
        "purge freed blobs in use"
    );

    fs::remove_dir_all(&two).unwrap();
    let o = lab.purge(&["--dry-run"]);
    assert_success(&o);
    assert_eq!(
        set(lab.cached_blobs()),
        all_before,
        "--dry-run removed blobs"
    );
    for digest in &only_two {
        assert!(
            all_output(&o).contains(&digest[7..19]),
            "--dry-run does not list {digest}:\n{}",
            all_output(&o)
        );
    }

    let o = lab.purge(&[]);
    assert_success(&o);
    let left = set(lab.cached_blobs());
    let freed: BTreeSet<String> = all_before.difference(&left).cloned().collect();
    assert!(
        freed.is_superset(&only_two),
        "purge kept {:?}",
        only_two.difference(&freed)
    );
    // Besides those, a cache that keeps manifests may free the one of the tree that went.
    let mut sizes = std::collections::BTreeMap::new();
    for image in [&f.one, &f.two] {
        sizes.insert(image.config_digest(), image.config.len());
        sizes.insert(image.manifest_digest(), image.manifest().len());
        for layer in &image.layers {
            sizes.insert(layer.digest(), layer.blob.len());
        }
    }
    let may_go: BTreeSet<String> = only_two
        .iter()
        .cloned()
        .chain([f.two.manifest_digest()])
        .collect();
    assert!(
        freed.is_subset(&may_go),
        "purge freed blobs a tree still uses: {:?}",
        freed.difference(&may_go)
    );
    let text = all_output(&o);
    for digest in &only_two {
        assert!(
            text.contains(&digest[7..19]),
            "purge does not say it removed {digest}:\n{text}"
        );
    }
    let bytes: usize = freed.iter().map(|d| sizes[d]).sum();
    assert!(
        bytes_mentioned(&text, bytes as u64),
        "purge does not say it freed {bytes} bytes:\n{text}"
    );
    lab.assert_cache_verified();

    // The tree still there is pulled again from the cache alone.
    lab.proxy.clear_requests();
    assert_success(&lab.pull(&["--force"], "app:one", &one));
    assert_eq!(lab.proxy.blobs_fetched(), Vec::<String>::new());
}

/// Whether `text` gives `bytes` as a number of bytes, KiB, kB, MiB or MB, rounded any way.
fn bytes_mentioned(text: &str, bytes: u64) -> bool {
    let mut candidates = vec![bytes.to_string()];
    for unit in [1000f64, 1024.0, 1e6, 1024.0 * 1024.0] {
        let value = bytes as f64 / unit;
        for decimals in 0..=2 {
            candidates.push(format!("{value:.decimals$}"));
        }
        candidates.push(format!("{}", value.floor()));
        candidates.push(format!("{}", value.ceil()));
    }
    candidates.iter().any(|c| text.contains(c.as_str()))
}

#[test]
fn a_tree_replaced_with_force_releases_the_blobs_only_it_used() {
    let lab = Lab::new();
    let f = family();
    lab.push(&f.one, "app:one");
    lab.push(&f.two, "app:two");
    let dir = lab.path("root");
    assert_success(&lab.pull(&[], "app:one", &dir));
    assert_success(&lab.pull(&["--force"], "app:two", &dir));
    assert_success(&lab.purge(&[]));
    let left = set(lab.cached_blobs());
    assert!(
        left.is_superset(&set(f.two.blob_digests())),
        "purge freed blobs in use"
    );
    for digest in [f.one.config_digest(), f.one.layers[1].digest()] {
        assert!(
            !left.contains(&digest),
            "purge kept {digest}, used only by the replaced tree"
        );
    }
}

#[test]
fn purge_removes_the_partial_download_of_a_killed_pull() {
    let lab = Lab::new();
    let big = Layer::new(&[E::file("big", noise(21, 2 << 20))], Compression::Gzip);
    let image = Image::host(Format::Oci, vec![big.clone()]);
    lab.push(&image, "app:big");
    let blob = blob_path("app", &big.digest());
    lab.kill_at(&[], "app:big", &lab.path("root"), &blob, 1 << 20, 1);
    assert!(
        !lab.partials().is_empty(),
        "no partial download (a name with .partial) in the cache after the kill"
    );
    let o = lab.purge(&[]);
    assert_success(&o);
    assert_eq!(
        lab.partials(),
        Vec::new(),
        "purge left a stale partial download"
    );
}

#[test]
fn a_purge_while_a_pull_runs_removes_nothing_the_pull_needs() {
    let lab = Lab::new();
    let f = family();
    lab.push(&f.one, "app:one");
    lab.push(&f.two, "app:two");
    // An unrelated tree keeps the base layer in use; then it goes, so only the running pull
    // still needs the base layer when the purge looks.
    let gone = lab.path("gone");
    assert_success(&lab.pull(&[], "app:two", &gone));
    fs::remove_dir_all(&gone).unwrap();
    let top = f.one.layers[1].digest();
    let blob = blob_path("app", &top);
    lab.proxy.rule_once(&blob, Rule::stall_after(16 << 10));
    let dir = lab.path("root");
    let pull = lab.spawn_pull(
        SLOW_GUARD,
        &["--idle-timeout", "3", "--retries", "3"],
        "app:one",
        &dir,
    );
    assert!(lab.proxy.wait_for_stalls(&blob, 1, HANG_GUARD));
    // The purge may wait for the pull or run beside it; either way it must spare the base
    // layer and the partial download the pull is using.
    let purge = {
        let mut cmd = tako_cmd();
        cmd.args(["image", "purge", "--cache"]).arg(lab.cache());
        Bounded::new(&mut cmd).within(SLOW_GUARD).spawn()
    };
    let pulled = pull.finish();
    let purged = purge.finish();
    assert_success(&pulled);
    assert_success(&purged);
    assert_eq!(
        fs::read(dir.join("usr/base")).unwrap(),
        noise(11, 256 << 10)
    );
    let left = set(lab.cached_blobs());
    assert!(
        left.is_superset(&set(f.one.blob_digests())),
        "the purge removed blobs of the tree just pulled: {left:?}"
    );
    assert_eq!(
        lab.proxy.blob_gets(&f.base.digest()).len(),
        1,
        "the base layer was downloaded again: the purge removed it under the running pull"
    );
}
