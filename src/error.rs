//! The error type every command returns; its `Display` is what the user reads.

use crate::fsutil::IoError;
use crate::key::KeyError;
use crate::publish::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Io(#[from] IoError),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{failed} of {total} configs failed")]
    ConfigsFailed { failed: usize, total: usize },
}
