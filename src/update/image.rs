//! Downloading one image into the store: from the first place of the origin that serves it
//! and whose bytes verify, resuming from `store/<hex>.partial`, retrying transient failures.
//!
//! Per place, a 404, a 410, a network failure or bytes that fail the size or digest check
//! move on to the next place. A network failure keeps the bytes received as the partial,
//! which the next try resumes with `Range` and `If-Range` (see `partial`); a failed check
//! deletes them. When every place has been asked, the places that failed transiently are
//! asked again after a backoff, `retries` times. The image counts as withdrawn only if
//! every place answered 410.
//!
//! What is downloaded is a [`Wanted`]: a SHA-256, a size and a name for messages. A signed
//! manifest entry is one ([`download`]); a container image's layer, named by its registry
//! manifest, is another (`container::pull` calls [`download_blob`] with the blob cache as
//! the store).

use std::cell::RefCell;
use std::time::{Duration, Instant};

use super::retry::{self, Failed, Next, RetryPolicy, Tries};
use crate::destination::partial::Partial;
use crate::format::chunk_index::{ChunkIndex, max_index_size};
use crate::format::manifest::Entry;
use crate::format::text::untrusted;
use crate::fs::{Dir, IoError};
use crate::origin::{Answer, Body, Kind, Origin, OriginError, Resume};
use crate::stream::hashing::{self, CopyError};

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error(transparent)]
    Origin(#[from] OriginError),
    #[error(transparent)]
    Io(#[from] IoError),
    #[error("image {url} is longer than the {expected} bytes signed; download stopped")]
    TooLong { url: String, expected: u64 },
    #[error("image {url} is shorter than signed: expected {expected} bytes, received {received}")]
    TooShort {
        url: String,
        expected: u64,
        received: u64,
    },
    #[error("image {url} has the wrong SHA-256: expected {expected}, received {received}")]
    WrongDigest {
        url: String,
        expected: String,
        received: String,
    },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error(
        "none of the {count} origins could provide version {version} (each is named in a warning above); the last one: {last}"
    )]
    NoneUsable {
        count: usize,
        version: String,
        last: Box<ImageError>,
    },
}

impl ImageError {
    /// What this failure at one place means for the others. A failure of this host
    /// (writing the store) stops everything: no other place can help with it.
    fn next(&self) -> Next {
        match self {
            ImageError::Io(_) | ImageError::Write { .. } => Next::Stop,
            ImageError::Origin(e) if e.is_transient() => Next::Again(e.retry_after()),
            _ => Next::Skip,
        }
    }

    /// Whether the bytes arrived but are not the signed ones (too long, too short, another
    /// digest).
    fn failed_the_check(&self) -> bool {
        matches!(
            self,
            ImageError::TooLong { .. }
                | ImageError::TooShort { .. }
                | ImageError::WrongDigest { .. }
        )
    }

    /// The URL of a 410 Gone (or a retired tag): the publisher withdrew the image there.
    fn gone_url(&self) -> Option<&str> {
        match self {
            ImageError::Origin(e) if e.kind() == Kind::Gone => e.url(),
            _ => None,
        }
    }
}

/// How a download ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Downloaded {
    /// `store/<hex>` is in place and verified.
    Installed,
    /// Every place answered 410 Gone: the publisher withdrew the image.
    Withdrawn { url: String },
}

/// How to report along the way.
pub struct Say<'a> {
    /// Worth a line in the log: a skipped mirror, a retry.
    pub warn: &'a dyn Fn(&str),
    /// For a person watching: a download starts or resumes.
    pub progress: &'a dyn Fn(&str),
    /// A progress bar, when a person watches a terminal: `bar(done, total)` for `total`
    /// bytes of which `done` are here already and come over no network (a resumed
    /// partial), so that its rate counts only what arrives.
    pub bar: Option<&'a dyn Fn(u64, u64) -> indicatif::ProgressBar>,
}

