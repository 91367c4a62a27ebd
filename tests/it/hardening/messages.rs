//! Issue 23 items Q and 15: failures said in words that tell what is wrong and what to do,
//! not in the words of the library or the protocol that noticed.

use crate::support;

use support::http_server::{Fault, Server};
use support::origin::World;
use support::tako::*;

#[test]
fn a_redirect_loop_of_a_web_origin_is_called_one_naming_the_last_location() {
    let world = World::new();
    world.publish("1.0");
    let server = Server::serve_dir(world.origin());
    server.set_fault("/manifest", Fault::Redirect("/manifest".into()));
    let config = world.config("app.tako", &server.url(), "*", "");

    let o = fetch(&["--retries", "0"], &[&config]);

    assert_exit(&o, 1);
    let err = stderr(&o);
    let manifest = server.url_for("/manifest");
    assert!(
        err.contains(&format!(
            "too many redirects (10) starting at {manifest}; the last Location was {manifest}"
        )),
        "{err}"
    );
}

#[test]
fn a_redirect_loop_of_a_registry_is_called_one_not_an_http_status() {
    let world = World::new();
    let registry = Server::serve_dir(world.path("empty"));
    let manifest = "/v2/app/manifests/tako-manifest";
    registry.set_fault(manifest, Fault::Redirect(manifest.into()));
    let origin = format!(
        "oci+http://{}/app",
        registry.url().trim_start_matches("http://")
    );
    let config = world.config("app.tako", &origin, "*", "");

    let o = fetch(&["--retries", "0"], &[&config]);

    assert_exit(&o, 1);
    let err = stderr(&o);
    assert!(
        err.contains(&format!(
            "too many redirects (5) starting at {0}; the last Location was {0}",
            registry.url_for(manifest)
        )),
        "{err}"
    );
    assert!(!err.contains("HTTP 302"), "{err}");
}
