//! tako's black-box tests, in one test binary: the built `tako` run as a user runs it, against
//! servers each test starts on 127.0.0.1, and judged by what it prints and leaves on disk.
//!
//! One folder per area, so a test for a change is found by what the change is about:
//!
//! - `fetch/`: `tako fetch` over HTTP and file://: updates, output, conditional polls,
//!   deltas, resumed downloads, retries and mirrors.
//! - `store/`: the publishing side: `tako store`, `tako index` and key rotation.
//! - `ops/`: the other commands a host runs: `check`, `status` and `gc`.
//! - `registry/`: OCI registries as origins and as a place to publish to.
//! - `image/`: `tako image pull`, `digest` and `purge`: container images from a registry
//!   into directory trees, hostile images, killed pulls, platforms and the blob cache.
//! - `transport/`: fetching from a real nginx, and private origins (netrc, header files, a
//!   private CA, mutual TLS). The HTTP client itself is tested against the local server in
//!   `src/net/client_tests.rs`.
//! - `systemd/`: `tako fetch` restarting units through a private `dbus-daemon`.
//! - `hardening/`: hostile or careless configs, files and networks.
//! - `cli/`: `gen-key`, `generate` (man pages, completions) and `make install`.
//! - `image_smoke.rs`: `tako image pull`, `digest` and `purge` against a real registry.
//! - `layering.rs`: the floors of `src/` and the one direction of their imports.
//! - `support/`: what the tests share: running `tako` under a hang guard, a publisher's
//!   directory and a host's config, the fault-injecting HTTP server, harnesses for nginx, a
//!   registry and a private D-Bus, and the registry API spoken test-side; container images
//!   built for the tests, a recording proxy in front of the registry and trees compared
//!   entry by entry. The server, the registry and the D-Bus harnesses stand alone (no
//!   `super::`), since unit tests in `src/` compile them in too.

mod cli;
mod fetch;
mod hardening;
mod image;
mod image_smoke;
mod layering;
mod ops;
mod registry;
mod store;
mod support;
mod systemd;
mod transport;
