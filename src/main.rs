//! The `tako` binary: parse the command line, run, map the result to an exit code.
#![forbid(unsafe_code)]

use std::process::ExitCode;

fn main() -> ExitCode {
    // A usage error is printed (`tako: error: …`) and exits with status 2.
    let cli = tako::Cli::from_argv(std::env::args_os());
    match tako::run(cli) {
        Ok(exit) => ExitCode::from(exit.code()),
        Err(err) => {
            err.report();
            ExitCode::FAILURE
        }
    }
}
