//! The command line: what `tako` accepts, declared with clap.

use std::ffi::OsString;
use std::path::PathBuf;

pub mod container_image_proxy;
pub mod doc;
pub mod image;
pub mod image_proxy;

use std::io::Write;

use clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand;
use clap::{ArgAction, Args, CommandFactory, Parser, Subcommand};

/// Securely download and update signed, versioned single-file images.
///
/// Hosts fetch images a publisher signed, from a web server, a directory or a
/// registry, and keep the newest one that matches their config; `tako COMMAND
/// --help` tells more of each command. Every command's help has the same
/// shape: a summary, a paragraph, the usage, then each argument and option
/// with its own description.
#[derive(Debug, Parser)]
#[command(name = "tako", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// The command line `args` (the program name first, as `std::env::args_os` gives it),
    /// with a leading `-h` moved after the command (see [`help_after_command`]). For
    /// `--help` and `--version` clap prints and exits (status 0). A usage error is printed
    /// as every other error is, `tako: error: …` (with clap's usage line and hint after
    /// it), and exits with status 2.
    pub fn from_argv(args: impl IntoIterator<Item = OsString>) -> Cli {
        match Cli::try_parse_from(help_after_command(args)) {
            Ok(cli) => cli,
            Err(e) if !e.use_stderr() || e.kind() == DisplayHelpOnMissingArgumentOrSubcommand => {
                e.exit()
            }
            Err(e) => {
                // Nowhere is left to report a failure to write the error itself.
                let _ = std::io::stderr().write_all(usage_error_text(&e.to_string()).as_bytes());
                std::process::exit(USAGE_ERROR)
            }
        }
    }
}

/// The exit status of a usage error, as clap (and most tools) use.
const USAGE_ERROR: i32 = 2;

/// clap's rendering of a usage error (`error: unexpected argument …`, then the usage and
/// a hint) with the prefix of tako's own errors, `tako: error: `.
fn usage_error_text(rendered: &str) -> String {
    let rest = rendered.strip_prefix("error: ").unwrap_or(rendered);
    format!("tako: error: {rest}")
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Download the newest matching image for each config and point `latest` at it.
    ///
    /// Verifies the origin's signed manifest, refuses a rollback, downloads the
    /// highest version the config's pattern matches (resuming, or as a delta
    /// when the chunk index allows), installs it atomically and restarts the
    /// config's units. Exit status 0 when every config succeeded, else 1.
    Fetch(FetchArgs),
    /// Show what each config's destination holds, offline.
    ///
    /// The installed version, whether its image is intact, newer versions
    /// the local manifest lists, the store and pending restarts. No network,
    /// no lock, nothing written. Exit status 0 when every config has an
    /// intact image, else 1.
    Status(StatusArgs),
    /// Tell whether an update is available, changing nothing (exit status 100 if so).
    ///
    /// Downloads and verifies each origin's manifest exactly as fetch does,
    /// and writes nothing, not even the manifest. Exit status 0 when nothing
    /// is to be updated, 100 when an update is available, 1 when a config
    /// failed.
    Check(CheckArgs),
    /// Delete old images from each config's store.
    ///
    /// Under the destination lock: keeps the newest images and always the
    /// one `latest` points at, and removes older ones, files no manifest
    /// entry names and stale temporaries.
    Gc(GcArgs),
    /// Add an image to a server directory and re-sign its manifest.
    ///
    /// Copies the image into the directory's `store/` (or pushes it to a
    /// registry repository), adds the version to the manifest, signs it with
    /// every key given and writes the chunk index that delta updates use. A
    /// version already published with other bytes is refused.
    Store(StoreArgs),
    /// Write the missing chunk indexes of the images in a server directory.
    ///
    /// Each image in `store/` without an `index/<sha256>` gets one, so hosts
    /// can update it as a delta; images published before indexes existed, or
    /// with `tako store --no-index`, are covered this way.
    Index(IndexArgs),
    /// Generate an Ed25519 key pair and print it.
    ///
    /// Prints the secret key (`SECRET+…`) for `tako store` and the public key
    /// for the configs' `PublicKey=`. Nothing is written to disk: save the
    /// secret key where only the publisher can read it.
    GenKey,
    /// Print the id of a public key.
    ///
    /// The id names the `manifest.<keyid>` file signed by that key during a
    /// key rotation, and is what `tako store --retire-key` accepts.
    KeyId(KeyIdArgs),
    /// Pull container images into directory trees, print their digests, purge the cache.
    ///
    /// Container images from OCI registries, checked against every digest
    /// that names them, unpacked without ever writing outside the tree, with a
    /// blob cache shared by every pull.
    #[command(subcommand)]
    Image(image::ImageCommand),
    /// Serve one container image to another program over HTTP on a socket.
    ///
    /// For programs that fork a helper for images (as they would run
    /// `skopeo`'s container-image-proxy): `GET /manifest` answers the
    /// platform's manifest as OCI with the registry's digest in
    /// Manifest-Digest, `GET /blobs/DIGEST` the config or a layer, checked as
    /// it streams (on a mismatch the connection is closed before the last
    /// byte), `POST /quit` ends the server. See docs/image-proxy.md.
    ContainerImageProxy(container_image_proxy::ContainerImageProxyArgs),
    /// Print a man page or a shell completion script.
    ///
    /// For packaging: the man pages tako(1) and one per command, and
    /// completion scripts for bash, zsh and fish, all rendered from this
    /// command line's own definition.
    #[command(subcommand)]
    Generate(doc::GenerateCommand),
    /// Serve container images to another program over skopeo's image-proxy protocol.
    ///
    /// The server side of `skopeo experimental-image-proxy` (protocol 0.2.8),
    /// for clients such as the Rust crate containers-image-proxy: JSON requests
    /// on a SOCK_SEQPACKET socket, manifests, configs and blobs on pipes, each
    /// checked against its digest (see docs/image-proxy.md).
    ExperimentalImageProxy(image_proxy::ImageProxyArgs),
}

