//! Tako: securely download and update signed, versioned single-file images.
//!
//! The binary in `main.rs` only parses the command line and calls [`run`]; the crate
//! exports that, [`Cli`], [`Exit`] and [`Error`], and nothing else: every floor below is
//! private, so the compiler reports whatever nothing in tako uses.
#![forbid(unsafe_code)]

mod api;
mod cli;
mod commands;
mod container;
mod destination;
mod error;
mod format;
mod fs;
mod net;
mod origin;
mod registry;
mod stream;
mod systemd;
mod ui;
mod update;

pub use cli::Cli;
pub use error::Error;

use std::io::Read;

use cli::Command;
use commands::{check, fetch, gc, generate, index as reindex, status, store as publish};
use format::key;
use ui::output;

/// More than any key needs; the rest of standard input is left unread.
const MAX_KEY_INPUT: u64 = 4096;

fn read_stdin() -> Result<String, Error> {
    let mut text = String::new();
    std::io::stdin()
        .take(MAX_KEY_INPUT)
        .read_to_string(&mut text)
        .map_err(Error::Stdin)?;
    Ok(text)
}

/// How a run that did not fail ends; `main` maps it to the exit status.
/// A failure is an [`Error`] (exit status 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Exit status 0.
    Success,
    /// Exit status 100: `tako check` found an update for at least one
    /// config, as `dnf check-update` says so.
    UpdateAvailable,
}

impl Exit {
    pub fn code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::UpdateAvailable => 100,
        }
    }
}

/// Runs one invocation of `tako`.
pub fn run(cli: Cli) -> Result<Exit, Error> {
    let result = run_command(cli);
    // What fetch and check did not say per config yet (an unreadable ~/.netrc or auth file).
    commands::say_file_warnings();
    result
}

fn run_command(cli: Cli) -> Result<Exit, Error> {
    match cli.command {
        Command::GenKey => {
            let key = key::SecretKey::generate()?;
            // The key exists nowhere else: failing to print it is an error.
            output::stdout(&key::gen_key_report(&key)).map_err(Error::Print)?;
            Ok(Exit::Success)
        }
        Command::Store(args) => {
            output::stdout_line(&publish::store(&args)?);
            Ok(Exit::Success)
        }
        Command::Fetch(args) => fetch::run(&args),
        Command::Index(args) => {
            reindex::run(&args)?;
            Ok(Exit::Success)
        }
        Command::Status(args) => status::run(&args),
        Command::Check(args) => check::run(&args),
        Command::Gc(args) => gc::run(&args),
        Command::KeyId(args) => {
            let id = if args.key == "-" {
                key::key_id_from_input(&read_stdin()?)?
            } else {
                key::PublicKey::parse(&args.key)?.id()
            };
            output::stdout(&format!("{id}\n")).map_err(Error::Print)?;
            Ok(Exit::Success)
        }
        Command::Image(command) => commands::image::run(&command),
        Command::ContainerImageProxy(args) => commands::container_image_proxy::run(&args),
        Command::ExperimentalImageProxy(args) => {
            commands::image_proxy::run(&args)?;
            Ok(Exit::Success)
        }
        Command::Generate(command) => {
            generate::run(&command)?;
            Ok(Exit::Success)
        }
    }
}
