//! `tako store`: add an image to a server directory and re-sign its manifest files.
//!
//! With one key this writes `manifest`, byte for byte what the original Tako writes. With
//! several (during a key rotation) the first signs `manifest` and each other one signs
//! `manifest.<keyid>`, with the same entry lines. Before anything changes, every existing
//! manifest file is checked against its key and against the others (see
//! docs/key-rotation.md for why the files are written in the order they are).

use std::collections::BTreeMap;
use std::fs::{self, File};

use std::path::{Path, PathBuf};

use crate::cli::StoreArgs;
use crate::format::key::{KeyError, KeyId, PublicKey, SecretKey};
use crate::format::manifest::{
    Conflict, Entry, MAX_MANIFEST_SIZE, Manifest, ManifestError, UnverifiedEntries,
};
use crate::format::text;
use crate::format::version::{Version, VersionError};
use crate::fs::{Context, Dir, IoError};
use crate::origin::local::LocalDir;
use crate::origin::registry_layout;
use crate::stream::chunking;
use crate::stream::hashing::{self, CopyError};
use crate::ui::output;
use crate::update::keyring;

/// The environment variable that may hold the secret key.
pub const SECRET_KEY_VAR: &str = "TAKO_SECRET_KEY";

const MAX_VERSION_LEN: usize = 128;
const MANIFEST: &str = "manifest";
/// The directory of chunk indexes in a server directory (see docs/index.md).
pub const INDEX: &str = "index";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "no secret key: give it with --key, --key-file, or the environment variable {SECRET_KEY_VAR}"
    )]
    NoKey,
    #[error("secret key from {origin}: {source}")]
    BadKey { origin: String, source: KeyError },
    #[error("the key with id {0} is given twice")]
    DuplicateKey(KeyId),
    #[error("--retire-key '{0}' is neither a public key nor a key id (16 lowercase hex digits)")]
    BadRetiredKey(String),
    #[error("--retire-key: {0}")]
    RetiredSecret(KeyError),
    #[error("key {0} is given both to sign and to retire")]
    RetiringSigningKey(KeyId),
    #[error(
        "invalid version '{0}': use 1 to 128 printable ASCII characters without whitespace or '*'"
    )]
    VersionCharacters(String),
    #[error(transparent)]
    Version(#[from] VersionError),
    #[error("output directory {0} does not exist or is not a directory")]
    NoOutputDir(PathBuf),
    #[error(
        "existing manifest {} is signed by another key than the ones given; refusing to change it (give its secret key too, or, if its key is to be replaced, --retire-key with that key's public key{})",
        path.display(),
        if *.retired_by_id { "; a key id is not enough to check the signature" } else { "" }
    )]
    ForeignManifest { path: PathBuf, retired_by_id: bool },
    #[error("existing manifest {path} is invalid: {source}")]
    BadManifest {
        path: PathBuf,
        source: ManifestError,
    },
    #[error(
        "{} belongs to key {id}, which was not given: give that secret key too, or remove the file with --retire-key {id}; refusing to change anything",
        path.display()
    )]
    UnknownKeyFile { path: PathBuf, id: KeyId },
    #[error(
        "the manifest files disagree: {} lists entries that {} lacks ({entries}); refusing to change anything",
        path.display(),
        other.display()
    )]
    Disagree {
        path: PathBuf,
        other: PathBuf,
        entries: String,
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
    #[error(transparent)]
    Registry(#[from] crate::registry::OciError),
    #[error(
        "publishing to a registry ({0}) signs with exactly one key: signing with several keys and --retire-key are not supported for registries yet"
    )]
    RegistryRotation(String),
    #[error(
        "the manifest in {0} is signed by another key than the one given; refusing to change it"
    )]
    ForeignRegistryManifest(String),
    #[error("the manifest in {origin} is invalid: {source}")]
    BadRegistryManifest {
        origin: String,
        source: ManifestError,
    },
}

/// Checks a version string as given to `tako store`. Stricter than the
/// manifest parser, which must accept whatever older publishers wrote: a
/// version of separators only (`...`), which the original Tako published,
/// is read from a manifest but never published anew.
pub fn validate_new_version(text: &str) -> Result<Version, StoreError> {
    let printable = |b: u8| b.is_ascii_graphic() && b != b'*';
    if text.is_empty() || text.len() > MAX_VERSION_LEN || !text.bytes().all(printable) {
        return Err(StoreError::VersionCharacters(
            crate::format::text::untrusted(text),
        ));
    }
    Ok(Version::parse(text)?)
}

