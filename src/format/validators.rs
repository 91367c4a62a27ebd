//! What a server said about a manifest it served, so that the next poll can ask whether it
//! changed: the value the origin seam hands up and the destination keeps.

/// What a server said about the manifest it served, to ask next time whether it changed
/// (`If-None-Match`, `If-Modified-Since`). They belong to one URL of one server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validators {
    /// The URL the manifest came from, as printed (no password).
    pub url: String,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
}
