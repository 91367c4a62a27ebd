//! The command line: what `tako` accepts, declared with clap.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "tako",
    version,
    about = "Securely download and update signed, versioned single-file images"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Download the newest matching image for each config and point `latest` at it.
    Fetch(FetchArgs),
    /// Add an image to a server directory and re-sign its manifest.
    Store(StoreArgs),
    /// Generate an Ed25519 key pair and print it (writes nothing to disk).
    GenKey,
}

#[derive(Debug, Args)]
pub struct FetchArgs {
    /// Succeed at once, offline and without waiting for another run's lock, if
    /// a valid image is already installed; otherwise fetch, and fail unless an
    /// image ends up installed.
    #[arg(long)]
    pub init: bool,
    /// Do not re-hash images already in the store (their size is still checked).
    #[arg(long)]
    pub no_verify: bool,
    /// Do not restart the config's `Restart=` units after an update.
    #[arg(long)]
    pub no_restart: bool,
    /// Give up on a transfer that delivers no data for this many seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..=86400))]
    pub idle_timeout: u64,
    /// Configuration files, one per image.
    #[arg(required = true, value_name = "CONFIG")]
    pub configs: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct StoreArgs {
    /// The secret key (`SECRET+…`). Prefer --key-file or TAKO_SECRET_KEY:
    /// command lines are visible to other users.
    #[arg(
        short = 'k',
        long = "key",
        value_name = "KEY",
        conflicts_with = "key_file"
    )]
    pub key: Option<String>,
    /// A file that holds the secret key.
    #[arg(short = 'f', long = "key-file", value_name = "FILE")]
    pub key_file: Option<PathBuf>,
    /// The server directory (must exist); `store/` is created inside it.
    #[arg(short = 'o', long = "output", value_name = "DIR")]
    pub output: PathBuf,
    /// The image file to publish.
    #[arg(value_name = "IMAGE")]
    pub image: PathBuf,
    /// The version to publish it as, for example 1.2.0.
    #[arg(value_name = "VERSION")]
    pub version: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

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
    fn accepts_a_version_that_looks_like_an_option_after_double_dash() {
        let cli = Cli::try_parse_from(["tako", "store", "-o", "d", "--", "-img", "1.0"]).unwrap();
        let Command::Store(args) = cli.command else {
            panic!("expected store")
        };
        assert_eq!(args.image, PathBuf::from("-img"));
    }
}
