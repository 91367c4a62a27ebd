//! The command line around fetching: `gen-key`, `generate` (man pages and completions),
//! `make install`, and the docs that describe them.

mod docs;
mod gen_key;
mod generate;
mod install;
mod man_coverage;
mod style;
