//! `tako store`: add an image to a server directory or a registry repository, and re-sign
//! its manifest files.
//!
//! With one key this writes `manifest`, byte for byte what the original Tako writes. With
//! several (during a key rotation) the first signs `manifest` and each other one signs
//! `manifest.<keyid>` (in a registry, the tags `tako-manifest` and `tako-manifest.<keyid>`),
//! with the same entry lines. Before anything changes, every existing manifest file is
//! checked against its key and against the others (see docs/key-rotation.md for why the
//! files are written in the order they are). The place is reached through the origin
//! seam's [`Publish`], one flow for a directory and a registry.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::cli::StoreArgs;
use crate::container::publish::{self as container, PublishError};
use crate::container::pull::Report;
use crate::container::resolve::Auth;
use crate::format::key::{KeyError, KeyId, PublicKey, SecretKey};
use crate::format::manifest::{Conflict, Entry, Manifest, ManifestError, UnverifiedEntries};
use crate::format::text;
use crate::format::version::{Version, VersionError};
use crate::fs::{Context, IoError};
use crate::origin::publish::{self, Publish, Removed, Staged};
use crate::origin::{OriginError, Slot};
use crate::ui::output;
use crate::update::retry::RetryPolicy;

/// The environment variable that may hold the secret key.
pub const SECRET_KEY_VAR: &str = "TAKO_SECRET_KEY";

