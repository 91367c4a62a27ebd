//! Servers for other programs: the image-proxy protocols through which programs not
//! written in Go stream container images from tako instead of from skopeo.

pub mod http_proxy;
pub mod image_proxy;
pub mod image_proxy_socket;
pub mod local_image;
