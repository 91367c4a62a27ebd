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
pub mod manifest;
pub mod output;
pub mod publish;
pub mod systemd;
pub mod text;
pub mod transport;
pub mod version;

pub use error::Error;

use cli::{Cli, Command};

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
        Command::Generate(command) => Ok(generate::run(&command)?),
    }
}
