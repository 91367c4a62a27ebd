//! Read-once pipelines over streams: decompression, counted and hashed on the way.

pub mod decompress;
