//! version (placeholder)
