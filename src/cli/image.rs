//! `tako image …`: what the container image commands accept.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::TimeLimits;

/// The container image commands.
#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Pull a container image from a registry into a directory tree.
    ///
    /// Leaves IMAGE's root file system in DIR, ready for `systemd-nspawn -D
    /// DIR`. Every manifest, config and layer is checked against its digest;
    /// the tree is built beside DIR and moved into place only when complete.
    Pull(PullArgs),
    /// Print the digest an image reference resolves to.
    ///
    /// The index's digest (or the single manifest's), or with --platform the
    /// digest of that platform's manifest: to see whether a tag moved, or to
    /// pin an image with IMAGE@sha256:….
    Digest(DigestArgs),
    /// Remove cached blobs that no pulled tree uses, and partial downloads.
    ///
    /// A tree that is gone, or was replaced by a later pull, no longer holds
    /// its blobs. Waits for running pulls that use the cache.
    Purge(PurgeArgs),
    /// Print what the host's policy.json says of an image, without pulling it.
    ///
    /// The policy file read, the scope that applies to IMAGE, its requirements
    /// and the verdict: accepted (with the signatures that satisfied it),
    /// rejected, or refused (no signature, none that verifies, or one tako
    /// does not check: signedBy, keyless). Signatures are read from the
    /// registry; no layer is downloaded. See docs/policy.md.
    Policy(PolicyArgs),
}

/// Which platform of a multi-platform image to take.
#[derive(Debug, Clone, Args)]
pub struct PlatformArgs {
    /// The platform, OS/ARCH[/VARIANT] in Go's names (linux/amd64,
    /// linux/arm64/v8, linux/arm/v7). Default: this host's. An image without
    /// an entry for it is refused, listing the platforms it has.
    #[arg(long, value_name = "OS/ARCH[/VARIANT]", conflicts_with_all = ["os", "arch", "variant"])]
    pub platform: Option<String>,
    /// The platform's operating system; the rest is this host's unless given.
    #[arg(long, value_name = "OS")]
    pub os: Option<String>,
    /// The platform's architecture (amd64, arm64, arm, 386, ppc64le, s390x,
    /// riscv64).
    #[arg(long, value_name = "ARCH")]
    pub arch: Option<String>,
    /// The platform's variant (v8 for arm64; v7, v6, v5 for arm).
    #[arg(long, value_name = "VARIANT")]
    pub variant: Option<String>,
}

/// Which signature policy (containers-policy.json) applies.
#[derive(Debug, Clone, Args)]
pub struct PolicyFileArgs {
    /// The policy file. Default: $XDG_CONFIG_HOME/containers/policy.json
    /// (~/.config/containers/policy.json) if it exists, else
    /// /etc/containers/policy.json; with neither, no policy applies.
    #[arg(long, value_name = "FILE", conflicts_with = "insecure_policy")]
    pub policy: Option<PathBuf>,
    /// Apply no policy.json: pull whatever the registry serves.
    #[arg(long)]
    pub insecure_policy: bool,
}

