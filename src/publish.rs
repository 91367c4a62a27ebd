//! publish (placeholder)
