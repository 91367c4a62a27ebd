//! Shared helpers for the black-box tests in `tests/it/`. They are compiled into the one
//! test binary with every scenario, so the compiler reports a helper nobody uses.

pub mod dbus;
pub mod distribution;
pub mod http_server;
pub mod images;
pub mod nginx;
pub mod origin;
pub mod registry;
pub mod registry_proxy;
pub mod rootfs;
pub mod run;
pub mod sigstore;
pub mod snapshot;
pub mod tako;
pub mod tls_server;
pub mod tools;
