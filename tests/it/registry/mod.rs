//! OCI registries (issue 13): publishing to one and fetching from one.

mod publish_and_fetch;
