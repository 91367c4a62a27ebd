//! Container images as data: digests, references, media types, manifests and indexes,
//! configs, platforms, and the image-proxy protocol's messages. Pure: no I/O, only parsing
//! and writing values, each with caps on what untrusted input may make it hold.

pub mod digest;
pub mod media;
pub mod reference;