#[derive(Debug, Args)]
pub struct KeyIdArgs {
    /// A public key as printed by `tako gen-key`, or `-` to read one key
    /// (public, or a secret `SECRET+…` key, which is never printed) from
    /// standard input.
    #[arg(value_name = "PUBLIC_KEY", allow_hyphen_values = true)]
    pub key: String,
}

/// The command line with a leading `-h`/`--help` moved after the command
/// name, so `tako -h fetch` and `tako --help store` print that command's
/// help (as `tako fetch -h` does) instead of the top-level help, which is
/// what clap makes of a help flag that comes first.
pub fn help_after_command(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    let mut args: Vec<OsString> = args.into_iter().collect();
    let is_help = |a: &OsString| a == "-h" || a == "--help";
    if args.len() >= 3 && is_help(&args[1]) {
        let is_command = Cli::command()
            .get_subcommands()
            .any(|c| args[2] == c.get_name());
        if is_command {
            args.swap(1, 2);
        }
    }
    args
}

/// How long a run may wait on the network: the same bounds for every command that goes
/// online, so a stalled origin never holds one of them forever.
#[derive(Debug, Clone, Copy, Args)]
pub struct TimeLimits {
    /// Give up on a transfer that delivers no data for this many seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..=86400))]
    pub idle_timeout: u64,
    /// Give up on a transfer slower than this many bytes per second, averaged over
    /// --speed-time seconds (as curl's option of the same name). 0 turns the check off.
    #[arg(long, value_name = "BYTES", default_value_t = 1024)]
    pub speed_limit: u64,
    /// The number of seconds over which --speed-limit is averaged.
    #[arg(long, value_name = "SECONDS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..=86400))]
    pub speed_time: u64,
    /// Give up after this many seconds in all: per config for fetch and check
    /// (manifest and image included), for the whole pull of an image (manifests,
    /// token, config and layers). Default: no limit.
    #[arg(long, value_name = "SECONDS",
          value_parser = clap::value_parser!(u64).range(1..=31_536_000))]
    pub max_time: Option<u64>,
}

