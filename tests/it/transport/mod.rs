//! Fetching from a real nginx, and from private origins. (The transport itself is tested
//! against the fault-injecting server in `src/net/client_tests.rs`.)

mod nginx;
mod private_origins;
