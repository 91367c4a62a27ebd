//! Container images: resolving a reference to a platform's manifest, pulling its blobs into
//! the cache, and applying their layers to a directory tree; listing everything an image
//! pins and copying it to a place that publishes it.

pub mod install;
pub mod policy;
pub mod publish;
pub mod pull;
pub mod registries;
pub mod resolve;
pub mod unpack;
