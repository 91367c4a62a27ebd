//! `DEST/restart-pending`: the `Restart=` units whose restart after an update has not succeeded.
//!
//! A restart that fails would otherwise be forgotten: the next run finds `latest` current and
//! has no reason to restart, while the service keeps running the old image. So the units are
//! recorded here before they are restarted (a run killed mid-restart leaves them recorded too),
//! the ones left are rewritten after a failure, and the file is removed once all are done. Every
//! later run retries the units recorded here.
//!
//! The format is one full unit name per line (`app.service\n`), in the order they are to be
//! restarted. The file is written like every other file of a destination: atomically, durably
//! and read-only (see `fs`).

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::format::text::untrusted;
use crate::format::unit_name::normalize_unit_name;
use crate::fs::IoError;

/// The file's name inside the destination.
pub const FILE_NAME: &str = "restart-pending";

/// Far more than any list of units needs (255 characters a name); a larger
/// file is not ours.
const MAX_SIZE: u64 = 64 << 10;

/// Why the record of pending restarts could not be used.
#[derive(Debug, thiserror::Error)]
pub enum PendingError {
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error(
        "{} is not a file that tako wrote ({what}); remove it, and restart the config's units yourself if an update needs it",
        path.display()
    )]
    Foreign { path: PathBuf, what: String },
    #[error(transparent)]
    Io(#[from] IoError),
}

/// The path of the record in `dest`.
pub fn path(dest: &Path) -> PathBuf {
    dest.join(FILE_NAME)
}

/// The units recorded in `dest`, or `None` when no restart is pending.
pub fn read(dest: &Path) -> Result<Option<Vec<String>>, PendingError> {
    let path = path(dest);
    let foreign = |what: &str| PendingError::Foreign {
        path: path.clone(),
        what: what.to_string(),
    };
    // Never through a symlink planted in our place, and never blocked by a FIFO.
    let file = File::options()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(&path);
    let file = match file {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(foreign("a symbolic link"));
        }
        Err(source) => return Err(PendingError::Read { path, source }),
    };
    let meta = file.metadata().map_err(|source| PendingError::Read {
        path: path.clone(),
        source,
    })?;
    if !meta.is_file() {
        return Err(foreign("not a regular file"));
    }
    let mut bytes = Vec::new();
    file.take(MAX_SIZE + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| PendingError::Read {
            path: path.clone(),
            source,
        })?;
    if bytes.len() as u64 > MAX_SIZE {
        return Err(foreign("larger than 64 KiB"));
    }
    let text = String::from_utf8(bytes).map_err(|_| foreign("not UTF-8 text"))?;
    let mut units = Vec::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        // Only full names are written, so anything else is not ours.
        match normalize_unit_name(line) {
            Ok(full) if full == line => units.push(full),
            _ => {
                return Err(foreign(&format!(
                    "'{}' is not a unit name",
                    untrusted(line)
                )));
            }
        }
    }
    Ok(Some(units))
}

/// Records `units` as pending in `dest`, replacing any earlier record.
pub fn write(dest: &Path, units: &[String]) -> Result<(), IoError> {
    let text: String = units.iter().map(|u| format!("{u}\n")).collect();
    crate::fs::write_file(dest, FILE_NAME, text.as_bytes())?;
    Ok(())
}

/// Removes the record from `dest`, durably; no record is fine.
pub fn remove(dest: &Path) -> Result<(), IoError> {
    crate::fs::remove_if_exists(&path(dest))?;
    crate::fs::sync_dir(dest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_reads_back_and_removes_units() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read(dir.path()).unwrap().is_none());
        let units = vec!["app.service".to_string(), "getty@tty1.service".to_string()];
        write(dir.path(), &units).unwrap();
        assert_eq!(
            std::fs::read_to_string(path(dir.path())).unwrap(),
            "app.service\ngetty@tty1.service\n"
        );
        assert_eq!(read(dir.path()).unwrap(), Some(units));
        remove(dir.path()).unwrap();
        assert!(read(dir.path()).unwrap().is_none());
        remove(dir.path()).unwrap();
    }

    #[test]
    fn refuses_what_it_did_not_write() {
        let dir = tempfile::tempdir().unwrap();
        let file = path(dir.path());
        std::fs::write(&file, "app\n").unwrap();
        assert!(matches!(
            read(dir.path()),
            Err(PendingError::Foreign { .. })
        ));
        std::fs::remove_file(&file).unwrap();
        std::fs::write(dir.path().join("elsewhere"), "app.service\n").unwrap();
        std::os::unix::fs::symlink("elsewhere", &file).unwrap();
        let err = read(dir.path()).unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
    }
}