#[derive(Debug, Args)]
pub struct FetchArgs {
    /// Succeed at once, offline and without waiting for another run's lock, if
    /// a valid image is already installed; otherwise fetch, and fail unless an
    /// image ends up installed. Never restarts units, and ignores a restart
    /// pending from an earlier run.
    #[arg(long)]
    pub init: bool,
    /// Do not re-hash images already in the store (their size is still checked).
    #[arg(long)]
    pub no_verify: bool,
    /// Do not restart the config's `Restart=` units after an update. A
    /// restart still pending from an earlier run (DEST/restart-pending) is
    /// then reported as an error, not retried.
    #[arg(long)]
    pub no_restart: bool,
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
    /// Cap the download rate of the whole run (all configs together) at this many bytes per
    /// second, as curl's option of the same name: a number with an optional K, M or G
    /// suffix (powers of 1024), e.g. 500K or 10M. Default: no limit.
    #[arg(long, value_name = "RATE", value_parser = crate::format::rate::parse_rate)]
    pub limit_rate: Option<u64>,
    /// Print one JSON object per config on standard output (JSON Lines)
    /// instead of the text lines; see docs/json.md. Errors still go to
    /// standard error as text.
    #[arg(long, conflicts_with = "quiet")]
    pub json: bool,
    /// Print nothing on standard output and no progress: only warnings and
    /// errors, on standard error (for cron).
    #[arg(short, long)]
    pub quiet: bool,
    /// Configuration files, one per image.
    #[arg(required = true, value_name = "CONFIG")]
    pub configs: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print one JSON object per config (JSON Lines); see docs/json.md.
    #[arg(long)]
    pub json: bool,
    /// Also check the SHA-256 of the installed image, not only its size; a container
    /// tree: every entry against the record written when it was unpacked.
    #[arg(long)]
    pub verify: bool,
    /// Configuration files, one per image.
    #[arg(required = true, value_name = "CONFIG")]
    pub configs: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub limits: TimeLimits,
    /// Print one JSON object per config (JSON Lines); see docs/json.md.
    #[arg(long)]
    pub json: bool,
    /// Configuration files, one per image.
    #[arg(required = true, value_name = "CONFIG")]
    pub configs: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct GcArgs {
    /// Keep this many of the newest images (ranked by the highest version
    /// naming each). Default: the config's Keep=, else 3. The image `latest`
    /// points at is always kept besides.
    #[arg(long, value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub keep: Option<u64>,
    /// Only print what would be removed.
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    /// Print one JSON object per config (JSON Lines); see docs/json.md.
    #[arg(long)]
    pub json: bool,
    /// Configuration files, one per image.
    #[arg(required = true, value_name = "CONFIG")]
    pub configs: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct IndexArgs {
    /// The server directory, as given to `tako store -o`; `index/` is
    /// created inside it.
    #[arg(short = 'o', long = "output", value_name = "DIR")]
    pub output: PathBuf,
}

#[derive(Debug, Args)]
pub struct StoreArgs {
    /// The secret key (`SECRET+…`). Prefer --key-file or TAKO_SECRET_KEY:
    /// command lines are visible to other users. Repeat it to sign with
    /// several keys during a key rotation: the first signs `manifest`, each
    /// other one its `manifest.<keyid>`.
    #[arg(
        short = 'k',
        long = "key",
        value_name = "KEY",
        action = ArgAction::Append,
        conflicts_with = "key_file"
    )]
    pub key: Vec<String>,
    /// A file that holds the secret key. Repeatable, as --key.
    #[arg(short = 'f', long = "key-file", value_name = "FILE", action = ArgAction::Append)]
    pub key_file: Vec<PathBuf>,
    /// Remove the `manifest.<keyid>` file of a key that no longer signs,
    /// given as its public key or its id (see `tako key-id`). Repeatable.
    /// With the public key, a `manifest` still signed by it may be replaced.
    #[arg(long = "retire-key", value_name = "PUBLIC_KEY_OR_ID", action = ArgAction::Append)]
    pub retire_key: Vec<String>,
    /// The server directory (must exist); `store/` is created inside it. Or a
    /// registry repository, oci://REGISTRY[:PORT]/REPOSITORY or
    /// oci+http://HOST:PORT/REPOSITORY (see docs/registries.md).
    #[arg(short = 'o', long = "output", value_name = "DIR")]
    pub output: PathBuf,
    /// Do not write the chunk index `index/<sha256>` of the image, which
    /// lets hosts download only the parts of it they do not have.
    #[arg(long)]
    pub no_index: bool,
    /// IMAGE is a container image in a registry, named as `tako image pull`
    /// takes it: its manifest or index is signed, and every manifest, config
    /// and layer it pins is copied to the output (see docs/containers.md).
    #[arg(long, conflicts_with = "no_index")]
    pub container: bool,
    /// With --container: a Google service-account JSON key for the image's
    /// registry, as `tako image pull --auth` takes it.
    #[arg(long, value_name = "FILE", requires = "container")]
    pub auth: Option<PathBuf>,
    /// The image file to publish (with --container, the image reference).
    #[arg(value_name = "IMAGE")]
    pub image: PathBuf,
    /// The version to publish it as, for example 1.2.0.
    #[arg(value_name = "VERSION")]
    pub version: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn key_and_key_file_conflict() {
        let err = Cli::try_parse_from([
            "tako", "store", "-k", "K", "-f", "F", "-o", "d", "img", "1.0",
        ])
        .unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::ArgumentConflict);
    }

    #[test]
    fn keys_and_key_files_repeat_in_order() {
        let cli = Cli::try_parse_from([
            "tako", "store", "-k", "A", "--key", "B", "-o", "d", "img", "1.0",
        ])
        .unwrap();
        let Command::Store(args) = cli.command else {
            panic!("expected store")
        };
        assert_eq!(args.key, ["A", "B"]);
        let cli = Cli::try_parse_from([
            "tako",
            "store",
            "-f",
            "a",
            "-f",
            "b",
            "--retire-key",
            "X",
            "--retire-key",
            "Y",
            "-o",
            "d",
            "img",
            "1.0",
        ])
        .unwrap();
        let Command::Store(args) = cli.command else {
            panic!("expected store")
        };
        assert_eq!(args.key_file, [PathBuf::from("a"), PathBuf::from("b")]);
        assert_eq!(args.retire_key, ["X", "Y"]);
    }

    #[test]
    fn accepts_a_version_that_looks_like_an_option_after_double_dash() {
        let cli = Cli::try_parse_from(["tako", "store", "-o", "d", "--", "-img", "1.0"]).unwrap();
        let Command::Store(args) = cli.command else {
            panic!("expected store")
        };
        assert_eq!(args.image, PathBuf::from("-img"));
    }

    fn help_of(args: &[&str]) -> String {
        let args = help_after_command(args.iter().map(OsString::from));
        let err = Cli::try_parse_from(args).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::DisplayHelp);
        err.to_string()
    }

    #[test]
    fn a_usage_error_is_prefixed_as_tako_errors_are() {
        let err = Cli::try_parse_from(["tako", "fetch", "--bogus", "a.tako"]).unwrap_err();
        let text = usage_error_text(&err.to_string());
        assert!(
            text.starts_with("tako: error: unexpected argument '--bogus'"),
            "{text}"
        );
        assert!(text.contains("Usage: tako fetch"), "{text}");
    }

    #[test]
    fn a_help_flag_before_the_command_shows_that_commands_help() {
        assert!(help_of(&["tako", "-h", "fetch"]).contains("--no-verify"));
        assert!(help_of(&["tako", "--help", "store"]).contains("--key-file"));
        assert!(help_of(&["tako", "-h", "gen-key"]).contains("tako gen-key"));
        // Anything else after the flag still gets the top-level help.
        assert!(help_of(&["tako", "-h", "nonsense"]).contains("Commands:"));
        assert!(help_of(&["tako", "-h"]).contains("Commands:"));
    }
}
