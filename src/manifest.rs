//! manifest (placeholder)
