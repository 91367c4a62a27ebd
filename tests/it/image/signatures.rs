//! policy.json `sigstoreSigned` (issue 21): cosign signatures the tests make (support::
//! sigstore) and push under `sha256-<hex>.sig` beside the image, checked by `tako image
//! pull`; on every case Debian's skopeo, given the same policy.json and
//! `use-sigstore-attachments`, must reach the same verdict.

use std::fs;

use super::*;
use support::sigstore::{self, SigningKey};

/// A lab with images pushed to several repositories, the policy and registries.d files
/// tako and skopeo share.
struct Signing {
    lab: Lab,
    registries_d: PathBuf,
}

impl Signing {
    fn new() -> Signing {
        let lab = Lab::new();
        let registries_d = lab.path("registries.d");
        fs::create_dir_all(&registries_d).unwrap();
        fs::write(registries_d.join("default.yaml"), sigstore::REGISTRIES_D).unwrap();
        Signing { lab, registries_d }
    }

    /// `repository/name:tag` as the signatures and policy name it: through the proxy.
    fn identity(&self, reference: &str) -> String {
        format!("{}/{reference}", self.lab.proxy.host())
    }

    /// Pushes `(payload, signature)` pairs as the signatures of manifest `digest` in
    /// `repository`.
    fn push_signatures(&self, repository: &str, digest: &str, signatures: &[(Vec<u8>, Vec<u8>)]) {
        let repo = self.lab.repository(repository);
        let (manifest, blobs) = sigstore::signature_manifest(signatures);
        for blob in &blobs {
            repo.push_blob(blob);
        }
        repo.put_manifest(&sigstore::signature_tag(digest), &manifest);
    }

    /// Signs manifest `digest` of `repository` with `key`, the payload naming `names` and
    /// `signed_digest`.
    fn sign(
        &self,
        repository: &str,
        digest: &str,
        key: &SigningKey,
        names: &str,
        signed_digest: &str,
    ) {
        let payload = sigstore::payload(&self.identity(names), signed_digest);
        let signature = key.sign(&payload);
        self.push_signatures(repository, digest, &[(payload, signature)]);
    }

    /// A policy.json whose default is `requirement`, written as `name`.
    fn policy(&self, name: &str, requirement: serde_json::Value) -> PathBuf {
        let file = self.lab.path(name);
        let policy = serde_json::json!({ "default": [requirement] });
        fs::write(&file, serde_json::to_vec(&policy).unwrap()).unwrap();
        file
    }

    /// A key file holding `key`'s public key.
    fn key_file(&self, name: &str, key: &SigningKey) -> String {
        let file = self.lab.path(name);
        fs::write(&file, key.public_pem()).unwrap();
        file.to_str().unwrap().to_owned()
    }

    /// `tako image pull --policy POLICY IMAGE` into a fresh directory.
    fn tako(&self, policy: &Path, reference: &str, extra: &[&str]) -> Output {
        let dir = self
            .lab
            .path(&format!("root-{}", reference.replace(['/', ':', '@'], "-")));
        let _ = fs::remove_dir_all(&dir);
        let mut args = vec!["--policy", policy.to_str().unwrap()];
        args.extend_from_slice(extra);
        self.lab.pull(&args, reference, &dir)
    }

    /// What `skopeo copy` with the same policy says of the image.
    fn skopeo(&self, policy: &Path, reference: &str) -> Skopeo {
        let dest = self.lab.path("skopeo-copy");
        let _ = fs::remove_dir_all(&dest);
        let o = Command::new("skopeo")
            .args([
                "--policy",
                policy.to_str().unwrap(),
                "--registries.d",
                self.registries_d.to_str().unwrap(),
                "copy",
                "--src-tls-verify=false",
                &format!("docker://{}", self.identity(reference)),
                &format!("dir:{}", dest.display()),
            ])
            .output()
            .expect("run skopeo");
        let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
        if o.status.success() {
            Skopeo::Accepted
        } else if stderr.contains("sigstore disabled") {
            Skopeo::CannotCheck
        } else {
            Skopeo::Refused(stderr)
        }
    }

    /// Pulls with tako and copies with skopeo: both must accept, or both refuse. Returns
    /// tako's output.
    #[track_caller]
    fn both(&self, policy: &Path, reference: &str, accepted: bool) -> Output {
        let o = self.tako(policy, reference, &[]);
        assert_eq!(
            o.status.success(),
            accepted,
            "tako on {reference}: {}",
            all_output(&o)
        );
        match self.skopeo(policy, reference) {
            Skopeo::CannotCheck => {}
            Skopeo::Accepted => assert!(accepted, "skopeo accepts {reference}, tako refuses"),
            Skopeo::Refused(why) => {
                assert!(!accepted, "skopeo refuses {reference}, tako accepts: {why}")
            }
        }
        o
    }
}

