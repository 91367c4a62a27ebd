//! The HTTP and file:// transport, a real nginx, and private origins.

mod client;
mod nginx;
mod private_origins;
