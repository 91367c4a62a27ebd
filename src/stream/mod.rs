//! Read-once pipelines over a stream of bytes: hashing and copying, content-defined chunking.

pub mod chunking;
pub mod hashing;
