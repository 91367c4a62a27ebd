//! The record of an unpacked tree (`DEST/store/<hex>/files`): every entry's type, mode,
//! owner, size and SHA-256, written when the tree was unpacked and compared by
//! `tako status --verify`.
//!
//! ```text
//! tako-tree-record 1
//! . d 0755 0 0
//! bin l 0777 0 0 usr/bin
//! etc/os-release f 0644 0 0 386 <sha256 hex>
//! dev/null c 0666 0 0 1,3
//! run/initctl p 0600 0 0
//! ```
//!
//! One line per entry, sorted by the bytes of its path, `.` being the tree's root. Fields are
//! separated by one space: path, type (`f` regular file, `d` directory, `l` symbolic link,
//! `p` FIFO, `c`/`b` character/block device, `s` socket), mode (octal permission bits with
//! setuid, setgid and sticky), uid, gid, then for a file its size and SHA-256 (`-` when it
//! could not be read), for a link its target, for a device `MAJOR,MINOR`. A hard link is a
//! file like any other. Paths and targets come from an image, so every byte that is not
//! printable ASCII, a space or `%` is written `%XX`: any name survives, and no name can
//! break a line or a field.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The first line of a record.
pub const HEADER: &str = "tako-tree-record 1";

/// What an entry is, with what belongs to its kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A regular file: its size and SHA-256 (`None`: it could not be read).
    File {
        size: u64,
        sha256: Option<[u8; 32]>,
    },
    Dir,
    /// A symbolic link and its target (raw bytes; never resolved).
    Symlink {
        target: Vec<u8>,
    },
    Fifo,
    CharDevice {
        major: u32,
        minor: u32,
    },
    BlockDevice {
        major: u32,
        minor: u32,
    },
    Socket,
}

impl Kind {
    /// The type as a user reads it.
    pub fn name(&self) -> &'static str {
        match self {
            Kind::File { .. } => "file",
            Kind::Dir => "directory",
            Kind::Symlink { .. } => "symbolic link",
            Kind::Fifo => "FIFO",
            Kind::CharDevice { .. } => "character device",
            Kind::BlockDevice { .. } => "block device",
            Kind::Socket => "socket",
        }
    }

    fn letter(&self) -> char {
        match self {
            Kind::File { .. } => 'f',
            Kind::Dir => 'd',
            Kind::Symlink { .. } => 'l',
            Kind::Fifo => 'p',
            Kind::CharDevice { .. } => 'c',
            Kind::BlockDevice { .. } => 'b',
            Kind::Socket => 's',
        }
    }
}

/// One entry of the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub kind: Kind,
    /// Permission bits with setuid, setgid and sticky (`& 0o7777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// Every entry of a tree by its path relative to the root (`.` for the root itself).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TreeRecord {
    pub entries: BTreeMap<Vec<u8>, Entry>,
}

/// Why bytes are not a tree record; `line` counts from 1.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("it does not start with `{HEADER}`")]
    Header,
    #[error("line {line}: {reason}")]
    Line { line: usize, reason: String },
}

/// The path `.` that stands for the root of the tree.
pub const ROOT: &[u8] = b".";

