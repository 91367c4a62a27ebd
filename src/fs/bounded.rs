//! The one reader of small files named by a path: configs, netrc and header files,
//! certificates, registry auth files.
//!
//! Such a path is given by an operator or found in a home directory, and what is there may
//! not be what was meant: a FIFO would block the run forever, a device (`/dev/zero`) would
//! be read until memory runs out, a huge file would be read whole. So only a regular file
//! (a symlink to one is fine) of at most the given size is read, and nothing else is even
//! opened for reading.

use std::fs::{self, File, Metadata};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::format::text::untrusted;

/// Why a small file could not be read. The Display names the file by what it is for and
/// by its path, and never quotes its content.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("cannot read the {what} {}: {source}", shown(.path))]
    Io {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("the {what} {} is not a regular file (it is {kind})", shown(.path))]
    NotAFile {
        what: &'static str,
        path: PathBuf,
        /// What it is instead, as in "a FIFO".
        kind: &'static str,
    },
    #[error("the {what} {} is larger than {max} bytes", shown(.path))]
    TooLarge {
        what: &'static str,
        path: PathBuf,
        max: u64,
    },
}

impl ReadError {
    /// Whether the file (or a directory on its path) does not exist, which for an optional
    /// file means it is simply not there.
    pub fn is_not_found(&self) -> bool {
        matches!(self, ReadError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
    }
}

fn shown(path: &Path) -> String {
    untrusted(&path.display().to_string())
}

/// The bytes of the regular file at `path` (symlinks followed), of at most `max` bytes;
/// `what` names the file in errors ("netrc file").
///
/// A FIFO, device, socket or directory is refused before it is opened, and again after
/// (it may have been swapped in between): the open does not wait for a FIFO's writer. One
/// byte more than `max` is read to tell a file that grew since the check from one that is
/// exactly at the limit.
pub fn read_bounded(path: &Path, max: u64, what: &'static str) -> Result<Vec<u8>, ReadError> {
    let io_error = |source: io::Error| ReadError::Io {
        what,
        path: path.to_path_buf(),
        source,
    };
    let check = |meta: &Metadata| -> Result<(), ReadError> {
        let kind = meta.file_type();
        let not = |kind| ReadError::NotAFile {
            what,
            path: path.to_path_buf(),
            kind,
        };
        if kind.is_file() {
            if meta.len() > max {
                return Err(ReadError::TooLarge {
                    what,
                    path: path.to_path_buf(),
                    max,
                });
            }
            Ok(())
        } else if kind.is_dir() {
            Err(not("a directory"))
        } else if kind.is_fifo() {
            Err(not("a FIFO"))
        } else if kind.is_char_device() {
            Err(not("a character device"))
        } else if kind.is_block_device() {
            Err(not("a block device"))
        } else if kind.is_socket() {
            Err(not("a socket"))
        } else {
            Err(not("not a file"))
        }
    };
    check(&fs::metadata(path).map_err(io_error)?)?;
    // O_NONBLOCK: a FIFO swapped in since the check opens at once and is refused below.
    let mut file = File::options()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(io_error)?;
    check(&file.metadata().map_err(io_error)?)?;
    let mut bytes = Vec::new();
    (&mut file)
        .take(max.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(io_error)?;
    if bytes.len() as u64 > max {
        return Err(ReadError::TooLarge {
            what,
            path: path.to_path_buf(),
            max,
        });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_regular_file_up_to_the_bound_is_read_and_a_larger_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("netrc");
        fs::write(&path, b"12345").unwrap();
        assert_eq!(read_bounded(&path, 5, "netrc file").unwrap(), b"12345");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        assert_eq!(read_bounded(&link, 5, "netrc file").unwrap(), b"12345");
        let err = read_bounded(&path, 4, "netrc file").unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("the netrc file {} is larger than 4 bytes", path.display())
        );
        assert!(!err.to_string().contains("12345"));
    }

    #[test]
    fn a_fifo_a_device_or_a_directory_is_refused_without_waiting_or_reading() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        for (path, kind) in [
            (fifo.as_path(), "a FIFO"),
            (Path::new("/dev/zero"), "a character device"),
            (dir.path(), "a directory"),
        ] {
            let err = read_bounded(path, 1 << 20, "header file").unwrap_err();
            assert!(
                matches!(&err, ReadError::NotAFile { kind: k, .. } if *k == kind),
                "{err}"
            );
            assert!(
                err.to_string()
                    .ends_with(&format!("is not a regular file (it is {kind})")),
                "{err}"
            );
        }
    }

    #[test]
    fn a_missing_file_is_told_apart_from_an_unreadable_one() {
        let dir = tempfile::tempdir().unwrap();
        let missing = read_bounded(&dir.path().join("none"), 10, "netrc file").unwrap_err();
        assert!(missing.is_not_found(), "{missing}");
        assert!(
            missing
                .to_string()
                .starts_with("cannot read the netrc file ")
        );
        let shown = read_bounded(Path::new("/no\u{1b}[2J/x"), 10, "netrc file").unwrap_err();
        assert!(!shown.to_string().contains('\u{1b}'), "{shown}");
    }
}
