//! Which manifest a host takes: the first place of the origin that serves one that
//! verifies and passes the no-rollback check, retried while failures are transient.
//!
//! A mirror that serves a manifest no configured key verifies, or one that lacks entries
//! the host already has (a stale copy, or a replay), is skipped with a warning naming it;
//! the next place is asked. With validators of the host's copy (see `fetch`), the place
//! that served it is asked whether it changed, and a 304 means the host's copy stands.
//!
//! A first mirror that is stale or hostile could still freeze a host on an old release by
//! serving the same valid manifest for ever. So when the place a manifest comes from has
//! served the very same file for `MirrorStaleAfter=` (kept in `DEST/manifest.seen`, see
//! `destination::seen`), the next places are asked as well, once each, until one answers:
//! a newer manifest there is taken, and any disagreement is warned about, naming both
//! places and what each serves.

use std::time::{Duration, SystemTime};

use super::retry::{self, Failed, Next, RetryPolicy, Tries};
use crate::destination::seen::Seen;
use crate::format::key::PublicKey;
use crate::format::manifest::{Manifest, ManifestError};
use crate::origin::{Origin, Validators};
use crate::update::keyring::{self, KeyringError, LocalManifest, Remote, RemoteManifest};

#[derive(Debug, thiserror::Error)]
pub enum SelectError {
    #[error(transparent)]
    Keyring(#[from] KeyringError),
    #[error(
        "remote manifest {url} lacks published entries that the local manifest has ({entries}); refusing it as a possible rollback"
    )]
    Rollback { url: String, entries: String },
    /// A 304 for validators of a host copy that no longer verifies; cannot happen unless
    /// the files changed under the lock.
    #[error("{url} answered 'not modified', but the local manifest does not verify: {source}")]
    NotModifiedUnverified { url: String, source: ManifestError },
    #[error("no origin is configured")]
    NoOrigin,
    #[error(
        "none of the {count} origins served a usable manifest (each is named in a warning above); the last one: {last}"
    )]
    NoneUsable {
        count: usize,
        last: Box<SelectError>,
    },
}

impl SelectError {
    /// What this failure at one place means for the others: only an origin's transient
    /// failure is worth asking that place again; anything else moves on to the next place.
    fn next(&self) -> Next {
        match self {
            SelectError::Keyring(e) => match e.origin() {
                Some(e) if e.is_transient() => Next::Again(e.retry_after()),
                _ => Next::Skip,
            },
            _ => Next::Skip,
        }
    }
}

/// What the manifest must live up to, and how to go about getting it.
pub struct ManifestQuery<'a> {
    /// Every trusted key, the preferred first.
    pub keys: &'a [PublicKey],
    /// The most bytes a manifest file may have.
    pub max: u64,
    /// The host's own copy, whose entries the new manifest must all have.
    pub local: Option<&'a LocalManifest>,
    /// The validators the host's copy came with, if it verifies and they are its own.
    pub known: Option<&'a Validators>,
    pub retry: RetryPolicy,
    /// Says something worth a line in the log (a skipped mirror, a retry).
    pub warn: &'a dyn Fn(&str),
    /// Since when the place the host's manifest came from has served it unchanged.
    pub seen: Option<&'a Seen>,
    /// How long that may be before the next places are asked too (`MirrorStaleAfter=`).
    pub stale_after: Duration,
    pub now: SystemTime,
}

/// The manifest taken, and what to keep as `DEST/manifest.seen` (only with mirrors).
#[derive(Debug)]
pub struct Chosen {
    pub remote: RemoteManifest,
    pub seen: Option<Seen>,
}

/// The first manifest, from the first place of `origin`, that verifies and is no rollback;
/// or a newer one from a later place when the first has not changed for too long.
pub fn remote_manifest(
    origin: &dyn Origin,
    query: &ManifestQuery<'_>,
) -> Result<Chosen, SelectError> {
    choose(origin, query, &std::thread::sleep)
}

