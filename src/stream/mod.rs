//! Read-once pipelines over a stream of bytes: hashing and copying, content-defined chunking,
//! decompression (counted and hashed on the way).

pub mod chunking;
pub mod decompress;
pub mod hashing;
