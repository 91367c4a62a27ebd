//! tako's own test support (tests/it/support), shared rather than copied: the real
//! registry, the images the tests build and push, and the proxy that can damage a blob.

#[path = "../../../tests/it/support/distribution.rs"]
pub mod distribution;
#[path = "../../../tests/it/support/images.rs"]
pub mod images;
#[path = "../../../tests/it/support/registry.rs"]
pub mod registry;
#[path = "../../../tests/it/support/registry_proxy.rs"]
pub mod registry_proxy;
#[path = "../../../tests/it/support/sigstore.rs"]
pub mod sigstore;
