//! Unit tests of `tree`, beside it so the module itself stays readable.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

use super::*;

fn rel(s: &str) -> RelPath {
    RelPath::parse(s.as_bytes()).unwrap()
}

/// A tree beside a sentinel directory that nothing may touch.
struct Scene {
    _tmp: tempfile::TempDir,
    tree_path: PathBuf,
    outside: PathBuf,
}

impl Scene {
    fn new() -> Scene {
        let tmp = tempfile::tempdir().unwrap();
        let tree_path = tmp.path().join("tree");
        let outside = tmp.path().join("outside");
        std::fs::create_dir(&tree_path).unwrap();
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("secret"), b"do not touch").unwrap();
        std::fs::create_dir(outside.join("sub")).unwrap();
        std::fs::set_permissions(&outside, std::fs::Permissions::from_mode(0o750)).unwrap();
        Scene {
            _tmp: tmp,
            tree_path,
            outside,
        }
    }

    fn tree(&self, resolve: Resolve) -> Tree {
        Tree::open_with(&self.tree_path, resolve).unwrap()
    }

    fn snapshot(&self) -> BTreeMap<PathBuf, (u32, u64, Vec<u8>)> {
        let mut out = BTreeMap::new();
        let mut stack = vec![self.outside.clone()];
        while let Some(p) = stack.pop() {
            let meta = std::fs::symlink_metadata(&p).unwrap();
            let content = if meta.is_file() {
                std::fs::read(&p).unwrap()
            } else {
                Vec::new()
            };
            out.insert(p.clone(), (meta.mode(), meta.mtime() as u64, content));
            if meta.is_dir() {
                for e in std::fs::read_dir(&p).unwrap() {
                    stack.push(e.unwrap().path());
                }
            }
        }
        out
    }
}

const BOTH: [Resolve; 2] = [Resolve::Openat2, Resolve::Walk];

#[test]
fn paths_are_normalised_and_escapes_refused() {
    assert_eq!(rel("./a//b/./c/").as_bytes(), b"a/b/c");
    assert!(rel("./").is_root());
    assert!(rel(".").is_root());
    assert_eq!(RelPath::parse(b""), Err(PathProblem::Empty));
    assert_eq!(RelPath::parse(b"/etc/passwd"), Err(PathProblem::Absolute));
    assert_eq!(RelPath::parse(b"a/../../b"), Err(PathProblem::DotDot));
    assert_eq!(RelPath::parse(b".."), Err(PathProblem::DotDot));
    assert_eq!(RelPath::parse(b"a\0b"), Err(PathProblem::Nul));
    assert_eq!(
        RelPath::parse(&[b'x'; 256]),
        Err(PathProblem::ComponentTooLong { max: NAME_MAX })
    );
    let long = b"abcdefgh/".repeat(500);
    assert_eq!(
        RelPath::parse(&long),
        Err(PathProblem::TooLong { max: PATH_MAX - 1 })
    );
}

#[test]
fn a_path_splits_into_parent_and_name_and_knows_its_ancestors() {
    let p = rel("a/b/c");
    let (parent, name) = p.split_last().unwrap();
    assert_eq!((parent.as_bytes(), name), (&b"a/b"[..], &b"c"[..]));
    assert_eq!(rel("a").split_last().unwrap().0, RelPath::root());
    assert!(RelPath::root().split_last().is_none());
    assert_eq!(p.depth(), 3);
    assert!(p.starts_with(&rel("a/b")));
    assert!(p.starts_with(&RelPath::root()));
    assert!(!rel("a/bc").starts_with(&rel("a/b")));
    assert_eq!(rel("a").join(b"b").unwrap(), rel("a/b"));
    assert_eq!(rel("a").join(b".."), Err(PathProblem::DotDot));
    assert_eq!(rel("a").join(b"b/c"), Err(PathProblem::NotAComponent));
    assert_eq!(rel("a\n").shown(), "a\\n");
}

#[test]
fn the_kernel_here_has_openat2_and_open_picks_it() {
    let scene = Scene::new();
    assert_eq!(
        Tree::open(&scene.tree_path).unwrap().resolve(),
        Resolve::Openat2
    );
}

