//! Pure formats: bytes and strings in, values or errors out. Nothing here does I/O.

pub mod chunk_index;
pub mod key;
pub mod manifest;
// Container images; the container floor (image pull, the image proxy) will use it.
#[allow(dead_code)]
pub mod oci;
pub mod retention;
pub mod size;
pub mod text;
pub mod validators;
pub mod version;
