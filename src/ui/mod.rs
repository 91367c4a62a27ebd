//! What a person or a script reads: output lines with their journal priority, progress bars, the --json records.

pub mod json;
pub mod output;
pub mod progress;
