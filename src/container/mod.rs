//! Container images: resolving a reference to a platform's manifest, pulling its blobs into
//! the cache, and applying their layers to a directory tree.

pub mod pull;
pub mod resolve;
pub mod unpack;
