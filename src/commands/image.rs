//! `tako image pull|digest|policy|purge`: container images into directory trees (the engine
//! is `container::pull`), the digests a reference resolves to, what the host's policy.json
//! says of an image, and the blob cache's purge.

use std::ffi::OsString;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{auth_of, host_platform, policy_choice, wanted_platform};
use crate::Exit;
use crate::cli::image::{DigestArgs, ImageCommand, PolicyArgs, PullArgs, PurgeArgs};
use crate::container::policy::{self, Applied, PolicyCheckError, PolicyChoice, Signed};
use crate::container::pull::{self, DigestOptions, PullError, PullOptions, Pulled, Report};
use crate::container::resolve::Described;
use crate::container::unpack::Limits;
use crate::destination::blob_cache::{BlobCache, Kind, PurgePlan};
use crate::format::oci::platform::{Platform, PlatformError};
use crate::format::oci::policy::{KeySource, Requirement, SignedIdentity, Verdict};
use crate::format::oci::reference::ReferenceError;
use crate::format::size;
use crate::format::text::untrusted;
use crate::fs::IoError;
use crate::ui::json::{ImageDigestRecord, ImageLayerRecord, ImagePullRecord, PolicyRecord};
use crate::ui::{output, progress};
use crate::update::retry::RetryPolicy;

/// Where the cache is for root when nothing else names one.
pub const SYSTEM_CACHE: &str = "/var/cache/tako";
/// The environment variable that names the cache (or `no`).
pub const CACHE_VAR: &str = "TAKO_CACHE";

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error(transparent)]
    Pull(#[from] PullError),
    #[error(transparent)]
    Platform(#[from] PlatformError),
    #[error(transparent)]
    Policy(#[from] PolicyCheckError),
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    #[error(
        "no directory for the blob cache: neither $XDG_CACHE_HOME nor $HOME is set; pass --cache DIR or --no-cache"
    )]
    NoCacheDirectory,
    #[error("there is no blob cache to purge: {CACHE_VAR} or --cache says 'no'")]
    NoCache,
    #[error("{}: {source}", cache.display())]
    Cache {
        cache: PathBuf,
        #[source]
        source: IoError,
    },
}

/// Runs `tako image …`.
pub fn run(command: &ImageCommand) -> Result<Exit, crate::Error> {
    match command {
        ImageCommand::Pull(args) => pull(args)?,
        ImageCommand::Digest(args) => digest(args)?,
        ImageCommand::Policy(args) => show_policy(args)?,
        ImageCommand::Purge(args) => purge(args)?,
    }
    Ok(Exit::Success)
}

/// Tells what the engine does: warnings always, progress (with bars) to a person.
struct Reporter {
    progress: bool,
    bars: Option<indicatif::MultiProgress>,
}

impl Reporter {
    fn new(progress: bool) -> Reporter {
        Reporter {
            progress,
            bars: progress.then(progress::bars),
        }
    }

    /// Writes a line on standard error without tearing the bars.
    fn line(&self, write: impl FnOnce()) {
        match &self.bars {
            Some(bars) => bars.suspend(write),
            None => write(),
        }
    }
}

impl Report for Reporter {
    fn warn(&self, message: &str) {
        self.line(|| output::warning_line(message));
    }

    fn progress(&self, message: &str) {
        if self.progress {
            self.line(|| output::stderr_line(&format!("tako: {message}")));
        }
    }

    fn download_bar(&self, what: &str, done: u64, total: u64) -> indicatif::ProgressBar {
        match &self.bars {
            Some(bars) => progress::blob_bar(bars, what, done, total),
            None => indicatif::ProgressBar::hidden(),
        }
    }
}