impl TreeRecord {
    /// The record as its file holds it.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(64 * self.entries.len() + HEADER.len() + 1);
        out.push_str(HEADER);
        out.push('\n');
        for (path, entry) in &self.entries {
            out.push_str(&escape(path));
            let _ = write!(
                out,
                " {} {:04o} {} {}",
                entry.kind.letter(),
                entry.mode & 0o7777,
                entry.uid,
                entry.gid
            );
            match &entry.kind {
                Kind::File { size, sha256 } => {
                    let _ = write!(out, " {size} ");
                    match sha256 {
                        Some(digest) => out.push_str(&hex::encode(digest)),
                        None => out.push('-'),
                    }
                }
                Kind::Symlink { target } => {
                    out.push(' ');
                    out.push_str(&escape(target));
                }
                Kind::CharDevice { major, minor } | Kind::BlockDevice { major, minor } => {
                    let _ = write!(out, " {major},{minor}");
                }
                Kind::Dir | Kind::Fifo | Kind::Socket => {}
            }
            out.push('\n');
        }
        out
    }

    /// Reads a record; entries must be sorted by path, each path once.
    pub fn parse(bytes: &[u8]) -> Result<TreeRecord, RecordError> {
        let text = std::str::from_utf8(bytes).map_err(|_| RecordError::Header)?;
        let mut lines = text.split_terminator('\n');
        if lines.next() != Some(HEADER) {
            return Err(RecordError::Header);
        }
        let mut record = TreeRecord::default();
        let mut last: Option<Vec<u8>> = None;
        for (i, line) in lines.enumerate() {
            let number = i.saturating_add(2);
            let bad = |reason: &str| RecordError::Line {
                line: number,
                reason: reason.to_owned(),
            };
            let (path, entry) = parse_line(line).map_err(bad)?;
            if last.as_ref().is_some_and(|last| *last >= path) {
                return Err(bad("the paths are not sorted, or one is listed twice"));
            }
            last = Some(path.clone());
            record.entries.insert(path, entry);
        }
        Ok(record)
    }
}

fn parse_line(line: &str) -> Result<(Vec<u8>, Entry), &'static str> {
    let mut fields = line.split(' ');
    let mut next = |what: &'static str| fields.next().filter(|f| !f.is_empty()).ok_or(what);
    let path = unescape(next("no path")?)?;
    if path.is_empty() {
        return Err("an empty path");
    }
    let letter = next("no type")?;
    let mode = next("no mode")?;
    if mode.len() > 6 {
        return Err("the mode is not octal permission bits");
    }
    let mode = u32::from_str_radix(mode, 8)
        .ok()
        .filter(|m| *m <= 0o7777 && !mode.starts_with('+'))
        .ok_or("the mode is not octal permission bits")?;
    let uid = number(next("no uid")?).ok_or("the uid is not a number")?;
    let gid = number(next("no gid")?).ok_or("the gid is not a number")?;
    let kind = match letter {
        "f" => {
            let size = next("no size")?;
            let size = decimal(size)
                .and_then(|s| s.parse::<u64>().ok())
                .ok_or("the size is not a number")?;
            let sha = next("no SHA-256")?;
            let sha256 = if sha == "-" {
                None
            } else {
                let mut digest = [0u8; 32];
                if sha.len() != 64 || sha.bytes().any(|b| b.is_ascii_uppercase()) {
                    return Err("the SHA-256 is not 64 lower-case hex digits");
                }
                hex::decode_to_slice(sha, &mut digest)
                    .map_err(|_| "the SHA-256 is not 64 lower-case hex digits")?;
                Some(digest)
            };
            Kind::File { size, sha256 }
        }
        "d" => Kind::Dir,
        "l" => Kind::Symlink {
            target: unescape(next("no link target")?)?,
        },
        "p" => Kind::Fifo,
        "s" => Kind::Socket,
        "c" | "b" => {
            let (major, minor) = next("no device numbers")?
                .split_once(',')
                .ok_or("the device numbers are not MAJOR,MINOR")?;
            let major = number(major).ok_or("the device numbers are not MAJOR,MINOR")?;
            let minor = number(minor).ok_or("the device numbers are not MAJOR,MINOR")?;
            if letter == "c" {
                Kind::CharDevice { major, minor }
            } else {
                Kind::BlockDevice { major, minor }
            }
        }
        _ => return Err("an unknown type"),
    };
    if fields.next().is_some() {
        return Err("more fields than its type has");
    }
    Ok((
        path,
        Entry {
            kind,
            mode,
            uid,
            gid,
        },
    ))
}

/// `text` if it is plain decimal digits (no sign, no leading zero but `0` itself).
fn decimal(text: &str) -> Option<&str> {
    let plain = !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    plain.then_some(text)
}

