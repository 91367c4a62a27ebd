//! The `tako` binary: parse the command line, run, map the result to an exit code.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // clap prints usage errors itself and exits with status 2.
    let cli = tako::cli::Cli::parse_from(tako::cli::help_after_command(std::env::args_os()));
    match tako::run(cli) {
        Ok(exit) => ExitCode::from(exit.code()),
        Err(err) => {
            tako::ui::output::error_line(&err.to_string());
            ExitCode::FAILURE
        }
    }
}
