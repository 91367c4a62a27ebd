//! The host's registries.conf (issue 21): mirrors tried before the registry, a
//! `mirror-by-digest-only` mirror skipped for a tag, a blocked registry refused before any
//! request, aliases, drop-ins over the main file, and a file that does not parse. The
//! registry and its "mirror" are one `docker-registry` behind two recording proxies, so
//! each side's requests are counted apart; references are written without a scheme, so
//! plain HTTP comes from `insecure = true` as on a host.

use std::fs;

use super::*;

/// A lab with a second proxy to the same registry: the mirror.
struct Mirrored {
    lab: Lab,
    mirror: RegistryProxy,
    conf: PathBuf,
}

impl Mirrored {
    fn new() -> Mirrored {
        let lab = Lab::new();
        let mirror = RegistryProxy::start(&lab.registry.host());
        let conf = lab.path("etc/registries.conf");
        fs::create_dir_all(conf.parent().unwrap()).unwrap();
        Mirrored { lab, mirror, conf }
    }

    /// The registry as the images name it.
    fn primary(&self) -> String {
        self.lab.proxy.host()
    }

    /// registries.conf: the registry's `team/` namespace, plain HTTP, with the mirror's
    /// `mirrored/` namespace as its mirror; `extra` lines go into the `[[registry]]` table.
    fn write_conf(&self, extra: &str) {
        let text = format!(
            "unqualified-search-registries = [\"docker.io\"]\n[[registry]]\nprefix = \"{p}/team\"\nlocation = \"{p}/team\"\ninsecure = true\n{extra}\n[[registry.mirror]]\nlocation = \"{m}/mirrored\"\ninsecure = true\n",
            p = self.primary(),
            m = self.mirror.host()
        );
        fs::write(&self.conf, text).unwrap();
    }

    fn tako(&self, args: &[&str]) -> Output {
        let mut cmd = tako_cmd();
        cmd.env("CONTAINERS_REGISTRIES_CONF", &self.conf).args(args);
        Bounded::new(&mut cmd).run()
    }

    fn pull(&self, image: &str, dir: &Path) -> Output {
        let cache = self.lab.cache();
        self.tako(&[
            "image",
            "pull",
            "--cache",
            cache.to_str().unwrap(),
            image,
            dir.to_str().unwrap(),
        ])
    }
}

#[test]
fn a_mirror_serves_an_image_its_registry_lacks() {
    let m = Mirrored::new();
    m.write_conf("");
    let digest = m.lab.push(&plain_image("mirrored"), "mirrored/app:v1");
    let image = format!("{}/team/app:v1", m.primary());
    let dir = m.lab.path("root");
    let o = m.pull(&image, &dir);
    assert_success(&o);
    assert_eq!(fs::read(dir.join("etc/marker")).unwrap(), b"mirrored\n");
    let text = all_output(&o);
    assert!(
        text.contains(&m.mirror.host()),
        "which mirror served is not said:\n{text}"
    );
    assert!(
        m.lab.proxy.requests().is_empty(),
        "the registry was asked though the mirror had it"
    );
    let o = m.tako(&["image", "digest", "--json", &image]);
    assert_success(&o);
    let record: serde_json::Value = serde_json::from_str(out(&o).trim()).unwrap();
    assert_eq!(record["digest"], digest.as_str());
    assert_eq!(
        record["mirror"],
        format!("{}/mirrored", m.mirror.host()).as_str()
    );
}

#[test]
fn the_registry_serves_what_the_mirror_lacks() {
    let m = Mirrored::new();
    m.write_conf("");
    m.lab.push(&plain_image("primary"), "team/app:v1");
    let dir = m.lab.path("root");
    let o = m.pull(&format!("{}/team/app:v1", m.primary()), &dir);
    assert_success(&o);
    assert_eq!(fs::read(dir.join("etc/marker")).unwrap(), b"primary\n");
    assert!(
        !m.mirror.requests().is_empty(),
        "the mirror was not tried first"
    );
    assert!(!all_output(&o).contains("from the mirror"));
}

#[test]
fn a_digest_only_mirror_is_skipped_for_a_tag_and_used_for_a_digest() {
    let m = Mirrored::new();
    m.write_conf("mirror-by-digest-only = true");
    let image = plain_image("both");
    let digest = m.lab.push(&image, "team/app:v1");
    m.lab.push(&image, "mirrored/app:v1");
    let o = m.pull(
        &format!("{}/team/app:v1", m.primary()),
        &m.lab.path("by-tag"),
    );
    assert_success(&o);
    assert!(
        m.mirror.requests().is_empty(),
        "a tag pull asked the digest-only mirror"
    );
    m.lab.proxy.clear_requests();
    let o = m.pull(
        &format!("{}/team/app@{digest}", m.primary()),
        &m.lab.path("by-digest"),
    );
    assert_success(&o);
    assert!(
        !m.mirror.requests().is_empty(),
        "a digest pull did not use the mirror"
    );
    assert!(
        m.lab.proxy.requests().is_empty(),
        "the registry was asked though the mirror had it"
    );
}

