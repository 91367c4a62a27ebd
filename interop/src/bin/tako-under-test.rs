//! tako's own `main`, built in this package so that its tests can name the binary
//! (`CARGO_BIN_EXE_tako-under-test`) as the crate's `skopeo_cmd`.
#![forbid(unsafe_code)]

use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = tako::Cli::from_argv(std::env::args_os());
    match tako::run(cli) {
        Ok(exit) => ExitCode::from(exit.code()),
        Err(err) => {
            err.report();
            ExitCode::FAILURE
        }
    }
}
