//! Pure formats: bytes and strings in, values or errors out. Nothing here does I/O.

pub mod byteranges;
pub mod chunk_index;
pub mod config;
pub mod delta_plan;
pub mod header_file;
pub mod http_fields;
pub mod http_request;
pub mod key;
pub mod manifest;
pub mod netrc;
pub mod no_proxy;
pub mod oci;
pub mod origin_url;
pub mod rate;
pub mod registry_auth;
pub mod registry_url;
pub mod retention;
pub mod size;
pub mod tako_artifact;
pub mod text;
pub mod transport_config;
pub mod tree_record;
pub mod unit_name;
pub mod validators;
pub mod version;
