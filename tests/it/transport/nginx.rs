//! The nginx test harness itself: tako fetches from a real nginx, and the access log shows
//! what nginx saw and sent.

use crate::support;

use support::nginx::Nginx;
use support::origin::World;
use support::tako::*;

#[test]
fn tako_fetches_an_image_from_a_real_nginx_and_the_access_log_shows_each_request() {
    let world = World::new();
    let content = vec![b'n'; 300 * 1024 + 5];
    let digest = world.publish_bytes("1.0", &content);
    let nginx = Nginx::serve_dir(&world.origin());
    let config = world.config("c.conf", &nginx.url(), "1.*", "");

    let o = tako(&["fetch", config.to_str().unwrap()]);
    assert_exit(&o, 0);
    world.assert_latest(&digest, &content);

    let records = nginx.wait_records(2);
    let image = records
        .iter()
        .find(|r| r.uri == format!("/store/{digest}"))
        .unwrap_or_else(|| panic!("no request for the image in {records:#?}"));
    assert_eq!(image.method, "GET");
    assert_eq!(image.status, 200);
    assert_eq!(image.body_bytes_sent, content.len() as u64);
    assert_eq!(image.range, None);
    assert!(!image.authorization);
    let manifest = records
        .iter()
        .find(|r| r.uri.starts_with("/manifest"))
        .unwrap_or_else(|| panic!("no request for the manifest in {records:#?}"));
    assert_eq!(manifest.status, 200);
    assert_eq!(
        manifest.body_bytes_sent,
        std::fs::metadata(world.origin().join("manifest"))
            .unwrap()
            .len()
    );
}

#[test]
fn a_missing_file_is_logged_as_a_404_and_tako_names_it() {
    let world = World::new();
    let nginx = Nginx::serve_dir(&world.origin());
    let config = world.config("c.conf", &nginx.url(), "1.*", "");

    let o = tako(&["fetch", config.to_str().unwrap()]);
    assert_ne!(o.status.code(), Some(0));
    assert!(stderr(&o).contains("404"), "{}", stderr(&o));
    let records = nginx.wait_records(1);
    assert!(
        records
            .iter()
            .any(|r| r.status == 404 && r.uri.starts_with("/manifest")),
        "{records:#?}"
    );
}