/// The signing keys, in the order given: all `--key`s, else all
/// `--key-file`s, else the one key in the environment.
fn load_keys(args: &StoreArgs) -> Result<Vec<SecretKey>, StoreError> {
    let numbered = |flag: &str, i: usize, count: usize| {
        if count == 1 {
            flag.to_string()
        } else {
            format!("{flag} number {}", i + 1)
        }
    };
    let mut texts: Vec<(String, String)> = Vec::new();
    if !args.key.is_empty() {
        for (i, key) in args.key.iter().enumerate() {
            texts.push((numbered("--key", i, args.key.len()), key.clone()));
        }
    } else if !args.key_file.is_empty() {
        for path in &args.key_file {
            let text = fs::read_to_string(path).context("read key file", path)?;
            texts.push((format!("key file {}", path.display()), text));
        }
    } else if let Some(value) = std::env::var_os(SECRET_KEY_VAR) {
        let text = value.into_string().unwrap_or_default();
        texts.push((format!("${SECRET_KEY_VAR}"), text));
    } else {
        return Err(StoreError::NoKey);
    }
    let mut keys: Vec<SecretKey> = Vec::with_capacity(texts.len());
    for (origin, text) in texts {
        let key =
            SecretKey::parse(&text).map_err(|source| StoreError::BadKey { origin, source })?;
        let id = key.public_key().id();
        if keys.iter().any(|k| k.public_key().id() == id) {
            return Err(StoreError::DuplicateKey(id));
        }
        keys.push(key);
    }
    Ok(keys)
}

/// A key whose manifest file this run removes. Given as a public key, its
/// files can be verified; given as an id, only parsed.
struct Retired {
    id: KeyId,
    key: Option<PublicKey>,
}

fn retired_keys(args: &StoreArgs, keys: &[SecretKey]) -> Result<Vec<Retired>, StoreError> {
    let mut retired: Vec<Retired> = Vec::new();
    for text in &args.retire_key {
        let one = match PublicKey::parse(text) {
            Ok(key) => Retired {
                id: key.id(),
                key: Some(key),
            },
            Err(e @ KeyError::SecretAsPublic) => return Err(StoreError::RetiredSecret(e)),
            Err(_) => Retired {
                id: KeyId::parse(text)
                    .map_err(|_| StoreError::BadRetiredKey(text::untrusted(text.trim())))?,
                key: None,
            },
        };
        if keys.iter().any(|k| k.public_key().id() == one.id) {
            return Err(StoreError::RetiringSigningKey(one.id));
        }
        // The same key twice, once by id and once in full: keep the full form.
        match retired.iter_mut().find(|r| r.id == one.id) {
            Some(known) => known.key = known.key.take().or(one.key),
            None => retired.push(one),
        }
    }
    Ok(retired)
}

/// The manifest files in a server directory: `manifest` (id `None`) and
/// every `manifest.<keyid>`. Other names, such as a `manifest.new` left by
/// a crash, are not manifest files.
fn manifest_files(out: &Path) -> Result<Vec<(String, Option<KeyId>)>, IoError> {
    let mut files = Vec::new();
    for entry in fs::read_dir(out).context("list", out)? {
        let entry = entry.context("list", out)?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if name == MANIFEST {
            files.push((name, None));
        } else if let Some(id) = name
            .strip_prefix("manifest.")
            .and_then(|id| KeyId::parse(id).ok())
            .filter(|id| name.len() == MANIFEST.len() + 1 + id.as_str().len())
        {
            files.push((name, Some(id)));
        }
    }
    files.sort();
    Ok(files)
}

/// What an existing manifest file was found to be.
enum Found {
    /// Verified with a key given to sign (by its index).
    Signing(Manifest, usize),
    /// Verified with a retired key's public key.
    Retired(Manifest, KeyId),
    /// Of a key retired by id only: well-formed, signature unchecked.
    RetiredUnchecked(UnverifiedEntries),
}