#[test]
fn a_symlink_on_the_way_is_named_and_never_followed() {
    for resolve in BOTH {
        let scene = Scene::new();
        std::fs::create_dir(scene.tree_path.join("a")).unwrap();
        std::os::unix::fs::symlink(&scene.outside, scene.tree_path.join("a/evil")).unwrap();
        std::os::unix::fs::symlink("../../outside", scene.tree_path.join("rel")).unwrap();
        let before = scene.snapshot();
        let tree = scene.tree(resolve);

        for path in ["a/evil", "a/evil/sub", "rel/sub"] {
            let err = tree.open_dir(&rel(path)).unwrap_err();
            let at = path.split("/sub").next().unwrap();
            assert!(
                matches!(&err, TreeError::Symlink { at: a } if a == at),
                "{resolve:?} {path}: {err}"
            );
            let err = tree
                .make_dirs(&rel(&format!("{path}/new")), &mut |_| {})
                .unwrap_err();
            assert!(
                matches!(err, TreeError::Symlink { .. }),
                "{resolve:?}: {err}"
            );
            let err = tree
                .make_slot(&rel(&format!("{path}/file")), &mut |_| {})
                .unwrap_err();
            assert!(
                matches!(err, TreeError::Symlink { .. }),
                "{resolve:?}: {err}"
            );
        }
        assert_eq!(scene.snapshot(), before, "{resolve:?}");
    }
}

#[test]
fn a_file_on_the_way_is_not_a_directory() {
    for resolve in BOTH {
        let scene = Scene::new();
        std::fs::write(scene.tree_path.join("f"), b"").unwrap();
        let err = scene.tree(resolve).open_dir(&rel("f/x")).unwrap_err();
        assert!(
            matches!(&err, TreeError::NotDirectory { at } if at == "f"),
            "{err}"
        );
    }
}

#[test]
fn missing_directories_are_made_private_and_reported() {
    for resolve in BOTH {
        let scene = Scene::new();
        let tree = scene.tree(resolve);
        assert!(tree.open_dir(&rel("a/b")).unwrap().is_none());
        let mut made = Vec::new();
        tree.make_dirs(&rel("a/b/c"), &mut |p| made.push(p.clone()))
            .unwrap();
        assert_eq!(made, [rel("a"), rel("a/b"), rel("a/b/c")]);
        let mode = std::fs::metadata(scene.tree_path.join("a/b"))
            .unwrap()
            .mode();
        assert_eq!(mode & 0o7777, 0o700);
        made.clear();
        tree.make_slot(&rel("a/b/c/d"), &mut |p| made.push(p.clone()))
            .unwrap();
        assert!(made.is_empty());
    }
}

#[test]
fn entries_are_created_exclusively_and_never_through_a_symlink_at_their_name() {
    for resolve in BOTH {
        let scene = Scene::new();
        std::os::unix::fs::symlink(scene.outside.join("secret"), scene.tree_path.join("link"))
            .unwrap();
        std::os::unix::fs::symlink(scene.outside.join("new"), scene.tree_path.join("dangling"))
            .unwrap();
        let before = scene.snapshot();
        let tree = scene.tree(resolve);
        for name in ["link", "dangling"] {
            let slot = tree.slot(&rel(name)).unwrap().unwrap();
            assert_eq!(slot.kind().unwrap(), Some(FileType::Symlink));
            assert!(slot.create_file().is_err());
            assert!(slot.make_dir().is_err());
            assert!(slot.make_fifo().is_err());
            assert!(slot.make_symlink(b"/x").is_err());
            assert!(matches!(slot.open_node(), Err(TreeError::Symlink { .. })));
            assert!(matches!(slot.open_dir(), Err(TreeError::Symlink { .. })));
        }
        assert_eq!(scene.snapshot(), before);

        let slot = tree.make_slot(&rel("d/file"), &mut |_| {}).unwrap();
        let mut file = slot.create_file().unwrap();
        file.write_all(b"content").unwrap();
        assert_eq!(slot.kind().unwrap(), Some(FileType::RegularFile));
        let meta = std::fs::metadata(scene.tree_path.join("d/file")).unwrap();
        assert_eq!(meta.mode() & 0o7777, 0o600);
    }
}

