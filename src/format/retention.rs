//! Which store files a destination can do without: the plan behind `tako gc` and `Keep=`.
//!
//! Pure: the caller lists `store/` and reads the verified local manifest; this
//! module only decides. Images are ranked by the highest version that names
//! them, so an image republished under a newer version counts as new. The trees of
//! `Kind=container` configs (`store/<hex>/`) are ranked the same way; their blobs in
//! `blobs/sha256/` go once no kept tree uses them ([`plan_blobs`]).

use std::collections::{HashMap, HashSet};

use crate::format::size;

use crate::format::manifest::Entry;
use crate::format::text::untrusted;
use crate::format::version::Version;

/// How many images `gc` keeps when neither `--keep` nor `Keep=` says.
pub const DEFAULT_KEEP: usize = 3;

/// A file in `store/` as listed by the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreFile {
    pub name: String,
    pub size: u64,
}

/// Why a file is to be removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// An image older than the newest ones kept; the versions that name it,
    /// highest first.
    Old(Vec<String>),
    /// A file no manifest entry names.
    Unlisted,
    /// A temporary left by an interrupted run (`*.new`, `*.partial`, a tree's
    /// `*.tako-new`).
    Temporary,
    /// A file in `blobs/sha256/` (a blob, or a partial or temporary of one) that no kept
    /// tree of a `Kind=container` config uses.
    Blob,
}

/// One file to remove.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removal {
    pub name: String,
    pub size: u64,
    pub reason: Reason,
}

impl Removal {
    /// What the file is, for a line of output: the versions that name it
    /// (`1.0.1, 1.0`), or `unlisted store/NAME`, `temporary store/NAME`.
    pub fn what(&self) -> String {
        match &self.reason {
            Reason::Old(versions) => versions
                .iter()
                .map(|v| untrusted(v))
                .collect::<Vec<_>>()
                .join(", "),
            Reason::Unlisted => format!("unlisted store/{}", untrusted(&self.name)),
            Reason::Temporary => format!("temporary store/{}", untrusted(&self.name)),
            Reason::Blob => format!("unused blobs/sha256/{}", untrusted(&self.name)),
        }
    }

    /// [`Removal::what`] with the size: `1.0 (1.2 MiB)`.
    pub fn brief(&self) -> String {
        format!("{} ({})", self.what(), size::human(self.size))
    }
}

/// Whether `name` is one of the temporaries tako writes in `store/`.
pub fn is_temporary(name: &str) -> bool {
    // `.partial.validator` is the If-Range value kept beside a partial download: as much
    // tako's own temporary as the partial itself.
    // `.tako-new` is a container tree built aside by a run that was killed.
    name.ends_with(".new")
        || name.ends_with(".partial")
        || name.ends_with(".partial.validator")
        || name.ends_with(".tako-new")
}

/// The SHA-256 (64 lowercase hex digits) a name in `store/` or `blobs/sha256/` starts
/// with, and what follows it; `None` for any other name.
fn split_hex(name: &str) -> Option<(&str, &str)> {
    let (hex, rest) = (name.get(..64)?, name.get(64..)?);
    let digits = hex
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    digits.then_some((hex, rest))
}

/// Whether `name` in the `store/` of a `Kind=container` config is tako's own: a tree
/// (`<hex>`) or a temporary of one (`<hex>.tako-new`, `<hex>.partial`...). Only these are
/// ever collected there; anything else in that directory is someone else's.
pub fn is_tree_name(name: &str) -> bool {
    match split_hex(name) {
        Some((_, "")) => true,
        Some((_, rest)) => is_temporary(rest),
        None => false,
    }
}

/// Plans the collection of `blobs/sha256/` of a `Kind=container` config: removes the
/// blobs no kept tree uses (`used` holds their hex digests), with their partials, and
/// the temporaries of interrupted writes. Partials of used blobs stay, for the next run
/// to resume. Names that are not tako's (not starting with a SHA-256) are left alone.
/// The result is in the order of `files`.
pub fn plan_blobs(files: &[StoreFile], used: &HashSet<String>) -> Vec<Removal> {
    files
        .iter()
        .filter(|file| match split_hex(&file.name) {
            Some((hex, "" | ".partial" | ".partial.validator")) => !used.contains(hex),
            Some((_, rest)) => rest.ends_with(".new"),
            None => false,
        })
        .map(|file| Removal {
            name: file.name.clone(),
            size: file.size,
            reason: Reason::Blob,
        })
        .collect()
}

