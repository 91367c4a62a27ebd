//! The host's signature policy, policy.json (issue 21): which scope applies, `reject`
//! refusing before any request, signature requirements tako does not check (`signedBy`)
//! refused (never accepted), a missing sigstore key, `--insecure-policy`, a broken file,
//! and `tako image policy`. The files are written by the tests and named with `--policy`;
//! sigstore signatures themselves are in `signatures.rs`.

use std::fs;

use super::*;

const ACCEPT: &str = r#"[{"type":"insecureAcceptAnything"}]"#;
const REJECT: &str = r#"[{"type":"reject"}]"#;

/// A lab with `team/app:v1` pushed and a policy.json of only a `default`.
struct Policed {
    lab: Lab,
    file: PathBuf,
}

impl Policed {
    fn new(default: &str) -> Policed {
        let lab = Lab::new();
        lab.push(&plain_image("policed"), "team/app:v1");
        let file = lab.path("policy.json");
        fs::write(&file, format!(r#"{{"default": {default}}}"#)).unwrap();
        lab.proxy.clear_requests();
        Policed { lab, file }
    }

    fn registry(&self) -> String {
        self.lab.proxy.host()
    }

    fn pull(&self, args: &[&str]) -> Output {
        let mut all = vec!["--policy", self.file.to_str().unwrap()];
        all.extend_from_slice(args);
        self.lab.pull(&all, "team/app:v1", &self.lab.path("root"))
    }

    fn assert_nothing_fetched(&self) {
        assert!(
            self.lab.proxy.requests().is_empty(),
            "the registry was asked: {:?}",
            self.lab.proxy.requests()
        );
        assert!(!self.lab.path("root").exists());
    }
}

#[test]
fn an_accept_anything_default_pulls_and_says_which_requirement_accepted() {
    let p = Policed::new(ACCEPT);
    let o = p.pull(&[]);
    assert_success(&o);
    assert_eq!(
        fs::read(p.lab.path("root/etc/marker")).unwrap(),
        b"policed\n"
    );
    let text = out(&o);
    assert!(
        text.contains(&format!(
            "policy: accepted by insecureAcceptAnything (scope default of {})",
            p.file.display()
        )),
        "{text}"
    );
    let o = p.pull(&["--json", "--force", "--rebuild"]);
    assert_success(&o);
    let record: serde_json::Value = serde_json::from_str(out(&o).trim()).unwrap();
    assert_eq!(record["policy"]["accepted_by"], "insecureAcceptAnything");
    assert_eq!(record["policy"]["scope"], "default");
}

#[test]
fn a_repository_scope_overrides_a_registry_wide_reject() {
    let p = Policed::new(REJECT);
    let registry_now = p.registry();
    fs::write(
        &p.file,
        format!(
            r#"{{"default": {REJECT}, "transports": {{"docker": {{
                "{r}": {REJECT}, "{r}/team/app": {ACCEPT}}}}}}}"#,
            r = registry_now
        ),
    )
    .unwrap();
    let o = p.pull(&[]);
    assert_success(&o);
    assert!(
        out(&o).contains(&format!("scope docker {registry_now}/team/app")),
        "{}",
        out(&o)
    );
}

/// Writes `file` with one `docker` scope for the lab's whole registry.
fn registry_scoped(p: &Policed, default: &str, requirements: &str) {
    fs::write(
        &p.file,
        format!(
            r#"{{"default": {default}, "transports": {{"docker": {{"{}": {requirements}}}}}}}"#,
            p.registry()
        ),
    )
    .unwrap();
}

#[test]
fn a_rejected_registry_is_refused_before_any_request() {
    let p = Policed::new(ACCEPT);
    registry_scoped(&p, ACCEPT, REJECT);
    let o = p.pull(&[]);
    assert_failure(&o);
    let text = err(&o);
    assert!(
        text.contains(&format!("policy.json {} rejects", p.file.display()))
            && text.contains(&format!("(scope docker {})", p.registry())),
        "{text}"
    );
    p.assert_nothing_fetched();
}

#[test]
fn a_sigstore_requirement_whose_key_cannot_be_read_is_refused_before_any_request() {
    let p = Policed::new(r#"[{"type": "sigstoreSigned", "keyPath": "/etc/pki/none.pub"}]"#);
    let o = p.pull(&[]);
    assert_failure(&o);
    let text = err(&o);
    assert!(
        text.contains(&format!("policy.json {}", p.file.display()))
            && text.contains("/etc/pki/none.pub"),
        "{text}"
    );
    p.assert_nothing_fetched();
}

#[test]
fn a_signed_by_requirement_is_refused() {
    let p = Policed::new(ACCEPT);
    registry_scoped(
        &p,
        ACCEPT,
        r#"[{"type": "signedBy", "keyType": "GPGKeys", "keyPath": "/etc/pki/key.gpg"}]"#,
    );
    let o = p.pull(&[]);
    assert_failure(&o);
    assert!(
        err(&o).contains("signedBy (GPG)") && err(&o).contains("which tako does not check"),
        "{}",
        err(&o)
    );
    p.assert_nothing_fetched();
}

#[test]
fn insecure_policy_pulls_past_a_reject() {
    let p = Policed::new(REJECT);
    let o = p
        .lab
        .pull(&["--insecure-policy"], "team/app:v1", &p.lab.path("root"));
    assert_success(&o);
    assert!(out(&o).contains("policy: none applied"), "{}", out(&o));
}

#[test]
fn a_policy_that_does_not_parse_is_an_error_naming_it() {
    let p = Policed::new(ACCEPT);
    fs::write(&p.file, r#"{"default": [{"type": "acceptEverything"}]}"#).unwrap();
    let o = p.pull(&[]);
    assert_failure(&o);
    let text = err(&o);
    assert!(
        text.contains(&p.file.display().to_string()) && text.contains("acceptEverything"),
        "{text}"
    );
    p.assert_nothing_fetched();
    let missing = p.lab.path("none.json");
    let o = p.lab.pull(
        &["--policy", missing.to_str().unwrap()],
        "team/app:v1",
        &p.lab.path("root"),
    );
    assert_failure(&o);
    assert!(err(&o).contains("none.json"), "{}", err(&o));
}

#[test]
fn image_policy_prints_the_scope_and_verdict_without_pulling() {
    let p = Policed::new(ACCEPT);
    registry_scoped(&p, ACCEPT, REJECT);
    let image = p.lab.image("team/app:v1");
    let file = p.file.to_str().unwrap();
    let o = p.lab.image_command(&["policy", "--policy", file, &image]);
    assert_failure(&o);
    let text = out(&o);
    assert!(
        text.contains(&format!("scope docker {}", p.registry()))
            && text.contains("requires reject")
            && text.contains("verdict: rejected"),
        "{text}"
    );
    let other = image.replace("team/app", "other/app");
    let o = p.lab.image_command(&["policy", "--policy", file, &other]);
    assert_failure(&o);
    let o = p.lab.image_command(&["digest", "--policy", file, &image]);
    assert_failure(&o);
    p.assert_nothing_fetched();
    fs::write(&p.file, format!(r#"{{"default": {ACCEPT}}}"#)).unwrap();
    let o = p.lab.image_command(&["policy", "--policy", file, &image]);
    assert_success(&o);
    assert!(
        out(&o).contains("scope default") && out(&o).contains("verdict: accepted"),
        "{}",
        out(&o)
    );
}