#[test]
fn symlink_targets_are_kept_as_they_are() {
    let scene = Scene::new();
    let tree = scene.tree(Resolve::Openat2);
    tree.slot(&rel("abs"))
        .unwrap()
        .unwrap()
        .make_symlink(b"/etc/passwd")
        .unwrap();
    tree.slot(&rel("up"))
        .unwrap()
        .unwrap()
        .make_symlink(b"../../..")
        .unwrap();
    assert_eq!(
        std::fs::read_link(scene.tree_path.join("abs")).unwrap(),
        Path::new("/etc/passwd")
    );
    assert_eq!(
        std::fs::read_link(scene.tree_path.join("up")).unwrap(),
        Path::new("../../..")
    );
}

#[test]
fn removal_takes_a_symlink_and_never_what_it_points_to() {
    for resolve in BOTH {
        let scene = Scene::new();
        let d = scene.tree_path.join("d");
        std::fs::create_dir_all(d.join("deep/er")).unwrap();
        std::fs::write(d.join("deep/er/f"), b"x").unwrap();
        std::os::unix::fs::symlink(&scene.outside, d.join("deep/to-outside")).unwrap();
        std::os::unix::fs::symlink(&scene.outside, scene.tree_path.join("top-link")).unwrap();
        // A read-only directory inside is still removed.
        std::fs::set_permissions(d.join("deep"), std::fs::Permissions::from_mode(0o500)).unwrap();
        let before = scene.snapshot();
        let tree = scene.tree(resolve);

        assert!(tree.slot(&rel("d")).unwrap().unwrap().remove().unwrap());
        assert!(
            tree.slot(&rel("top-link"))
                .unwrap()
                .unwrap()
                .remove()
                .unwrap()
        );
        assert!(!tree.slot(&rel("gone")).unwrap().unwrap().remove().unwrap());
        assert_eq!(std::fs::read_dir(&scene.tree_path).unwrap().count(), 0);
        assert_eq!(scene.snapshot(), before);
    }
}

#[test]
fn a_filtered_removal_keeps_what_it_is_told_and_descends_into_kept_directories() {
    for resolve in BOTH {
        let scene = Scene::new();
        let t = &scene.tree_path;
        std::fs::create_dir_all(t.join("d/keep-dir/sub")).unwrap();
        std::fs::write(t.join("d/keep-dir/new"), b"").unwrap();
        std::fs::write(t.join("d/keep-dir/old"), b"").unwrap();
        std::fs::write(t.join("d/old"), b"").unwrap();
        std::fs::write(t.join("d/new"), b"").unwrap();
        let tree = scene.tree(resolve);
        let kept = ["d/keep-dir", "d/keep-dir/new", "d/new"];
        let mut keep = |p: &RelPath| kept.iter().any(|k| k.as_bytes() == p.as_bytes());

        let mut removed = tree
            .remove_children_except(&rel("d"), &mut keep)
            .unwrap()
            .unwrap();
        removed.sort();
        assert_eq!(
            removed,
            [rel("d/keep-dir/old"), rel("d/keep-dir/sub"), rel("d/old")]
        );
        assert!(t.join("d/keep-dir/new").exists());
        assert!(t.join("d/new").exists());
        assert!(
            tree.remove_children_except(&rel("nothing"), &mut keep)
                .unwrap()
                .is_none()
        );

        let removed = tree
            .slot(&rel("d"))
            .unwrap()
            .unwrap()
            .remove_except(&mut |_| false)
            .unwrap();
        assert_eq!(removed, [rel("d")]);
        assert!(!t.join("d").exists());
    }
}