/// skopeo's verdict.
#[derive(Debug, PartialEq, Eq)]
enum Skopeo {
    Accepted,
    Refused(String),
    /// It found a signature but was built without sigstore.
    CannotCheck,
}

fn key_path(path: &str) -> serde_json::Value {
    serde_json::json!({ "type": "sigstoreSigned", "keyPath": path })
}

#[test]
fn a_p256_signature_by_the_policys_key_accepts_the_image_and_the_output_says_which() {
    support::registry::require_skopeo();
    let s = Signing::new();
    let digest = s.lab.push(&plain_image("signed"), "team/app:v1");
    let key = SigningKey::p256();
    s.sign("team/app", &digest, &key, "team/app:v1", &digest);
    let key_file = s.key_file("cosign.pub", &key);
    let policy = s.policy("policy.json", key_path(&key_file));
    let o = s.both(&policy, "team/app:v1", true);
    let text = out(&o);
    assert!(
        text.contains(&format!(
            "policy: accepted by sigstoreSigned (scope default of {}); requirement 1: key {key_file} signed the manifest {digest}",
            policy.display()
        )),
        "{text}"
    );
    assert!(
        !text.contains("not signature-checked"),
        "a checked signature vouches for the tag: {text}"
    );
    let o = s.tako(&policy, "team/app:v1", &["--json"]);
    assert_success(&o);
    let record: serde_json::Value = serde_json::from_str(out(&o).trim()).unwrap();
    assert_eq!(record["policy"]["accepted_by"], "sigstoreSigned");
    assert_eq!(
        record["policy"]["signatures"][0],
        format!("key {key_file} signed the manifest {digest}")
    );
}

#[test]
fn an_ed25519_signature_accepts_the_image_with_the_key_given_as_key_data() {
    support::registry::require_skopeo();
    let s = Signing::new();
    let digest = s.lab.push(&plain_image("signed"), "team/app:v1");
    let key = SigningKey::ed25519();
    s.sign("team/app", &digest, &key, "team/app:v1", &digest);
    use base64::Engine;
    let data = base64::engine::general_purpose::STANDARD.encode(key.public_pem());
    let policy = s.policy(
        "policy.json",
        serde_json::json!({ "type": "sigstoreSigned", "keyData": data }),
    );
    let o = s.both(&policy, "team/app:v1", true);
    assert!(
        out(&o).contains("key keyData 1 signed the manifest"),
        "{}",
        out(&o)
    );
}

#[test]
fn signatures_by_another_key_for_another_digest_or_of_another_repository_are_refused_as_skopeo_refuses_them()
 {
    support::registry::require_skopeo();
    let s = Signing::new();
    let key = SigningKey::p256();
    let key_file = s.key_file("cosign.pub", &key);
    let policy = s.policy("policy.json", key_path(&key_file));

    // Signed by a key the policy does not name.
    let digest = s.lab.push(&plain_image("other key"), "team/other-key:v1");
    s.sign(
        "team/other-key",
        &digest,
        &SigningKey::p256(),
        "team/other-key:v1",
        &digest,
    );
    let o = s.both(&policy, "team/other-key:v1", false);
    assert!(
        err(&o).contains("no key of the requirement made this signature"),
        "{}",
        err(&o)
    );

    // A valid signature of another manifest, stored under this one's tag.
    let digest = s.lab.push(&plain_image("digest"), "team/digest:v1");
    let other = s.lab.push(&plain_image("another"), "team/digest:v2");
    s.sign("team/digest", &digest, &key, "team/digest:v1", &other);
    let o = s.both(&policy, "team/digest:v1", false);
    assert!(
        err(&o).contains(&format!("the payload signs manifest {other}, not {digest}")),
        "{}",
        err(&o)
    );

    // A signature naming another repository.
    let digest = s.lab.push(&plain_image("repo"), "team/repo:v1");
    s.sign("team/repo", &digest, &key, "team/elsewhere:v1", &digest);
    let o = s.both(&policy, "team/repo:v1", false);
    assert!(
        err(&o).contains("which does not match") && err(&o).contains("matchRepoDigestOrExact"),
        "{}",
        err(&o)
    );

    // No signature tag at all: a verdict skopeo reaches without checking one.
    let digest = s.lab.push(&plain_image("unsigned"), "team/unsigned:v1");
    assert!(
        matches!(s.skopeo(&policy, "team/unsigned:v1"), Skopeo::Refused(why) if why.contains("no signature exists"))
    );
    let o = s.both(&policy, "team/unsigned:v1", false);
    assert!(
        err(&o).contains("no signature was found")
            && err(&o).contains(&sigstore::signature_tag(&digest)),
        "{}",
        err(&o)
    );

    // `reject` refuses even a signed image.
    let reject = s.policy("reject.json", serde_json::json!({ "type": "reject" }));
    s.both(&reject, "team/repo:v1", false);
}

