//! Servers for other programs: the image-proxy protocols.

pub mod http_proxy;
