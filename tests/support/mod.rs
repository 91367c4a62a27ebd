//! Shared helpers for the black-box tests in `tests/`.
#![allow(dead_code)]

pub mod tako;
