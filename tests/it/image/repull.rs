//! Pulling again into a directory that holds a pulled tree: left alone when the reference
//! still names the manifest it was built from ("up to date", no blob downloaded), refused
//! without `--force` when the reference names another one, built again with `--rebuild`;
//! an old tree with a file system mounted in it is swapped out but never emptied; and a
//! pull that fails stops its other downloads instead of waiting for them.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::process::Command;

use super::*;

#[test]
fn a_pull_of_the_manifest_a_directory_already_holds_leaves_it_alone_and_downloads_no_blob() {
    let lab = Lab::new();
    let manifest = lab.push(&plain_image("one"), "app:one");
    let dir = lab.path("root");
    assert_success(&lab.pull(&[], "app:one", &dir));
    // What a container changed in its tree since.
    fs::write(dir.join("etc/changed-since"), "x\n").unwrap();
    let inode = fs::metadata(&dir).unwrap().ino();

    for args in [&[][..], &["--force"][..]] {
        lab.proxy.clear_requests();
        let o = lab.pull(args, "app:one", &dir);
        assert_success(&o);
        assert!(
            out(&o).contains("up to date") && out(&o).contains(&manifest),
            "{args:?}: the pull should say the tree is up to date and name its manifest:\n{}",
            out(&o)
        );
        assert_eq!(
            lab.proxy.blobs_fetched(),
            Vec::<String>::new(),
            "{args:?}: an up-to-date pull downloaded blobs"
        );
        assert!(dir.join("etc/changed-since").exists(), "{args:?}");
        assert_eq!(fs::metadata(&dir).unwrap().ino(), inode, "{args:?}");
    }

    let o = lab.pull(&["--json"], "app:one", &dir);
    assert_success(&o);
    let record: serde_json::Value = serde_json::from_str(out(&o).trim()).unwrap();
    assert_eq!(record["outcome"], "up-to-date");
    assert_eq!(record["manifest_digest"], manifest.as_str());
    assert_eq!(record["downloaded_bytes"], 0);

    // --rebuild builds it again from the cache: the change is gone.
    lab.proxy.clear_requests();
    let o = lab.pull(&["--rebuild"], "app:one", &dir);
    assert_success(&o);
    assert!(out(&o).contains("pulled"), "{}", out(&o));
    assert!(!dir.join("etc/changed-since").exists());
    assert_ne!(fs::metadata(&dir).unwrap().ino(), inode);
    assert_eq!(fs::read(dir.join("etc/marker")).unwrap(), b"one\n");
    assert_eq!(lab.proxy.blobs_fetched(), Vec::<String>::new());
}

#[test]
fn a_directory_holding_the_tree_of_another_manifest_needs_force_and_the_error_names_both() {
    let lab = Lab::new();
    let old = lab.push(&plain_image("old"), "app:v1");
    let dir = lab.path("root");
    assert_success(&lab.pull(&[], "app:v1", &dir));
    // The tag moves on.
    let new = lab.push(&plain_image("newer"), "app:v1");
    let before = rootfs::stamp(&dir);
    lab.proxy.clear_requests();
    let o = lab.pull(&[], "app:v1", &dir);
    assert_failure(&o);
    let e = err(&o);
    assert!(
        e.contains(&old) && e.contains(&new) && e.contains("--force") && e.contains("root"),
        "the error should name the tree's manifest, the new one, DIR and --force:\n{e}"
    );
    assert_eq!(rootfs::stamp(&dir), before, "a refused pull changed DIR");
    assert_eq!(
        lab.proxy.blobs_fetched(),
        Vec::<String>::new(),
        "a refused pull downloaded layers"
    );

    assert_success(&lab.pull(&["--force"], "app:v1", &dir));
    assert_eq!(fs::read(dir.join("etc/marker")).unwrap(), b"newer\n");
}

#[test]
fn a_directory_made_again_at_the_same_path_is_not_taken_for_the_pulled_tree() {
    let lab = Lab::new();
    lab.push(&plain_image("one"), "app:one");
    let dir = lab.path("root");
    assert_success(&lab.pull(&[], "app:one", &dir));
    // Removed and made again by hand: it may even get the same inode number.
    fs::remove_dir_all(&dir).unwrap();
    fs::create_dir(&dir).unwrap();
    fs::write(dir.join("by-hand"), "mine\n").unwrap();
    let o = lab.pull(&[], "app:one", &dir);
    assert_failure(&o);
    assert!(err(&o).contains("--force"), "{}", err(&o));
    assert_eq!(names(&dir), ["by-hand"]);
}

