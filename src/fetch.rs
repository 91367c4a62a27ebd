//! `tako fetch` (placeholder until the fetch issue lands).
use crate::Error;
use crate::cli::FetchArgs;

pub fn run(_args: &FetchArgs) -> Result<(), Error> {
    Err(Error::ConfigsFailed {
        failed: 0,
        total: 0,
    })
}
