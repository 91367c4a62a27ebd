//! Read-once pipelines over a stream of bytes: hashing and copying, content-defined chunking,
//! decompression of image layers.

pub mod chunking;
pub mod deadline;
pub mod decompress;
pub mod hashing;
