//! Tako: securely download and update signed, versioned single-file images.
//!
//! The binary in `main.rs` only parses the command line and calls [`run`];
//! everything else lives in one module per domain noun.
#![forbid(unsafe_code)]

pub mod cli;
pub mod config;
pub mod error;
pub mod fetch;
pub mod fsutil;
pub mod generate;
pub mod hashing;
pub mod key;
pub mod keyring;
pub mod manifest;
pub mod origin;
pub mod output;
pub mod partial;
pub mod poll;
pub mod publish;
pub mod restart_pending;
pub mod retention;
pub mod systemd;
pub mod text;
pub mod transport;
pub mod version;

pub use error::Error;

use std::io::Read;

use cli::{Cli, Command};

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

/// Runs one invocation of `tako`.
pub fn run(cli: Cli) -> Result<(), Error> {
    match cli.command {
        Command::GenKey => {
            let key = key::SecretKey::generate()?;
            // The key exists nowhere else: failing to print it is an error.
            output::stdout(&key::gen_key_report(&key)).map_err(Error::Print)
        }
        Command::Store(args) => {
            output::stdout_line(&publish::store(&args)?);
            Ok(())
        }
        Command::Fetch(args) => fetch::run(&args),
        Command::KeyId(args) => {
            let id = if args.key == "-" {
                key::key_id_from_input(&read_stdin()?)?
            } else {
                key::PublicKey::parse(&args.key)?.id()
            };
            output::stdout(&format!("{id}\n")).map_err(Error::Print)
        }
        Command::Generate(command) => Ok(generate::run(&command)?),
    }
}