/// [`remote_manifest`], waiting between rounds with `sleep`.
fn choose(
    origin: &dyn Origin,
    query: &ManifestQuery<'_>,
    sleep: &dyn Fn(Duration),
) -> Result<Chosen, SelectError> {
    let places = origin.places();
    let tries = Tries {
        policy: query.retry,
        warn: query.warn,
        sleep,
    };
    let numbers: Vec<usize> = (0..places.len()).collect();
    let place = |at: usize| places.get(at).copied();
    let chosen = retry::over_places(
        &numbers,
        &tries,
        |at| match place(at) {
            Some(p) => from_place(p, query).map(|remote| (at, remote)),
            None => Err(SelectError::NoOrigin),
        },
        SelectError::next,
        |at, e| match place(at) {
            Some(p) => format!("skipping origin {}: {e}", p.describe()),
            None => e.to_string(),
        },
    );
    let (at, remote) = chosen.map_err(|failed| match failed {
        Failed::NoPlace => SelectError::NoOrigin,
        Failed::Stopped(e) => e,
        Failed::Exhausted { places: 1, last } => last,
        Failed::Exhausted { places, last } => SelectError::NoneUsable {
            count: places,
            last: Box::new(last),
        },
    })?;
    // A single place has nothing to be compared with.
    let (Some(first), Some(later)) = (place(at), places.get(at + 1..)) else {
        return Ok(Chosen { remote, seen: None });
    };
    if places.len() < 2 {
        return Ok(Chosen { remote, seen: None });
    }
    // Only what the first place that answered serves is timed: when it is a later one, the
    // places before it failed or served a rollback, and were named in a warning already.
    let seen = Seen::update(query.seen, &first.describe(), &remote.bytes, query.now);
    let unchanged = seen.unchanged_for(query.now);
    if unchanged < query.stale_after || later.is_empty() {
        return Ok(Chosen {
            remote,
            seen: Some(seen),
        });
    }
    Ok(compare(first, remote, seen, unchanged, later, query))
}

/// `ours`, from `first`, unchanged for `unchanged`, held against the manifest of the first
/// of the `later` places that serves one a host may take (each asked once): that one if it
/// is newer, else `ours`; a disagreement is warned about either way.
fn compare(
    first: &dyn Origin,
    ours: RemoteManifest,
    seen: Seen,
    unchanged: Duration,
    later: &[&dyn Origin],
    query: &ManifestQuery<'_>,
) -> Chosen {
    let warn = query.warn;
    for other in later {
        let theirs = match from_place(*other, query) {
            Ok(theirs) => theirs,
            Err(e) => {
                warn(&format!(
                    "cannot compare the manifest of origin {}, unchanged for {}, with origin {}: {e}",
                    first.describe(),
                    human(unchanged),
                    other.describe()
                ));
                continue;
            }
        };
        let they_lack = ours.manifest.missing_from(&theirs.manifest).is_empty();
        let we_lack = theirs.manifest.missing_from(&ours.manifest).is_empty();
        let (a, b) = (first.describe(), other.describe());
        let (mine, yours) = (summary(&ours), summary(&theirs));
        match (they_lack, we_lack) {
            // The same entries: confirmed, and the clock starts again.
            (true, true) => {
                let seen = Seen::new(&seen.origin, &ours.bytes, query.now);
                return Chosen {
                    remote: ours,
                    seen: Some(seen),
                };
            }
            (true, false) => {
                warn(&format!(
                    "origins disagree: {a} has served the same manifest for {} ({mine}), but {b} serves a newer one ({yours}); taking the one from {b} (is {a} stale, or holding releases back?)",
                    human(unchanged)
                ));
                let seen = Seen::new(&b, &theirs.bytes, query.now);
                return Chosen {
                    remote: theirs,
                    seen: Some(seen),
                };
            }
            (false, true) => warn(&format!(
                "origins disagree: {b} serves an older manifest ({yours}) than {a} ({mine}); keeping the one from {a} (is {b} stale?)"
            )),
            (false, false) => warn(&format!(
                "origins disagree: {a} ({mine}) and {b} ({yours}) serve manifests that each list versions the other lacks; keeping the one from {a}"
            )),
        }
        return Chosen {
            remote: ours,
            seen: Some(seen),
        };
    }
    Chosen {
        remote: ours,
        seen: Some(seen),
    }
}

/// What a manifest lists, for a warning: `3 versions, the highest 1.2` and the date the
/// server gave it, if any.
fn summary(remote: &RemoteManifest) -> String {
    let entries = remote.manifest.entries();
    let mut text = match entries.last() {
        None => "no versions".to_owned(),
        Some(highest) => format!(
            "{} version{}, the highest {}",
            entries.len(),
            if entries.len() == 1 { "" } else { "s" },
            crate::format::text::untrusted(highest.version.as_str())
        ),
    };
    if let Some(date) = remote
        .validators
        .as_ref()
        .and_then(|v| v.last_modified.as_deref())
    {
        text.push_str(&format!(
            ", Last-Modified {}",
            crate::format::text::untrusted(date)
        ));
    }
    text
}

