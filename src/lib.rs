//! Tako: securely download and update signed, versioned single-file images.
//!
//! The binary in `main.rs` only parses the command line and calls [`run`];
//! everything else lives in one module per domain noun.
#![forbid(unsafe_code)]

pub mod cli;
pub mod config;
pub mod error;
pub mod fetch;
pub mod fsutil;
pub mod hashing;
pub mod key;
pub mod manifest;
pub mod publish;
pub mod systemd;
pub mod transport;
pub mod version;
