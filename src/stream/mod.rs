//! Read-once pipelines over a stream of bytes: hashing and copying, content-defined chunking,
//! decompression of image layers.

pub mod chunking;
// The container floor: `tako image` (pull into the blob cache, unpack) is being wired to
// it; until then nothing calls it.
#[allow(dead_code)]
pub mod decompress;
pub mod hashing;
