//! transport (placeholder)