fn number(text: &str) -> Option<u32> {
    decimal(text)?.parse().ok()
}

/// `bytes` with everything but printable ASCII other than space and `%` as `%XX`.
pub fn escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_graphic() && b != b'%' {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// The bytes `escape` wrote; refuses what it would not have written.
pub fn unescape(text: &str) -> Result<Vec<u8>, &'static str> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or("a cut `%XX` escape")?;
            if hex.iter().any(|h| h.is_ascii_lowercase()) {
                return Err("a `%XX` escape in lower case");
            }
            let mut one = [0u8; 1];
            hex::decode_to_slice(hex, &mut one).map_err(|_| "a `%XX` escape that is not hex")?;
            let [decoded] = one;
            if decoded.is_ascii_graphic() && decoded != b'%' {
                return Err("a `%XX` escape of a byte that needs none");
            }
            out.push(decoded);
            i += 3;
        } else if b.is_ascii_graphic() {
            out.push(b);
            i += 1;
        } else {
            return Err("a byte that should have been escaped");
        }
    }
    Ok(out)
}

/// One way an entry differs from the record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// In the record, not in the tree.
    Removed,
    /// In the tree, not in the record.
    Added,
    /// Another type of entry than the record's.
    Type {
        was: &'static str,
        now: &'static str,
    },
    Mode {
        was: u32,
        now: u32,
    },
    Owner {
        was: (u32, u32),
        now: (u32, u32),
    },
    /// A file's size or SHA-256 is not the record's.
    Content {
        was_size: u64,
        now_size: u64,
    },
    /// The record has the file's SHA-256, but it cannot be read now.
    Unreadable,
    Target {
        was: Vec<u8>,
        now: Vec<u8>,
    },
    Device {
        was: (u32, u32),
        now: (u32, u32),
    },
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Change::Removed => f.write_str("removed"),
            Change::Added => f.write_str("added"),
            Change::Type { was, now } => write!(f, "type {was} → {now}"),
            Change::Mode { was, now } => write!(f, "mode {was:04o} → {now:04o}"),
            Change::Owner { was, now } => {
                write!(f, "owner {}:{} → {}:{}", was.0, was.1, now.0, now.1)
            }
            Change::Content { was_size, now_size } if was_size == now_size => {
                f.write_str("changed content")
            }
            Change::Content { was_size, now_size } => {
                write!(f, "changed content (size {was_size} → {now_size})")
            }
            Change::Unreadable => f.write_str("cannot be read to check its content"),
            Change::Target { was, now } => {
                write!(f, "link target {} → {}", escape(was), escape(now))
            }
            Change::Device { was, now } => {
                write!(f, "device {},{} → {},{}", was.0, was.1, now.0, now.1)
            }
        }
    }
}

/// Every way `now` differs from `recorded`, by path in path order; an entry may differ in
/// several ways (mode and owner). Below a removed or added directory every entry is named too.
pub fn compare(recorded: &TreeRecord, now: &TreeRecord) -> Vec<(Vec<u8>, Change)> {
    let mut changes = Vec::new();
    let mut was = recorded.entries.iter().peekable();
    let mut is = now.entries.iter().peekable();
    loop {
        match (was.peek(), is.peek()) {
            (None, None) => break,
            (Some((path, _)), None) => {
                changes.push(((*path).clone(), Change::Removed));
                was.next();
            }
            (None, Some((path, _))) => {
                changes.push(((*path).clone(), Change::Added));
                is.next();
            }
            (Some((a, old)), Some((b, new))) => match a.cmp(b) {
                std::cmp::Ordering::Less => {
                    changes.push(((*a).clone(), Change::Removed));
                    was.next();
                }
                std::cmp::Ordering::Greater => {
                    changes.push(((*b).clone(), Change::Added));
                    is.next();
                }
                std::cmp::Ordering::Equal => {
                    for change in differences(old, new) {
                        changes.push(((*a).clone(), change));
                    }
                    was.next();
                    is.next();
                }
            },
        }
    }
    changes
}

