//! Helpers shared by the integration tests; each test file pulls them in with `mod support;`.
// Each test binary uses a different subset of the helpers.
#![allow(dead_code)]

pub mod http_server;
