//! Pure formats: bytes and strings in, values or errors out. Nothing here does I/O.

pub mod oci;
