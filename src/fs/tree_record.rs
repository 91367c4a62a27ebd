//! Reads a tree into a [`TreeRecord`] through directory handles: what `tako fetch` writes
//! beside an unpacked container tree, and what `tako status --verify` compares it with.
//!
//! The tree's names and symlinks come from an image, so nothing is followed: each entry is
//! looked at with `AT_SYMLINK_NOFOLLOW`, a directory is opened with `O_NOFOLLOW |
//! O_DIRECTORY` relative to its parent's handle, a file with `O_NOFOLLOW | O_NONBLOCK` (a
//! FIFO swapped in never blocks the walk), and what is recorded is the `fstat` of the opened
//! handle. A directory on another file system (a bind mount into a running container's
//! tree) is recorded but not entered, and neither is one that cannot be read; both are named
//! in [`Walked::unlisted`]. A file that cannot be read is recorded without its SHA-256.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat};
use rustix::io::Errno;
use sha2::Digest as _;

use crate::format::text;
use crate::format::tree_record::{self, Entry, Kind, TreeRecord};
use crate::fs::Dir;
use crate::fs::tree::{MAX_DEPTH, TreeError};

/// How many entries a tree may have: more than the unpacker lets a layer make.
pub const MAX_ENTRIES: usize = 2_000_000;

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);
const FILE_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::NOFOLLOW)
    .union(OFlags::NONBLOCK)
    .union(OFlags::NOCTTY)
    .union(OFlags::CLOEXEC);

/// A tree as read.
#[derive(Debug, Default)]
pub struct Walked {
    pub record: TreeRecord,
    /// Directories recorded but not entered, with why.
    pub unlisted: Vec<(Vec<u8>, &'static str)>,
}

/// Reads the directory `name` in `parent` (which must not be a symlink) and all it holds.
pub fn walk(parent: &Dir, name: &str) -> Result<Walked, TreeError> {
    let shown = parent.path().join(name).display().to_string();
    let io = |action: &'static str, e: Errno| TreeError::Io {
        action,
        path: shown.clone(),
        source: e.into(),
    };
    let root = rustix::fs::openat(&parent.file, name, DIR_FLAGS, Mode::empty())
        .map_err(|e| io("open directory", e))?;
    let stat = rustix::fs::fstat(&root).map_err(|e| io("inspect", e))?;
    let mut walker = Walker {
        walked: Walked::default(),
        device: stat.st_dev,
        hashed: HashMap::new(),
    };
    walker.add(tree_record::ROOT.to_vec(), entry(&stat, Kind::Dir))?;
    walker.children(&root, &[], 0)?;
    Ok(walker.walked)
}

struct Walker {
    walked: Walked,
    /// The tree's file system: directories elsewhere are not entered.
    device: u64,
    /// Files already hashed by (device, inode): hard links are read once.
    hashed: HashMap<(u64, u64), Option<[u8; 32]>>,
}

fn entry(stat: &Stat, kind: Kind) -> Entry {
    Entry {
        kind,
        mode: stat.st_mode & 0o7777,
        uid: stat.st_uid,
        gid: stat.st_gid,
    }
}

fn shown(path: &[u8]) -> String {
    text::untrusted_bytes(path)
}

fn io_error(action: &'static str, path: &[u8], e: Errno) -> TreeError {
    TreeError::Io {
        action,
        path: shown(path),
        source: e.into(),
    }
}

impl Walker {
    fn add(&mut self, path: Vec<u8>, entry: Entry) -> Result<(), TreeError> {
        if self.walked.record.entries.len() >= MAX_ENTRIES {
            return Err(TreeError::Io {
                action: "record",
                path: shown(&path),
                source: std::io::Error::other(format!(
                    "the tree has more than {MAX_ENTRIES} entries"
                )),
            });
        }
        self.walked.record.entries.insert(path, entry);
        Ok(())
    }

    /// Records every entry of the directory `dir` at `path` (empty for the root).
    fn children(&mut self, dir: &OwnedFd, path: &[u8], depth: usize) -> Result<(), TreeError> {
        if depth > MAX_DEPTH {
            return Err(TreeError::TooDeep {
                path: shown(path),
                max: MAX_DEPTH,
            });
        }
        let mut names = Vec::new();
        let entries =
            rustix::fs::Dir::read_from(dir).map_err(|e| io_error("read directory", path, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| io_error("read directory", path, e))?;
            let name = entry.file_name().to_bytes();
            if name != b"." && name != b".." {
                names.push(name.to_vec());
            }
        }
        for name in names {
            let mut child = path.to_vec();
            if !child.is_empty() {
                child.push(b'/');
            }
            child.extend_from_slice(&name);
            self.child(dir, OsStr::from_bytes(&name), child, depth)?;
        }
        Ok(())
    }