/// Checks the bytes of one manifest file against its key.
fn check_file(
    path: &Path,
    bytes: &[u8],
    id: Option<&KeyId>,
    signing: &[PublicKey],
    retired: &[Retired],
) -> Result<Found, StoreError> {
    let bad = |source| StoreError::BadManifest {
        path: path.to_path_buf(),
        source,
    };
    let Some(id) = id else {
        // `manifest`: any given key may have signed it, or a retired one.
        return match Manifest::parse_any(bytes, signing) {
            Ok((manifest, i)) => Ok(Found::Signing(manifest, i)),
            Err(ManifestError::BadSignature(_) | ManifestError::BadSignatureAny(_)) => {
                let (ids, keys): (Vec<KeyId>, Vec<PublicKey>) = retired
                    .iter()
                    .filter_map(|r| Some((r.id.clone(), r.key.clone()?)))
                    .unzip();
                match Manifest::parse_any(bytes, &keys) {
                    Ok((manifest, i)) if !keys.is_empty() => {
                        Ok(Found::Retired(manifest, ids[i].clone()))
                    }
                    _ => Err(StoreError::ForeignManifest {
                        path: path.to_path_buf(),
                        retired_by_id: retired.iter().any(|r| r.key.is_none()),
                    }),
                }
            }
            Err(source) => Err(bad(source)),
        };
    };
    if let Some(i) = signing.iter().position(|k| k.id() == *id) {
        return Manifest::parse(bytes, &signing[i])
            .map(|manifest| Found::Signing(manifest, i))
            .map_err(bad);
    }
    match retired.iter().find(|r| r.id == *id) {
        Some(Retired { key: Some(key), .. }) => Manifest::parse(bytes, key)
            .map(|manifest| Found::Retired(manifest, id.clone()))
            .map_err(bad),
        Some(Retired { key: None, .. }) => UnverifiedEntries::parse(bytes)
            .map(Found::RetiredUnchecked)
            .map_err(bad),
        None => Err(StoreError::UnknownKeyFile {
            path: path.to_path_buf(),
            id: id.clone(),
        }),
    }
}

/// The entries published so far, from the existing manifest files.
struct Published {
    manifest: Manifest,
    /// The file the entries were taken from, when only a retired key
    /// vouches for them.
    from_retired: Option<(PathBuf, KeyId)>,
    /// The key id that signed `manifest`, if it exists.
    primary_signer: Option<KeyId>,
    /// The bytes of every manifest file, by name.
    existing: BTreeMap<String, Vec<u8>>,
}

