//! Every entry under a directory with its bytes, mode, mtime and link target, to show that a
//! command changed nothing. A directory's mtime changes whenever a name in it is created,
//! removed or renamed, so even a temporary file that came and went shows up.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub kind: &'static str,
    pub bytes: Option<Vec<u8>>,
    pub target: Option<PathBuf>,
    pub mode: u32,
    pub modified: SystemTime,
}

/// Every entry under `root` (and `root` itself, as ""), keyed by its path relative to
/// `root`. Symlinks are recorded, not followed.
pub fn snapshot(root: &Path) -> BTreeMap<PathBuf, Entry> {
    let mut out = BTreeMap::new();
    walk(root, Path::new(""), &mut out);
    out
}

fn walk(root: &Path, rel: &Path, out: &mut BTreeMap<PathBuf, Entry>) {
    let path = root.join(rel);
    let meta = fs::symlink_metadata(&path).unwrap();
    let kind = meta.file_type();
    let entry = Entry {
        kind: if kind.is_dir() {
            "dir"
        } else if kind.is_symlink() {
            "symlink"
        } else {
            "file"
        },
        bytes: kind.is_file().then(|| fs::read(&path).unwrap()),
        target: kind.is_symlink().then(|| fs::read_link(&path).unwrap()),
        mode: meta.permissions().mode(),
        modified: meta.modified().unwrap(),
    };
    out.insert(rel.to_path_buf(), entry);
    if kind.is_dir() {
        for child in fs::read_dir(&path).unwrap() {
            walk(root, &rel.join(child.unwrap().file_name()), out);
        }
    }
}