/// What to download: content known by its SHA-256 and size, and how messages name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    /// Fit to print: a version (escaped), or a container layer's `layer N of M (sha256:…)`.
    pub name: String,
    pub digest: [u8; 32],
    pub size: u64,
}

impl Wanted {
    /// The image a signed manifest entry names.
    pub fn of(entry: &Entry) -> Wanted {
        Wanted {
            name: untrusted(entry.version.as_str()),
            digest: entry.digest,
            size: entry.size,
        }
    }

    fn hex(&self) -> String {
        hex::encode(self.digest)
    }
}

/// One download, as each try sees it.
struct Job<'a> {
    wanted: &'a Wanted,
    /// The signed manifest entry of the image, if it is one: a place's chunk index of it can
    /// then confirm bytes another place sent.
    index_of: Option<&'a Entry>,
    say: &'a Say<'a>,
    /// When `--max-time` is up: reading kept bytes stops there too.
    deadline: Option<Instant>,
}

/// Downloads the image of `entry` into `store`, under the destination's lock.
pub fn download(
    origin: &dyn Origin,
    store: &Dir,
    entry: &Entry,
    retry: RetryPolicy,
    say: &Say<'_>,
) -> Result<Downloaded, ImageError> {
    download_with(
        origin,
        store,
        &Wanted::of(entry),
        Some(entry),
        retry,
        say,
        &std::thread::sleep,
    )
}

/// Downloads `wanted` into `store` as `<hex>` (resuming `<hex>.partial`), from the first
/// place of `origin` that serves it with the right size and digest. The caller holds
/// whatever lock keeps other writers of those names away.
pub fn download_blob(
    origin: &dyn Origin,
    store: &Dir,
    wanted: &Wanted,
    retry: RetryPolicy,
    say: &Say<'_>,
) -> Result<Downloaded, ImageError> {
    download_with(origin, store, wanted, None, retry, say, &std::thread::sleep)
}

/// [`download_blob`], waiting between rounds with `sleep`.
fn download_with(
    origin: &dyn Origin,
    store: &Dir,
    entry: &Wanted,
    index_of: Option<&Entry>,
    retry: RetryPolicy,
    say: &Say<'_>,
    sleep: &dyn Fn(Duration),
) -> Result<Downloaded, ImageError> {
    let places = origin.places();
    let version = entry.name.clone();
    // Where each place that answered 410 said so: all of them, and the image is withdrawn.
    let gone: RefCell<Vec<String>> = RefCell::new(Vec::new());
    let tries = Tries {
        policy: retry,
        warn: say.warn,
        sleep,
    };
    let job = Job {
        wanted: entry,
        index_of,
        say,
        deadline: retry.deadline,
    };
    let downloaded = retry::over_places(
        &places,
        &tries,
        |place| {
            let result = attempt(place, store, &job);
            if let Err(e) = &result
                && let Some(url) = e.gone_url()
            {
                gone.borrow_mut().push(url.to_owned());
            }
            result
        },
        ImageError::next,
        |place, e| match e.gone_url() {
            Some(url) => format!(
                "origin {} has withdrawn version {version} (410 Gone from {url}); trying the next origin",
                place.describe()
            ),
            None => format!("skipping origin {}: {e}", place.describe()),
        },
    );
    let failed = match downloaded {
        Ok(()) => return Ok(Downloaded::Installed),
        Err(failed) => failed,
    };
    // A place that answered 410 is not asked again, so each counts once.
    let gone = gone.into_inner();
    if !places.is_empty()
        && gone.len() == places.len()
        && let Some(url) = gone.into_iter().next_back()
    {
        return Ok(Downloaded::Withdrawn { url });
    }
    Err(match failed {
        Failed::NoPlace => ImageError::Origin(OriginError::no_place()),
        Failed::Stopped(e) => e,
        Failed::Exhausted { places: 1, last } => last,
        Failed::Exhausted { places, last } => ImageError::NoneUsable {
            count: places,
            version,
            last: Box::new(last),
        },
    })
}