/// Mounts a tmpfs at `at`; unmounts it when dropped.
struct Mount(PathBuf);

impl Mount {
    fn tmpfs(at: &Path) -> Mount {
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m", "tako-test"])
            .arg(at)
            .status()
            .expect("run mount");
        assert!(status.success(), "mount a tmpfs at {}", at.display());
        Mount(at.to_path_buf())
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn an_old_tree_with_a_file_system_mounted_in_it_is_swapped_out_but_never_emptied() {
    require_root();
    let lab = Lab::new();
    lab.push(&plain_image("old"), "app:old");
    lab.push(&plain_image("new"), "app:new");
    let dir = lab.path("root");
    assert_success(&lab.pull(&[], "app:old", &dir));
    fs::create_dir(dir.join("data")).unwrap();
    let mut mount = Mount::tmpfs(&dir.join("data"));
    fs::write(dir.join("data/precious"), "keep me\n").unwrap();

    let o = lab.pull(&["--force"], "app:new", &dir);
    assert_success(&o);
    assert_eq!(fs::read(dir.join("etc/marker")).unwrap(), b"new\n");
    assert!(
        err(&o).contains("mount point") && err(&o).contains("root.tako-new"),
        "the warning should say a mount point kept the old tree, and where it is left:\n{}",
        err(&o)
    );
    let left = lab.path(".root.tako-new");
    assert_eq!(
        fs::read(left.join("data/precious")).unwrap(),
        b"keep me\n",
        "the mounted file system was emptied"
    );

    // Until it is unmounted, the next pull says what is in the way.
    let o = lab.pull(&["--force"], "app:old", &dir);
    assert_failure(&o);
    assert!(
        err(&o).contains("mount point") && err(&o).contains("unmount"),
        "{}",
        err(&o)
    );
    assert_eq!(fs::read(dir.join("etc/marker")).unwrap(), b"new\n");
    // The mount moved with the old tree.
    mount.0 = left.join("data");
    drop(mount);
    assert_success(&lab.pull(&["--force"], "app:old", &dir));
    assert_eq!(fs::read(dir.join("etc/marker")).unwrap(), b"old\n");
    assert!(!left.exists(), "what was left of the old tree stayed");
}

#[test]
fn a_failed_pull_stops_its_other_downloads_and_keeps_what_they_got() {
    let lab = Lab::new();
    let broken = Layer::new(
        &[Entry::file("broken", noise(21, 64 << 10))],
        Compression::Gzip,
    );
    let big = Layer::new(&[Entry::file("big", noise(22, 2 << 20))], Compression::None);
    let image = Image::host(Format::Oci, vec![broken.clone(), big.clone()]);
    lab.push(&image, "app:v1");
    // Damaged, and slow enough that the big layer's download is well under way when the
    // damage is found.
    lab.proxy.set_rule(
        &blob_path("app", &broken.digest()),
        Rule {
            throttle: Some((16 << 10, Duration::from_millis(400))),
            ..Rule::body(noise(23, 64 << 10))
        },
    );
    // Two hundred seconds for the whole of the big layer.
    lab.proxy.set_rule(
        &blob_path("app", &big.digest()),
        Rule::throttle(1024, Duration::from_millis(100)),
    );
    let dir = lab.path("root");
    // Within the hang guard, far less than the big layer takes.
    let o = lab.pull(&["--parallel", "2", "--retries", "0"], "app:v1", &dir);
    assert_failure(&o);
    assert!(err(&o).contains("layer 1 of 2"), "{}", err(&o));
    assert!(!dir.exists());
    let partial = lab
        .partials()
        .into_iter()
        .find(|(path, _)| path.to_string_lossy().contains(&big.digest()[7..]));
    let (_, size) = partial.unwrap_or_else(|| {
        panic!(
            "the stopped download keeps what it got as a partial: {:?}\n{}",
            lab.partials(),
            err(&o)
        )
    });
    assert!(size < big.blob.len() as u64, "{size}");
}
