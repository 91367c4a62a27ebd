//! `tako store`: add an image to a server directory and re-sign its manifest.

use std::fs::{self, File};

use std::path::PathBuf;

use crate::cli::StoreArgs;
use crate::fsutil::{Context, Dir, IoError};
use crate::hashing::{self, CopyError};
use crate::key::{KeyError, SecretKey};
use crate::manifest::{Conflict, Entry, Insert, MAX_MANIFEST_SIZE, Manifest, ManifestError};
use crate::version::{Version, VersionError};

/// The environment variable that may hold the secret key.
pub const SECRET_KEY_VAR: &str = "TAKO_SECRET_KEY";

const MAX_VERSION_LEN: usize = 128;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "no secret key: give it with --key, --key-file, or the environment variable {SECRET_KEY_VAR}"
    )]
    NoKey,
    #[error("secret key from {origin}: {source}")]
    BadKey { origin: String, source: KeyError },
    #[error(
        "invalid version '{0}': use 1 to 128 printable ASCII characters without whitespace or '*'"
    )]
    VersionCharacters(String),
    #[error(transparent)]
    Version(#[from] VersionError),
    #[error("output directory {0} does not exist or is not a directory")]
    NoOutputDir(PathBuf),
    #[error(
        "existing manifest {0} is signed by another key than the one given; refusing to change it"
    )]
    ForeignManifest(PathBuf),
    #[error("existing manifest {path} is invalid: {source}")]
    BadManifest {
        path: PathBuf,
        source: ManifestError,
    },
    #[error("cannot store {}: {source}", path.display())]
    Conflict {
        path: PathBuf,
        source: Box<Conflict>,
    },
    #[error("cannot copy {} to {}: {source}", image.display(), target.display())]
    Copy {
        image: PathBuf,
        target: PathBuf,
        source: CopyError,
    },
    #[error(transparent)]
    Io(#[from] IoError),
}

/// Checks a version string as given to `tako store`. Stricter than the
/// manifest parser, which must accept whatever older publishers wrote.
pub fn validate_new_version(text: &str) -> Result<Version, StoreError> {
    let printable = |b: u8| b.is_ascii_graphic() && b != b'*';
    if text.is_empty() || text.len() > MAX_VERSION_LEN || !text.bytes().all(printable) {
        return Err(StoreError::VersionCharacters(
            text.escape_debug().to_string(),
        ));
    }
    Ok(Version::parse(text)?)
}

/// Where the secret key came from, in the order of precedence.
fn load_key(args: &StoreArgs) -> Result<SecretKey, StoreError> {
    let (origin, text) = if let Some(key) = &args.key {
        ("--key".to_string(), key.clone())
    } else if let Some(path) = &args.key_file {
        let text = fs::read_to_string(path).context("read key file", path)?;
        (format!("key file {}", path.display()), text)
    } else if let Some(value) = std::env::var_os(SECRET_KEY_VAR) {
        let text = value.into_string().unwrap_or_default();
        (format!("${SECRET_KEY_VAR}"), text)
    } else {
        return Err(StoreError::NoKey);
    };
    SecretKey::parse(&text).map_err(|source| StoreError::BadKey { origin, source })
}

/// The manifest in `out` if there is one, verified with `key`. Only a
/// regular file of at most `MAX_MANIFEST_SIZE` bytes is read, as a client
/// would.
fn load_manifest(out: &Dir, key: &SecretKey) -> Result<Manifest, StoreError> {
    let path = out.path().join("manifest");
    let Some(bytes) = out.read_file("manifest", MAX_MANIFEST_SIZE, "read")? else {
        return Ok(Manifest::default());
    };
    Manifest::parse(&bytes, &key.public_key()).map_err(|source| match source {
        ManifestError::BadSignature(_) => StoreError::ForeignManifest(path.to_path_buf()),
        source => StoreError::BadManifest {
            path: path.to_path_buf(),
            source,
        },
    })
}

/// Runs `tako store` and returns the line to print.
pub fn store(args: &StoreArgs) -> Result<String, StoreError> {
    let key = load_key(args)?;
    let version = validate_new_version(&args.version)?;
    let out = args.output.as_path();
    if !out.is_dir() {
        return Err(StoreError::NoOutputDir(out.to_path_buf()));
    }
    let out_dir = Dir::open(out)?;
    let _lock = out_dir.lock()?;
    let manifest_path = out.join("manifest");
    let mut manifest = load_manifest(&out_dir, &key)?;
    let store_dir = out_dir.ensure_subdir("store")?;

    let mut image = File::open(&args.image).context("open image", &args.image)?;
    let mut pending = store_dir.create("incoming")?;
    let summary =
        hashing::copy_and_hash_to_file(&mut image, pending.file(), None).map_err(|source| {
            StoreError::Copy {
                image: args.image.clone(),
                target: pending.path().to_path_buf(),
                source,
            }
        })?;
    let entry = Entry {
        version,
        size: summary.size,
        digest: summary.digest,
    };
    let hex = entry.digest_hex();
    let line = format!("{} -> {hex}", entry.version);

    let inserted = manifest
        .insert(entry)
        .map_err(|source| StoreError::Conflict {
            path: manifest_path.clone(),
            source: Box::new(source),
        })?;

    // The copy is complete and verified by construction: renaming it over
    // an existing store file keeps good bytes good and repairs bad ones,
    // without a second pass over the old file.
    pending.commit_as(&hex)?;
    if inserted == Insert::Added {
        out_dir.write_file("manifest", &manifest.to_signed_bytes(&key))?;
    }
    Ok(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_versions() {
        for v in ["1.0.0", "2024.01.05-rc1", "v1", "a"] {
            assert!(validate_new_version(v).is_ok(), "{v}");
        }
        assert!(validate_new_version(&"1.".repeat(64)).is_ok());
    }

    #[test]
    fn rejects_versions_a_client_could_not_use() {
        for v in [
            "",
            "1.0 beta",
            "1.*",
            "1\t0",
            "1.0\n",
            "é1",
            &"1".repeat(129),
        ] {
            assert!(
                matches!(
                    validate_new_version(v),
                    Err(StoreError::VersionCharacters(_))
                ),
                "{v:?}"
            );
        }
        assert!(matches!(
            validate_new_version("..."),
            Err(StoreError::Version(_))
        ));
        assert!(matches!(
            validate_new_version("1.99999999999999999999"),
            Err(StoreError::Version(_))
        ));
    }
}