/// The `If-Range` value for bytes of this response: a strong entity tag, else the date.
/// A weak tag (`W/"…"`) may not be used in `If-Range` (RFC 9110 §13.1.5).
fn if_range_of(body: &Body) -> Option<&str> {
    body.etag()
        .filter(|tag| !tag.starts_with("W/"))
        .or(body.last_modified())
}

/// One try at one place. A download that resumed kept bytes and then failed the size or
/// digest check is tried once more, whole, from the same place: the kept bytes may be the
/// bad ones, and this place must not be passed over for them.
fn attempt(place: &dyn Origin, store: &Dir, job: &Job<'_>) -> Result<(), ImageError> {
    let hex = job.wanted.hex();
    let mut partial = Partial::open(store, &hex)?;
    let mut resumed = false;
    let mut result = attempt_into(place, &mut partial, job, &mut resumed);
    if resumed && result.as_ref().is_err_and(ImageError::failed_the_check) {
        if let Err(e) = &result {
            (job.say.warn)(&format!("{e}; the bytes kept from before are discarded"));
        }
        // The check deleted the partial; this one starts empty.
        drop(partial);
        partial = Partial::open(store, &hex)?;
        result = attempt_into(place, &mut partial, job, &mut resumed);
    }
    if result.is_err() {
        partial.remove_if_empty()?;
    }
    result
}

/// Makes the kept bytes fit for a resume from `place`: a partial longer than the image is
/// dropped unread, one of the image's length is installed if it verifies, and one that
/// another origin (or an unrecorded one) sent is kept only as far as `place`'s chunk index
/// of the image vouches for it. `Ok(true)`: the image is installed.
fn prepare(
    place: &dyn Origin,
    partial: &mut Partial<'_>,
    job: &Job<'_>,
) -> Result<bool, ImageError> {
    let entry = job.wanted;
    let here = place.describe();
    if partial.len() > entry.size {
        // Only a planted or damaged file is longer than the signed size: hashing it could
        // take hours (a sparse file costs no disk), and no byte of it can be of use.
        (job.say.warn)(&format!(
            "{} holds {} bytes, more than the {} signed for {}; removed unread",
            partial.path().display(),
            partial.len(),
            entry.size,
            entry.name
        ));
        partial.restart(None, &here)?;
        return Ok(false);
    }
    if partial.len() == entry.size && !partial.is_empty() {
        // All there (a run stopped between the last byte and the rename).
        let prefix = partial.prefix(job.deadline)?;
        if check(&prefix.finish(), entry, "").is_ok() {
            partial.commit()?;
            return Ok(true);
        }
        partial.restart(None, &here)?;
        return Ok(false);
    }
    if partial.is_empty() || partial.origin() == Some(here.as_str()) {
        return Ok(false);
    }
    // Bytes another mirror sent (a hostile one may have sent garbage and hung up) are not
    // this one's to finish: asked for only the tail, it would complete an image that fails
    // the check, on every run. They are kept as far as this mirror's index confirms them.
    let kept = partial.len();
    let verified = match job.index_of {
        Some(signed) => verified_prefix(place, partial, signed, job.deadline)?,
        None => 0,
    };
    let from = partial
        .origin()
        .unwrap_or("an origin not recorded")
        .to_owned();
    partial.truncate(verified, None, &here)?;
    let said = format!(
        "the {kept} bytes kept in {} came from {from}; {here} confirms {verified} of them (by its chunk index of the image) and is asked for the rest",
        partial.path().display()
    );
    if verified < kept {
        (job.say.warn)(&said);
    } else {
        (job.say.progress)(&said);
    }
    Ok(false)
}

