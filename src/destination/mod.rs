//! A host's destination directory: partial downloads, poll validators, pending restarts.

pub mod partial;
pub mod poll;
pub mod restart_pending;
