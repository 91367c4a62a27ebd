//! The host's registries.conf (containers-registries.conf(5)): which file, its drop-ins,
//! read bounded; what they say is parsed and applied by `format::oci::registries_conf`.
//!
//! The file is `CONTAINERS_REGISTRIES_CONF` if set; else, for a user other than root,
//! `$XDG_CONFIG_HOME/containers/registries.conf` (`~/.config/…` without it) if it exists;
//! else `/etc/containers/registries.conf`. Its drop-ins are the `*.conf` files of the
//! `registries.conf.d` directory next to it, in name order. A missing file or directory is
//! no configuration at all; one that cannot be read or does not parse stops the pull, since
//! pulling past a host's mirrors or blocks is what the file is there to prevent.

use std::path::{Path, PathBuf};

use crate::format::oci::reference::Reference;
use crate::format::oci::registries_conf::{ConfError, Endpoint, RegistriesConf, ResolveError};
use crate::format::text::untrusted;
use crate::fs::bounded::{ReadError, read_bounded};

/// The largest registries.conf or drop-in read.
const MAX_FILE: u64 = 1024 * 1024;
/// The most drop-ins read from one directory.
const MAX_DROP_INS: usize = 1000;
const SYSTEM_FILE: &str = "/etc/containers/registries.conf";
const DROP_IN_DIR: &str = "registries.conf.d";

#[derive(Debug, thiserror::Error)]
pub enum RegistriesError {
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error(transparent)]
    Conf(#[from] ConfError),
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    #[error("cannot list the registries.conf drop-ins in {}: {source}", untrusted(&path.display().to_string()))]
    Dir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} holds more than {MAX_DROP_INS} drop-ins", untrusted(&path.display().to_string()))]
    TooManyDropIns { path: PathBuf },
}

/// The registries.conf to read, by the environment and the user.
fn main_file() -> PathBuf {
    if let Some(path) = std::env::var_os("CONTAINERS_REGISTRIES_CONF").filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    if !rustix::process::geteuid().is_root() {
        let config_home = std::env::var_os("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .or_else(|| {
                std::env::var_os("HOME")
                    .map(PathBuf::from)
                    .filter(|p| p.is_absolute())
                    .map(|home| home.join(".config"))
            });
        if let Some(user) = config_home.map(|dir| dir.join("containers/registries.conf"))
            && user.exists()
        {
            return user;
        }
    }
    PathBuf::from(SYSTEM_FILE)
}

/// Reads `path` into `conf` if it exists.
fn merge_file(conf: &mut RegistriesConf, path: &Path) -> Result<(), RegistriesError> {
    match read_bounded(path, MAX_FILE, "registries.conf") {
        Ok(bytes) => {
            let shown = untrusted(&path.display().to_string());
            let text = String::from_utf8(bytes).map_err(|_| ConfError::Syntax {
                file: shown.clone(),
                line: None,
                message: "it is not UTF-8 text".to_owned(),
            })?;
            conf.merge(&shown, &text)?;
            Ok(())
        }
        Err(e) if e.is_not_found() => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The configuration of `file` and the drop-ins next to it.
pub fn load_from(file: &Path) -> Result<RegistriesConf, RegistriesError> {
    let mut conf = RegistriesConf::default();
    merge_file(&mut conf, file)?;
    let dir = file
        .parent()
        .unwrap_or_else(|| Path::new("."))
        .join(DROP_IN_DIR);
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(conf),
        Err(source) => return Err(RegistriesError::Dir { path: dir, source }),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| RegistriesError::Dir {
            path: dir.clone(),
            source,
        })?;
        let name = entry.file_name();
        // As containers/image: only `*.conf`, which leaves editors' backups alone.
        if name.as_encoded_bytes().ends_with(b".conf") {
            names.push(name);
        }
        if names.len() > MAX_DROP_INS {
            return Err(RegistriesError::TooManyDropIns { path: dir });
        }
    }
    names.sort();
    for name in names {
        merge_file(&mut conf, &dir.join(name))?;
    }
    Ok(conf)
}

/// The host's configuration (see the module comment for which files).
pub fn load() -> Result<RegistriesConf, RegistriesError> {
    load_from(&main_file())
}

/// The image `text` names (aliases applied) and where to pull it from, in order.
pub fn route(text: &str) -> Result<(Reference, Vec<Endpoint>), RegistriesError> {
    let conf = load()?;
    let image = conf.reference(text)?;
    let endpoints = conf.endpoints(&image)?;
    Ok((image, endpoints))
}

/// Where to pull `image`, already a full reference (`docker://…` of an image proxy, where
/// no alias applies), from, in order.
pub fn endpoints(image: &Reference) -> Result<Vec<Endpoint>, RegistriesError> {
    Ok(load()?.endpoints(image)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_ins_are_read_in_name_order_and_only_conf_files() {
        let dir = tempfile::tempdir().unwrap();
        let main = dir.path().join("registries.conf");
        std::fs::write(&main, "[aliases]\napp = \"a.example.com/app\"\n").unwrap();
        let d = dir.path().join(DROP_IN_DIR);
        std::fs::create_dir(&d).unwrap();
        std::fs::write(
            d.join("20-b.conf"),
            "[aliases]\napp = \"b.example.com/app\"\n",
        )
        .unwrap();
        std::fs::write(
            d.join("10-c.conf"),
            "[aliases]\napp = \"c.example.com/app\"\n",
        )
        .unwrap();
        std::fs::write(d.join("30-z.conf~"), "not toml [").unwrap();
        let conf = load_from(&main).unwrap();
        assert_eq!(
            conf.reference("app").unwrap().to_string(),
            "b.example.com/app:latest"
        );
    }

    #[test]
    fn a_missing_file_and_directory_are_no_configuration() {
        let dir = tempfile::tempdir().unwrap();
        let conf = load_from(&dir.path().join("none.conf")).unwrap();
        assert_eq!(conf, RegistriesConf::default());
    }

    #[test]
    fn a_drop_in_that_does_not_parse_is_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join(DROP_IN_DIR);
        std::fs::create_dir(&d).unwrap();
        std::fs::write(d.join("bad.conf"), "[[registry]\n").unwrap();
        let e = load_from(&dir.path().join("registries.conf"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("registries.conf.d/bad.conf, line 1"), "{e}");
    }
}