/// How many kept bytes `place`'s chunk index of `entry` confirms; none if it has no index
/// of that image.
fn verified_prefix(
    place: &dyn Origin,
    partial: &mut Partial<'_>,
    entry: &Entry,
    deadline: Option<Instant>,
) -> Result<u64, ImageError> {
    let Ok(Some(bytes)) = place.chunk_index(entry, max_index_size(entry.size)) else {
        return Ok(0);
    };
    let Ok(index) = ChunkIndex::parse(&bytes) else {
        return Ok(0);
    };
    if index.size != entry.size || index.digest != entry.digest {
        return Ok(0);
    }
    Ok(partial.verified_by(&index, deadline)?)
}

fn attempt_into(
    place: &dyn Origin,
    partial: &mut Partial<'_>,
    job: &Job<'_>,
    resumed: &mut bool,
) -> Result<(), ImageError> {
    let (entry, say) = (job.wanted, job.say);
    let hex = entry.hex();
    let here = place.describe();
    if prepare(place, partial, job)? {
        return Ok(());
    }
    let resume = (!partial.is_empty()).then(|| Resume {
        offset: partial.len(),
        if_range: partial.validator().map(str::to_owned),
    });
    let mut body = match place.open_image(&hex, resume.as_ref()) {
        Err(e) if e.kind() == Kind::Unsatisfiable && resume.is_some() => {
            // The server has fewer bytes than we kept: they are not of its file.
            partial.restart(None, &here)?;
            place.open_image(&hex, None)?
        }
        Err(e) if e.is_bad_partial() && resume.is_some() => {
            // A 206 that cannot be appended (several ranges, no `Content-Range`): the
            // kept bytes go, and the whole file is asked for, or they would be kept and
            // resumed the same way on every run.
            (say.warn)(&format!("{e}; downloading all of it"));
            partial.restart(None, &here)?;
            place.open_image(&hex, None)?
        }
        other => other?,
    };
    let mut url = body.url().to_owned();
    match body.answer() {
        Answer::Partial { start } if Some(start) == resume.as_ref().map(|r| r.offset) => {
            *resumed = true;
            if partial.validator().is_none() {
                // Bytes confirmed by an index, or kept without a validator: the rest comes
                // with this response's.
                partial.record(if_range_of(&body), &here)?;
            }
            (say.progress)(&format!(
                "resuming {} at byte {start} of {} from {url}",
                entry.name, entry.size
            ));
        }
        Answer::Partial { start } => {
            // Only a range that starts where the kept bytes end fits; anything else is
            // dropped, and the whole file asked for again.
            (say.warn)(&format!(
                "{url} sent bytes from {start} on instead of from {}; downloading all of it",
                resume.as_ref().map_or(0, |r| r.offset)
            ));
            partial.restart(None, &here)?;
            body = place.open_image(&hex, None)?;
            url = body.url().to_owned();
            partial.restart(if_range_of(&body), &here)?;
            announce(say, entry, &url);
        }
        Answer::Whole | Answer::NotModified => {
            // A 200 to a range request: the file changed (If-Range) or the server does not
            // do ranges. Either way the kept bytes go, and these are the whole file.
            partial.restart(if_range_of(&body), &here)?;
            announce(say, entry, &url);
        }
    }
    let prefix = partial.prefix(job.deadline)?;
    let limit = Some(entry.size);
    let copied = match say.bar {
        Some(bar) => {
            let bar = bar(prefix.size(), entry.size);
            let mut watched = bar.wrap_read(&mut body);
            hashing::append_and_hash_to_file(prefix, &mut watched, partial.file(), limit)
        }
        None => hashing::append_and_hash_to_file(prefix, &mut body, partial.file(), limit),
    };
    let summary = match copied {
        Ok(summary) => summary,
        Err(CopyError::Read(e)) => {
            // A network failure: keep what arrived for the next try.
            let error = OriginError::from_read_error(&url, e);
            partial.keep()?;
            return Err(error.into());
        }
        Err(CopyError::TooLong { limit }) => {
            partial.discard()?;
            return Err(ImageError::TooLong {
                url,
                expected: limit,
            });
        }
        Err(CopyError::Write(source)) => {
            return Err(ImageError::Write {
                path: partial.path().to_path_buf(),
                source,
            });
        }
    };
    if let Err(e) = check(&summary, entry, &url) {
        partial.discard()?;
        return Err(e);
    }
    partial.commit()?;
    Ok(())
}

