//! The command line around fetching: `gen-key`, `generate` (man pages and completions) and
//! `make install`.

mod gen_key;
mod generate;
mod install;
