//! tako's pure parsers, `src/format/`, compiled into the fuzz crate as they stand.
//!
//! `format/` names nothing else of tako's (the layering test in `tests/it/layering.rs`
//! keeps it so), which is what lets the targets reach every parser without tako making
//! any of them public.
#![allow(dead_code)]

#[path = "../../src/format/mod.rs"]
pub mod format;
