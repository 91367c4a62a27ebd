//! `Kind=container` from a registry origin honours the host's registries.conf, as `tako
//! image pull` does: a mirror serves the blobs and manifests of the signed image (they go
//! by digest), the signed manifest still comes from the origin, and a mirror that lacks a
//! blob leaves it to the registry. The registry and its mirror are one `docker-registry`
//! behind two recording proxies, so each side's requests are counted apart.

use std::fs;
use std::path::Path;

use super::container::{hex, host_config, installed_version, latest_target, publish};
use crate::image::Lab;
use crate::support;
use support::images::{Format, app_index, sha256_digest};
use support::registry_proxy::RegistryProxy;
use support::tako::*;

fn fetch_with(conf: &Path, config: &Path) -> std::process::Output {
    Fetch::new()
        .env("CONTAINERS_REGISTRIES_CONF", conf)
        .run(&[], &[config])
}

/// The hexes of the blobs and manifests asked for by digest, and the tags asked for.
fn by_digest(proxy: &RegistryProxy) -> Vec<String> {
    proxy
        .requests()
        .iter()
        .filter(|r| r.method == "GET")
        .filter_map(|r| r.route().rsplit_once("sha256:").map(|(_, h)| h.to_owned()))
        .collect()
}

fn tags(proxy: &RegistryProxy) -> Vec<String> {
    proxy
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && !r.route().contains("sha256:"))
        .filter_map(|r| r.route().split("/manifests/").nth(1).map(str::to_owned))
        .collect()
}

#[test]
fn a_registries_conf_mirror_serves_the_blobs_of_a_container_update() {
    let lab = Lab::new();
    let mirror = RegistryProxy::start(&lab.registry.host());
    let target = lab.registry.origin("published");
    let v1 = app_index(Format::Oci, "1");
    let hex1 = publish(&lab, &target, &v1, "1.0");
    // The host names the registry through one proxy; registries.conf mirrors it by the
    // other, `mirrored/` first (an empty repository), then `published/`.
    let origin = format!("oci+http://{}/published", lab.proxy.host());
    let (config, dest) = host_config(&lab, &origin);
    let conf = lab.path("registries.conf");
    let write_conf = |locations: &[&str]| {
        let mut text = format!(
            "[[registry]]\nprefix = \"{p}/published\"\nlocation = \"{p}/published\"\ninsecure = true\n",
            p = lab.proxy.host()
        );
        for location in locations {
            text.push_str(&format!(
                "[[registry.mirror]]\nlocation = \"{}/{location}\"\ninsecure = true\n",
                mirror.host()
            ));
        }
        fs::write(&conf, text).unwrap();
    };
    write_conf(&["published"]);
    // Publishing read the source image through the registry's proxy: not the host's doing.
    lab.proxy.clear_requests();

    let o = fetch_with(&conf, &config);
    assert_exit(&o, 0);
    assert_eq!(latest_target(&dest), format!("store/{hex1}"));
    assert_eq!(installed_version(&dest), "1\n");
    // Every blob and manifest of the image from the mirror; from the registry, only the
    // signed manifest (its tag, and the artifact's layer that holds its bytes).
    let image = &v1.images[0];
    let mirrored = by_digest(&mirror);
    let primary = by_digest(&lab.proxy);
    for wanted in [
        hex1.clone(),
        hex(&image.manifest_digest()),
        hex(&image.config_digest()),
        hex(&sha256_digest(&image.layers[0].blob)),
        hex(&sha256_digest(&image.layers[1].blob)),
    ] {
        assert!(
            mirrored.contains(&wanted),
            "{wanted} not from the mirror: {mirrored:?}"
        );
        assert!(!primary.contains(&wanted), "{wanted} from the registry too");
    }
    assert!(
        tags(&lab.proxy)
            .iter()
            .any(|t| t.starts_with("tako-manifest"))
    );
    assert!(tags(&mirror).is_empty(), "the mirror was asked for a tag");

    // A mirror that lacks the image (`mirrored/` is empty) leaves it to the next place.
    write_conf(&["mirrored"]);
    let v2 = app_index(Format::Oci, "2");
    let hex2 = publish(&lab, &target, &v2, "2.0");
    mirror.clear_requests();
    lab.proxy.clear_requests();
    let o = fetch_with(&conf, &config);
    assert_exit(&o, 0);
    assert_eq!(latest_target(&dest), format!("store/{hex2}"));
    assert_eq!(installed_version(&dest), "2\n");
    let app2 = hex(&sha256_digest(&v2.images[0].layers[1].blob));
    assert!(
        by_digest(&mirror).contains(&app2),
        "{:?}",
        by_digest(&mirror)
    );
    assert!(by_digest(&lab.proxy).contains(&app2));

    // A blocked registry is refused, as `tako image pull` refuses it, with the tree kept.
    fs::write(
        &conf,
        format!(
            "[[registry]]\nprefix = \"{}/published\"\nblocked = true\n",
            lab.proxy.host()
        ),
    )
    .unwrap();
    publish(&lab, &target, &app_index(Format::Oci, "3"), "3.0");
    let o = fetch_with(&conf, &config);
    assert_exit(&o, 1);
    assert!(stderr(&o).contains("blocked"), "{}", stderr(&o));
    assert_eq!(latest_target(&dest), format!("store/{hex2}"));
}
