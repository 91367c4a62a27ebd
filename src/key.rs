//! key (placeholder)
