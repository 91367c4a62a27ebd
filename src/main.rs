//! The `tako` binary: parse the command line, run, map the result to an exit code.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // clap prints usage errors itself and exits with status 2.
    let cli = tako::cli::Cli::parse();
    match tako::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tako::output::stderr_line(&format!("tako: error: {err}"));
            ExitCode::FAILURE
        }
    }
}
