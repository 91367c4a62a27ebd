//! OCI registries (issue 13): publishing to one and fetching from one,
//! and rotating the publisher's key on one.

mod concurrent_publish;
mod key_rotation;
mod publish_and_fetch;
mod transport;