/// Checks every manifest file in `out` and returns the entries they list.
///
/// Each file must verify with its key, and no file may list an entry that
/// the fullest file lacks. A file that merely lacks the newest entries is
/// what a `tako store` interrupted between two files leaves, and is brought
/// up to date; anything else is a disagreement to refuse.
fn read_published(
    out: &Dir,
    keys: &[SecretKey],
    retired: &[Retired],
) -> Result<Published, StoreError> {
    let signing: Vec<PublicKey> = keys.iter().map(SecretKey::public_key).collect();
    let mut found = Vec::new();
    let mut existing = BTreeMap::new();
    let mut primary_signer = None;
    for (name, id) in manifest_files(out.path())? {
        let path = out.path().join(&name);
        // Only a regular file of at most the size a client accepts is read,
        // never through a symlink: a planted FIFO or link cannot hang or
        // redirect the publisher.
        let Some(bytes) = out.read_file(&name, MAX_MANIFEST_SIZE, "read")? else {
            continue;
        };
        let file = check_file(&path, &bytes, id.as_ref(), &signing, retired)?;
        if id.is_none() {
            primary_signer = match &file {
                Found::Signing(_, i) => Some(signing[*i].id()),
                Found::Retired(_, id) => Some(id.clone()),
                Found::RetiredUnchecked(_) => None,
            };
        }
        existing.insert(name, bytes);
        found.push((path, file));
    }

    // The fullest file signed by a key given; failing that (a key replaced
    // in an emergency, with no other key set up before), the fullest file
    // of a retired key, whose entries are then signed anew.
    let fullest = |retired: bool| {
        found
            .iter()
            .filter_map(|(path, f)| match f {
                Found::Signing(m, _) if !retired => Some((path, m, None)),
                Found::Retired(m, id) if retired => Some((path, m, Some(id))),
                _ => None,
            })
            // The first of the fullest, so `manifest` is the reference
            // when files tie and the other file is the one named.
            .fold(
                None,
                |best: Option<(&PathBuf, &Manifest, Option<&KeyId>)>, f| match best {
                    Some(b) if b.1.entries().len() >= f.1.entries().len() => Some(b),
                    _ => Some(f),
                },
            )
    };
    let Some((base_path, base, retired_id)) = fullest(false).or_else(|| fullest(true)) else {
        return Ok(Published {
            manifest: Manifest::default(),
            from_retired: None,
            primary_signer,
            existing,
        });
    };
    for (path, file) in &found {
        let extra = match file {
            Found::Signing(m, _) | Found::Retired(m, _) => m.missing_from(base),
            Found::RetiredUnchecked(entries) => entries.missing_from(base),
        };
        if !extra.is_empty() {
            return Err(StoreError::Disagree {
                path: path.clone(),
                other: base_path.clone(),
                entries: extra
                    .iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
    }
    Ok(Published {
        manifest: base.clone(),
        from_retired: retired_id.map(|id| (base_path.clone(), id.clone())),
        primary_signer,
        existing,
    })
}

/// Runs `tako store` and returns the line to print.
pub fn store(args: &StoreArgs) -> Result<String, StoreError> {
    if let Some(origin) = args
        .output
        .to_str()
        .filter(|o| crate::registry::Reference::is_registry_url(o))
    {
        return store_registry(args, origin);
    }
    let keys = load_keys(args)?;
    let retired = retired_keys(args, &keys)?;
    let version = validate_new_version(&args.version)?;
    let out = args.output.as_path();
    if !out.is_dir() {
        return Err(StoreError::NoOutputDir(out.to_path_buf()));
    }
    let out_dir = Dir::open(out)?;
    let _lock = out_dir.lock()?;
    let manifest_path = out.join(MANIFEST);
    let mut published = read_published(&out_dir, &keys, &retired)?;
    let mut manifest = std::mem::take(&mut published.manifest);
    let carried = manifest.entries().len();
    let store_dir = out_dir.ensure_subdir("store")?;
    // Before the copy: something planted at `index` fails the run before
    // anything is written.
    let index_dir = if args.no_index {
        None
    } else {
        Some(out_dir.ensure_subdir(INDEX)?)
    };

    let mut image = File::open(&args.image).context("open image", &args.image)?;
    let mut pending = store_dir.create("incoming")?;
    let target = pending.path().to_path_buf();
    let copy_error = |source| StoreError::Copy {
        image: args.image.clone(),
        target,
        source,
    };
    let (summary, index) = if args.no_index {
        let summary =
            hashing::copy_and_hash_to_file(&mut image, pending.file(), None).map_err(copy_error)?;
        (summary, None)
    } else {
        let (summary, index) =
            chunking::copy_hash_and_index(&mut image, pending.file()).map_err(copy_error)?;
        (summary, Some(index))
    };
    let entry = Entry {
        version,
        size: summary.size,
        digest: summary.digest,
    };
    let hex = entry.digest_hex();
    let line = format!("{} -> {hex}", entry.version);

    manifest
        .insert(entry)
        .map_err(|source| StoreError::Conflict {
            path: manifest_path.clone(),
            source: Box::new(source),
        })?;

    if let Some((path, id)) = &published.from_retired {
        output::stderr_line(&format!(
            "tako: warning: the {} published entries were taken from {}, which only the retired key {id} vouches for; they are now signed by the keys given, so check them",
            carried,
            path.display()
        ));
    }

    // The copy is complete and verified by construction: renaming it over
    // an existing store file keeps good bytes good and repairs bad ones,
    // without a second pass over the old file.
    pending.commit_as(&hex)?;
    // Before the manifest names the image, so that a host never finds the
    // new entry without its index (it would download the image in full).
    if let (Some(dir), Some(index)) = (&index_dir, index) {
        dir.write_file(&hex, &index.to_bytes())?;
    }
    write_manifests(&out_dir, &manifest, &keys, &retired, &published)?;
    Ok(line)
}

/// `tako store -o oci://…`: the same checks as for a directory, against the signed
/// manifest the repository's `tako-manifest` tag holds (see docs/registries.md).
fn store_registry(args: &StoreArgs, origin: &str) -> Result<String, StoreError> {
    use crate::registry;
    let reference = registry::Reference::parse(origin).map_err(registry::OciError::from)?;
    let shown = reference.to_string();
    let keys = load_keys(args)?;
    let key = match keys.as_slice() {
        [key] if args.retire_key.is_empty() => key,
        _ => return Err(StoreError::RegistryRotation(shown)),
    };
    let version = validate_new_version(&args.version)?;
    let client = registry::Client::new(reference, true)?;
    let signing = [key.public_key()];
    let (mut manifest, previous) = match registry_layout::read_manifest(&client)? {
        None => (Manifest::default(), None),
        Some((bytes, digest)) => match Manifest::parse_any(&bytes, &signing) {
            Ok((manifest, _)) => (manifest, Some(digest)),
            Err(ManifestError::BadSignature(_) | ManifestError::BadSignatureAny(_)) => {
                return Err(StoreError::ForeignRegistryManifest(shown));
            }
            Err(source) => {
                return Err(StoreError::BadRegistryManifest {
                    origin: shown,
                    source,
                });
            }
        },
    };
    // The index comes from the same single read as the size and digest, so that it always
    // describes the image hashed (an image changed meanwhile is refused by the registry).
    let (size, digest, index) = if args.no_index {
        let (size, digest) = registry_layout::hash_file(&args.image)?;
        (size, digest, None)
    } else {
        let index = registry_layout::index_file(&args.image)?;
        (index.size, index.digest, Some(index.to_bytes()))
    };
    let entry = Entry {
        version,
        size,
        digest,
    };
    let hex = entry.digest_hex();
    let line = format!("{} -> {hex}", entry.version);
    manifest
        .insert(entry)
        .map_err(|source| StoreError::Conflict {
            path: PathBuf::from(&shown),
            source: Box::new(source),
        })?;
    let signed = manifest.to_signed_bytes(key);
    registry_layout::publish(
        &client,
        &registry_layout::Image {
            path: &args.image,
            size,
            hex: &hex,
            index: index.as_deref(),
        },
        &args.version,
        &signed,
        previous.as_deref(),
    )?;
    Ok(line)
}

/// Writes every manifest file that is missing or differs, then removes the
/// ones no longer wanted, in an order that leaves a directory every host
/// can use after a crash between any two steps:
///
/// 1. `manifest.<keyid>` of each secondary key: a host that trusts such a
///    key but not the one about to sign `manifest` finds its file ready
///    before `manifest` changes hands.
/// 2. `manifest`, signed by the primary key. Hosts that read it never see
///    its entries go backwards, since it is written once per run.
/// 3. Removal of `manifest.<keyid>` of the primary key (`manifest` now
///    serves its hosts) and of each retired key.
fn write_manifests(
    out: &Dir,
    manifest: &Manifest,
    keys: &[SecretKey],
    retired: &[Retired],
    published: &Published,
) -> Result<(), StoreError> {
    let target = LocalDir::new(out);
    let write = |name: &str, key: &SecretKey| -> Result<bool, StoreError> {
        let bytes = manifest.to_signed_bytes(key);
        if published.existing.get(name) == Some(&bytes) {
            return Ok(false);
        }
        target.put(name, &bytes)?;
        Ok(true)
    };
    let Some((primary_key, secondary)) = keys.split_first() else {
        return Err(StoreError::NoKey);
    };
    for key in secondary {
        let name = keyring::manifest_name(&key.public_key());
        let created = !published.existing.contains_key(&name);
        if write(&name, key)? && created {
            output::stderr_line(&format!(
                "tako: created {}, signed by key {}",
                out.path().join(&name).display(),
                key.public_key().id()
            ));
        }
    }
    let primary = primary_key.public_key().id();
    write(MANIFEST, primary_key)?;
    if let Some(old) = &published.primary_signer
        && *old != primary
    {
        output::stderr_line(&format!(
            "tako: {} is now signed by key {primary} instead of {old}",
            out.path().join(MANIFEST).display()
        ));
    }

    let mut removed = false;
    let unwanted = std::iter::once((&primary, "its key now signs manifest"))
        .chain(retired.iter().map(|r| (&r.id, "its key is retired")));
    for (id, why) in unwanted {
        let name = format!("{MANIFEST}.{id}");
        if published.existing.contains_key(&name) {
            let path = target.path_of(&name);
            target.remove(&name)?;
            output::stderr_line(&format!("tako: removed {}: {why}", path.display()));
            removed = true;
        }
    }
    if removed {
        target.flush()?;
    }
    Ok(())
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