const MAX_VERSION_LEN: usize = 128;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "no secret key: give it with --key, --key-file, or the environment variable {SECRET_KEY_VAR}"
    )]
    NoKey,
    #[error(
        "key file {} is larger than a key file can be ({max} bytes); give the file that 'tako gen-key' output was saved to",
        path.display()
    )]
    KeyFileTooLarge { path: PathBuf, max: u64 },
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
    /// `title` is how the place names the file: "existing manifest PATH", "the manifest
    /// in oci://…".
    #[error(
        "{title} is signed by another key than the ones given; refusing to change it (give its secret key too, or, if its key is to be replaced, --retire-key with that key's public key{})",
        if *.retired_by_id { "; a key id is not enough to check the signature" } else { "" }
    )]
    ForeignManifest { title: String, retired_by_id: bool },
    #[error("{title} is invalid: {source}")]
    BadManifest {
        title: String,
        source: ManifestError,
    },
    #[error(
        "{location} belongs to key {id}, which was not given: give that secret key too, or remove the file with --retire-key {id}; refusing to change anything"
    )]
    UnknownKeyFile { location: String, id: KeyId },
    #[error(
        "the manifest files disagree: {location} lists entries that {other} lacks ({entries}); refusing to change anything"
    )]
    Disagree {
        location: String,
        other: String,
        entries: String,
    },
    #[error("cannot store {location}: {source}")]
    Conflict {
        location: String,
        source: Box<Conflict>,
    },
    #[error(
        "{location} was changed by another publisher each of the {tries} times this run wrote it; the image is uploaded but not in the manifest: run tako store again, and let publishers of one repository take turns"
    )]
    KeptChanging { location: String, tries: u32 },
    #[error(transparent)]
    Io(#[from] IoError),
    /// The directory or registry published to.
    #[error(transparent)]
    Origin(#[from] OriginError),
    /// The container image published (`--container`), or copying it.
    #[error(transparent)]
    Container(#[from] PublishError),
    #[error("the container image reference is not UTF-8 text: {}", .0.display())]
    ImageNotText(PathBuf),
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

/// Far more than a key file holds (a secret key is one line of under 100 characters).
const MAX_KEY_FILE: u64 = 4096;

/// The text of a `--key-file`, read with a bound: `/dev/zero` or a runaway pipe ends in an
/// error rather than filling memory. A pipe is fine (`-f <(pass show tako-key)`), and is
/// read as it is, since its writer is the user's own command.
fn read_key_file(path: &Path) -> Result<String, StoreError> {
    let mut bytes = Vec::new();
    fs::File::open(path)
        .and_then(|file| file.take(MAX_KEY_FILE + 1).read_to_end(&mut bytes))
        .context("read key file", path)?;
    if bytes.len() as u64 > MAX_KEY_FILE {
        return Err(StoreError::KeyFileTooLarge {
            path: path.to_path_buf(),
            max: MAX_KEY_FILE,
        });
    }
    // Not quoted anywhere: what is not UTF-8 is simply no key.
    Ok(String::from_utf8(bytes).unwrap_or_default())
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
            texts.push((format!("key file {}", path.display()), read_key_file(path)?));
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
    target: &dyn Publish,
    slot: &Slot,
    bytes: &[u8],
    signing: &[PublicKey],
    retired: &[Retired],
) -> Result<Found, StoreError> {
    let bad = |source| StoreError::BadManifest {
        title: target.title(slot),
        source,
    };
    let Slot::Key(id) = slot else {
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
                        title: target.title(slot),
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
            location: target.location(slot),
            id: id.clone(),
        }),
    }
}

/// The entries published so far, from the existing manifest files.
struct Published {
    manifest: Manifest,
    /// The file the entries were taken from, when only a retired key
    /// vouches for them.
    from_retired: Option<(String, KeyId)>,
    /// The key id that signed `manifest`, if it exists.
    primary_signer: Option<KeyId>,
    /// The bytes of every manifest file.
    existing: BTreeMap<Slot, Vec<u8>>,
}

/// Checks every manifest file of `target` and returns the entries they list.
///
/// Each file must verify with its key, and no file may list an entry that
/// the fullest file lacks. A file that merely lacks the newest entries is
/// what a `tako store` interrupted between two files leaves, and is brought
/// up to date; anything else is a disagreement to refuse.
fn read_published(
    target: &dyn Publish,
    keys: &[SecretKey],
    retired: &[Retired],
) -> Result<Published, StoreError> {
    let signing: Vec<PublicKey> = keys.iter().map(SecretKey::public_key).collect();
    let mut found = Vec::new();
    let mut existing = BTreeMap::new();
    let mut primary_signer = None;
    for file in target.manifests()? {
        let checked = check_file(target, &file.slot, &file.bytes, &signing, retired)?;
        if file.slot == Slot::Primary {
            primary_signer = match &checked {
                Found::Signing(_, i) => Some(signing[*i].id()),
                Found::Retired(_, id) => Some(id.clone()),
                Found::RetiredUnchecked(_) => None,
            };
        }
        found.push((target.location(&file.slot), checked));
        existing.insert(file.slot, file.bytes);
    }

    // The fullest file signed by a key given; failing that (a key replaced
    // in an emergency, with no other key set up before), the fullest file
    // of a retired key, whose entries are then signed anew.
    let fullest = |retired: bool| {
        found
            .iter()
            .filter_map(|(location, f)| match f {
                Found::Signing(m, _) if !retired => Some((location, m, None)),
                Found::Retired(m, id) if retired => Some((location, m, Some(id))),
                _ => None,
            })
            // The first of the fullest, so `manifest` is the reference
            // when files tie and the other file is the one named.
            .fold(
                None,
                |best: Option<(&String, &Manifest, Option<&KeyId>)>, f| match best {
                    Some(b) if b.1.entries().len() >= f.1.entries().len() => Some(b),
                    _ => Some(f),
                },
            )
    };
    let Some((base_location, base, retired_id)) = fullest(false).or_else(|| fullest(true)) else {
        return Ok(Published {
            manifest: Manifest::default(),
            from_retired: None,
            primary_signer,
            existing,
        });
    };
    for (location, file) in &found {
        let extra = match file {
            Found::Signing(m, _) | Found::Retired(m, _) => m.missing_from(base),
            Found::RetiredUnchecked(entries) => entries.missing_from(base),
        };
        if !extra.is_empty() {
            return Err(StoreError::Disagree {
                location: location.clone(),
                other: base_location.clone(),
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
        from_retired: retired_id.map(|id| (base_location.clone(), id.clone())),
        primary_signer,
        existing,
    })
}

/// Runs `tako store` and returns the line to print.
pub fn store(args: &StoreArgs) -> Result<String, StoreError> {
    let keys = load_keys(args)?;
    let retired = retired_keys(args, &keys)?;
    let version = validate_new_version(&args.version)?;
    // A directory is locked from here on; a registry has no lock (see docs/registries.md).
    let target = publish::open(&args.output)?;
    let target = target.as_ref();
    let mut published = read_published(target, &keys, &retired)?;
    let carried = published.manifest.entries().len();

    // A container image is read from its registry (a tag resolved) before anything is
    // written; a file is copied aside.
    let staging = if args.container {
        Staging::Container(Box::new(read_container(args)?))
    } else {
        Staging::File(target.stage(&args.image, !args.no_index)?)
    };
    let (size, digest) = match &staging {
        Staging::Container(image) => (image.top.bytes.len() as u64, *image.top.digest.as_bytes()),
        Staging::File(staged) => (staged.size(), staged.digest()),
    };
    let entry = Entry {
        version,
        size,
        digest,
    };
    let hex = entry.digest_hex();
    let mut lines = vec![format!("{} -> {hex}", entry.version)];
    let version = entry.version.as_str().to_owned();

    let mut manifest = with_entry(target, &mut published, &entry)?;
    if let Some((location, id)) = &published.from_retired {
        output::stderr_line(&format!(
            "tako: warning: the {carried} published entries were taken from {location}, which only the retired key {id} vouches for; they are now signed by the keys given, so check them"
        ));
    }

    // The image (and its index, or every blob it pins) before the manifest files that
    // name it.
    match staging {
        Staging::Container(image) => lines.extend(put_container(target, &image, &version)?),
        Staging::File(staged) => staged.put(&version)?,
    }
    let said = lines.join("\n");
    let mut tries = 1;
    loop {
        let written = write_manifests(target, &manifest, &keys, &retired, &published);
        // A registry cannot be locked: another publisher may have read the manifest before
        // this run wrote it and write its own, without this entry, a moment later. What
        // counts is what the tag holds once such a write has landed.
        let held = match (written, target.settle_time()) {
            (Ok(()), None) => return Ok(said),
            (Ok(()), Some(settle)) => {
                std::thread::sleep(settle);
                published = read_published(target, &keys, &retired)?;
                if holds(&published.manifest, &entry) {
                    return Ok(said);
                }
                Changed::Dropped
            }
            (Err(StoreError::Origin(OriginError::Changed { location })), _) => {
                published = read_published(target, &keys, &retired)?;
                Changed::Moved(location)
            }
            (Err(e), _) => return Err(e),
        };
        if tries == MAX_TRIES {
            return Err(StoreError::KeptChanging {
                location: match held {
                    Changed::Moved(location) => location,
                    Changed::Dropped => target.location(&Slot::Primary),
                },
                tries,
            });
        }
        tries += 1;
        // Publishers that collided wait different times, so that they take turns.
        std::thread::sleep(jitter());
        manifest = with_entry(target, &mut published, &entry)?;
    }
}

/// How many times `tako store` writes the manifest files of a registry that other
/// publishers keep changing before it gives up.
const MAX_TRIES: u32 = 5;

/// Why the manifest files are to be written again.
enum Changed {
    /// Another publisher moved this tag between this run's check and its write.
    Moved(String),
    /// After this run wrote it, another publisher replaced it with one lacking the entry.
    Dropped,
}

/// The published entries with `entry` added: the manifest to sign.
fn with_entry(
    target: &dyn Publish,
    published: &mut Published,
    entry: &Entry,
) -> Result<Manifest, StoreError> {
    let mut manifest = std::mem::take(&mut published.manifest);
    manifest
        .insert(entry.clone())
        .map_err(|source| StoreError::Conflict {
            location: target.location(&Slot::Primary),
            source: Box::new(source),
        })?;
    Ok(manifest)
}

/// Whether `manifest` lists `entry`: the same version, size and digest.
fn holds(manifest: &Manifest, entry: &Entry) -> bool {
    manifest
        .entries()
        .iter()
        .any(|e| e.version == entry.version && e.size == entry.size && e.digest == entry.digest)
}

/// A wait of 50 to 450 ms before writing again, different for each publisher.
fn jitter() -> std::time::Duration {
    use rand::TryRng;
    // Without randomness (the source failed), the middle of the range does.
    let spread = rand::rngs::SysRng.try_next_u32().map_or(200, |r| r % 400);
    std::time::Duration::from_millis(50 + u64::from(spread))
}

/// What is about to be published: a file read once (and copied aside), or a container
/// image's manifest or index read from its registry.
enum Staging<'a> {
    File(Box<dyn Staged + 'a>),
    Container(Box<container::Image>),
}

/// Tells what publishing a container image does: warnings always, progress to a person.
struct Reporter {
    progress: bool,
}

impl Report for Reporter {
    fn warn(&self, message: &str) {
        output::warning_line(message);
    }

    fn progress(&self, message: &str) {
        if self.progress {
            output::stderr_line(&format!("tako: {message}"));
        }
    }

    fn download_bar(&self, _what: &str, _done: u64, _total: u64) -> indicatif::ProgressBar {
        indicatif::ProgressBar::hidden()
    }
}

fn reporter() -> Reporter {
    use std::io::IsTerminal;
    Reporter {
        progress: std::io::stderr().is_terminal(),
    }
}

/// The manifest or index of the container image `args.image`, read from its registry.
fn read_container(args: &StoreArgs) -> Result<container::Image, StoreError> {
    let reference = args
        .image
        .to_str()
        .ok_or_else(|| StoreError::ImageNotText(args.image.clone()))?;
    let auth = match &args.auth {
        Some(path) => Auth::JsonKey(path.clone()),
        None => Auth::Files,
    };
    // The host's policy.json (issue 21) applies to the source image.
    Ok(container::read_image(
        reference,
        &auth,
        &crate::container::policy::PolicyChoice::Host,
        RetryPolicy::default(),
        &reporter(),
    )?)
}

/// Copies everything `image` pins to `target`, then puts the image itself under
/// `version`; returns the lines that say what was published.
fn put_container(
    target: &dyn Publish,
    image: &container::Image,
    version: &str,
) -> Result<Vec<String>, StoreError> {
    let report = reporter();
    let retry = RetryPolicy::default();
    let top = &image.top;
    let parts = container::walk(&image.source, top, retry, &report).map_err(PublishError::from)?;
    let copied = container::copy(&image.source, &parts, target.container(), retry, &report)?;
    let kind = top.parsed.kind().media_type();
    let location = target.container().put_image(&top.bytes, kind, version)?;
    let blobs = copied.copied + copied.mounted + copied.present;
    let policy = match &image.policy {
        Some(applied) => format!("  policy: {}", applied.describe()),
        None => "  policy: none applied (no policy.json)".to_owned(),
    };
    Ok(vec![
        format!(
            "{} is {} ({kind}, {} bytes), at {location}",
            image.source.shown,
            top.digest,
            top.bytes.len()
        ),
        policy,
        format!(
            "{} manifest(s) below it, {blobs} blob(s): {} copied ({} bytes), {} mounted ({} bytes), {} already there ({} bytes)",
            copied.manifests,
            copied.copied,
            copied.copied_bytes,
            copied.mounted,
            copied.mounted_bytes,
            copied.present,
            copied.present_bytes
        ),
    ])
}

/// Writes every manifest file that is missing or differs, then removes the
/// ones no longer wanted, in an order that leaves a place every host
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
    target: &dyn Publish,
    manifest: &Manifest,
    keys: &[SecretKey],
    retired: &[Retired],
    published: &Published,
) -> Result<(), StoreError> {
    let write = |slot: &Slot, key: &SecretKey| -> Result<bool, StoreError> {
        let bytes = manifest.to_signed_bytes(key);
        if published.existing.get(slot) == Some(&bytes) {
            return Ok(false);
        }
        target.put_manifest(slot, &bytes)?;
        Ok(true)
    };
    let Some((primary_key, secondary)) = keys.split_first() else {
        return Err(StoreError::NoKey);
    };
    for key in secondary {
        let slot = Slot::Key(key.public_key().id());
        let created = !published.existing.contains_key(&slot);
        if write(&slot, key)? && created {
            output::stderr_line(&format!(
                "tako: created {}, signed by key {}",
                target.location(&slot),
                key.public_key().id()
            ));
        }
    }
    let primary = primary_key.public_key().id();
    write(&Slot::Primary, primary_key)?;
    if let Some(old) = &published.primary_signer
        && *old != primary
    {
        output::stderr_line(&format!(
            "tako: {} is now signed by key {primary} instead of {old}",
            target.location(&Slot::Primary)
        ));
    }

    let unwanted = std::iter::once((&primary, "its key now signs manifest"))
        .chain(retired.iter().map(|r| (&r.id, "its key is retired")));
    for (id, why) in unwanted {
        let slot = Slot::Key(id.clone());
        if published.existing.contains_key(&slot) {
            let location = target.location(&slot);
            match target.remove_manifest(&slot)? {
                Removed::Deleted => {
                    output::stderr_line(&format!("tako: removed {location}: {why}"));
                }
                Removed::Marked => output::stderr_line(&format!(
                    "tako: removed {location}: {why} (the registry does not delete it, so the tag now holds a marker that hosts and tako store take as no manifest)"
                )),
            }
        }
    }
    target.finish()?;
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
