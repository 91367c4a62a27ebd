//! Container images: applying their layers to a directory tree.

pub mod unpack;
