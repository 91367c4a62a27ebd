//! OCI registries as origins (issue 13), against a real distribution registry
//! (`docker-registry`), stock tools (`skopeo`) and the loopback server acting as a registry.

use crate::support;

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use support::distribution::{
    self as oci, IMAGE_TYPE, INDEX_TYPE, MANIFEST_TYPE, Repository, artifact, descriptor,
};
use support::origin::World;
use support::registry::{self, Registry};
use support::tako::{
    Fetch, assert_exit, fetch, run_bounded, sha256_hex, signed_manifest, stderr, stdout, tako,
    tako_cmd, test_secret,
};

const USER: &str = "publisher";
const PASSWORD: &str = "pa55-very-secret-word";

/// `tako` with the registry credentials of `auth_file` only (`tako_cmd` leaves it none of
/// the developer's).
fn tako_with_auth(args: &[&str], auth_file: Option<&Path>) -> Output {
    let mut cmd = tako_cmd();
    if let Some(file) = auth_file {
        cmd.env("REGISTRY_AUTH_FILE", file);
    }
    run_bounded(cmd.args(args))
}

/// Publishes `content` as `version` into `origin`.
fn store(w: &World, origin: &str, version: &str, content: &[u8], auth: Option<&Path>) -> Output {
    let image = w.path(&format!("image-{version}"));
    fs::write(&image, content).unwrap();
    let secret = test_secret();
    tako_with_auth(
        &[
            "store",
            "-k",
            &secret,
            "-o",
            origin,
            image.to_str().unwrap(),
            version,
        ],
        auth,
    )
}

#[track_caller]
fn store_ok(w: &World, origin: &str, version: &str, content: &[u8]) -> String {
    let o = store(w, origin, version, content, None);
    assert_exit(&o, 0);
    let hex = sha256_hex(content);
    assert_eq!(stdout(&o).trim(), format!("{version} -> {hex}"));
    hex
}

/// The signed manifest the repository's `tako-manifest` tag holds, read independently.
fn registry_manifest(origin: &str) -> Vec<u8> {
    Repository::of(origin).signed_manifest()
}

/// Replaces the repository's `tako-manifest` with an artifact holding `bytes`, as a hostile
/// or careless publisher could.
fn push_manifest_bytes(origin: &str, bytes: &[u8]) {
    Repository::of(origin).push_signed_manifest(bytes);
}

