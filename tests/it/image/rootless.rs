//! A pull by an unprivileged user (`setpriv` to nobody, 65534:65534): every file belongs to
//! the caller, setuid and setgid are dropped, the image's owners are kept in the
//! `user.rootlesscontainers` xattr as umoci writes it, and the content is what root gets.
//! The cache is the caller's own, under `$XDG_CACHE_HOME/tako`.

use std::os::unix::fs::chown;

use super::*;
use support::rootfs::Kind;

const NOBODY: u32 = 65534;

/// `tako ARGS…` as nobody, with the environment `tako_cmd` gives tako.
fn as_nobody(args: &[&std::ffi::OsStr]) -> Command {
    let tako = tako_cmd();
    let mut cmd = Command::new("setpriv");
    cmd.args([
        format!("--reuid={NOBODY}"),
        format!("--regid={NOBODY}"),
        "--clear-groups".into(),
        "--".into(),
    ])
    .arg(tako.get_program())
    .args(args);
    for (name, value) in tako.get_envs() {
        match value {
            Some(value) => cmd.env(name, value),
            None => cmd.env_remove(name),
        };
    }
    cmd
}

/// The uid and gid of a `user.rootlesscontainers` value: protobuf fields 1 and 2, varints.
fn rootless_owner(value: &[u8]) -> (Option<u64>, Option<u64>) {
    let (mut uid, mut gid) = (None, None);
    let mut bytes = value.iter();
    while let Some(&tag) = bytes.next() {
        let mut number = 0u64;
        let mut shift = 0;
        for &b in bytes.by_ref() {
            number |= u64::from(b & 0x7f) << shift;
            shift += 7;
            if b & 0x80 == 0 {
                break;
            }
        }
        match tag {
            0x08 => uid = Some(number),
            0x10 => gid = Some(number),
            other => panic!("unexpected protobuf tag {other:#x} in {value:?}"),
        }
    }
    (uid, gid)
}

#[test]
fn a_pull_by_an_unprivileged_user_gives_the_caller_every_file_and_records_the_owners() {
    require_root();
    let lab = Lab::new();
    lab.push(&rich_image(Format::Oci, Compression::Gzip), "app:rich");
    let as_root = lab.path("as-root");
    assert_success(&lab.pull(&[], "app:rich", &as_root));

    open_to_all(lab.work.path());
    let home = lab.path("nobody");
    std::fs::create_dir(&home).unwrap();
    chown(&home, Some(NOBODY), Some(NOBODY)).unwrap();
    let dir = home.join("rootfs");
    let xdg = home.join("xdg");
    let image = lab.image("app:rich");
    let mut cmd = as_nobody(&[
        "image".as_ref(),
        "pull".as_ref(),
        image.as_ref(),
        dir.as_os_str(),
    ]);
    cmd.env("XDG_CACHE_HOME", &xdg);
    let o = Bounded::new(&mut cmd).run();
    assert_success(&o);

    let mine = tree(&dir);
    let roots = tree(&as_root);
    assert_eq!(
        mine.nodes.keys().collect::<Vec<_>>(),
        roots.nodes.keys().collect::<Vec<_>>(),
        "the unprivileged pull has other entries than root's"
    );
    for (path, node) in &mine.nodes {
        let root_node = &roots.nodes[path];
        let at = path.display();
        assert_eq!(
            (node.uid, node.gid),
            (NOBODY, NOBODY),
            "/{at} is not the caller's"
        );
        assert_eq!(
            node.mode & 0o6000,
            0,
            "/{at} kept setuid or setgid: {node:?}"
        );
        assert_eq!(node.mode, root_node.mode & !0o6000, "/{at}: {node:?}");
        assert_eq!(
            (&node.kind, node.size, &node.sha256, &node.target),
            (
                &root_node.kind,
                root_node.size,
                &root_node.sha256,
                &root_node.target
            ),
            "/{at} differs from root's pull"
        );
        for (name, value) in root_node
            .xattrs
            .iter()
            .filter(|(n, _)| n.starts_with("user."))
        {
            assert_eq!(node.xattrs.get(name), Some(value), "/{at}: {name}");
        }
    }
    assert_eq!(mine.hardlinks, roots.hardlinks);
    assert_eq!(mine.node("run/pipe").kind, Kind::Fifo);

    let recorded = |path: &str| {
        let value = mine
            .node(path)
            .xattrs
            .get("user.rootlesscontainers")
            .unwrap_or_else(|| panic!("/{path} has no user.rootlesscontainers"));
        rootless_owner(value)
    };
    for owned in ["home/user", "home/user/notes"] {
        assert_eq!(recorded(owned), (Some(1234), Some(5678)), "/{owned}");
    }
    // 0:5 — umoci leaves an id of 0 out (or writes it as "no change", u32::MAX).
    let (uid, gid) = recorded("usr/bin/wall");
    assert!(matches!(uid, None | Some(0xffff_ffff)), "uid {uid:?}");
    assert_eq!(gid, Some(5));

    // The caller's own cache, under $XDG_CACHE_HOME/tako.
    let blobs = xdg.join("tako/blobs/sha256");
    for layer in &rich_image(Format::Oci, Compression::Gzip).layers {
        let digest = layer.digest();
        assert!(
            blobs.join(&digest[7..]).is_file(),
            "{digest} is not in {}",
            blobs.display()
        );
    }
}