fn announce(say: &Say<'_>, entry: &Wanted, url: &str) {
    (say.progress)(&format!(
        "downloading {} ({}) from {url}",
        entry.name,
        crate::format::size::human(entry.size)
    ));
}

/// The size and digest check of a complete download.
fn check(summary: &hashing::Summary, entry: &Wanted, url: &str) -> Result<(), ImageError> {
    if summary.size != entry.size {
        return Err(ImageError::TooShort {
            url: url.to_owned(),
            expected: entry.size,
            received: summary.size,
        });
    }
    if summary.digest != entry.digest {
        return Err(ImageError::WrongDigest {
            url: url.to_owned(),
            expected: entry.hex(),
            received: hex::encode(summary.digest),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::origin::dir::STORE;
    use crate::origin::mirrors::Mirrors;
    use crate::update::select::tests::{Fake, Reply, entry};

    /// A download of `entry` from `origin` into a fresh store, with what it said.
    struct Run {
        _dir: tempfile::TempDir,
        store: Dir,
        result: Result<Downloaded, ImageError>,
        warnings: Vec<String>,
        waits: Vec<Duration>,
    }

    fn run(origin: &dyn Origin, entry: &Entry) -> Run {
        let dir = tempfile::tempdir().unwrap();
        let store = Dir::open(dir.path()).unwrap();
        let warnings = RefCell::new(Vec::new());
        let waits = RefCell::new(Vec::new());
        let say = Say {
            warn: &|line| warnings.borrow_mut().push(line.to_owned()),
            progress: &|_| {},
            bar: None,
        };
        let policy = RetryPolicy {
            retries: 3,
            base: Duration::from_secs(1),
            deadline: None,
        };
        let result = download_with(
            origin,
            &store,
            &Wanted::of(entry),
            Some(entry),
            policy,
            &say,
            &|wait| waits.borrow_mut().push(wait),
        );
        Run {
            _dir: dir,
            store,
            result,
            warnings: warnings.into_inner(),
            waits: waits.into_inner(),
        }
    }

    impl Run {
        fn installed(&self, entry: &Entry) -> Vec<u8> {
            assert!(
                matches!(self.result, Ok(Downloaded::Installed)),
                "{:?}",
                self.result
            );
            std::fs::read(self.store.path().join(entry.digest_hex())).unwrap()
        }
    }

    const IMAGE: &[u8] = b"the bytes of version 1.0\n";

    #[test]
    fn a_download_cut_short_resumes_from_the_bytes_kept_after_a_wait() {
        let e = entry("1.0", IMAGE);
        let file = format!("{STORE}/{}", e.digest_hex());
        let fake = Fake::new("a").on(
            &file,
            [Reply::Cut(IMAGE.to_vec(), 5), Reply::Serve(IMAGE.to_vec())],
        );
        let log = fake.log();
        let run = run(&fake, &e);
        assert_eq!(run.installed(&e), IMAGE);
        assert_eq!(
            *log.lock().unwrap(),
            [file.clone(), format!("{file} from 5")]
        );
        assert_eq!(run.waits.len(), 1);
        assert_eq!(run.warnings.len(), 1);
        assert!(
            run.warnings[0].starts_with(&format!("cannot download http://a/{file}: ")),
            "{:?}",
            run.warnings
        );
    }

    #[test]
    fn a_mirror_serving_other_bytes_is_skipped_and_nothing_of_them_is_kept() {
        let e = entry("1.0", IMAGE);
        let file = format!("{STORE}/{}", e.digest_hex());
        let forged = b"THE BYTES OF VERSION 1.0\n".to_vec();
        let a = Fake::new("a").on(&file, [Reply::Serve(forged)]);
        let b = Fake::new("b").on(&file, [Reply::Serve(IMAGE.to_vec())]);
        let a_log = a.log();
        let run = run(&Mirrors::new(vec![a, b]), &e);
        assert_eq!(run.installed(&e), IMAGE);
        assert!(run.waits.is_empty());
        assert_eq!(a_log.lock().unwrap().len(), 1);
        assert_eq!(run.warnings.len(), 1);
        assert!(
            run.warnings[0].starts_with(&format!(
                "skipping origin http://a: image http://a/{file} has the wrong SHA-256"
            )),
            "{:?}",
            run.warnings
        );
        assert_eq!(run.store.names().unwrap(), [e.digest_hex()]);
    }

    #[test]
    fn a_version_every_mirror_withdrew_is_withdrawn_and_one_mirror_is_not_enough() {
        let e = entry("1.0", IMAGE);
        let file = format!("{STORE}/{}", e.digest_hex());
        let gone = |f: &Fake| Reply::Fail(OriginError::http_status(&f.url(&file), 410, None));
        let (a, b) = (Fake::new("a"), Fake::new("b"));
        let (a_gone, b_gone) = (gone(&a), gone(&b));
        let run_both = run(
            &Mirrors::new(vec![a.on(&file, [a_gone]), b.on(&file, [b_gone])]),
            &e,
        );
        assert_eq!(
            run_both.result.unwrap(),
            Downloaded::Withdrawn {
                url: format!("http://b/{file}")
            }
        );
        assert_eq!(
            run_both.warnings[0],
            format!(
                "origin http://a has withdrawn version 1.0 (410 Gone from http://a/{file}); trying the next origin"
            )
        );
        assert!(run_both.waits.is_empty());

        // One mirror withdrew it, the other does not have it: not a withdrawal.
        let a = Fake::new("a");
        let a_gone = gone(&a);
        let run_one = run(
            &Mirrors::new(vec![a.on(&file, [a_gone]), Fake::new("b")]),
            &e,
        );
        let err = run_one.result.unwrap_err();
        assert!(
            err.to_string()
                .starts_with("none of the 2 origins could provide version 1.0"),
            "{err}"
        );
    }

    /// A store holding `kept` as the partial of `e`, recorded as sent by `origin`.
    fn with_partial(run_in: &Run, e: &Entry, kept: &[u8], origin: &str) {
        let mut p = Partial::open(&run_in.store, &e.digest_hex()).unwrap();
        p.restart(None, origin).unwrap();
        std::io::Write::write_all(&mut p.file(), kept).unwrap();
        p.keep().unwrap();
    }

    /// A download into a store already holding what `before` leaves there.
    fn run_after(origin: &dyn Origin, e: &Entry, before: impl Fn(&Run)) -> Run {
        let mut first = run(&Mirrors::new(Vec::<Fake>::new()), e);
        before(&first);
        let warnings = RefCell::new(Vec::new());
        let say = Say {
            warn: &|line| warnings.borrow_mut().push(line.to_owned()),
            progress: &|_| {},
            bar: None,
        };
        first.result = download_with(
            origin,
            &first.store,
            &Wanted::of(e),
            Some(e),
            RetryPolicy::default(),
            &say,
            &|_| {},
        );
        first.warnings = warnings.into_inner();
        first
    }

    #[test]
    fn bytes_another_mirror_sent_are_not_finished_by_this_one_without_an_index_to_confirm_them() {
        let e = entry("1.0", IMAGE);
        let file = format!("{STORE}/{}", e.digest_hex());
        let b = Fake::new("b").on(&file, [Reply::Serve(IMAGE.to_vec())]);
        let b_log = b.log();
        let run = run_after(&b, &e, |r| with_partial(r, &e, b"GARBAGE", "http://a"));
        assert_eq!(run.installed(&e), IMAGE);
        // The whole file, not the tail after the 7 bytes kept.
        assert_eq!(*b_log.lock().unwrap(), std::slice::from_ref(&file));
        assert!(
            run.warnings[0].starts_with("the 7 bytes kept in ")
                && run.warnings[0].ends_with(
                    " came from http://a; http://b confirms 0 of them (by its chunk index of the image) and is asked for the rest"
                ),
            "{:?}",
            run.warnings
        );
        // Its own bytes, a mirror finishes.
        let own = Fake::new("b").on(&file, [Reply::Serve(IMAGE.to_vec())]);
        let own_log = own.log();
        let run = run_after(&own, &e, |r| with_partial(r, &e, &IMAGE[..5], "http://b"));
        assert_eq!(run.installed(&e), IMAGE);
        assert_eq!(*own_log.lock().unwrap(), [format!("{file} from 5")]);
    }

    #[test]
    fn kept_bytes_that_fail_the_check_are_dropped_and_the_image_downloaded_whole_at_once() {
        let e = entry("1.0", IMAGE);
        let file = format!("{STORE}/{}", e.digest_hex());
        let a = Fake::new("a").on(
            &file,
            [Reply::Serve(IMAGE.to_vec()), Reply::Serve(IMAGE.to_vec())],
        );
        let log = a.log();
        // Bytes the same origin sent once, since damaged (or a file it replaced without
        // a validator to tell).
        let run = run_after(&a, &e, |r| with_partial(r, &e, b"THE B", "http://a"));
        assert_eq!(run.installed(&e), IMAGE);
        assert_eq!(
            *log.lock().unwrap(),
            [format!("{file} from 5"), file.clone()]
        );
        assert!(
            run.warnings[0].starts_with(&format!("image http://a/{file} has the wrong SHA-256"))
                && run.warnings[0].ends_with("; the bytes kept from before are discarded"),
            "{:?}",
            run.warnings
        );
    }

    #[test]
    fn a_partial_longer_than_the_signed_image_is_removed_unread() {
        let e = entry("1.0", IMAGE);
        let file = format!("{STORE}/{}", e.digest_hex());
        let a = Fake::new("a").on(&file, [Reply::Serve(IMAGE.to_vec())]);
        let run = run_after(&a, &e, |r| {
            let path = r.store.path().join(format!("{}.partial", e.digest_hex()));
            let planted = std::fs::File::create(path).unwrap();
            // Sparse: no disk, but hours to hash.
            planted.set_len(1 << 40).unwrap();
        });
        assert_eq!(run.installed(&e), IMAGE);
        assert!(
            run.warnings[0].ends_with(&format!(
                ".partial holds {} bytes, more than the {} signed for 1.0; removed unread",
                1u64 << 40,
                IMAGE.len()
            )),
            "{:?}",
            run.warnings
        );
    }

    #[test]
    fn an_unusable_answer_to_a_resume_drops_the_kept_bytes_for_the_whole_file() {
        let e = entry("1.0", IMAGE);
        let file = format!("{STORE}/{}", e.digest_hex());
        let a = Fake::new("a");
        let multipart = Reply::Fail(OriginError::bad_partial(
            &a.url(&file),
            "it sent several ranges (multipart/byteranges) for one",
        ));
        let a = a.on(&file, [multipart, Reply::Serve(IMAGE.to_vec())]);
        let log = a.log();
        let run = run_after(&a, &e, |r| with_partial(r, &e, &IMAGE[..5], "http://a"));
        assert_eq!(run.installed(&e), IMAGE);
        assert_eq!(
            *log.lock().unwrap(),
            [format!("{file} from 5"), file.clone()]
        );
        assert_eq!(run.warnings.len(), 1, "{:?}", run.warnings);
        assert!(
            run.warnings[0].ends_with("; downloading all of it"),
            "{:?}",
            run.warnings
        );
    }
}
