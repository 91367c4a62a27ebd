//! Pure formats: bytes and strings in, values or errors out. Nothing here does I/O.

pub mod chunk_index;
pub mod key;
pub mod manifest;
pub mod retention;
pub mod size;
pub mod text;
pub mod version;
