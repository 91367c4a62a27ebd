//! fsutil (placeholder)