/// A duration in the largest unit that gives a whole number: `3 days`, `5 hours`.
fn human(duration: Duration) -> String {
    let secs = duration.as_secs();
    let (n, unit) = match secs {
        s if s >= 2 * 86_400 => (s / 86_400, "days"),
        s if s >= 2 * 3_600 => (s / 3_600, "hours"),
        s if s >= 2 * 60 => (s / 60, "minutes"),
        1 => (1, "second"),
        s => (s, "seconds"),
    };
    format!("{n} {unit}")
}

/// The manifest of one place, verified and checked against the host's copy.
fn from_place(
    place: &dyn Origin,
    query: &ManifestQuery<'_>,
) -> Result<RemoteManifest, SelectError> {
    let remote = match keyring::fetch_remote(place, query.keys, query.max, query.known)? {
        Remote::Fresh(remote) => remote,
        Remote::NotModified { url, primary } => not_modified(url, primary, query)?,
    };
    if let Some(primary) = &remote.primary
        && let Some(warning) = primary.lag_warning(&remote.url, &remote.manifest)
    {
        (query.warn)(&warning);
    }

    if let Some(local) = query.local {
        let missing = local.missing_from(&remote.manifest);
        if !missing.is_empty() {
            let entries = missing
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join(", ");
            return Err(SelectError::Rollback {
                url: remote.url,
                entries,
            });
        }
    }
    Ok(remote)
}

/// The host's own copy, verified again, as the answer to a 304.
///
/// The host's copy was verified with a configured key when it was read, in this run and
/// under the destination's lock; a copy that did not verify is never polled conditionally
/// (see `fetch`), and is verified here again if it somehow is.
fn not_modified(
    url: String,
    primary: Option<keyring::Primary>,
    query: &ManifestQuery<'_>,
) -> Result<RemoteManifest, SelectError> {
    let bytes = query.local.map(|l| l.bytes.clone()).unwrap_or_default();
    let manifest = match query.local.and_then(LocalManifest::verified) {
        Some(verified) => verified.clone(),
        None => match Manifest::parse_any(&bytes, query.keys) {
            Ok((manifest, _)) => manifest,
            Err(source) => return Err(SelectError::NotModifiedUnverified { url, source }),
        },
    };
    Ok(RemoteManifest {
        url,
        bytes,
        manifest,
        validators: query.known.cloned(),
        primary,
    })
}