#[test]
fn signed_identity_rules_decide_which_names_a_signature_may_give_as_skopeo_decides() {
    support::registry::require_skopeo();
    let s = Signing::new();
    let key = SigningKey::p256();
    let key_file = s.key_file("cosign.pub", &key);
    // Signed as tag v2 while pulled as v1.
    let digest = s.lab.push(&plain_image("tags"), "team/app:v1");
    s.sign("team/app", &digest, &key, "team/app:v2", &digest);
    let rule = |name: &str, identity: serde_json::Value| {
        s.policy(
            name,
            serde_json::json!({ "type": "sigstoreSigned", "keyPath": key_file, "signedIdentity": identity }),
        )
    };
    let default = s.policy("default.json", key_path(&key_file));
    s.both(&default, "team/app:v1", false);
    let exact = rule("exact.json", serde_json::json!({ "type": "matchExact" }));
    s.both(&exact, "team/app:v1", false);
    let repository = rule(
        "repository.json",
        serde_json::json!({ "type": "matchRepository" }),
    );
    s.both(&repository, "team/app:v1", true);
    // Pinned by digest, matchRepoDigestOrExact takes any tag of the repository.
    s.both(&default, &format!("team/app@{digest}"), true);
    let exact_reference = rule(
        "exact-reference.json",
        serde_json::json!({ "type": "exactReference", "dockerReference": s.identity("team/app:v2") }),
    );
    s.both(&exact_reference, "team/app:v1", true);
    let exact_repository = rule(
        "exact-repository.json",
        serde_json::json!({ "type": "exactRepository", "dockerRepository": s.identity("team/other") }),
    );
    s.both(&exact_repository, "team/app:v1", false);
    let remap = rule(
        "remap.json",
        serde_json::json!({
            "type": "remapIdentity",
            "prefix": s.identity("mirror"),
            "signedPrefix": s.identity("team"),
        }),
    );
    // A mirror's copy signed under the original name.
    let mirrored = s.lab.push(&plain_image("tags"), "mirror/app:v2");
    s.sign("mirror/app", &mirrored, &key, "team/app:v2", &mirrored);
    s.both(&remap, "mirror/app:v2", true);
}

/// The index or the chosen manifest may carry the signature (issue 21). skopeo 1.9, when
/// it copies one platform, looks for the chosen manifest's only: it refuses the image
/// signed on its index alone, where tako accepts it.
#[test]
fn a_multi_platform_image_signed_on_its_index_or_on_the_chosen_manifest_is_accepted() {
    support::registry::require_skopeo();
    let s = Signing::new();
    let key = SigningKey::p256();
    let key_file = s.key_file("cosign.pub", &key);
    let policy = s.policy("policy.json", key_path(&key_file));

    let index = support::images::app_index(Format::Oci, "1");
    let digest = s.lab.push_index(&index, "team/multi:v1");
    s.sign("team/multi", &digest, &key, "team/multi:v1", &digest);
    let o = s.tako(&policy, "team/multi:v1", &[]);
    assert_success(&o);
    assert!(
        out(&o).contains(&format!("key {key_file} signed the index {digest}")),
        "{}",
        out(&o)
    );
    assert!(
        matches!(s.skopeo(&policy, "team/multi:v1"), Skopeo::Refused(why) if why.contains("no signature exists"))
    );

    let index = support::images::app_index(Format::Oci, "2");
    s.lab.push_index(&index, "team/instance:v1");
    let chosen = index.images[0].manifest_digest();
    s.sign("team/instance", &chosen, &key, "team/instance:v1", &chosen);
    let o = s.both(&policy, "team/instance:v1", true);
    assert!(
        out(&o).contains(&format!("key {key_file} signed the manifest {chosen}")),
        "{}",
        out(&o)
    );
    // Unsigned anywhere: refused by both.
    let index = support::images::app_index(Format::Oci, "3");
    s.lab.push_index(&index, "team/unsigned:v1");
    s.both(&policy, "team/unsigned:v1", false);
}