/// The blob cache to use: `--no-cache` or `no` for none; else `--cache`, `$TAKO_CACHE`,
/// and by default /var/cache/tako as root, `$XDG_CACHE_HOME/tako` (an absolute one) or
/// `~/.cache/tako` otherwise.
fn cache_dir(
    given: Option<&Path>,
    no_cache: bool,
    env: &dyn Fn(&str) -> Option<OsString>,
    root: bool,
) -> Result<Option<PathBuf>, ImageError> {
    if no_cache {
        return Ok(None);
    }
    let named = given
        .map(Path::to_path_buf)
        .or_else(|| env(CACHE_VAR).filter(|v| !v.is_empty()).map(PathBuf::from));
    if let Some(path) = named {
        return Ok((path != Path::new("no")).then_some(path));
    }
    if root {
        return Ok(Some(PathBuf::from(SYSTEM_CACHE)));
    }
    if let Some(xdg) = env("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
    {
        return Ok(Some(xdg.join("tako")));
    }
    match env("HOME").filter(|h| !h.is_empty()) {
        Some(home) => Ok(Some(PathBuf::from(home).join(".cache/tako"))),
        None => Err(ImageError::NoCacheDirectory),
    }
}

fn cache_of(given: Option<&Path>, no_cache: bool) -> Result<Option<PathBuf>, ImageError> {
    cache_dir(
        given,
        no_cache,
        &|name| std::env::var_os(name),
        rustix::process::geteuid().is_root(),
    )
}

fn pull(args: &PullArgs) -> Result<(), ImageError> {
    let progress = !args.quiet && !args.json && std::io::stderr().is_terminal();
    let options = PullOptions {
        platform: wanted_platform(&args.platform, host_platform())?,
        force: args.force || args.rebuild,
        rebuild: args.rebuild,
        cache: cache_of(args.cache.as_deref(), args.no_cache)?,
        auth: auth_of(&args.auth),
        transport: super::transport_config(&args.limits, args.limit_rate),
        max_time: args.limits.max_time.map(Duration::from_secs),
        retry: RetryPolicy {
            retries: args.retries,
            base: Duration::from_millis(args.retry_delay_ms),
            deadline: args
                .limits
                .max_time
                .map(|secs| std::time::Instant::now() + Duration::from_secs(secs)),
        },
        parallel: usize::try_from(args.parallel).unwrap_or(pull::DEFAULT_PARALLEL),
        progress,
        limits: Limits::default(),
        policy: policy_choice(&args.policy),
    };
    let reporter = Reporter::new(progress);
    let result = pull::pull(&args.image, &args.dir, &options, &reporter);
    if let Some(bars) = &reporter.bars {
        let _ = bars.clear();
    }
    if args.json {
        output::json_line(&pull_record(&args.image, &args.dir, &result));
    } else if !args.quiet
        && let Ok(pulled) = &result
    {
        for line in pulled_lines(pulled, &args.dir) {
            output::stdout_line(&line);
        }
    }
    result.map(|_| ()).map_err(ImageError::from)
}

fn platforms_text(platforms: &[Platform]) -> String {
    let shown: Vec<String> = platforms
        .iter()
        .map(|p| untrusted(&p.to_string()))
        .collect();
    shown.join(", ")
}

/// What `tako image pull` prints: the image, the digests resolved, the layers downloaded
/// and reused, and whether anything but the registry vouches for the content.
fn pulled_lines(pulled: &Pulled, dir: &Path) -> Vec<String> {
    if pulled.up_to_date {
        return vec![format!(
            "{}: up to date: it holds the tree tako built from {} (manifest {}); nothing downloaded or unpacked (--rebuild builds it again)",
            dir.display(),
            pulled.image,
            pulled.manifest
        )];
    }
    let mut lines = vec![format!(
        "{}: pulled {}{}",
        dir.display(),
        pulled.image,
        if pulled.replaced {
            " (the old tree replaced)"
        } else {
            ""
        }
    )];
    if let Some(mirror) = &pulled.mirror {
        lines.push(format!("  from the mirror {mirror} (registries.conf)"));
    }
    lines.push(policy_line(pulled.policy.as_ref()));
    if let Some(index) = pulled.index {
        lines.push(format!(
            "  index {index} ({})",
            platforms_text(&pulled.platforms)
        ));
    }
    let platform = match &pulled.platform {
        Some(platform) => format!(" for {}", untrusted(&platform.to_string())),
        None => String::new(),
    };
    lines.push(format!("  manifest {}{platform}", pulled.manifest));
    let count = pulled.layers.len();
    let cached = pulled.layers.iter().filter(|l| l.from_cache).count();
    lines.push(format!(
        "  {count} layer{}: {} downloaded ({}), {cached} from the cache ({}); {} unpacked in {} entries",
        if count == 1 { "" } else { "s" },
        count - cached,
        size::human(pulled.downloaded_bytes),
        size::human(pulled.cached_bytes),
        size::human(pulled.unpacked_bytes),
        pulled.entries,
    ));
    // A signature the policy checked vouches for the manifest; otherwise only the
    // registry says what the tag names.
    let signed = pulled
        .policy
        .as_ref()
        .is_some_and(|applied| !applied.signatures.is_empty());
    if !pulled.pinned && !signed {
        let pin = pulled.index.unwrap_or(pulled.manifest);
        lines.push(format!(
            "  not signature-checked: only the registry says what the tag names; pin it to pull exactly this image again: {}@{pin}",
            pulled.image.split('@').next().unwrap_or(&pulled.image)
        ));
    }
    lines
}

fn pull_record(image: &str, dir: &Path, result: &Result<Pulled, PullError>) -> ImagePullRecord {
    let mut record = ImagePullRecord {
        image: untrusted(image),
        dir: dir.display().to_string(),
        outcome: "failed",
        index_digest: None,
        manifest_digest: None,
        config_digest: None,
        platform: None,
        platforms: Vec::new(),
        layers: Vec::new(),
        downloaded_bytes: 0,
        cached_bytes: 0,
        unpacked_bytes: 0,
        entries: 0,
        replaced: false,
        pinned: false,
        mirror: None,
        error: None,
        policy: None,
    };
    match result {
        Err(e) => record.error = Some(e.to_string()),
        Ok(pulled) => {
            record.image = pulled.image.clone();
            record.outcome = if pulled.up_to_date {
                "up-to-date"
            } else {
                "pulled"
            };
            record.index_digest = pulled.index.map(|d| d.to_string());
            record.manifest_digest = Some(pulled.manifest.to_string());
            record.config_digest = Some(pulled.config.to_string());
            record.platform = pulled.platform.as_ref().map(|p| untrusted(&p.to_string()));
            record.platforms = pulled
                .platforms
                .iter()
                .map(|p| untrusted(&p.to_string()))
                .collect();
            record.layers = pulled
                .layers
                .iter()
                .map(|l| ImageLayerRecord {
                    digest: l.digest.to_string(),
                    size: l.size,
                    cached: l.from_cache,
                })
                .collect();
            record.downloaded_bytes = pulled.downloaded_bytes;
            record.cached_bytes = pulled.cached_bytes;
            record.unpacked_bytes = pulled.unpacked_bytes;
            record.entries = pulled.entries;
            record.replaced = pulled.replaced;
            record.pinned = pulled.pinned;
            record.mirror = pulled.mirror.clone();
            record.policy = pulled.policy.as_ref().map(|applied| PolicyRecord {
                file: applied.file.clone(),
                scope: applied.scope.to_string(),
                accepted_by: requirement_names(&applied.requirements),
                signatures: applied.signatures.iter().map(Signed::describe).collect(),
            });
        }
    }
    record
}

fn digest(args: &DigestArgs) -> Result<(), ImageError> {
    let options = DigestOptions {
        platform: wanted_platform(&args.platform, host_platform())?,
        auth: auth_of(&args.auth),
        retry: RetryPolicy::default(),
        list_platforms: args.json,
        policy: policy_choice(&args.policy),
    };
    let (described, _) = pull::digest(&args.image, &options, &Reporter::new(false))?;
    if args.json {
        output::json_line(&digest_record(&described));
    } else {
        output::stdout_line(&described.digest.to_string());
    }
    Ok(())
}

fn digest_record(described: &Described) -> ImageDigestRecord {
    ImageDigestRecord {
        image: described.image.clone(),
        digest: described.digest.to_string(),
        index_digest: described.index.map(|d| d.to_string()),
        manifest_digest: described.manifest.map(|d| d.to_string()),
        mirror: described.mirror.clone(),
        platforms: described
            .platforms
            .iter()
            .map(|p| untrusted(&p.to_string()))
            .collect(),
    }
}

/// The types of `requirements`, in order: `insecureAcceptAnything`, `reject`…
fn requirement_names(requirements: &[Requirement]) -> String {
    let names: Vec<&str> = requirements.iter().map(Requirement::name).collect();
    names.join(", ")
}

/// The signatures that satisfied the policy, for a line: "; requirement 1: key …".
fn signatures_text(applied: &Applied) -> String {
    applied
        .signatures
        .iter()
        .map(|s| format!("; requirement {}: {}", s.requirement, s.describe()))
        .collect()
}

/// The line of `tako image pull` that says which policy accepted the image.
fn policy_line(applied: Option<&Applied>) -> String {
    match applied {
        Some(applied) => format!("  policy: {}", applied.describe()),
        None => "  policy: none applied (no policy.json, or --insecure-policy)".to_owned(),
    }
}

/// One requirement as `tako image policy` shows it.
fn requirement_text(requirement: &Requirement) -> String {
    let identity = |identity: &SignedIdentity| match identity {
        SignedIdentity::MatchExact => "matchExact".to_owned(),
        SignedIdentity::MatchRepoDigestOrExact => "matchRepoDigestOrExact".to_owned(),
        SignedIdentity::MatchRepository => "matchRepository".to_owned(),
        SignedIdentity::ExactReference(r) => format!("exactReference {}", untrusted(r)),
        SignedIdentity::ExactRepository(r) => format!("exactRepository {}", untrusted(r)),
        SignedIdentity::RemapIdentity {
            prefix,
            signed_prefix,
        } => format!(
            "remapIdentity {} -> {}",
            untrusted(prefix),
            untrusted(signed_prefix)
        ),
    };
    match requirement {
        Requirement::SigstoreSigned {
            keys, identity: id, ..
        } => {
            let keys = match keys {
                KeySource::Paths(paths) => {
                    let shown: Vec<String> = paths.iter().map(|p| untrusted(p)).collect();
                    format!("keys {}", shown.join(", "))
                }
                KeySource::Data(data) => format!("{} key(s) in the file", data.len()),
                KeySource::Certificates => "certificates (fulcio or pki)".to_owned(),
            };
            format!("sigstoreSigned: {keys}; signedIdentity {}", identity(id))
        }
        Requirement::SignedBy { identity: id } => {
            format!("signedBy (GPG): signedIdentity {}", identity(id))
        }
        other => other.name().to_owned(),
    }
}

/// `tako image policy IMAGE`: the file, scope and requirements that apply, the verdict.
/// A refused image exits with the refusal as its error, so a script can test it.
fn show_policy(args: &PolicyArgs) -> Result<(), ImageError> {
    let choice = match &args.policy {
        Some(file) => PolicyChoice::File(file.clone()),
        None => PolicyChoice::Host,
    };
    let (image, _) =
        crate::container::registries::route(&args.image).map_err(|e| ImageError::Pull(e.into()))?;
    let Some(applied) = policy::apply(&choice, &image)? else {
        output::stdout_line(&format!(
            "{image}: no policy.json (neither the user's nor /etc/containers/policy.json): pulled without a signature check"
        ));
        return Ok(());
    };
    output::stdout_line(&format!("{image}: policy {}", applied.file));
    output::stdout_line(&format!("  scope {}", applied.scope));
    for requirement in &applied.requirements {
        output::stdout_line(&format!("  requires {}", requirement_text(requirement)));
    }
    let verdict = match applied.verdict {
        Verdict::Accepted => "accepted".to_owned(),
        Verdict::Rejected => "rejected".to_owned(),
        Verdict::CannotCheck(_) => "refused: a signature tako does not check".to_owned(),
        Verdict::NeedsSignatures => {
            // The signatures are in the registry: resolve the image as `tako image
            // digest` does (no layer downloaded) and check them.
            let options = DigestOptions {
                platform: wanted_platform(
                    &crate::cli::image::PlatformArgs {
                        platform: None,
                        os: None,
                        arch: None,
                        variant: None,
                    },
                    host_platform(),
                )?,
                auth: crate::container::resolve::Auth::Files,
                retry: RetryPolicy::default(),
                list_platforms: false,
                policy: choice,
            };
            match pull::digest(&args.image, &options, &Reporter::new(false)) {
                Ok((_, Some(checked))) => {
                    format!("accepted{}", signatures_text(&checked))
                }
                Ok((_, None)) => "accepted".to_owned(),
                Err(e) => {
                    output::stdout_line("  verdict: refused");
                    return Err(e.into());
                }
            }
        }
    };
    output::stdout_line(&format!("  verdict: {verdict}"));
    match applied.refusal(&image.to_string()) {
        Some(refusal) => Err(refusal.into()),
        None => Ok(()),
    }
}

fn purge(args: &PurgeArgs) -> Result<(), ImageError> {
    let Some(path) = cache_of(args.cache.as_deref(), false)? else {
        return Err(ImageError::NoCache);
    };
    let failed = |source| ImageError::Cache {
        cache: path.clone(),
        source,
    };
    let Some(cache) = BlobCache::open_existing(&path).map_err(failed)? else {
        output::stdout_line(&format!(
            "{}: no cache there, nothing to purge",
            path.display()
        ));
        return Ok(());
    };
    let _lock = cache
        .lock_exclusive(&|| {
            output::stderr_line(&format!(
                "tako: waiting for the pulls using {} to finish",
                path.display()
            ))
        })
        .map_err(failed)?;
    let plan = cache.plan_purge().map_err(failed)?;
    if !args.dry_run {
        cache.purge(&plan).map_err(failed)?;
    }
    for line in purge_lines(&plan, args.dry_run) {
        output::stdout_line(&line);
    }
    Ok(())
}

/// What `tako image purge` prints: each tree released, each file removed, the bytes freed.
fn purge_lines(plan: &PurgePlan, dry_run: bool) -> Vec<String> {
    let (release, remove, free) = if dry_run {
        ("would release", "would remove", "would free")
    } else {
        ("released", "removed", "freed")
    };
    let mut lines = Vec::new();
    for released in &plan.released {
        let what = match &released.dir {
            Some(dir) => format!("the blobs of {dir}"),
            None => format!("the record trees/{}", released.name),
        };
        lines.push(format!("{release} {what}: {}", released.why.describe()));
    }
    for removal in &plan.removals {
        let what = match removal.kind {
            Kind::Blob => "blob",
            Kind::Partial => "partial download",
            Kind::Temporary => "temporary file",
        };
        lines.push(format!(
            "{remove} {what} {} ({})",
            removal.name,
            size::human(removal.size)
        ));
    }
    lines.push(format!(
        "{free} {}; kept {} blob{} ({}) used by {} tree{}",
        output::size_text(plan.bytes()),
        plan.blobs_kept,
        if plan.blobs_kept == 1 { "" } else { "s" },
        size::human(plan.bytes_kept),
        plan.trees_kept,
        if plan.trees_kept == 1 { "" } else { "s" },
    ));
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::image::PlatformArgs;
    use crate::container::pull::PulledLayer;
    use crate::format::oci::digest::Digest;

    fn args(platform: Option<&str>, os: Option<&str>, arch: Option<&str>) -> PlatformArgs {
        PlatformArgs {
            platform: platform.map(str::to_owned),
            os: os.map(str::to_owned),
            arch: arch.map(str::to_owned),
            variant: None,
        }
    }

    fn arm64_host() -> Result<Platform, PlatformError> {
        Ok(Platform::new("linux", "arm64", Some("v8")))
    }

    #[test]
    fn the_host_platform_is_wanted_unless_the_options_name_one() {
        let wanted = wanted_platform(&args(None, None, None), arm64_host()).unwrap();
        assert_eq!(wanted.platform.to_string(), "linux/arm64/v8");
        assert!(!wanted.explicit);
        let wanted =
            wanted_platform(&args(Some("linux/arm/v7"), None, None), arm64_host()).unwrap();
        assert_eq!(wanted.platform.to_string(), "linux/arm/v7");
        assert!(wanted.explicit);
        // roots' spelling: the architecture alone, the host's variant dropped with it.
        let wanted = wanted_platform(&args(None, None, Some("x86_64")), arm64_host()).unwrap();
        assert_eq!(wanted.platform.to_string(), "linux/amd64");
        assert!(wanted.explicit);
        let wanted = wanted_platform(&args(None, Some("freebsd"), None), arm64_host()).unwrap();
        assert_eq!(wanted.platform.to_string(), "freebsd/arm64/v8");
        let unknown = Err(PlatformError::UnknownHost {
            os: "plan9".into(),
            arch: "mips".into(),
        });
        assert!(wanted_platform(&args(None, None, None), unknown.clone()).is_err());
        let wanted = wanted_platform(&args(None, None, Some("riscv64")), unknown).unwrap();
        assert_eq!(wanted.platform.to_string(), "linux/riscv64");
        assert!(wanted_platform(&args(Some("linux"), None, None), arm64_host()).is_err());
    }

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<OsString> + 'a {
        move |name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| OsString::from(v))
        }
    }

    #[test]
    fn the_cache_is_the_option_then_the_variable_then_a_default_for_the_user() {
        let home = [("HOME", "/home/ann")];
        let dir = |given: Option<&str>, no: bool, vars: &[(&str, &str)], root: bool| {
            cache_dir(given.map(Path::new), no, &env(vars), root).unwrap()
        };
        assert_eq!(
            dir(None, false, &home, true),
            Some(PathBuf::from(SYSTEM_CACHE))
        );
        assert_eq!(
            dir(None, false, &home, false),
            Some(PathBuf::from("/home/ann/.cache/tako"))
        );
        let xdg = [("HOME", "/home/ann"), ("XDG_CACHE_HOME", "/xdg")];
        assert_eq!(
            dir(None, false, &xdg, false),
            Some(PathBuf::from("/xdg/tako"))
        );
        // A relative XDG_CACHE_HOME is invalid by the spec and ignored.
        let relative = [("HOME", "/home/ann"), ("XDG_CACHE_HOME", "xdg")];
        assert_eq!(
            dir(None, false, &relative, false),
            Some(PathBuf::from("/home/ann/.cache/tako"))
        );
        let var = [("TAKO_CACHE", "/srv/cache")];
        assert_eq!(
            dir(None, false, &var, true),
            Some(PathBuf::from("/srv/cache"))
        );
        assert_eq!(
            dir(Some("/c"), false, &var, true),
            Some(PathBuf::from("/c"))
        );
        assert_eq!(dir(Some("no"), false, &var, true), None);
        assert_eq!(dir(None, false, &[("TAKO_CACHE", "no")], true), None);
        assert_eq!(dir(Some("/c"), true, &var, true), None);
        assert!(matches!(
            cache_dir(None, false, &env(&[]), false),
            Err(ImageError::NoCacheDirectory)
        ));
    }

    fn pulled(pinned: bool) -> Pulled {
        let layer = |bytes: &[u8], from_cache| PulledLayer {
            digest: Digest::of(bytes),
            size: 2048,
            from_cache,
        };
        Pulled {
            image: "registry.example/app:1".into(),
            pinned,
            index: Some(Digest::of(b"index")),
            platforms: vec![
                Platform::new("linux", "amd64", None),
                Platform::new("linux", "arm64", Some("v8")),
            ],
            manifest: Digest::of(b"manifest"),
            config: Digest::of(b"config"),
            platform: Some(Platform::new("linux", "amd64", None)),
            layers: vec![layer(b"a", false), layer(b"b", true)],
            downloaded_bytes: 2048,
            cached_bytes: 2048,
            unpacked_bytes: 10 << 20,
            entries: 12,
            replaced: true,
            up_to_date: false,
            mirror: None,
            policy: None,
        }
    }

    #[test]
    fn a_pull_says_what_it_resolved_and_reused_and_that_a_tag_is_not_signature_checked() {
        let lines = pulled_lines(&pulled(false), Path::new("/srv/app"));
        assert_eq!(
            lines[0],
            "/srv/app: pulled registry.example/app:1 (the old tree replaced)"
        );
        assert_eq!(
            lines[1],
            "  policy: none applied (no policy.json, or --insecure-policy)"
        );
        assert_eq!(
            lines[2],
            format!(
                "  index {} (linux/amd64, linux/arm64/v8)",
                Digest::of(b"index")
            )
        );
        assert_eq!(
            lines[3],
            format!("  manifest {} for linux/amd64", Digest::of(b"manifest"))
        );
        assert_eq!(
            lines[4],
            "  2 layers: 1 downloaded (2.0 KiB), 1 from the cache (2.0 KiB); 10.0 MiB unpacked in 12 entries"
        );
        assert!(lines[5].contains("not signature-checked"), "{}", lines[5]);
        assert!(lines[5].ends_with(&format!("registry.example/app:1@{}", Digest::of(b"index"))));
        let pinned = pulled_lines(&pulled(true), Path::new("/srv/app"));
        assert_eq!(pinned.len(), 5);
        assert!(pinned.iter().all(|l| !l.contains("signature")));
    }

    #[test]
    fn a_failed_pull_still_gives_a_json_record_with_the_error() {
        let failed: Result<Pulled, PullError> = Err(PullError::TooDeep {
            image: "x/y:1".into(),
            max: 4,
        });
        let record = pull_record("x/y:1", Path::new("d"), &failed);
        assert_eq!(record.outcome, "failed");
        assert!(record.error.unwrap().contains("nest"));
        let record = pull_record("x/y:1", Path::new("d"), &Ok(pulled(false)));
        assert_eq!(record.outcome, "pulled");
        assert_eq!(record.layers.len(), 2);
        assert!(record.layers[1].cached && !record.pinned);
    }
}