/// Where registry credentials come from.
#[derive(Debug, Clone, Args)]
pub struct AuthArgs {
    /// A Google service-account JSON key file, sent as user `_json_key` with the
    /// file's content as the password. Otherwise the registry auth files are
    /// read: $REGISTRY_AUTH_FILE, $XDG_RUNTIME_DIR/containers/auth.json,
    /// ~/.docker/config.json.
    #[arg(long, value_name = "FILE")]
    pub auth: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct PullArgs {
    #[command(flatten)]
    pub platform: PlatformArgs,
    /// Replace DIR if it is not empty: the new tree is swapped in whole
    /// (renameat2 RENAME_EXCHANGE) and the old one removed. Without it, DIR
    /// must be absent or empty, or hold the tree tako built from the manifest
    /// IMAGE names now. Either way, a DIR that holds that tree is left as it
    /// is ("up to date").
    #[arg(short, long)]
    pub force: bool,
    /// Build the tree again and replace DIR even when it holds the tree of the
    /// manifest IMAGE names now (what was changed in it is lost). Implies
    /// --force.
    #[arg(long)]
    pub rebuild: bool,
    /// The blob cache, or `no` for none. Default: $TAKO_CACHE, else
    /// /var/cache/tako as root and $XDG_CACHE_HOME/tako (~/.cache/tako)
    /// otherwise.
    #[arg(long, value_name = "DIR", conflicts_with = "no_cache")]
    pub cache: Option<PathBuf>,
    /// Use no blob cache: layers are downloaded beside DIR and removed after
    /// the pull (the same as --cache=no).
    #[arg(long)]
    pub no_cache: bool,
    #[command(flatten)]
    pub auth: AuthArgs,
    #[command(flatten)]
    pub policy: PolicyFileArgs,
    /// Download this many layers at once.
    #[arg(long, value_name = "N", default_value_t = 3,
          value_parser = clap::value_parser!(u64).range(1..=16))]
    pub parallel: u64,
    #[command(flatten)]
    pub limits: TimeLimits,
    /// Try a transient failure (connection error, timeout, HTTP 408, 429 or 5xx) this many
    /// more times, waiting about 1, 2, 4 … seconds in between (or what the server's
    /// Retry-After asks, up to 60 s); each retry resumes a download where it stopped.
    #[arg(long, value_name = "N", default_value_t = 3,
          value_parser = clap::value_parser!(u32).range(0..=100))]
    pub retries: u32,
    /// The wait before the first retry, in milliseconds (for tests; see --retries).
    #[arg(long, value_name = "MS", default_value_t = 1000, hide = true,
          value_parser = clap::value_parser!(u64).range(0..=60_000))]
    pub retry_delay_ms: u64,
    /// Cap the download rate at this many bytes per second, as curl's option of the
    /// same name: a number with an optional K, M or G suffix (powers of 1024), e.g. 500K
    /// or 10M. Default: no limit.
    #[arg(long, value_name = "RATE", value_parser = crate::format::rate::parse_rate)]
    pub limit_rate: Option<u64>,
    /// Print one JSON object on standard output instead of the text lines; see
    /// docs/json.md. Errors still go to standard error as text.
    #[arg(long, conflicts_with = "quiet")]
    pub json: bool,
    /// Print nothing on standard output and no progress: only warnings and
    /// errors, on standard error.
    #[arg(short, long)]
    pub quiet: bool,
    /// The image: [REGISTRY[:PORT]/]REPOSITORY[:TAG][@sha256:HEX] as docker
    /// writes it (optionally after docker://), oci://REGISTRY/REPOSITORY… or
    /// oci+http://HOST:PORT/REPOSITORY… for a plain-HTTP registry.
    #[arg(value_name = "IMAGE")]
    pub image: String,
    /// The directory to leave the image's root file system in. Its parent
    /// must exist.
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct DigestArgs {
    #[command(flatten)]
    pub platform: PlatformArgs,
    #[command(flatten)]
    pub auth: AuthArgs,
    #[command(flatten)]
    pub policy: PolicyFileArgs,
    /// Print one JSON object: the index's digest, the platform manifest's
    /// digest and the platforms the image has.
    #[arg(long)]
    pub json: bool,
    /// The image, as for `tako image pull`.
    #[arg(value_name = "IMAGE")]
    pub image: String,
}

#[derive(Debug, Args)]
pub struct PolicyArgs {
    /// The policy file. Default: as for `tako image pull`.
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// The image, as for `tako image pull`.
    #[arg(value_name = "IMAGE")]
    pub image: String,
}

#[derive(Debug, Args)]
pub struct PurgeArgs {
    /// The blob cache. Default: as for `tako image pull`.
    #[arg(long, value_name = "DIR")]
    pub cache: Option<PathBuf>,
    /// Only print what would be removed.
    #[arg(short = 'n', long)]
    pub dry_run: bool,
}

#[cfg(test)]
mod tests {
    use crate::cli::{Cli, Command};
    use clap::Parser;

    use super::*;

    fn pull(args: &[&str]) -> Result<PullArgs, clap::Error> {
        let mut line = vec!["tako", "image", "pull"];
        line.extend_from_slice(args);
        match Cli::try_parse_from(line)?.command {
            Command::Image(ImageCommand::Pull(args)) => Ok(args),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn pull_takes_an_image_and_a_directory_with_roots_spellings_of_its_options() {
        let args = pull(&["--arch", "arm64", "--cache=no", "debian:12", "/srv/debian"]).unwrap();
        assert_eq!(args.image, "debian:12");
        assert_eq!(args.dir, PathBuf::from("/srv/debian"));
        assert_eq!(args.platform.arch.as_deref(), Some("arm64"));
        assert_eq!(args.cache, Some(PathBuf::from("no")));
        assert_eq!(args.parallel, 3);
        let args = pull(&["--no-cache", "--parallel", "8", "-f", "a", "b"]).unwrap();
        assert!(args.no_cache && args.force);
        assert_eq!(args.parallel, 8);
    }

    #[test]
    fn pull_refuses_contradicting_options() {
        for bad in [
            &["--platform", "linux/amd64", "--arch", "arm64", "a", "b"][..],
            &["--cache", "/c", "--no-cache", "a", "b"],
            &["--json", "--quiet", "a", "b"],
            &["--parallel", "0", "a", "b"],
            &["a"],
        ] {
            assert!(pull(bad).is_err(), "{bad:?}");
        }
    }
}
