//! systemd (placeholder)