#[test]
fn a_blocked_registry_is_refused_before_any_request() {
    let m = Mirrored::new();
    m.write_conf("blocked = true");
    m.lab.push(&plain_image("blocked"), "team/app:v1");
    let image = format!("{}/team/app:v1", m.primary());
    let dir = m.lab.path("root");
    for o in [m.pull(&image, &dir), m.tako(&["image", "digest", &image])] {
        assert_failure(&o);
        let e = err(&o);
        assert!(e.contains("blocked"), "{e}");
        assert!(
            e.contains(&format!("{}/team", m.primary())),
            "the registry is not named:\n{e}"
        );
        assert!(
            e.contains(m.conf.to_str().unwrap()),
            "the file is not named:\n{e}"
        );
    }
    assert!(
        m.lab.proxy.requests().is_empty(),
        "a request reached the blocked registry"
    );
    assert!(
        m.mirror.requests().is_empty(),
        "a request reached its mirror"
    );
    assert!(!dir.exists());
}

#[test]
fn an_alias_names_the_image_a_short_name_pulls() {
    let m = Mirrored::new();
    let text = format!(
        "[aliases]\n\"webapp\" = \"{p}/team/app\"\n[[registry]]\nlocation = \"{p}\"\ninsecure = true\n",
        p = m.primary()
    );
    fs::write(&m.conf, text).unwrap();
    m.lab.push(&plain_image("aliased"), "team/app:v2");
    let dir = m.lab.path("root");
    let o = m.pull("webapp:v2", &dir);
    assert_success(&o);
    assert_eq!(fs::read(dir.join("etc/marker")).unwrap(), b"aliased\n");
    assert!(all_output(&o).contains(&format!("{}/team/app:v2", m.primary())));
}

#[test]
fn a_drop_in_replaces_the_main_files_entry_for_its_prefix() {
    let m = Mirrored::new();
    m.write_conf("blocked = true");
    let drop_ins = m.conf.parent().unwrap().join("registries.conf.d");
    fs::create_dir(&drop_ins).unwrap();
    fs::write(
        drop_ins.join("50-open.conf"),
        format!(
            "[[registry]]\nprefix = \"{p}/team\"\nlocation = \"{p}/team\"\ninsecure = true\n",
            p = m.primary()
        ),
    )
    .unwrap();
    m.lab.push(&plain_image("opened"), "team/app:v1");
    let o = m.pull(&format!("{}/team/app:v1", m.primary()), &m.lab.path("root"));
    assert_success(&o);
    // The drop-in's entry has no mirror: the main file's is gone with the rest of it.
    assert!(m.mirror.requests().is_empty());
}

#[test]
fn a_registries_conf_that_does_not_parse_stops_the_pull_naming_the_file_and_line() {
    let m = Mirrored::new();
    fs::write(
        &m.conf,
        "[[registry]]\nlocation = \"a.example\"\nblocked = maybe\n",
    )
    .unwrap();
    m.lab.push(&plain_image("never"), "team/app:v1");
    let o = m.pull(&format!("{}/team/app:v1", m.primary()), &m.lab.path("root"));
    assert_failure(&o);
    let e = err(&o);
    assert!(e.contains(&format!("{}, line 3", m.conf.display())), "{e}");
    assert!(m.lab.proxy.requests().is_empty());
}

#[test]
fn insecure_lets_a_pull_reach_a_registry_whose_certificate_is_not_trusted() {
    let m = Mirrored::new();
    m.lab.push(&plain_image("over https"), "team/app:v1");
    let leaf = support::tls_server::self_signed(&["127.0.0.1"]);
    let https = m.lab.registry.tls_beside(&leaf.cert_pem(), &leaf.key_pem());
    let image = format!("{}/team/app:v1", https.host());
    let entry = |insecure: bool| {
        format!(
            "[[registry]]\nlocation = \"{}\"\ninsecure = {insecure}\n",
            https.host()
        )
    };

    fs::write(&m.conf, entry(false)).unwrap();
    let dir = m.lab.path("refused");
    let o = m.pull(&image, &dir);
    assert_failure(&o);
    assert!(err(&o).contains("self-signed"), "{}", err(&o));
    assert!(!dir.exists());

    fs::write(&m.conf, entry(true)).unwrap();
    let dir = m.lab.path("root");
    let o = m.pull(&image, &dir);
    assert_success(&o);
    assert_eq!(fs::read(dir.join("etc/marker")).unwrap(), b"over https\n");
}