fn tags(registry: &Registry, repository: &str) -> Vec<String> {
    let url = format!("http://{}/v2/{repository}/tags/list", registry.host());
    let body = ureq::get(&url)
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    let parsed: serde_json::Value = serde_json::from_str(&body).unwrap();
    let mut tags: Vec<String> = parsed["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect();
    tags.sort();
    tags
}

fn line(version: &str, content: &[u8]) -> String {
    format!("{version} {} {}", content.len(), sha256_hex(content))
}

#[test]
fn the_test_registry_starts_with_and_without_basic_auth() {
    let get = |url: &str, auth: Option<&str>| {
        let mut req = ureq::get(url);
        if let Some(password) = auth {
            req = req.header("Authorization", &oci::basic(USER, password));
        }
        req.config()
            .http_status_as_error(false)
            .build()
            .call()
            .unwrap()
            .status()
            .as_u16()
    };
    let open = Registry::start();
    assert_eq!(get(&format!("http://{}/v2/", open.host()), None), 200);
    let closed = Registry::with_basic_auth(USER, PASSWORD);
    let url = format!("http://{}/v2/", closed.host());
    assert_eq!(get(&url, None), 401);
    assert_eq!(get(&url, Some("wrong")), 401);
    assert_eq!(get(&url, Some(PASSWORD)), 200);
}

#[test]
fn three_versions_published_to_a_registry_are_tagged_and_listed_in_the_signed_manifest() {
    let r = Registry::start();
    let w = World::new();
    let origin = r.origin("fleet/app");
    let (a, b, c) = (
        b"image one\n".to_vec(),
        b"image two\n".to_vec(),
        vec![7u8; 3 * 1024 * 1024],
    );
    store_ok(&w, &origin, "1.0", &a);
    store_ok(&w, &origin, "1.1", &b);
    // Not a valid OCI tag: tagged by its digest instead.
    let hex_c = store_ok(&w, &origin, "2.0+build.5", &c);

    assert_eq!(
        registry_manifest(&origin),
        signed_manifest(&[line("1.0", &a), line("1.1", &b), line("2.0+build.5", &c)])
    );
    let mut expected = vec![
        "1.0".to_string(),
        "1.1".to_string(),
        format!("sha256-{hex_c}"),
        "tako-manifest".to_string(),
    ];
    expected.sort();
    assert_eq!(tags(&r, "fleet/app"), expected);
    // Each image is a registry blob under Tako's own digest.
    let blob = Repository::of(&origin).blob(&format!("sha256:{hex_c}"));
    assert_eq!(blob, c);
}

#[test]
fn an_image_larger_than_one_chunk_is_uploaded_in_chunks_and_published_again_without_upload() {
    let r = Registry::start();
    let w = World::new();
    let origin = r.origin("big");
    // Past the 8 MiB single-PUT limit, not a multiple of it.
    let content: Vec<u8> = (0..(17u32 << 20) + 5).map(|i| (i % 251) as u8).collect();
    let hex = store_ok(&w, &origin, "1.0", &content);
    let blob = Repository::of(&origin).blob(&format!("sha256:{hex}"));
    assert!(
        blob == content,
        "the blob in the registry differs from the image"
    );
    // The same image as another version: the blob is there already.
    store_ok(&w, &origin, "1.0.1", &content);
    assert_eq!(
        registry_manifest(&origin),
        signed_manifest(&[line("1.0", &content), line("1.0.1", &content)])
    );
}

#[test]
fn skopeo_inspect_shows_a_published_version() {
    registry::require_skopeo();
    let r = Registry::start();
    let w = World::new();
    let origin = r.origin("app");
    let hex = store_ok(&w, &origin, "1.4.2", b"the image\n");
    let o = run_bounded(
        Command::new("skopeo")
            .args(["inspect", "--raw", "--tls-verify=false"])
            .arg(format!("docker://{}/app:1.4.2", r.host())),
    );
    assert!(o.status.success(), "skopeo: {}", stderr(&o));
    let raw: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(raw["artifactType"], IMAGE_TYPE);
    assert_eq!(raw["layers"][0]["digest"], format!("sha256:{hex}"));
    assert_eq!(raw["layers"][0]["size"], 10);
    assert_eq!(
        raw["annotations"]["org.opencontainers.image.version"],
        "1.4.2"
    );
}

#[test]
fn publishing_over_a_registry_manifest_signed_by_another_key_is_refused() {
    let r = Registry::start();
    let w = World::new();
    let origin = r.origin("app");
    store_ok(&w, &origin, "1.0", b"one\n");
    // Someone else's manifest, well signed by their key.
    use base64::Engine;
    use ed25519_dalek::Signer;
    let body = format!("Tako Manifest 1\n\n{}\n\n", line("6.6.6", b"evil\n"));
    let other = ed25519_dalek::SigningKey::from_bytes(&[9u8; 32]);
    let sig =
        base64::engine::general_purpose::STANDARD.encode(other.sign(body.as_bytes()).to_bytes());
    let foreign = format!("{body}{sig}\n").into_bytes();
    push_manifest_bytes(&origin, &foreign);

    let o = store(&w, &origin, "1.1", b"two\n", None);
    assert_exit(&o, 1);
    assert!(
        stderr(&o).contains(&format!(
            "tako: error: the manifest in {origin} is signed by another key"
        )),
        "{}",
        stderr(&o)
    );
    assert_eq!(registry_manifest(&origin), foreign, "the tag must not move");
    assert!(!tags(&r, "app").contains(&"1.1".to_string()));
}

#[test]
fn publishing_to_a_registry_with_basic_auth_reads_the_auth_file_and_never_prints_credentials() {
    let r = Registry::with_basic_auth(USER, PASSWORD);
    let w = World::new();
    let origin = r.origin("private/app");
    use base64::Engine;
    let encode = |password: &str| {
        base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{password}"))
    };
    let auth_file = |name: &str, password: &str| {
        let path = w.path(name);
        fs::write(
            &path,
            format!(
                r#"{{"auths":{{"{}":{{"auth":"{}"}}}}}}"#,
                r.host(),
                encode(password)
            ),
        )
        .unwrap();
        path
    };

    // No credentials anywhere: said clearly.
    let o = store(&w, &origin, "1.0", b"one\n", None);
    assert_exit(&o, 1);
    assert!(
        stderr(&o).contains(&format!(
            "registry {} wants credentials for private/app",
            r.host()
        )),
        "{}",
        stderr(&o)
    );

    // Wrong ones: refused, and neither they nor their encoding are shown.
    let wrong = auth_file("wrong.json", "not-the-password");
    let o = store(&w, &origin, "1.0", b"one\n", Some(&wrong));
    assert_exit(&o, 1);
    let err = stderr(&o);
    assert!(
        err.contains(&format!(
            "registry {} refused the credentials for private/app",
            r.host()
        )),
        "{err}"
    );
    for secret in ["not-the-password", &encode("not-the-password")] {
        assert!(
            !err.contains(secret) && !stdout(&o).contains(secret),
            "{err}"
        );
    }

    // The right ones publish.
    let right = auth_file("auth.json", PASSWORD);
    let o = store(&w, &origin, "1.0", b"one\n", Some(&right));
    assert_exit(&o, 0);
    for secret in [PASSWORD, &encode(PASSWORD)] {
        assert!(!stderr(&o).contains(secret) && !stdout(&o).contains(secret));
    }
    let bytes = Repository::of(&origin)
        .with_basic_auth(USER, PASSWORD)
        .signed_manifest();
    assert_eq!(bytes, signed_manifest(&[line("1.0", b"one\n")]));
}

// ---- fetch from a registry ----

/// Runs `tako fetch CONFIG` with the registry credentials of `auth_file` only.
#[test]
fn fetch_from_a_registry_installs_and_updates_a_destination() {
    let r = Registry::start();
    let w = World::new();
    let origin = r.origin("fleet/app");
    let one = b"version one\n".to_vec();
    let d1 = store_ok(&w, &origin, "1.0", &one);
    let config = w.config("app.tako", &origin, "*", "");
    let o = fetch(&[], &[&config]);
    assert_exit(&o, 0);
    w.assert_latest(&d1, &one);

    store_ok(&w, &origin, "1.1", b"version 1.1\n");
    let three = vec![3u8; 9 << 20];
    let d3 = store_ok(&w, &origin, "2.0+build.5", &three);
    // `tako check` asks the registry too: an update is there (exit 100), nothing changes.
    let check = |expected: i32| {
        let o = tako_with_auth(&["check", config.to_str().unwrap()], None);
        assert_exit(&o, expected);
    };
    check(100);
    w.assert_latest(&d1, &one);
    let o = fetch(&[], &[&config]);
    assert_exit(&o, 0);
    w.assert_latest(&d3, &three);
    check(0);
    // The destination's manifest is the registry's, byte for byte.
    assert_eq!(
        fs::read(w.dest().join("manifest")).unwrap(),
        registry_manifest(&origin)
    );
}

#[test]
fn fetch_from_a_registry_with_basic_auth_reads_the_auth_file_and_never_prints_credentials() {
    let r = Registry::with_basic_auth(USER, PASSWORD);
    let w = World::new();
    let origin = r.origin("private/app");
    let auth = w.path("auth.json");
    use base64::Engine;
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    fs::write(
        &auth,
        format!(r#"{{"auths":{{"{}":{{"auth":"{encoded}"}}}}}}"#, r.host()),
    )
    .unwrap();
    let content = b"private image\n".to_vec();
    let o = store(&w, &origin, "1.0", &content, Some(&auth));
    assert_exit(&o, 0);
    let config = w.config("app.tako", &origin, "1.*", "");

    let o = fetch(&[], &[&config]);
    assert_exit(&o, 1);
    assert!(
        stderr(&o).contains(&format!(
            "registry {} wants credentials for private/app",
            r.host()
        )),
        "{}",
        stderr(&o)
    );
    assert_eq!(w.latest(), None);

    let o = Fetch::new()
        .env("REGISTRY_AUTH_FILE", &auth)
        .run(&[], &[&config]);
    assert_exit(&o, 0);
    w.assert_latest(&sha256_hex(&content), &content);
    for secret in [PASSWORD, encoded.as_str()] {
        assert!(!stderr(&o).contains(secret) && !stdout(&o).contains(secret));
    }
}

#[test]
fn a_registry_re_pushed_with_an_unsigned_manifest_is_refused() {
    let r = Registry::start();
    let w = World::new();
    let origin = r.origin("app");
    let one = b"one\n".to_vec();
    let d1 = store_ok(&w, &origin, "1.0", &one);
    let config = w.config("app.tako", &origin, "*", "");
    assert_exit(&fetch(&[], &[&config]), 0);

    // An attacker with push rights adds a version but cannot sign it.
    let evil = b"evil\n".to_vec();
    let good = String::from_utf8(registry_manifest(&origin)).unwrap();
    // The publisher's own signature, over the old body, under a body with one more line.
    let (body, signature) = good.trim_end().rsplit_once('\n').unwrap();
    let forged = format!(
        "{}\n{}\n\n{signature}\n",
        body.trim_end(),
        line("9.9", &evil)
    );
    push_manifest_bytes(&origin, forged.as_bytes());
    Repository::of(&origin).push_blob(&evil);

    let o = fetch(&[], &[&config]);
    assert_exit(&o, 1);
    let err = stderr(&o);
    assert!(
        err.contains(&format!("tako: error: {}", config.display()))
            && err.contains(&format!("{origin}:tako-manifest"))
            && err.contains("signature"),
        "{err}"
    );
    w.assert_latest(&d1, &one);
    assert!(!w.store_files().contains(&sha256_hex(&evil)));
}

#[test]
fn a_registry_re_pushed_with_a_rolled_back_manifest_is_refused() {
    let r = Registry::start();
    let w = World::new();
    let origin = r.origin("app");
    let one = b"one\n".to_vec();
    let two = b"two\n".to_vec();
    store_ok(&w, &origin, "1.0", &one);
    // What the registry served before 1.1 (signed, but old).
    let old = registry_manifest(&origin);
    let d2 = store_ok(&w, &origin, "1.1", &two);
    let config = w.config("app.tako", &origin, "*", "");
    assert_exit(&fetch(&[], &[&config]), 0);
    w.assert_latest(&d2, &two);

    push_manifest_bytes(&origin, &old);
    let o = fetch(&[], &[&config]);
    assert_exit(&o, 1);
    assert!(stderr(&o).contains("1.1"), "{}", stderr(&o));
    assert!(
        stderr(&o).to_lowercase().contains("rollback") || stderr(&o).contains("no longer"),
        "{}",
        stderr(&o)
    );
    w.assert_latest(&d2, &two);
}

#[test]
fn a_registry_blob_that_does_not_match_its_digest_is_refused() {
    let r = Registry::start();
    let w = World::new();
    let origin = r.origin("app");
    let content = b"the real image\n".to_vec();
    let hex = store_ok(&w, &origin, "1.0", &content);
    // Damaged in the registry's storage, same length, behind its back.
    let data = r
        .storage()
        .join("docker/registry/v2/blobs/sha256")
        .join(&hex[..2])
        .join(&hex)
        .join("data");
    fs::write(&data, b"the fake image\n").unwrap();

    let config = w.config("app.tako", &origin, "*", "");
    let o = fetch(&[], &[&config]);
    assert_exit(&o, 1);
    assert!(stderr(&o).contains(&hex), "{}", stderr(&o));
    assert_eq!(w.latest(), None);
    assert!(!w.store_files().contains(&hex));
}

#[test]
fn a_skopeo_sync_of_the_repository_is_an_origin_tako_fetches_from_unchanged() {
    registry::require_skopeo();
    let first = Registry::start();
    let second = Registry::start();
    let w = World::new();
    let origin = first.origin("fleet/app");
    store_ok(&w, &origin, "1.0", b"one\n");
    let last = b"two, with a version that is no tag\n".to_vec();
    // `+` is no tag character, and tako orders 2.0+x after 1.0.
    let d2 = store_ok(&w, &origin, "2.0+x", &last);
    let o = run_bounded(
        Command::new("skopeo")
            .args([
                "sync",
                "--src-tls-verify=false",
                "--dest-tls-verify=false",
                "--src",
                "docker",
                "--dest",
                "docker",
            ])
            .arg(format!("{}/fleet/app", first.host()))
            .arg(format!("{}/copy", second.host())),
    );
    assert!(o.status.success(), "skopeo sync: {}", stderr(&o));
    drop(first);

    let config = w.config("app.tako", &second.origin("copy/app"), "*", "");
    let o = fetch(&[], &[&config]);
    assert_exit(&o, 0);
    w.assert_latest(&d2, &last);
}

#[test]
fn mirrors_may_mix_a_registry_and_a_web_server() {
    let r = Registry::start();
    let w = World::new();
    let content = World::content("1.0");
    let hex = store_ok(&w, &r.origin("app"), "1.0", &content);
    // The same signed manifest and image in a plain directory.
    w.publish("1.0");
    let server = support::http_server::Server::serve_dir(w.origin());

    // The registry first, but its repository is gone: the web server serves.
    let config = w.config(
        "a.tako",
        &r.origin("gone"),
        "*",
        &format!("Origin={}\n", server.url()),
    );
    let o = fetch(&[], &[&config]);
    assert_exit(&o, 0);
    w.assert_latest(&hex, &content);
    fs::remove_dir_all(w.dest()).unwrap();
    fs::create_dir(w.dest()).unwrap();

    // The web server first, but down: the registry serves.
    drop(server);
    let config = w.config(
        "b.tako",
        "http://127.0.0.1:9/",
        "*",
        &format!("Origin={}\n", r.origin("app")),
    );
    let o = fetch(&[], &[&config]);
    assert_exit(&o, 0);
    w.assert_latest(&hex, &content);
}

// ---- the Bearer token flow, against the loopback server as registry and token service ----

const TOKEN: &str = "tok-3f9a-loopback";

/// A loopback "registry" serving one repository `app` with `content` published as 1.0, every
/// registry path guarded by a Bearer challenge whose token service is the same server.
fn bearer_registry(w: &World, content: &[u8]) -> support::http_server::Server {
    bearer_registry_with(w, content, None)
}

/// The path of the blob that holds the signed manifest listing `content` as 1.0, and of the
/// image blob, in [`bearer_registry`].
fn loopback_paths(content: &[u8]) -> (String, String) {
    let signed = signed_manifest(&[line("1.0", content)]);
    (
        format!("/v2/app/blobs/sha256:{}", sha256_hex(&signed)),
        format!("/v2/app/blobs/sha256:{}", sha256_hex(content)),
    )
}

/// As [`bearer_registry`]; with `image_redirect`, an authorised GET of the image blob is
/// sent there (`307`), as a registry sends blobs to its storage.
fn bearer_registry_with(
    w: &World,
    content: &[u8],
    image_redirect: Option<String>,
) -> support::http_server::Server {
    bearer_registry_with_token(w, content, TOKEN, image_redirect)
}

/// As [`bearer_registry_with`], with the token service handing out `token`.
fn bearer_registry_with_token(
    w: &World,
    content: &[u8],
    token: &str,
    image_redirect: Option<String>,
) -> support::http_server::Server {
    use support::http_server::{Fault, Server};
    let root = w.path("registry-root");
    let repo = root.join("v2/app");
    fs::create_dir_all(repo.join("manifests")).unwrap();
    fs::create_dir_all(repo.join("blobs")).unwrap();
    let signed = signed_manifest(&[line("1.0", content)]);
    let manifest_digest = format!("sha256:{}", sha256_hex(&signed));
    let image_digest = format!("sha256:{}", sha256_hex(content));
    fs::write(repo.join("blobs").join(&manifest_digest), &signed).unwrap();
    fs::write(repo.join("blobs").join(&image_digest), content).unwrap();
    let artifact = artifact(
        MANIFEST_TYPE,
        vec![descriptor(
            MANIFEST_TYPE,
            &manifest_digest,
            signed.len() as u64,
        )],
    );
    fs::write(repo.join("manifests/tako-manifest"), artifact).unwrap();
    fs::write(root.join("token"), format!(r#"{{"token":"{token}"}}"#)).unwrap();
    let server = Server::serve_dir(&root);
    let challenge = format!(
        r#"Bearer realm="{}/token",service="loopback-registry",scope="repository:app:pull""#,
        server.url()
    );
    for (path, redirect) in [
        ("/v2/app/manifests/tako-manifest".to_string(), None),
        (format!("/v2/app/blobs/{manifest_digest}"), None),
        (format!("/v2/app/blobs/{image_digest}"), image_redirect),
    ] {
        server.set_fault(
            &path,
            Fault::Bearer {
                token: token.into(),
                challenge: challenge.clone(),
                redirect,
            },
        );
    }
    server
}

#[test]
fn a_large_registry_token_is_sent_as_it_is() {
    // Tokens of cloud registries carry claims and signatures, and grow with them; this one
    // is larger than ureq's default output buffer (128 KiB), which it once overflowed.
    let token: String = (0..200 * 1024)
        .map(|i| {
            char::from(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"[i % 62])
        })
        .collect();
    let w = World::new();
    let content = b"image behind a large token\n".to_vec();
    let server = bearer_registry_with_token(&w, &content, &token, None);
    let config = w.config("app.tako", &loopback_origin(&server), "*", "");

    let o = fetch(&[], &[&config]);

    assert_exit(&o, 0);
    w.assert_latest(&sha256_hex(&content), &content);
}

/// `oci+http://127.0.0.1:PORT/app` for the loopback registry.
fn loopback_origin(server: &support::http_server::Server) -> String {
    format!(
        "oci+http://{}/app",
        server.url().trim_start_matches("http://")
    )
}

#[test]
fn a_blob_redirected_to_storage_on_another_port_is_fetched_without_the_registry_token() {
    let w = World::new();
    let content = b"image kept in the registry's storage\n".to_vec();
    let hex = sha256_hex(&content);
    // The storage: a plain server on another port with the blob under its own name.
    let storage_root = w.path("storage");
    fs::create_dir_all(&storage_root).unwrap();
    fs::write(storage_root.join(&hex), &content).unwrap();
    let storage = support::http_server::Server::serve_dir(&storage_root);
    let server = bearer_registry_with(&w, &content, Some(storage.url_for(&format!("/{hex}"))));
    let config = w.config("app.tako", &loopback_origin(&server), "*", "");
    let o = fetch(&[], &[&config]);
    assert_exit(&o, 0);
    w.assert_latest(&hex, &content);

    // The registry saw the token on the blob request it redirected...
    let (_, image_path) = loopback_paths(&content);
    let bearer = format!("Bearer {TOKEN}");
    assert!(
        server
            .recorded()
            .iter()
            .any(|r| r.path == image_path && r.header("authorization") == Some(bearer.as_str())),
        "{:?}",
        server.requests()
    );
    // ...and the storage got the download, with no Authorization at all.
    let seen = storage.recorded();
    assert_eq!(seen.len(), 1, "{:?}", storage.requests());
    assert_eq!(seen[0].path, format!("/{hex}"));
    assert_eq!(seen[0].header("authorization"), None);
}

#[test]
fn an_unchanged_tako_manifest_artifact_is_not_read_again_on_the_next_poll() {
    let w = World::new();
    let content = b"polled image\n".to_vec();
    let server = bearer_registry(&w, &content);
    let config = w.config("app.tako", &loopback_origin(&server), "*", "");
    assert_exit(&fetch(&[], &[&config]), 0);
    assert_exit(&fetch(&[], &[&config]), 0);
    w.assert_latest(&sha256_hex(&content), &content);
    let (manifest_path, _) = loopback_paths(&content);
    // The artifact is asked for on every poll; its layer, the signed manifest, once (the
    // first answer to each is the Bearer challenge).
    let ok = |path: &str| {
        server
            .recorded()
            .iter()
            .filter(|r| r.path == path && r.header("authorization").is_some())
            .count()
    };
    assert_eq!(ok("/v2/app/manifests/tako-manifest"), 2);
    assert_eq!(ok(&manifest_path), 1);
    // The host's manifest is still the registry's.
    assert_eq!(
        fs::read(w.dest().join("manifest")).unwrap(),
        signed_manifest(&[line("1.0", &content)])
    );
}

#[test]
fn a_blob_download_cut_short_resumes_with_a_range_request_to_the_registry() {
    use support::http_server::Fault;
    let w = World::new();
    let content: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
    let hex = sha256_hex(&content);
    let server = bearer_registry(&w, &content);
    server.enable_http_features();
    let (_, image_path) = loopback_paths(&content);
    server.set_fault_sequence(&image_path, vec![Fault::Truncate { after: 100_000 }]);
    let config = w.config("app.tako", &loopback_origin(&server), "*", "");
    let first = fetch(&["--retries", "0"], &[&config]);
    assert_exit(&first, 1);
    assert_eq!(w.latest(), None);

    let o = fetch(&[], &[&config]);
    assert_exit(&o, 0);
    w.assert_latest(&hex, &content);
    let blob_requests: Vec<_> = server
        .recorded()
        .into_iter()
        .filter(|r| r.path == image_path)
        .collect();
    let last = blob_requests.last().unwrap();
    assert_eq!(last.header("range"), Some("bytes=100000-"));
    // Only what was missing travelled the second time.
    assert_eq!(server.body_bytes_sent(&image_path), content.len() as u64);
}

#[test]
fn hostile_registry_answers_are_refused_without_being_read_whole() {
    use support::http_server::Fault;
    let w = World::new();
    let content = b"image\n".to_vec();
    let server = bearer_registry(&w, &content);
    let config = w.config("app.tako", &loopback_origin(&server), "*", "");
    let manifest_path = "/v2/app/manifests/tako-manifest";
    let (layer_path, _) = loopback_paths(&content);
    let run = |fault: Fault| {
        server.set_fault(manifest_path, fault);
        let o = fetch(&[], &[&config]);
        assert_exit(&o, 1);
        assert_eq!(w.latest(), None);
        let err = stderr(&o);
        assert!(
            err.starts_with("tako: error:") || err.contains("\ntako: error:"),
            "{err}"
        );
        assert!(!err.contains("panicked"), "{err}");
        err
    };

    // An endless artifact manifest.
    let err = run(Fault::Endless {
        content_length: false,
    });
    assert!(err.contains("larger than"), "{err}");

    // Not JSON at all, with terminal escapes: not echoed.
    let err = run(Fault::Body(b"\x1b[2J{{{ not json".to_vec()));
    assert!(err.contains("not an OCI image manifest"), "{err}");
    assert!(!err.contains('\x1b'), "{err}");

    // A layer that claims to be far past the manifest cap is not even asked for.
    let layer_digest = layer_path.trim_start_matches("/v2/app/blobs/");
    let huge = artifact(
        MANIFEST_TYPE,
        vec![descriptor(MANIFEST_TYPE, layer_digest, 1 << 40)],
    );
    let err = run(Fault::Body(huge));
    assert!(err.contains("larger than"), "{err}");

    // Two layers, or another artifact type: not a Tako repository.
    let other = artifact(
        "application/vnd.example.other",
        vec![descriptor("application/octet-stream", layer_digest, 10)],
    );
    let err = run(Fault::Body(other));
    assert!(err.contains("artifact type"), "{err}");
    assert_eq!(server.count(&layer_path), 0, "{:?}", server.requests());
}

#[test]
fn the_bearer_token_flow_gets_a_token_for_the_scope_and_retries_with_it() {
    let w = World::new();
    let content = b"image behind a token\n".to_vec();
    let server = bearer_registry(&w, &content);
    let config = w.config("app.tako", &loopback_origin(&server), "*", "");
    let o = fetch(&[], &[&config]);
    assert_exit(&o, 0);
    w.assert_latest(&sha256_hex(&content), &content);

    let seen = server.recorded();
    // The first request has no token and is challenged; the token request names the
    // service and the scope; every later registry request carries the token.
    assert_eq!(seen[0].path, "/v2/app/manifests/tako-manifest");
    assert_eq!(seen[0].header("authorization"), None);
    let token_requests: Vec<_> = seen
        .iter()
        .filter(|r| r.path.starts_with("/token"))
        .collect();
    assert_eq!(token_requests.len(), 1, "{:?}", server.requests());
    assert_eq!(
        token_requests[0].path,
        "/token?service=loopback-registry&scope=repository%3Aapp%3Apull"
    );
    assert_eq!(token_requests[0].header("authorization"), None);
    let after: Vec<_> = seen
        .iter()
        .skip_while(|r| !r.path.starts_with("/token"))
        .skip(1)
        .collect();
    assert!(after.len() >= 3, "{:?}", server.requests());
    for r in after {
        assert_eq!(
            r.header("authorization"),
            Some(format!("Bearer {TOKEN}").as_str()),
            "{} {}",
            r.method,
            r.path
        );
    }
    assert!(!stderr(&o).contains(TOKEN) && !stdout(&o).contains(TOKEN));
}

#[test]
fn the_bearer_token_request_carries_the_credentials_of_the_auth_file() {
    let w = World::new();
    let content = b"image behind a token\n".to_vec();
    let server = bearer_registry(&w, &content);
    let host = server.url().trim_start_matches("http://").to_string();
    let origin = format!("oci+http://{host}/app");
    let auth = w.path("auth.json");
    fs::write(
        &auth,
        format!(r#"{{"auths":{{"{host}":{{"username":"{USER}","password":"{PASSWORD}"}}}}}}"#),
    )
    .unwrap();
    let config = w.config("app.tako", &origin, "*", "");
    let o = Fetch::new()
        .env("REGISTRY_AUTH_FILE", &auth)
        .run(&[], &[&config]);
    assert_exit(&o, 0);
    w.assert_latest(&sha256_hex(&content), &content);
    let seen = server.recorded();
    let token = seen.iter().find(|r| r.path.starts_with("/token")).unwrap();
    let basic = oci::basic(USER, PASSWORD);
    assert_eq!(token.header("authorization"), Some(basic.as_str()));
    // The password goes to the token service only, never to the registry paths.
    assert!(
        seen.iter()
            .filter(|r| r.path.starts_with("/v2/"))
            .all(|r| r.header("authorization") != Some(basic.as_str()))
    );
    for secret in [PASSWORD, TOKEN] {
        assert!(!stderr(&o).contains(secret) && !stdout(&o).contains(secret));
    }
}

#[test]
fn credentials_come_from_the_first_auth_file_that_names_the_registry_and_from_credential_helpers() {
    use base64::Engine;
    use std::os::unix::fs::PermissionsExt;
    let r = Registry::with_basic_auth(USER, PASSWORD);
    let w = World::new();
    let origin = r.origin("private/app");
    let encode = |password: &str| {
        base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{password}"))
    };
    let auths = |host: &str, password: &str| {
        format!(
            r#"{{"auths":{{"{host}":{{"auth":"{}"}}}}}}"#,
            encode(password)
        )
    };
    let publish_auth = w.path("publish.json");
    fs::write(&publish_auth, auths(&r.host(), PASSWORD)).unwrap();
    let content = b"helped\n".to_vec();
    assert_exit(&store(&w, &origin, "1.0", &content, Some(&publish_auth)), 0);

    // REGISTRY_AUTH_FILE knows only another registry; $XDG_RUNTIME_DIR/containers/auth.json
    // has a wrong password; ~/.docker/config.json sends us to a credential helper that
    // knows the right one.
    let first = w.path("first.json");
    fs::write(&first, auths("registry.example:5000", "other")).unwrap();
    let runtime = w.path("runtime");
    fs::create_dir_all(runtime.join("containers")).unwrap();
    fs::write(
        runtime.join("containers/auth.json"),
        auths(&r.host(), "xdg-wrong-password"),
    )
    .unwrap();
    let home = w.path("home");
    fs::create_dir_all(home.join(".docker")).unwrap();
    fs::write(
        home.join(".docker/config.json"),
        format!(r#"{{"credHelpers":{{"{}":"takotest"}}}}"#, r.host()),
    )
    .unwrap();
    let bin = w.path("bin");
    fs::create_dir_all(&bin).unwrap();
    let helper = bin.join("docker-credential-takotest");
    // Answers `get` for this registry only, as docker-credential-* helpers do.
    fs::write(
        &helper,
        format!(
            "#!/bin/sh\n[ \"$1\" = get ] || exit 2\nread -r host\n[ \"$host\" = '{}' ] || exit 1\nprintf '{{\"ServerURL\":\"%s\",\"Username\":\"{USER}\",\"Secret\":\"{PASSWORD}\"}}' \"$host\"\n",
            r.host()
        ),
    )
    .unwrap();
    fs::set_permissions(&helper, fs::Permissions::from_mode(0o755)).unwrap();
    let config = w.config("app.tako", &origin, "*", "");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let run = |xdg: bool| {
        let mut run = Fetch::new()
            .env("REGISTRY_AUTH_FILE", &first)
            .env("HOME", &home)
            .env("PATH", &path)
            .env_remove("XDG_RUNTIME_DIR");
        if xdg {
            run = run.env("XDG_RUNTIME_DIR", &runtime);
        }
        run.run(&[], &[&config])
    };

    let o = run(true);
    assert_exit(&o, 1);
    assert!(
        stderr(&o).contains(&format!(
            "registry {} refused the credentials for private/app",
            r.host()
        )),
        "{}",
        stderr(&o)
    );
    assert_eq!(w.latest(), None);

    let o = run(false);
    assert_exit(&o, 0);
    w.assert_latest(&sha256_hex(&content), &content);
    for o in [run(true), run(false)] {
        for secret in [PASSWORD, "xdg-wrong-password", &encode(PASSWORD)] {
            assert!(!stderr(&o).contains(secret) && !stdout(&o).contains(secret));
        }
    }
}

// A publisher that lost the race for the `tako-manifest` tag is tested in
// src/origin/registry_tests.rs: it needs to reach between the steps of a publish.

#[test]
fn a_registry_that_refuses_connections_is_named_in_plain_words() {
    let w = World::new();
    // A port nothing listens on any more.
    let dead = support::http_server::Server::serve_dir(w.origin());
    let origin = dead.url().replace("http://", "oci+http://") + "/gone/app";
    drop(dead);
    let o = store(&w, &origin, "1.0", b"image", None);
    assert_exit(&o, 1);
    let err = stderr(&o);
    assert!(err.starts_with("tako: error: "), "{err}");
    assert!(err.contains("connection refused"), "{err}");
    assert!(!err.contains("os error"), "{err}");
    assert!(
        err.contains(&origin.replace("oci+http://", "").replace("/gone/app", "")),
        "{err}"
    );
}

// ---- delta updates from a registry ----

const MIB: usize = 1 << 20;

/// `old` with 8 KiB rewritten at three places chosen by `seed`.
fn rewritten(old: &[u8], seed: u64) -> Vec<u8> {
    let mut new = old.to_vec();
    for (i, at) in [MIB, 2 * MIB + 12345, 3 * MIB + 777]
        .into_iter()
        .enumerate()
    {
        new[at..at + 8192].copy_from_slice(&support::tako::noise(seed + i as u64, 8192));
    }
    new
}

/// Publishes `content` as `version` into `origin` with the extra `args` of `tako store`.
#[track_caller]
fn store_with(w: &World, origin: &str, version: &str, content: &[u8], args: &[&str]) -> String {
    let image = w.path(&format!("image-{version}"));
    fs::write(&image, content).unwrap();
    let secret = test_secret();
    let mut all = vec!["store", "-k", &secret, "-o", origin];
    all.extend_from_slice(args);
    all.extend([image.to_str().unwrap(), version]);
    let o = tako_with_auth(&all, None);
    assert_exit(&o, 0);
    sha256_hex(content)
}

/// `tako fetch --json CONFIG`: its output and the one JSON record it printed.
fn fetch_json(config: &Path) -> (Output, serde_json::Value) {
    let o = fetch(&["--json"], &[config]);
    let record = serde_json::from_str(stdout(&o).trim()).unwrap_or(serde_json::Value::Null);
    (o, record)
}

/// The layers of the artifact tagged `tag`, as `(media type, digest)`.
fn artifact_layers(origin: &str, tag: &str) -> Vec<(String, String)> {
    let fetched = Repository::of(origin).manifest(tag).expect("the tag");
    let parsed: serde_json::Value = serde_json::from_slice(&fetched).unwrap();
    let text = |v: &serde_json::Value| v.as_str().unwrap().to_string();
    parsed["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (text(&l["mediaType"]), text(&l["digest"])))
        .collect()
}

#[test]
fn an_update_from_a_registry_fetches_only_the_changed_chunks() {
    let r = Registry::start();
    let w = World::new();
    let origin = r.origin("fleet/delta");
    let one = support::tako::noise(1, 4 * MIB);
    let two = rewritten(&one, 100);
    let three = rewritten(&two, 200);
    let d1 = store_with(&w, &origin, "1.0", &one, &[]);
    let config = w.config("app.tako", &origin, "*", "");
    // A first install has nothing to reuse: the whole image.
    let (o, record) = fetch_json(&config);
    assert_exit(&o, 0);
    assert_eq!(record["delta"], false, "{record}");
    w.assert_latest(&d1, &one);

    // The image stays the first layer (stock tools and older readers take that one); the
    // chunk index, with its own media type, is the second.
    let d2 = store_with(&w, &origin, "2.0", &two, &[]);
    let layers = artifact_layers(&origin, "2.0");
    assert_eq!(layers.len(), 2, "{layers:?}");
    assert_eq!(layers[0], (IMAGE_TYPE.to_string(), format!("sha256:{d2}")));
    assert_eq!(layers[1].0, INDEX_TYPE);

    let (o, record) = fetch_json(&config);
    assert_exit(&o, 0);
    assert_eq!(stderr(&o), "");
    w.assert_latest(&d2, &two);
    assert_eq!(record["delta"], true, "{record}");
    let downloaded = record["downloaded_bytes"].as_u64().unwrap();
    assert!(downloaded < (4 * MIB / 8) as u64, "{downloaded} bytes");
    assert_eq!(record["image_bytes"], (4 * MIB) as u64);

    // And again, in plain words, from the index kept for 2.0.
    let d3 = store_with(&w, &origin, "3.0+build.1", &three, &[]);
    let o = fetch(&[], &[&config]);
    assert_exit(&o, 0);
    assert!(stdout(&o).contains("(downloaded "), "{}", stdout(&o));
    w.assert_latest(&d3, &three);
}

#[test]
fn a_registry_published_without_an_index_still_updates_whole() {
    let r = Registry::start();
    let w = World::new();
    let origin = r.origin("fleet/plain");
    let one = support::tako::noise(2, 4 * MIB);
    let two = rewritten(&one, 300);
    let d1 = store_with(&w, &origin, "1.0", &one, &["--no-index"]);
    let config = w.config("app.tako", &origin, "*", "");
    assert_exit(&fetch(&[], &[&config]), 0);
    w.assert_latest(&d1, &one);
    let d2 = store_with(&w, &origin, "2.0", &two, &["--no-index"]);
    assert_eq!(
        artifact_layers(&origin, "2.0"),
        [(IMAGE_TYPE.to_string(), format!("sha256:{d2}"))]
    );
    let (o, record) = fetch_json(&config);
    assert_exit(&o, 0);
    // No index is nothing to warn about: the image is simply downloaded whole.
    assert_eq!(stderr(&o), "");
    assert_eq!(record["delta"], false, "{record}");
    w.assert_latest(&d2, &two);
}

#[test]
fn a_registry_index_layer_of_another_image_falls_back_to_the_whole_image() {
    let r = Registry::start();
    let w = World::new();
    let origin = r.origin("fleet/hostile");
    let one = support::tako::noise(3, 4 * MIB);
    let two = rewritten(&one, 400);
    let d1 = store_with(&w, &origin, "1.0", &one, &[]);
    let config = w.config("app.tako", &origin, "*", "");
    assert_exit(&fetch(&[], &[&config]), 0);
    let d2 = store_with(&w, &origin, "2.0", &two, &[]);
    // Someone who may push re-points 2.0's index layer at 1.0's index: a valid index, and
    // a blob the registry has, but of another image.
    let repository = Repository::of(&origin);
    let first: serde_json::Value =
        serde_json::from_slice(&repository.manifest("1.0").unwrap()).unwrap();
    let mut second: serde_json::Value =
        serde_json::from_slice(&repository.manifest("2.0").unwrap()).unwrap();
    let other = first["layers"][1].clone();
    assert!(other.is_object(), "1.0 has an index: {first}");
    second["layers"][1] = other;
    repository.put_manifest("2.0", &serde_json::to_vec(&second).unwrap());

    let (o, record) = fetch_json(&config);
    assert_exit(&o, 0);
    let err = stderr(&o);
    assert!(err.contains("describes another image"), "{err}");
    assert!(err.contains("downloading the whole image"), "{err}");
    assert_eq!(record["delta"], false, "{record}");
    w.assert_latest(&d2, &two);
    assert!(w.store_files().contains(&d1));
}

/// The chunk index of `content`, as `tako index` writes it into a scratch server directory.
fn chunk_index(w: &World, content: &[u8]) -> Vec<u8> {
    let hex = sha256_hex(content);
    let dir = w.path(&format!("index-of-{hex}"));
    fs::create_dir_all(dir.join("store")).unwrap();
    fs::write(dir.join("store").join(&hex), content).unwrap();
    assert_exit(&tako(&["index", "-o", dir.to_str().unwrap()]), 0);
    fs::read(dir.join("index").join(&hex)).unwrap()
}

/// A loopback "registry" like [`bearer_registry`] (every path behind a Bearer challenge)
/// serving repository `app` with `versions` as `(version, image)`, each version's artifact
/// with the image's chunk index as second layer. Returns the server and the blob path of
/// each image.
fn bearer_delta_registry(
    w: &World,
    versions: &[(&str, &[u8])],
) -> (support::http_server::Server, Vec<String>) {
    use support::http_server::{Fault, Server};
    let root = w.path("delta-registry-root");
    let repo = root.join("v2/app");
    fs::create_dir_all(repo.join("manifests")).unwrap();
    fs::create_dir_all(repo.join("blobs")).unwrap();
    let mut guarded = vec!["/v2/app/manifests/tako-manifest".to_string()];
    let mut blob = |bytes: &[u8]| {
        let digest = format!("sha256:{}", sha256_hex(bytes));
        fs::write(repo.join("blobs").join(&digest), bytes).unwrap();
        guarded.push(format!("/v2/app/blobs/{digest}"));
        digest
    };
    let lines: Vec<String> = versions.iter().map(|(v, c)| line(v, c)).collect();
    let signed = signed_manifest(&lines);
    let manifest_layer = descriptor(MANIFEST_TYPE, &blob(&signed), signed.len() as u64);
    let mut images = Vec::new();
    let mut tagged = Vec::new();
    for (version, content) in versions {
        let index = chunk_index(w, content);
        let layers = vec![
            descriptor(IMAGE_TYPE, &blob(content), content.len() as u64),
            descriptor(INDEX_TYPE, &blob(&index), index.len() as u64),
        ];
        images.push(format!("/v2/app/blobs/sha256:{}", sha256_hex(content)));
        // Versions that are valid OCI tags are tagged as themselves.
        assert!(
            version
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        );
        tagged.push((version.to_string(), artifact(IMAGE_TYPE, layers)));
    }
    for (tag, artifact) in tagged {
        fs::write(repo.join("manifests").join(&tag), artifact).unwrap();
        guarded.push(format!("/v2/app/manifests/{tag}"));
    }
    let artifact = artifact(MANIFEST_TYPE, vec![manifest_layer]);
    fs::write(repo.join("manifests/tako-manifest"), artifact).unwrap();
    fs::write(root.join("token"), format!(r#"{{"token":"{TOKEN}"}}"#)).unwrap();
    let server = Server::serve_dir(&root);
    let challenge = format!(
        r#"Bearer realm="{}/token",service="loopback-registry",scope="repository:app:pull""#,
        server.url()
    );
    for path in guarded {
        server.set_fault(
            &path,
            Fault::Bearer {
                token: TOKEN.into(),
                challenge: challenge.clone(),
                redirect: None,
            },
        );
    }
    (server, images)
}

/// A host that holds `one` (installed from a plain directory), configured for the
/// loopback registry `server`.
fn host_with(w: &World, one: &[u8], server: &support::http_server::Server) -> std::path::PathBuf {
    let d1 = w.publish_bytes("1.0", one);
    let first = w.config("first.tako", &w.file_url(), "1.0", "");
    assert_exit(&fetch(&[], &[&first]), 0);
    w.assert_latest(&d1, one);
    w.config("app.tako", &loopback_origin(server), "*", "")
}

#[test]
fn a_registry_delta_asks_for_byte_ranges_with_the_registry_token() {
    let w = World::new();
    let one = support::tako::noise(6, 4 * MIB);
    let two = rewritten(&one, 600);
    let (server, images) = bearer_delta_registry(&w, &[("1.0", &one), ("2.0", &two)]);
    server.enable_http_features();
    let config = host_with(&w, &one, &server);
    let (o, record) = fetch_json(&config);
    assert_exit(&o, 0);
    assert_eq!(stderr(&o), "");
    assert_eq!(record["delta"], true, "{record}");
    w.assert_latest(&sha256_hex(&two), &two);

    // Only bounded ranges of the new image travelled, each with the registry's token.
    let image = &images[1];
    let bearer = format!("Bearer {TOKEN}");
    let asked: Vec<_> = server
        .recorded()
        .into_iter()
        .filter(|r| &r.path == image && r.header("authorization") == Some(bearer.as_str()))
        .collect();
    assert!(!asked.is_empty(), "{:?}", server.requests());
    for r in &asked {
        let range = r.header("range").expect("a range request");
        let (first, last) = range
            .strip_prefix("bytes=")
            .unwrap()
            .split_once('-')
            .unwrap();
        assert!(first.parse::<u64>().unwrap() <= last.parse::<u64>().unwrap());
    }
    let sent = server.body_bytes_sent(image);
    assert!(sent > 0 && sent < (4 * MIB / 8) as u64, "{sent} bytes sent");
    assert_eq!(server.count(&images[0]), 0);
}

#[test]
fn a_registry_that_ignores_range_falls_back_to_the_whole_image() {
    let w = World::new();
    let one = support::tako::noise(7, 4 * MIB);
    let two = rewritten(&one, 700);
    // Without the server's HTTP features, every answer is the whole blob (200).
    let (server, _) = bearer_delta_registry(&w, &[("1.0", &one), ("2.0", &two)]);
    let config = host_with(&w, &one, &server);
    let (o, record) = fetch_json(&config);
    assert_exit(&o, 0);
    let err = stderr(&o);
    assert!(err.contains("ignores Range"), "{err}");
    assert!(err.contains("downloading the whole image"), "{err}");
    assert_eq!(record["delta"], false, "{record}");
    w.assert_latest(&sha256_hex(&two), &two);
}