fn differences(was: &Entry, now: &Entry) -> Vec<Change> {
    let mut changes = Vec::new();
    match (&was.kind, &now.kind) {
        (
            Kind::File {
                size: a,
                sha256: Some(x),
            },
            Kind::File {
                size: b,
                sha256: Some(y),
            },
        ) => {
            if a != b || x != y {
                changes.push(Change::Content {
                    was_size: *a,
                    now_size: *b,
                });
            }
        }
        (
            Kind::File {
                sha256: Some(_), ..
            },
            Kind::File { sha256: None, .. },
        ) => changes.push(Change::Unreadable),
        (Kind::File { size: a, .. }, Kind::File { size: b, .. }) => {
            if a != b {
                changes.push(Change::Content {
                    was_size: *a,
                    now_size: *b,
                });
            }
        }
        (Kind::Symlink { target: a }, Kind::Symlink { target: b }) => {
            if a != b {
                changes.push(Change::Target {
                    was: a.clone(),
                    now: b.clone(),
                });
            }
        }
        (
            Kind::CharDevice { major, minor } | Kind::BlockDevice { major, minor },
            Kind::CharDevice { major: m, minor: n } | Kind::BlockDevice { major: m, minor: n },
        ) if was.kind.letter() == now.kind.letter() => {
            if (major, minor) != (m, n) {
                changes.push(Change::Device {
                    was: (*major, *minor),
                    now: (*m, *n),
                });
            }
        }
        (a, b) if a.letter() == b.letter() => {}
        (a, b) => changes.push(Change::Type {
            was: a.name(),
            now: b.name(),
        }),
    }
    if was.mode != now.mode {
        changes.push(Change::Mode {
            was: was.mode,
            now: now.mode,
        });
    }
    if (was.uid, was.gid) != (now.uid, now.gid) {
        changes.push(Change::Owner {
            was: (was.uid, was.gid),
            now: (now.uid, now.gid),
        });
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(kind: Kind, mode: u32) -> Entry {
        Entry {
            kind,
            mode,
            uid: 0,
            gid: 0,
        }
    }

    fn file(content: &[u8]) -> Kind {
        use sha2::Digest as _;
        Kind::File {
            size: content.len() as u64,
            sha256: Some(sha2::Sha256::digest(content).into()),
        }
    }

    fn sample() -> TreeRecord {
        let mut record = TreeRecord::default();
        let mut add = |path: &[u8], e: Entry| {
            record.entries.insert(path.to_vec(), e);
        };
        add(b".", entry(Kind::Dir, 0o755));
        add(
            b"bin",
            entry(
                Kind::Symlink {
                    target: b"usr/bin".to_vec(),
                },
                0o777,
            ),
        );
        add(b"etc/os-release", entry(file(b"ID=test\n"), 0o644));
        add(
            b"dev/null",
            entry(Kind::CharDevice { major: 1, minor: 3 }, 0o666),
        );
        add(b"run/initctl", entry(Kind::Fifo, 0o600));
        add(
            b"etc/shadow",
            entry(
                Kind::File {
                    size: 12,
                    sha256: None,
                },
                0,
            ),
        );
        add(b"a name\nwith %\xff", entry(file(b""), 0o4755));
        record
    }

    #[test]
    fn a_rendered_record_reads_back_as_the_same_record() {
        let record = sample();
        let text = record.render();
        assert_eq!(TreeRecord::parse(text.as_bytes()), Ok(record));
    }

    #[test]
    fn a_name_with_spaces_newlines_and_any_byte_stays_on_its_line() {
        let text = sample().render();
        assert!(text.contains("\na%20name%0Awith%20%25%FF f 4755 0 0 0 e3b0c442"));
        assert_eq!(text.lines().count(), 8);
    }

    #[test]
    fn lines_are_in_path_order_with_the_root_first() {
        let text = sample().render();
        let paths: Vec<&str> = text
            .lines()
            .skip(1)
            .map(|l| l.split(' ').next().unwrap())
            .collect();
        assert_eq!(paths.first(), Some(&"."));
        let mut sorted = paths.clone();
        sorted.sort();
        assert_eq!(paths, sorted);
    }

    #[test]
    fn a_record_out_of_order_or_with_a_path_twice_is_refused() {
        let text = format!("{HEADER}\nb d 0755 0 0\na d 0755 0 0\n");
        assert!(matches!(
            TreeRecord::parse(text.as_bytes()),
            Err(RecordError::Line { line: 3, .. })
        ));
        let text = format!("{HEADER}\na d 0755 0 0\na d 0755 0 0\n");
        assert!(TreeRecord::parse(text.as_bytes()).is_err());
    }

    #[test]
    fn malformed_lines_are_refused_with_their_number() {
        for bad in [
            "a x 0755 0 0",
            "a d 9755 0 0",
            "a d 17777 0 0",
            "a d 0755 -1 0",
            "a d 0755 0",
            "a d 0755 0 0 extra",
            "a f 0644 0 0 12",
            "a f 0644 0 0 12 abc",
            "a f 0644 0 0 012 -",
            "a l 0777 0 0",
            "a c 0600 0 0 1",
            "a%2 d 0755 0 0",
            "a%41 d 0755 0 0",
            "a%ff d 0755 0 0",
            " d 0755 0 0",
        ] {
            let text = format!("{HEADER}\n{bad}\n");
            assert!(
                matches!(
                    TreeRecord::parse(text.as_bytes()),
                    Err(RecordError::Line { line: 2, .. })
                ),
                "{bad:?} was accepted"
            );
        }
        assert_eq!(
            TreeRecord::parse(b"a d 0755 0 0\n"),
            Err(RecordError::Header)
        );
    }

    #[test]
    fn an_unchanged_tree_has_no_differences() {
        assert_eq!(compare(&sample(), &sample()), Vec::new());
    }

    #[test]
    fn each_change_is_named_with_its_path() {
        let was = sample();
        let mut now = sample();
        now.entries.remove(&b"run/initctl"[..]);
        now.entries
            .insert(b"tmp/new".to_vec(), entry(file(b"x"), 0o644));
        let release = now.entries.get_mut(&b"etc/os-release"[..]).unwrap();
        release.kind = file(b"ID=evil\n");
        release.mode = 0o600;
        now.entries.get_mut(&b"."[..]).unwrap().uid = 1000;
        now.entries.get_mut(&b"bin"[..]).unwrap().kind = Kind::Dir;
        let shown: Vec<String> = compare(&was, &now)
            .into_iter()
            .map(|(path, change)| format!("{}: {change}", escape(&path)))
            .collect();
        assert_eq!(
            shown,
            [
                ".: owner 0:0 → 1000:0",
                "bin: type symbolic link → directory",
                "etc/os-release: changed content",
                "etc/os-release: mode 0644 → 0600",
                "run/initctl: removed",
                "tmp/new: added",
            ]
        );
    }

    #[test]
    fn a_file_of_another_size_or_one_that_can_no_longer_be_read_is_reported() {
        let was = sample();
        let mut now = sample();
        now.entries.get_mut(&b"etc/os-release"[..]).unwrap().kind = file(b"ID=test2\n");
        now.entries
            .get_mut(&b"a name\nwith %\xff"[..])
            .unwrap()
            .kind = Kind::File {
            size: 0,
            sha256: None,
        };
        let changes = compare(&was, &now);
        assert_eq!(
            changes[0],
            (b"a name\nwith %\xff".to_vec(), Change::Unreadable)
        );
        assert_eq!(changes[1].1.to_string(), "changed content (size 8 → 9)");
    }
}