    fn child(
        &mut self,
        dir: &OwnedFd,
        name: &OsStr,
        path: Vec<u8>,
        depth: usize,
    ) -> Result<(), TreeError> {
        let stat = match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(stat) => stat,
            // Gone since the directory was read: not in the tree.
            Err(Errno::NOENT) => return Ok(()),
            Err(e) => return Err(io_error("inspect", &path, e)),
        };
        match FileType::from_raw_mode(stat.st_mode) {
            FileType::Directory => {
                let fd = match rustix::fs::openat(dir, name, DIR_FLAGS, Mode::empty()) {
                    Ok(fd) => fd,
                    Err(Errno::ACCESS) | Err(Errno::PERM) => {
                        self.walked
                            .unlisted
                            .push((path.clone(), "it cannot be read"));
                        return self.add(path, entry(&stat, Kind::Dir));
                    }
                    Err(e) => return Err(io_error("open directory", &path, e)),
                };
                let stat = rustix::fs::fstat(&fd).map_err(|e| io_error("inspect", &path, e))?;
                self.add(path.clone(), entry(&stat, Kind::Dir))?;
                if stat.st_dev != self.device {
                    self.walked
                        .unlisted
                        .push((path, "another file system is mounted there"));
                    return Ok(());
                }
                self.children(&fd, &path, depth + 1)
            }
            FileType::RegularFile => {
                let file = match rustix::fs::openat(dir, name, FILE_FLAGS, Mode::empty()) {
                    Ok(fd) => fd,
                    Err(Errno::ACCESS) | Err(Errno::PERM) => {
                        let kind = Kind::File {
                            size: stat.st_size.try_into().unwrap_or(0),
                            sha256: None,
                        };
                        return self.add(path, entry(&stat, kind));
                    }
                    Err(e) => return Err(io_error("open", &path, e)),
                };
                let stat = rustix::fs::fstat(&file).map_err(|e| io_error("inspect", &path, e))?;
                if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
                    // Swapped for something else between the look and the open.
                    return Err(io_error("read", &path, Errno::AGAIN));
                }
                let key = (stat.st_dev, stat.st_ino);
                let sha256 = match self.hashed.get(&key) {
                    Some(known) => *known,
                    None => {
                        let digest = Some(hash(file, &path)?);
                        if stat.st_nlink > 1 {
                            self.hashed.insert(key, digest);
                        }
                        digest
                    }
                };
                let size = stat.st_size.try_into().unwrap_or(0);
                self.add(path, entry(&stat, Kind::File { size, sha256 }))
            }
            FileType::Symlink => {
                let target = match rustix::fs::readlinkat(dir, name, Vec::new()) {
                    Ok(target) => target.into_bytes(),
                    Err(Errno::NOENT) => return Ok(()),
                    Err(e) => return Err(io_error("read symbolic link", &path, e)),
                };
                self.add(path, entry(&stat, Kind::Symlink { target }))
            }
            FileType::CharacterDevice | FileType::BlockDevice => {
                let (major, minor) = (
                    rustix::fs::major(stat.st_rdev),
                    rustix::fs::minor(stat.st_rdev),
                );
                let kind = if FileType::from_raw_mode(stat.st_mode) == FileType::BlockDevice {
                    Kind::BlockDevice { major, minor }
                } else {
                    Kind::CharDevice { major, minor }
                };
                self.add(path, entry(&stat, kind))
            }
            FileType::Fifo => self.add(path, entry(&stat, Kind::Fifo)),
            FileType::Socket | FileType::Unknown => self.add(path, entry(&stat, Kind::Socket)),
        }
    }
}

/// The SHA-256 of an open file's content.
fn hash(file: OwnedFd, path: &[u8]) -> Result<[u8; 32], TreeError> {
    let mut file = std::fs::File::from(file);
    let mut hasher = sha2::Sha256::new();
    let mut buffer = vec![0u8; 256 * 1024];
    loop {
        match file.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => hasher.update(buffer.get(..n).unwrap_or_default()),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(source) => {
                return Err(TreeError::Io {
                    action: "read",
                    path: shown(path),
                    source,
                });
            }
        }
    }
    Ok(hasher.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_walk_records_files_links_and_directories_without_following_links() {
        let top = tempfile::tempdir().unwrap();
        let root = top.path().join("rootfs");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::write(root.join("etc/os-release"), b"ID=test\n").unwrap();
        std::fs::set_permissions(
            root.join("etc/os-release"),
            std::fs::Permissions::from_mode(0o640),
        )
        .unwrap();
        std::fs::hard_link(root.join("etc/os-release"), root.join("etc/again")).unwrap();
        // A link out of the tree to a directory: recorded as a link, never entered.
        std::os::unix::fs::symlink("/etc", root.join("host-etc")).unwrap();
        let walked = walk(&Dir::open(top.path()).unwrap(), "rootfs").unwrap();
        let paths: Vec<String> = walked
            .record
            .entries
            .keys()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .collect();
        assert_eq!(
            paths,
            [".", "etc", "etc/again", "etc/os-release", "host-etc"]
        );
        let release = &walked.record.entries[&b"etc/os-release"[..]];
        assert_eq!(release.mode, 0o640);
        assert_eq!(
            release.kind,
            Kind::File {
                size: 8,
                sha256: Some(sha2::Sha256::digest(b"ID=test\n").into())
            }
        );
        assert_eq!(walked.record.entries[&b"etc/again"[..]].kind, release.kind);
        assert_eq!(
            walked.record.entries[&b"host-etc"[..]].kind,
            Kind::Symlink {
                target: b"/etc".to_vec()
            }
        );
        assert!(walked.unlisted.is_empty());
    }

    #[test]
    fn a_tree_that_is_a_symlink_is_refused() {
        let top = tempfile::tempdir().unwrap();
        std::fs::create_dir(top.path().join("real")).unwrap();
        std::os::unix::fs::symlink("real", top.path().join("rootfs")).unwrap();
        assert!(walk(&Dir::open(top.path()).unwrap(), "rootfs").is_err());
    }
}
