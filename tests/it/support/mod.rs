//! Shared helpers for the black-box tests in `tests/it/`.
//!
//! Not every helper is used by every build of the tests (a helper may serve one scenario
//! only), hence the `dead_code` allowance.
#![allow(dead_code)]

pub mod dbus;
pub mod http_server;
pub mod nginx;
pub mod origin;
pub mod registry;
pub mod run;
pub mod snapshot;
pub mod tako;
pub mod tls_server;
pub mod tools;