#[test]
fn image_policy_checks_the_signatures_without_pulling() {
    let s = Signing::new();
    let digest = s.lab.push(&plain_image("signed"), "team/app:v1");
    let key = SigningKey::p256();
    let key_file = s.key_file("cosign.pub", &key);
    let policy = s.policy("policy.json", key_path(&key_file));
    let image = s.lab.image("team/app:v1");
    let o = s
        .lab
        .image_command(&["policy", "--policy", policy.to_str().unwrap(), &image]);
    assert_failure(&o);
    assert!(out(&o).contains("verdict: refused"), "{}", out(&o));
    assert!(err(&o).contains("no signature was found"), "{}", err(&o));
    s.sign("team/app", &digest, &key, "team/app:v1", &digest);
    let o = s
        .lab
        .image_command(&["policy", "--policy", policy.to_str().unwrap(), &image]);
    assert_success(&o);
    assert!(
        out(&o).contains(&format!(
            "verdict: accepted; requirement 1: key {key_file} signed the manifest {digest}"
        )),
        "{}",
        out(&o)
    );
    let layers = s
        .lab
        .proxy
        .requests()
        .into_iter()
        .filter(|r| r.path.contains("/blobs/"))
        .count();
    assert!(layers <= 2, "only signature payloads and configs are read");
}

#[test]
fn keyless_and_rekor_requirements_are_refused_before_any_request() {
    let s = Signing::new();
    s.lab.push(&plain_image("signed"), "team/app:v1");
    s.lab.proxy.clear_requests();
    for (name, requirement) in [
        (
            "fulcio.json",
            serde_json::json!({ "type": "sigstoreSigned", "fulcio": { "caPath": "/ca.pem" } }),
        ),
        (
            "rekor.json",
            serde_json::json!({ "type": "sigstoreSigned", "keyPath": "/k.pub", "rekorPublicKeyPath": "/r.pub" }),
        ),
    ] {
        let policy = s.policy(name, requirement);
        let o = s.tako(&policy, "team/app:v1", &[]);
        assert_failure(&o);
        assert!(err(&o).contains("which tako does not check"), "{}", err(&o));
    }
    assert!(
        s.lab.proxy.requests().is_empty(),
        "{:?}",
        s.lab.proxy.requests()
    );
}

impl Signing {
    /// A config home whose `containers/policy.json` is `policy`'s content, as the host's.
    fn config_home(&self, policy: &Path) -> PathBuf {
        let home = self.lab.path("config-home");
        fs::create_dir_all(home.join("containers")).unwrap();
        fs::copy(policy, home.join("containers/policy.json")).unwrap();
        home
    }
}

#[test]
fn the_http_image_proxy_refuses_an_unsigned_image_at_start_and_serves_a_signed_one() {
    let s = Signing::new();
    let digest = s.lab.push(&plain_image("signed"), "team/app:v1");
    s.lab.push(&plain_image("unsigned"), "team/unsigned:v1");
    let key = SigningKey::p256();
    s.sign("team/app", &digest, &key, "team/app:v1", &digest);
    let key_file = s.key_file("cosign.pub", &key);
    let policy = s.policy("policy.json", key_path(&key_file));
    let serve = |reference: &str, extra: &[&str]| {
        let mut cmd = tako_cmd();
        cmd.arg("container-image-proxy")
            .args(["--retries", "0"])
            .args(extra)
            .arg(s.lab.image(reference));
        // Standard input at its end: a server that starts answers nothing and stops.
        Bounded::new(&mut cmd).run()
    };
    let file = policy.to_str().unwrap();
    let o = serve("team/unsigned:v1", &["--policy", file]);
    assert_failure(&o);
    assert!(err(&o).contains("no signature was found"), "{}", err(&o));
    let o = serve("team/unsigned:v1", &["--insecure-policy"]);
    assert_success(&o);
    let o = serve("team/app:v1", &["--policy", file]);
    assert_success(&o);
    assert!(
        err(&o).contains(&format!(
            "policy: accepted by sigstoreSigned (scope default of {file}); requirement 1: key {key_file} signed the manifest {digest}"
        )),
        "{}",
        err(&o)
    );
}

