//! The fetch engine: choose the manifest (keys, rollback, conditional polls), download an image (resume, retries over places), assemble a delta.

pub mod assembly;
pub mod delta;
pub mod fetch;
pub mod image;
pub mod keyring;
pub mod retry;
pub mod select;