#[test]
fn a_hard_link_needs_an_existing_source_that_is_no_directory() {
    for resolve in BOTH {
        let scene = Scene::new();
        std::fs::write(scene.tree_path.join("file"), b"shared").unwrap();
        std::fs::create_dir(scene.tree_path.join("dir")).unwrap();
        std::os::unix::fs::symlink(&scene.outside, scene.tree_path.join("link")).unwrap();
        let tree = scene.tree(resolve);
        let slot = |p: &str| tree.slot(&rel(p)).unwrap().unwrap();

        slot("copy").hard_link_from(&slot("file")).unwrap();
        let a = std::fs::metadata(scene.tree_path.join("file")).unwrap();
        let b = std::fs::metadata(scene.tree_path.join("copy")).unwrap();
        assert_eq!(a.ino(), b.ino());

        let err = slot("x").hard_link_from(&slot("dir")).unwrap_err();
        assert!(
            matches!(err, TreeError::HardLinkToDirectory { .. }),
            "{err}"
        );
        let err = slot("x").hard_link_from(&slot("missing")).unwrap_err();
        assert!(matches!(err, TreeError::Missing { .. }), "{err}");
        // A link to a symlink is a second name of the symlink itself.
        slot("link2").hard_link_from(&slot("link")).unwrap();
        let meta = std::fs::symlink_metadata(scene.tree_path.join("link2")).unwrap();
        assert!(meta.file_type().is_symlink());
    }
}

#[test]
fn metadata_is_set_on_the_entry_itself() {
    let scene = Scene::new();
    let tree = scene.tree(Resolve::Openat2);
    let slot = tree.slot(&rel("f")).unwrap().unwrap();
    let node = Node::new(slot.create_file().unwrap());
    node.set_owner(1234, 5678).unwrap();
    node.set_mode(0o4755).unwrap();
    let t = Time {
        secs: 1_000_000_000,
        nanos: 5,
    };
    node.set_times(t, t).unwrap();
    node.set_xattr(b"user.test", b"value").unwrap();
    let meta = std::fs::metadata(scene.tree_path.join("f")).unwrap();
    assert_eq!(
        (meta.uid(), meta.gid(), meta.mode() & 0o7777),
        (1234, 5678, 0o4755)
    );
    assert_eq!((meta.mtime(), meta.mtime_nsec()), (1_000_000_000, 5));

    let link = tree.slot(&rel("l")).unwrap().unwrap();
    link.make_symlink(b"f").unwrap();
    link.set_owner(42, 43).unwrap();
    link.set_times(t, Time { secs: 7, nanos: 0 }).unwrap();
    let meta = std::fs::symlink_metadata(scene.tree_path.join("l")).unwrap();
    assert_eq!((meta.uid(), meta.gid(), meta.mtime()), (42, 43, 7));
    // The file it points to kept its own.
    let meta = std::fs::metadata(scene.tree_path.join("f")).unwrap();
    assert_eq!((meta.uid(), meta.mtime()), (1234, 1_000_000_000));

    let fifo = tree.slot(&rel("p")).unwrap().unwrap();
    fifo.make_fifo().unwrap();
    fifo.open_node().unwrap().set_mode(0o640).unwrap();
    let meta = std::fs::symlink_metadata(scene.tree_path.join("p")).unwrap();
    assert!(std::os::unix::fs::FileTypeExt::is_fifo(&meta.file_type()));
    assert_eq!(meta.mode() & 0o7777, 0o640);
}

#[test]
fn two_trees_are_exchanged_in_one_step_and_a_move_never_replaces() {
    let scene = Scene::new();
    let t = &scene.tree_path;
    std::fs::create_dir(t.join("current")).unwrap();
    std::fs::write(t.join("current/version"), b"old").unwrap();
    std::fs::create_dir(t.join(".new")).unwrap();
    std::fs::write(t.join(".new/version"), b"new").unwrap();
    let tree = scene.tree(Resolve::Openat2);
    let slot = |p: &str| tree.slot(&rel(p)).unwrap().unwrap();

    slot(".new").exchange(&slot("current")).unwrap();
    assert_eq!(std::fs::read(t.join("current/version")).unwrap(), b"new");
    assert_eq!(std::fs::read(t.join(".new/version")).unwrap(), b"old");

    let err = slot(".new").move_to(&slot("current")).unwrap_err();
    assert!(err.to_string().contains("exists"), "{err}");
    slot(".new").move_to(&slot("old")).unwrap();
    assert_eq!(std::fs::read(t.join("old/version")).unwrap(), b"old");
    assert!(slot("missing").exchange(&slot("current")).is_err());
}
