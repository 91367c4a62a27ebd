//! fetch (placeholder)
