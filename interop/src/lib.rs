//! Nothing: this crate only holds `tests/crate_client.rs`, the interop test of
//! `tako experimental-image-proxy` with the `containers-image-proxy` crate.