/// [`plan`], in the order removals are made and reported: the oldest image first (entries
/// are in ascending version order, so the position of the last one naming an image ranks
/// it by its highest version), then unlisted files, then temporaries.
pub fn plan_oldest_first(
    entries: &[Entry],
    files: &[StoreFile],
    latest: Option<&str>,
    keep: usize,
) -> Vec<Removal> {
    let mut plan = plan(entries, files, latest, keep);
    plan.sort_by_key(|r| match r.reason {
        Reason::Old(_) => (0, entries.iter().rposition(|e| e.digest_hex() == r.name)),
        Reason::Unlisted => (1, None),
        Reason::Temporary | Reason::Blob => (2, None),
    });
    plan
}

/// Plans a collection: keep the `keep` newest images plus `latest`'s target
/// (`latest` is the file name in `store/` it points at), remove older
/// images, unlisted files and temporaries. `keep` below 1 counts as 1, so
/// the newest image always stays. The result is in the order of `files`.
pub fn plan(
    entries: &[Entry],
    files: &[StoreFile],
    latest: Option<&str>,
    keep: usize,
) -> Vec<Removal> {
    // The highest version naming each image; entries are in ascending order,
    // so later ones win.
    let mut newest: HashMap<String, &Version> = HashMap::new();
    for entry in entries {
        newest.insert(entry.digest_hex(), &entry.version);
    }
    let mut ranked: Vec<(&Version, &str)> = files
        .iter()
        .filter_map(|f| newest.get(&f.name).map(|v| (*v, f.name.as_str())))
        .collect();
    ranked.sort_by(|a, b| b.0.cmp(a.0));
    let kept: Vec<&str> = ranked
        .iter()
        .take(keep.max(1))
        .map(|(_, name)| *name)
        .chain(latest)
        .collect();

    files
        .iter()
        .filter_map(|file| {
            let reason = if is_temporary(&file.name) {
                Reason::Temporary
            } else if !newest.contains_key(&file.name) {
                if latest == Some(file.name.as_str()) {
                    return None;
                }
                Reason::Unlisted
            } else if kept.contains(&file.name.as_str()) {
                return None;
            } else {
                let versions = entries
                    .iter()
                    .rev()
                    .filter(|e| e.digest_hex() == file.name)
                    .map(|e| e.version.to_string())
                    .collect();
                Reason::Old(versions)
            };
            Some(Removal {
                name: file.name.clone(),
                size: file.size,
                reason,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(n: u8) -> [u8; 32] {
        [n; 32]
    }

    fn entry(version: &str, n: u8) -> Entry {
        Entry {
            version: Version::parse(version).unwrap(),
            size: 10,
            digest: digest(n),
        }
    }

    fn file(n: u8) -> StoreFile {
        StoreFile {
            name: hex::encode(digest(n)),
            size: 100 + u64::from(n),
        }
    }

    fn named(name: &str) -> StoreFile {
        StoreFile {
            name: name.to_string(),
            size: 7,
        }
    }

    fn removed(plan: &[Removal]) -> Vec<String> {
        plan.iter().map(|r| r.name.clone()).collect()
    }

    #[test]
    fn keeps_the_newest_images_and_removes_older_ones() {
        let entries = [
            entry("1.0", 1),
            entry("1.1", 2),
            entry("1.2", 3),
            entry("2.0", 4),
        ];
        let files = [file(1), file(2), file(3), file(4)];
        let plan = plan(&entries, &files, Some(&file(4).name), 2);
        assert_eq!(removed(&plan), [file(1).name, file(2).name]);
        assert_eq!(plan[0].reason, Reason::Old(vec!["1.0".into()]));
        assert_eq!(plan[0].size, 101);
    }

    #[test]
    fn never_removes_the_image_latest_points_at() {
        let entries = [entry("1.0", 1), entry("1.1", 2), entry("1.2", 3)];
        let files = [file(1), file(2), file(3)];
        // latest was pinned to an old version by its pattern.
        let plan = plan(&entries, &files, Some(&file(1).name), 1);
        assert_eq!(removed(&plan), [file(2).name]);
    }

    #[test]
    fn ranks_an_image_by_the_highest_version_that_names_it() {
        // Image 1 was republished as 3.0, so it is the newest.
        let entries = [entry("1.0", 1), entry("2.0", 2), entry("3.0", 1)];
        let files = [file(1), file(2)];
        let plan = plan(&entries, &files, None, 1);
        assert_eq!(removed(&plan), [file(2).name]);
        let plan = super::plan(&entries, &[file(1)], None, 0);
        assert!(plan.is_empty(), "keep 0 still keeps the newest image");
        let both = super::plan(&entries, &files, Some(&file(2).name), 1);
        assert!(both.is_empty(), "latest is kept beside the newest");
    }

    #[test]
    fn lists_every_version_of_a_removed_image() {
        let entries = [entry("1.0", 1), entry("1.0.1", 1), entry("2.0", 2)];
        let plan = plan(&entries, &[file(1), file(2)], None, 1);
        assert_eq!(
            plan[0].reason,
            Reason::Old(vec!["1.0.1".into(), "1.0".into()])
        );
    }

    #[test]
    fn describes_each_removal_for_a_line_of_output() {
        let entries = [entry("1.0", 1), entry("1.0.1", 1), entry("2.0", 2)];
        let files = [file(1), file(2), named("x\u{1b}.new"), file(9)];
        let plan = plan(&entries, &files, None, 1);
        let shown: Vec<String> = plan.iter().map(Removal::brief).collect();
        assert_eq!(
            shown,
            [
                "1.0.1, 1.0 (101 bytes)".to_string(),
                "temporary store/x\\u{1b}.new (7 bytes)".to_string(),
                format!("unlisted store/{} (109 bytes)", file(9).name),
            ]
        );
    }

    #[test]
    fn removes_the_blobs_no_kept_tree_uses_and_keeps_partials_of_used_ones() {
        let used: HashSet<String> = [file(1).name, file(2).name].into_iter().collect();
        let files = [
            file(1),
            file(2),
            file(3),
            named(&format!("{}.partial", file(2).name)),
            named(&format!("{}.partial", file(4).name)),
            named(&format!("{}.partial.validator", file(4).name)),
            named(&format!("{}.new", file(1).name)),
            named("README"),
            named(&file(0xab).name.to_uppercase()),
        ];
        let plan = plan_blobs(&files, &used);
        assert_eq!(
            removed(&plan),
            [
                file(3).name,
                format!("{}.partial", file(4).name),
                format!("{}.partial.validator", file(4).name),
                format!("{}.new", file(1).name),
            ]
        );
        assert!(plan.iter().all(|r| r.reason == Reason::Blob));
        assert_eq!(
            plan[0].brief(),
            format!("unused blobs/sha256/{} (103 bytes)", file(3).name)
        );
    }

    #[test]
    fn only_hex_names_and_their_temporaries_are_trees() {
        let hex = file(0xab).name;
        assert!(is_tree_name(&hex));
        assert!(is_tree_name(&format!("{hex}.tako-new")));
        assert!(is_tree_name(&format!("{hex}.partial")));
        assert!(!is_tree_name(&format!("{hex}.old")));
        assert!(!is_tree_name("notes.txt"));
        assert!(!is_tree_name(&hex[1..]));
        assert!(!is_tree_name(&hex.to_uppercase()));
        assert!(!is_tree_name("ééééééééééééééééééééééééééééééééééééé"));
    }

    #[test]
    fn a_tree_built_aside_by_a_killed_run_is_a_temporary() {
        let entries = [entry("1.0", 1)];
        let files = [file(1), named(&format!("{}.tako-new", file(2).name))];
        let plan = plan(&entries, &files, Some(&file(1).name), 1);
        assert_eq!(plan.len(), 1);
        assert_eq!(plan[0].reason, Reason::Temporary);
    }

    #[test]
    fn removes_unlisted_files_and_temporaries_but_not_latest() {
        let entries = [entry("1.0", 1)];
        let files = [
            file(1),
            file(9),
            named("0123.new"),
            named(&format!("{}.partial", file(1).name)),
            named("notes.txt"),
        ];
        let plan = plan(&entries, &files, Some("notes.txt"), 3);
        assert_eq!(
            removed(&plan),
            [
                file(9).name,
                "0123.new".to_string(),
                format!("{}.partial", file(1).name)
            ]
        );
        assert_eq!(plan[0].reason, Reason::Unlisted);
        assert_eq!(plan[1].reason, Reason::Temporary);
    }
}
