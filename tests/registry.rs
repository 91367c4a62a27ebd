//! OCI registries as origins (issue 13), against a real distribution registry
//! (`docker-registry`) and against the loopback server acting as a registry.

mod support;

use support::registry::{self, Registry};

fn get(url: &str, auth: Option<(&str, &str)>) -> u16 {
    let mut req = ureq::get(url);
    if let Some((user, password)) = auth {
        use base64::Engine;
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        req = req.header("Authorization", &format!("Basic {basic}"));
    }
    match req.config().http_status_as_error(false).build().call() {
        Ok(r) => r.status().as_u16(),
        Err(e) => panic!("GET {url}: {e}"),
    }
}

#[test]
fn the_test_registry_starts_with_and_without_basic_auth() {
    if !registry::available() {
        return;
    }
    let open = Registry::start();
    assert_eq!(get(&format!("http://{}/v2/", open.host()), None), 200);
    let closed = Registry::with_basic_auth("alice", "s3cret-pass");
    let url = format!("http://{}/v2/", closed.host());
    assert_eq!(get(&url, None), 401);
    assert_eq!(get(&url, Some(("alice", "wrong"))), 401);
    assert_eq!(get(&url, Some(("alice", "s3cret-pass"))), 200);
}
