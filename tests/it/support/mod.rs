//! Shared helpers for the black-box tests in `tests/`.
//!
//! Each test binary uses only some of them.
#![allow(dead_code)]

pub mod dbus;
pub mod http_server;
pub mod nginx;
pub mod origin;
pub mod registry;
pub mod snapshot;
pub mod tako;
pub mod tls_server;
pub mod tools;