#[test]
fn store_container_copies_its_source_image_only_if_the_hosts_policy_accepts_it() {
    let s = Signing::new();
    let digest = s.lab.push(&plain_image("signed"), "team/app:v1");
    s.lab.push(&plain_image("unsigned"), "team/unsigned:v1");
    let key = SigningKey::ed25519();
    s.sign("team/app", &digest, &key, "team/app:v1", &digest);
    let key_file = s.key_file("cosign.pub", &key);
    let home = s.config_home(&s.policy("policy.json", key_path(&key_file)));
    let store = |reference: &str, out: &str| {
        let out = s.lab.path(out);
        fs::create_dir_all(&out).unwrap();
        let mut cmd = tako_cmd();
        cmd.env("XDG_CONFIG_HOME", &home).args([
            "store",
            "-k",
            &support::tako::test_secret(),
            "-o",
            out.to_str().unwrap(),
            "--container",
            &s.lab.image(reference),
            "1.0",
        ]);
        (Bounded::new(&mut cmd).run(), out)
    };
    let (o, out_dir) = store("team/unsigned:v1", "refused");
    assert_failure(&o);
    assert!(err(&o).contains("no signature was found"), "{}", err(&o));
    assert!(
        !out_dir.join("manifest").exists(),
        "nothing is published for a refused image"
    );
    let (o, out_dir) = store("team/app:v1", "accepted");
    assert_success(&o);
    assert!(
        out(&o).contains(&format!("key {key_file} signed the manifest {digest}")),
        "{}",
        out(&o)
    );
    assert!(out_dir.join("manifest").exists());
}

#[test]
fn one_good_signature_among_bad_ones_accepts_and_too_many_signatures_are_refused_unread() {
    let s = Signing::new();
    let key = SigningKey::p256();
    let key_file = s.key_file("cosign.pub", &key);
    let policy = s.policy("policy.json", key_path(&key_file));
    let digest = s.lab.push(&plain_image("mixed"), "team/app:v1");
    let good = sigstore::payload(&s.identity("team/app:v1"), &digest);
    let other = sigstore::payload(&s.identity("team/app:v9"), &digest);
    let stranger = SigningKey::p256();
    s.push_signatures(
        "team/app",
        &digest,
        &[
            (good.clone(), stranger.sign(&good)),
            (other.clone(), key.sign(&other)),
            (good.clone(), key.sign(&good)),
        ],
    );
    let o = s.tako(&policy, "team/app:v1", &[]);
    assert_success(&o);

    let digest = s.lab.push(&plain_image("many"), "team/many:v1");
    let payload = sigstore::payload(&s.identity("team/many:v1"), &digest);
    let signature = key.sign(&payload);
    let many = vec![(payload, signature); 65];
    s.push_signatures("team/many", &digest, &many);
    s.lab.proxy.clear_requests();
    let o = s.tako(&policy, "team/many:v1", &[]);
    assert_failure(&o);
    assert!(
        err(&o).contains("65 signatures, more than the 64 tako reads"),
        "{}",
        err(&o)
    );
    let payloads = s
        .lab
        .proxy
        .requests()
        .into_iter()
        .filter(|r| r.path.contains("/blobs/"))
        .count();
    assert_eq!(
        payloads, 0,
        "no payload is read from a manifest refused whole"
    );
}

#[test]
fn a_payload_over_the_read_limit_is_never_downloaded_and_a_good_signature_after_it_still_counts() {
    let s = Signing::new();
    let key = SigningKey::p256();
    let key_file = s.key_file("cosign.pub", &key);
    let policy = s.policy("policy.json", key_path(&key_file));
    let digest = s.lab.push(&plain_image("big"), "team/app:v1");
    let huge = vec![b' '; 4 * 1024 * 1024 + 1];
    let good = sigstore::payload(&s.identity("team/app:v1"), &digest);
    s.push_signatures(
        "team/app",
        &digest,
        &[
            (huge.clone(), key.sign(&huge)),
            (good.clone(), key.sign(&good)),
        ],
    );
    s.lab.proxy.clear_requests();
    let o = s.tako(&policy, "team/app:v1", &[]);
    assert_success(&o);
    let huge_path = format!("/blobs/{}", support::distribution::digest(&huge));
    assert!(
        !s.lab
            .proxy
            .requests()
            .iter()
            .any(|r| r.path.ends_with(&huge_path)),
        "the oversized payload was downloaded"
    );
    // Alone, it refuses the image, saying why.
    let digest = s.lab.push(&plain_image("big alone"), "team/alone:v1");
    s.push_signatures("team/alone", &digest, &[(huge.clone(), key.sign(&huge))]);
    let o = s.tako(&policy, "team/alone:v1", &[]);
    assert_failure(&o);
    assert!(err(&o).contains("more than the"), "{}", err(&o));
}
