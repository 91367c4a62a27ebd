//! hashing (placeholder)
