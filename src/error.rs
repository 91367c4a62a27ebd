//! The error type every command returns; its `Display` is what the user reads.

use crate::commands::container_image_proxy::ServeError;
use crate::commands::generate::GenerateError;
use crate::commands::image::ImageError;
use crate::commands::image_proxy::ImageProxyError;
use crate::commands::index::ReindexError;
use crate::commands::store::StoreError;
use crate::format::key::KeyError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot read standard input: {0}")]
    Stdin(std::io::Error),
    #[error(transparent)]
    Generate(#[from] GenerateError),
    #[error(transparent)]
    Index(#[from] ReindexError),
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    ContainerImageProxy(#[from] ServeError),
    #[error(transparent)]
    ImageProxy(#[from] ImageProxyError),
    #[error("cannot write to standard output: {0}")]
    Print(std::io::Error),
    /// Each failed config was already reported on its own line.
    #[error("{failed} of {total} configs failed")]
    ConfigsFailed { failed: usize, total: usize },
    /// `tako status`: each config was described on its own.
    #[error("{failed} of {total} configs have no intact installed image")]
    NotIntact { failed: usize, total: usize },
}

impl Error {
    /// Writes the error as `tako: error: <message>` to standard error, with the journal's
    /// error priority when standard error is the journal.
    pub fn report(&self) {
        crate::ui::output::error_line(&self.to_string());
    }
}
