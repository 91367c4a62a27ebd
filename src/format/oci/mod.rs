//! Container images as data: digests, references, media types, manifests and indexes,
//! configs, platforms, and the image-proxy protocol's messages. Pure: no I/O, only parsing
//! and writing values, each with caps on what untrusted input may make it hold.
//!
//! The JSON types are tako's own rather than the `oci-spec` crate's, for four reasons:
//! - caps belong in the types: sizes are read as non-negative and bounded, layer and entry
//!   counts are bounded, digests are checked as they are read (they go into URLs and paths),
//!   and every message quoting input is escaped; `oci-spec` reads any `u64` size and a
//!   digest of any algorithm (`foo:bar` included), and leaves the rest to each caller;
//! - tolerance where images need it: unknown fields are ignored, optional members may be
//!   `null`, Docker schema 2 and OCI share one type, and schema 1 is refused by name;
//! - no builder, getter or enum-derive machinery (`derive_builder`, `getset`, `strum`,
//!   `const_format`) nor `regex` in the build for a handful of structs;
//! - size: in a scratch crate with tako's release profile (fat LTO, stripped), reading a
//!   manifest, an index and a config with `oci-spec` 0.8.4 (`image` feature only) made the
//!   binary 499,440 bytes against 409,792 with plain serde structs: about 90 KB, and some
//!   twenty more crates to build.

pub mod config;
pub mod digest;
pub mod layout;
pub mod manifest;
pub mod media;
pub mod platform;
pub mod policy;
pub mod proxy;
pub mod reference;
pub mod registries_conf;
pub mod sigstore;