/// A fake [`Origin`] that answers from a script, and the choice of a manifest over fakes:
/// the retry-over-mirrors logic without servers and without sleeping. `image` uses the
/// same fake for downloads.
#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    use std::cell::RefCell;
    use std::collections::{HashMap, VecDeque};
    use std::io::{self, Cursor, Read};
    use std::sync::{Arc, Mutex};

    use crate::format::key::SecretKey;
    use crate::format::manifest::Entry;
    use crate::format::version::Version;
    use crate::origin::dir::{MANIFEST, STORE};
    use crate::origin::mirrors::Mirrors;
    use crate::origin::{Answer, Body, ManifestFile, ManifestName, OriginError, Resume};

    /// What a fake origin answers to one request for a file.
    pub(crate) enum Reply {
        /// The file: all of it, or with a resume the bytes from its offset on (206).
        Serve(Vec<u8>),
        /// As `Serve`, but the connection breaks after this many bytes of the body.
        Cut(Vec<u8>, usize),
        /// A failure, such as `OriginError::http_status(url, 503, None)`.
        Fail(OriginError),
    }

    /// An origin named `http://NAME` whose files (`manifest`, `manifest.<keyid>`,
    /// `store/<hex>`) answer from a script, one reply per request; a file whose replies
    /// have run out is not found. Every request is logged, shared with the test.
    pub(crate) struct Fake {
        name: &'static str,
        script: Mutex<HashMap<String, VecDeque<Reply>>>,
        log: Arc<Mutex<Vec<String>>>,
    }

    impl Fake {
        pub(crate) fn new(name: &'static str) -> Fake {
            Fake {
                name,
                script: Mutex::new(HashMap::new()),
                log: Arc::new(Mutex::new(Vec::new())),
            }
        }

        /// Adds `replies` for the file `file`, in order.
        pub(crate) fn on(self, file: &str, replies: impl IntoIterator<Item = Reply>) -> Fake {
            self.script
                .lock()
                .unwrap()
                .entry(file.to_owned())
                .or_default()
                .extend(replies);
            self
        }

        /// The requests it got, e.g. `manifest`, `store/<hex> from 3`.
        pub(crate) fn log(&self) -> Arc<Mutex<Vec<String>>> {
            Arc::clone(&self.log)
        }

        pub(crate) fn url(&self, file: &str) -> String {
            format!("http://{}/{file}", self.name)
        }

        fn reply(&self, file: &str, logged: String) -> Reply {
            self.log.lock().unwrap().push(logged);
            let next = self
                .script
                .lock()
                .unwrap()
                .get_mut(file)
                .and_then(VecDeque::pop_front);
            next.unwrap_or_else(|| {
                Reply::Fail(OriginError::http_status(&self.url(file), 404, None))
            })
        }
    }

    /// Bytes that end in a broken connection.
    struct Broken;

    impl Read for Broken {
        fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
            Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "connection reset by peer",
            ))
        }
    }

    impl Origin for Fake {
        fn describe(&self) -> String {
            format!("http://{}", self.name)
        }

        fn manifest(
            &self,
            name: ManifestName<'_>,
            max: u64,
            _known: Option<&Validators>,
        ) -> Result<ManifestFile, OriginError> {
            let file = name.slot().name(MANIFEST);
            let url = self.url(&file);
            match self.reply(&file, file.clone()) {
                Reply::Serve(bytes) | Reply::Cut(bytes, _) => {
                    assert!(bytes.len() as u64 <= max, "a test manifest is small");
                    Ok(ManifestFile {
                        url,
                        bytes: Some(bytes),
                        validators: None,
                    })
                }
                Reply::Fail(e) => Err(e),
            }
        }

        fn open_image(&self, hex: &str, resume: Option<&Resume>) -> Result<Body, OriginError> {
            let file = format!("{STORE}/{hex}");
            let offset = resume.map_or(0, |r| r.offset);
            let logged = match resume {
                Some(_) => format!("{file} from {offset}"),
                None => file.clone(),
            };
            let (bytes, cut) = match self.reply(&file, logged) {
                Reply::Serve(bytes) => (bytes, None),
                Reply::Cut(bytes, at) => (bytes, Some(at)),
                Reply::Fail(e) => return Err(e),
            };
            let (answer, rest) = match usize::try_from(offset) {
                Ok(from) if from > 0 && from <= bytes.len() => {
                    (Answer::Partial { start: offset }, bytes[from..].to_vec())
                }
                _ => (Answer::Whole, bytes),
            };
            let reader: Box<dyn Read> = match cut {
                Some(at) => Box::new(Cursor::new(rest[..at].to_vec()).chain(Broken)),
                None => Box::new(Cursor::new(rest)),
            };
            let body = Body::new(self.url(&file), answer, reader);
            Ok(body.with_validators(Some("\"v1\"".to_owned()), None))
        }

        fn places(&self) -> Vec<&dyn Origin> {
            vec![self]
        }
    }

    pub(crate) fn entry(version: &str, image: &[u8]) -> Entry {
        use sha2::Digest;
        Entry {
            version: Version::parse(version).unwrap(),
            size: image.len() as u64,
            digest: sha2::Sha256::digest(image).into(),
        }
    }

    /// A manifest of `versions` (images `image of VERSION`), signed by `key`.
    fn signed(key: &SecretKey, versions: &[&str]) -> Vec<u8> {
        let mut manifest = Manifest::default();
        for v in versions {
            manifest
                .insert(entry(v, format!("image of {v}").as_bytes()))
                .unwrap();
        }
        manifest.to_signed_bytes(key)
    }

    /// What a choice said and how long it waited.
    struct Choice {
        result: Result<RemoteManifest, SelectError>,
        /// What to keep as `manifest.seen`.
        seen: Option<Seen>,
        warnings: Vec<String>,
        waits: Vec<Duration>,
    }

    impl Choice {
        fn versions(&self) -> Vec<String> {
            let remote = self.result.as_ref().expect("a manifest");
            remote
                .manifest
                .entries()
                .iter()
                .map(|e| e.version.to_string())
                .collect()
        }
    }

    fn choose_from(
        origin: &dyn Origin,
        keys: &[PublicKey],
        local: Option<&LocalManifest>,
        retries: u32,
    ) -> Choice {
        choose_seen(
            origin,
            keys,
            local,
            retries,
            None,
            Duration::from_secs(86_400),
        )
    }

    /// The time of every choice: well after the epoch, so that a record can be older.
    const NOW: u64 = 1_000_000;

    fn choose_seen(
        origin: &dyn Origin,
        keys: &[PublicKey],
        local: Option<&LocalManifest>,
        retries: u32,
        seen: Option<&Seen>,
        stale_after: Duration,
    ) -> Choice {
        let warnings = RefCell::new(Vec::new());
        let waits = RefCell::new(Vec::new());
        let query = ManifestQuery {
            keys,
            max: 1 << 20,
            local,
            known: None,
            retry: RetryPolicy {
                retries,
                base: Duration::from_secs(1),
                deadline: None,
            },
            warn: &|line| warnings.borrow_mut().push(line.to_owned()),
            seen,
            stale_after,
            now: std::time::UNIX_EPOCH + Duration::from_secs(NOW),
        };
        let result = choose(origin, &query, &|wait| waits.borrow_mut().push(wait));
        let (result, seen) = match result {
            Ok(chosen) => (Ok(chosen.remote), chosen.seen),
            Err(e) => (Err(e), None),
        };
        Choice {
            result,
            seen,
            warnings: warnings.into_inner(),
            waits: waits.into_inner(),
        }
    }

    fn busy(fake: &Fake, file: &str, after: Option<u64>) -> Reply {
        Reply::Fail(OriginError::http_status(
            &fake.url(file),
            503,
            after.map(Duration::from_secs),
        ))
    }

    #[test]
    fn a_busy_origin_is_asked_again_after_the_wait_it_asked_for() {
        let key = SecretKey::generate().unwrap();
        let fake = Fake::new("a");
        let first = busy(&fake, "manifest", Some(7));
        let fake = fake.on("manifest", [first, Reply::Serve(signed(&key, &["1.0"]))]);
        let log = fake.log();
        let choice = choose_from(&fake, &[key.public_key()], None, 3);
        assert_eq!(choice.versions(), ["1.0"]);
        assert_eq!(choice.waits, [Duration::from_secs(7)]);
        assert_eq!(
            choice.warnings,
            ["HTTP 503 from http://a/manifest; retrying in 7.0 s (retry 1 of 3)"]
        );
        assert_eq!(*log.lock().unwrap(), ["manifest", "manifest"]);
    }

    #[test]
    fn a_mirror_without_the_manifest_is_skipped_at_once_for_the_next() {
        let key = SecretKey::generate().unwrap();
        let a = Fake::new("a");
        let b = Fake::new("b").on("manifest", [Reply::Serve(signed(&key, &["1.0"]))]);
        let (a_log, b_log) = (a.log(), b.log());
        let mirrors = Mirrors::new(vec![a, b]);
        let choice = choose_from(&mirrors, &[key.public_key()], None, 3);
        assert_eq!(choice.versions(), ["1.0"]);
        assert!(choice.waits.is_empty());
        assert_eq!(
            choice.warnings,
            ["skipping origin http://a: http://a/manifest not found (404 Not Found)"]
        );
        // The key has no `manifest.<keyid>` to look for: `manifest` verified at b.
        assert_eq!(*a_log.lock().unwrap(), ["manifest"]);
        assert_eq!(*b_log.lock().unwrap(), ["manifest"]);
    }

    #[test]
    fn a_stale_mirror_is_skipped_and_only_the_busy_one_is_asked_again() {
        let key = SecretKey::generate().unwrap();
        let local =
            LocalManifest::check(signed(&key, &["1.0", "1.1"]), &[key.public_key()]).unwrap();
        // a serves an older manifest (a rollback to the host); b is busy once.
        let a = Fake::new("a").on("manifest", [Reply::Serve(signed(&key, &["1.0"]))]);
        let b = Fake::new("b");
        let first = busy(&b, "manifest", None);
        let b = b.on(
            "manifest",
            [first, Reply::Serve(signed(&key, &["1.0", "1.1", "1.2"]))],
        );
        let (a_log, b_log) = (a.log(), b.log());
        let mirrors = Mirrors::new(vec![a, b]);
        let choice = choose_from(&mirrors, &[key.public_key()], Some(&local), 3);
        assert_eq!(choice.versions(), ["1.0", "1.1", "1.2"]);
        assert_eq!(a_log.lock().unwrap().len(), 1);
        assert_eq!(b_log.lock().unwrap().len(), 2);
        assert_eq!(choice.waits.len(), 1);
        let w = &choice.warnings;
        assert_eq!(w.len(), 3, "{w:?}");
        assert!(w[0].starts_with("skipping origin http://a: remote manifest http://a/manifest lacks published entries that the local manifest has (1.1 "), "{w:?}");
        assert!(
            w[0].ends_with("refusing it as a possible rollback"),
            "{w:?}"
        );
        assert_eq!(
            w[1],
            "skipping origin http://b: HTTP 503 from http://b/manifest"
        );
        assert!(
            w[2].starts_with("1 of the origins failed for now; retrying in "),
            "{w:?}"
        );
    }

    #[test]
    fn a_mirror_signed_by_another_key_is_skipped_after_looking_for_the_keys_own_file() {
        let key = SecretKey::generate().unwrap();
        let other = SecretKey::generate().unwrap();
        let a = Fake::new("a").on("manifest", [Reply::Serve(signed(&other, &["6.6"]))]);
        let b = Fake::new("b").on("manifest", [Reply::Serve(signed(&key, &["1.0"]))]);
        let a_log = a.log();
        let mirrors = Mirrors::new(vec![a, b]);
        let choice = choose_from(&mirrors, &[key.public_key()], None, 3);
        assert_eq!(choice.versions(), ["1.0"]);
        let own = format!("manifest.{}", key.public_key().id());
        assert_eq!(*a_log.lock().unwrap(), ["manifest".to_owned(), own.clone()]);
        assert!(choice.waits.is_empty());
        assert_eq!(choice.warnings.len(), 1);
        assert!(
            choice.warnings[0].contains(&format!("http://a/{own}: not found")),
            "{:?}",
            choice.warnings
        );
    }

    #[test]
    fn when_every_mirror_stays_down_the_retries_run_out_and_the_last_failure_is_named() {
        let key = SecretKey::generate().unwrap();
        let a = Fake::new("a");
        let b = Fake::new("b");
        let down = |f: &Fake| {
            (0..3)
                .map(|_| busy(f, "manifest", None))
                .collect::<Vec<_>>()
        };
        let (a_down, b_down) = (down(&a), down(&b));
        let mirrors = Mirrors::new(vec![a.on("manifest", a_down), b.on("manifest", b_down)]);
        let choice = choose_from(&mirrors, &[key.public_key()], None, 2);
        assert_eq!(choice.waits.len(), 2);
        let err = choice.result.unwrap_err();
        assert_eq!(
            err.to_string(),
            "none of the 2 origins served a usable manifest (each is named in a warning above); the last one: HTTP 503 from http://b/manifest"
        );
        assert_eq!(
            choice
                .warnings
                .iter()
                .filter(|w| w.contains("retrying in"))
                .count(),
            2
        );
    }

    #[test]
    fn without_retries_a_busy_origin_fails_at_once_with_its_own_message() {
        let key = SecretKey::generate().unwrap();
        let fake = Fake::new("a");
        let first = busy(&fake, "manifest", Some(1));
        let fake = fake.on("manifest", [first]);
        let choice = choose_from(&fake, &[key.public_key()], None, 0);
        assert!(choice.waits.is_empty());
        assert!(choice.warnings.is_empty());
        assert_eq!(
            choice.result.unwrap_err().to_string(),
            "HTTP 503 from http://a/manifest"
        );
    }

    /// A record of `origin` serving `bytes` since `ago` seconds before [`NOW`].
    fn seen_since(origin: &str, bytes: &[u8], ago: u64) -> Seen {
        Seen::new(
            origin,
            bytes,
            std::time::UNIX_EPOCH + Duration::from_secs(NOW - ago),
        )
    }

    #[test]
    fn a_first_mirror_unchanged_for_too_long_is_compared_with_the_next_and_a_newer_one_is_taken() {
        let key = SecretKey::generate().unwrap();
        let old = signed(&key, &["1.0"]);
        let local = LocalManifest::check(old.clone(), &[key.public_key()]).unwrap();
        let day = Duration::from_secs(86_400);
        // Unchanged for less than the bound: the first mirror's word is taken, quietly.
        let fresh = seen_since("http://a", &old, 100);
        let a = Fake::new("a").on("manifest", [Reply::Serve(old.clone())]);
        let b = Fake::new("b").on("manifest", [Reply::Serve(signed(&key, &["1.0", "1.1"]))]);
        let b_log = b.log();
        let mirrors = Mirrors::new(vec![a, b]);
        let choice = choose_seen(
            &mirrors,
            &[key.public_key()],
            Some(&local),
            0,
            Some(&fresh),
            day,
        );
        assert_eq!(choice.versions(), ["1.0"]);
        assert!(choice.warnings.is_empty(), "{:?}", choice.warnings);
        assert!(b_log.lock().unwrap().is_empty());
        assert_eq!(choice.seen, Some(fresh));

        // Unchanged for two days: the next mirror is asked, and its newer manifest taken.
        let stale = seen_since("http://a", &old, 2 * 86_400);
        let a = Fake::new("a").on("manifest", [Reply::Serve(old.clone())]);
        let newer = signed(&key, &["1.0", "1.1"]);
        let b = Fake::new("b").on("manifest", [Reply::Serve(newer.clone())]);
        let mirrors = Mirrors::new(vec![a, b]);
        let choice = choose_seen(
            &mirrors,
            &[key.public_key()],
            Some(&local),
            0,
            Some(&stale),
            day,
        );
        assert_eq!(choice.versions(), ["1.0", "1.1"]);
        assert_eq!(
            choice.warnings,
            [
                "origins disagree: http://a has served the same manifest for 2 days (1 version, the highest 1.0), but http://b serves a newer one (2 versions, the highest 1.1); taking the one from http://b (is http://a stale, or holding releases back?)"
            ]
        );
        assert_eq!(choice.seen, Some(seen_since("http://b", &newer, 0)));
    }

    #[test]
    fn a_next_mirror_that_agrees_restarts_the_clock_and_one_that_lags_is_named() {
        let key = SecretKey::generate().unwrap();
        let ours = signed(&key, &["1.0", "1.1"]);
        let day = Duration::from_secs(86_400);
        let stale = seen_since("http://a", &ours, 3 * 86_400);
        let a = Fake::new("a").on("manifest", [Reply::Serve(ours.clone())]);
        let b = Fake::new("b").on("manifest", [Reply::Serve(signed(&key, &["1.0", "1.1"]))]);
        let mirrors = Mirrors::new(vec![a, b]);
        let choice = choose_seen(&mirrors, &[key.public_key()], None, 0, Some(&stale), day);
        assert_eq!(choice.versions(), ["1.0", "1.1"]);
        assert!(choice.warnings.is_empty(), "{:?}", choice.warnings);
        assert_eq!(choice.seen, Some(seen_since("http://a", &ours, 0)));

        // A dead second mirror is skipped for the third; the third lags behind.
        let a = Fake::new("a").on("manifest", [Reply::Serve(ours.clone())]);
        let b = Fake::new("b");
        let c = Fake::new("c").on("manifest", [Reply::Serve(signed(&key, &["1.0"]))]);
        let mirrors = Mirrors::new(vec![a, b, c]);
        let choice = choose_seen(&mirrors, &[key.public_key()], None, 0, Some(&stale), day);
        assert_eq!(choice.versions(), ["1.0", "1.1"]);
        assert_eq!(
            choice.warnings,
            [
                "cannot compare the manifest of origin http://a, unchanged for 3 days, with origin http://b: http://b/manifest not found (404 Not Found)",
                "origins disagree: http://c serves an older manifest (1 version, the highest 1.0) than http://a (2 versions, the highest 1.1); keeping the one from http://a (is http://c stale?)"
            ]
        );
        assert_eq!(choice.seen, Some(stale), "the clock runs on");
    }

    #[test]
    fn a_single_origin_keeps_no_record() {
        let key = SecretKey::generate().unwrap();
        let a = Fake::new("a").on("manifest", [Reply::Serve(signed(&key, &["1.0"]))]);
        let choice = choose_seen(&a, &[key.public_key()], None, 0, None, Duration::ZERO);
        assert_eq!(choice.versions(), ["1.0"]);
        assert_eq!(choice.seen, None);
    }
}
