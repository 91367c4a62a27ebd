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

#[test]
fn a_toml_value_of_the_wrong_type_says_which_key_what_it_got_and_what_to_write() {
    let world = World::new();
    world.publish("1.0");
    let config = world.path("app.toml");
    std::fs::write(
        &config,
        format!(
            "origin = \"{}\"\npublic_key = \"{TEST_PUBLIC}\"\ndestination = \"{}\"\nversion = \"*\"\nkeep = \"3\"\n",
            world.file_url(),
            world.dest().display()
        ),
    )
    .unwrap();

    let o = fetch(&[], &[&config]);

    assert_exit(&o, 1);
    let err = stderr(&o);
    assert!(
        err.starts_with(&format!(
            "tako: error: {}:5: keep must be a whole number without quotes, like `keep = 3`; found the string \"3\"\n",
            config.display()
        )),
        "{err}"
    );
}

#[test]
fn init_with_an_installed_image_the_pattern_no_longer_matches_says_what_to_change() {
    let world = World::new();
    world.publish("1.0");
    let config = world.config("app.tako", &world.file_url(), "1.*", "");
    assert_exit(&fetch(&[], &[&config]), 0);
    // The operator moves the host to 2.x before 2.0 is published.
    let config = world.config("app.tako", &world.file_url(), "2.*", "");

    let o = fetch(&["--init"], &[&config]);

    assert_exit(&o, 1);
    let err = stderr(&o);
    assert!(
        err.starts_with(&format!(
            "tako: error: {}: no version matches 2.* (available: 1.0); the installed version 1.0 does not match it either, and --init needs an image that does: set Version= to a pattern a published version matches, or publish a version that matches 2.*\n",
            config.display()
        )),
        "{err}"
    );
}
