//! Unit tests of sigstore.rs: keys made and payloads signed by openssl once, kept here as
//! known answers (no randomness, no I/O).

use super::*;

const P256_PEM: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEmF1LKTfND4CK+3enm9sDSJzgX+s8
lev3AKRq4wD6ocF4RH26HPhcPXdV2xbA9D+taETvOPfFDl8uc8ccSBO8cg==
-----END PUBLIC KEY-----
";
const ED25519_PEM: &str = "-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEAVS/ffa9BShHRvnsKvVE9VjY7MZ7lOmzxnFEmkk+qkKs=
-----END PUBLIC KEY-----
";
const P384_PEM: &str = "-----BEGIN PUBLIC KEY-----
MHYwEAYHKoZIzj0CAQYFK4EEACIDYgAEt4bjcuwOXZGjy2tfReTc4RICkpJucHN9
kT6cDeBhZT8Wncy4ksYqEjCjsXqvYe87RXSNs8jZjz5Svnr6EdNZFgLr0D4H2orJ
PKqftaTcNM8kYZrOH0/bERzgPUfIGV7Y
-----END PUBLIC KEY-----
";
const RSA_PEM: &str = "-----BEGIN PUBLIC KEY-----
MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQCcuWZrBq+2BNtz+zPki+mR7vnR
oLItkViTJfxdnfKNtPm4N691qmWneSlv8W0xwNMzGm7i20H3t9tEijWIdr+z3QOm
1osi0Ql+jueBkECCXe61Pp04/lGJs9gqjPxrkpxpC6I/6vLhJ7JBoWeOPrw0MCCi
N45tYEvbFOU81gppCQIDAQAB
-----END PUBLIC KEY-----
";
/// Signs `sha256:aaaa…` as `r.example/team/app:1`.
const PAYLOAD: &str = r#"{"critical":{"identity":{"docker-reference":"r.example/team/app:1"},"image":{"docker-manifest-digest":"sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"},"type":"cosign container image signature"},"optional":null}"#;
const P256_SIGNATURE: &str = "MEYCIQCZSVuM4e5epcOeEi304dkKJJJHkBmV4R1R5R99i18s4QIhALMSBqHKGTknJBtzJMOnW0PgZuBMBy7tbZyHOGiIBamW";
const ED25519_SIGNATURE: &str =
    "I2EX/ieGCAOyz3CF99fbMcN26n8UIkMwos+0w5FsX8WDi+D9Xf8kLExQlo4X/aG6ySPQtEpXPPezr8hqStQIAA==";

fn key(pem: &str) -> PublicKey {
    PublicKey::from_pem(pem.as_bytes()).unwrap()
}

fn digest_a() -> Digest {
    Digest::parse(&format!("sha256:{}", "a".repeat(64))).unwrap()
}

fn image(text: &str) -> Reference {
    Reference::parse(text).unwrap()
}

fn layer<'a>(signature: &'a str, payload: &'a str) -> SignatureLayer<'a> {
    SignatureLayer {
        media_type: SIMPLE_SIGNING,
        signature: Some(signature),
        payload: payload.as_bytes(),
    }
}

fn signed(text: &str) -> SignedReference {
    SignedReference::parse(text).unwrap()
}

#[test]
fn p256_and_ed25519_public_keys_are_read_from_pem() {
    assert_eq!(key(P256_PEM).kind(), "ECDSA P-256");
    assert_eq!(key(ED25519_PEM).kind(), "Ed25519");
    // Text around the block, as in a file with a comment, is allowed.
    let commented = format!("a key\n{P256_PEM}\ntrailing");
    assert_eq!(key(&commented), key(P256_PEM));
}

#[test]
fn other_keys_and_other_pem_blocks_are_refused_by_name() {
    let error = |pem: &str| PublicKey::from_pem(pem.as_bytes()).unwrap_err();
    assert_eq!(
        error(P384_PEM),
        KeyError::Unsupported("ECDSA key on a curve other than P-256")
    );
    assert_eq!(error(RSA_PEM), KeyError::Unsupported("RSA"));
    assert_eq!(
        error(&P256_PEM.replace("PUBLIC KEY", "EC PRIVATE KEY")),
        KeyError::NotPem
    );
    assert_eq!(error("no pem here"), KeyError::NotPem);
    assert_eq!(
        error("-----BEGIN PUBLIC KEY-----\nMFkw\n"),
        KeyError::NotPem,
        "no END line"
    );
    assert_eq!(
        error("-----BEGIN PUBLIC KEY-----\n!!!!\n-----END PUBLIC KEY-----\n"),
        KeyError::Base64
    );
    assert!(matches!(
        error("-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----\n"),
        KeyError::Der(_)
    ));
    assert_eq!(error(&"x".repeat(70_000)), KeyError::TooLarge);
}

#[test]
fn truncated_or_padded_der_never_reads_as_a_key() {
    let PublicKey::EcdsaP256(point) = key(P256_PEM) else {
        panic!("not P-256")
    };
    let mut der = vec![
        0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08,
        0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
    ];
    der.extend_from_slice(&point);
    assert_eq!(
        PublicKey::from_spki(&der).unwrap(),
        PublicKey::EcdsaP256(point)
    );
    for cut in 0..der.len() {
        assert!(PublicKey::from_spki(&der[..cut]).is_err(), "cut at {cut}");
    }
    let mut padded = der.clone();
    padded.push(0);
    assert!(PublicKey::from_spki(&padded).is_err());
}

#[test]
fn a_signature_by_the_key_over_the_payload_is_accepted() {
    let (p256, ed25519) = (key(P256_PEM), key(ED25519_PEM));
    let wanted = digest_a();
    let app = image("r.example/team/app:1");
    let rule = SignedIdentity::MatchRepoDigestOrExact;
    let keys = [ed25519.clone(), p256.clone()];
    assert_eq!(
        check(&layer(P256_SIGNATURE, PAYLOAD), &keys, &wanted, &app, &rule).unwrap(),
        &p256
    );
    assert_eq!(
        check(
            &layer(ED25519_SIGNATURE, PAYLOAD),
            &keys,
            &wanted,
            &app,
            &rule
        )
        .unwrap(),
        &ed25519
    );
}

#[test]
fn a_signature_by_another_key_or_over_other_bytes_is_refused() {
    let wanted = digest_a();
    let app = image("r.example/team/app:1");
    let rule = SignedIdentity::MatchRepoDigestOrExact;
    let only_ed25519 = [key(ED25519_PEM)];
    assert_eq!(
        check(
            &layer(P256_SIGNATURE, PAYLOAD),
            &only_ed25519,
            &wanted,
            &app,
            &rule
        ),
        Err(SignatureError::BadSignature)
    );
    let only_p256 = [key(P256_PEM)];
    let altered = PAYLOAD.replace("app:1", "app:2");
    assert_eq!(
        check(
            &layer(P256_SIGNATURE, &altered),
            &only_p256,
            &wanted,
            &app,
            &rule
        ),
        Err(SignatureError::BadSignature)
    );
    assert_eq!(
        check(&layer("***", PAYLOAD), &only_p256, &wanted, &app, &rule),
        Err(SignatureError::Base64)
    );
    let unsigned = SignatureLayer {
        signature: None,
        ..layer(P256_SIGNATURE, PAYLOAD)
    };
    assert_eq!(
        check(&unsigned, &only_p256, &wanted, &app, &rule),
        Err(SignatureError::NoSignature)
    );
    let other_type = SignatureLayer {
        media_type: "application/json",
        ..layer(P256_SIGNATURE, PAYLOAD)
    };
    assert!(matches!(
        check(&other_type, &only_p256, &wanted, &app, &rule),
        Err(SignatureError::MediaType(_))
    ));
}

#[test]
fn a_valid_signature_of_another_digest_or_another_image_is_refused() {
    let keys = [key(P256_PEM)];
    let rule = SignedIdentity::MatchRepoDigestOrExact;
    let other = Digest::of(b"other");
    let e = check(
        &layer(P256_SIGNATURE, PAYLOAD),
        &keys,
        &other,
        &image("r.example/team/app:1"),
        &rule,
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("the payload signs manifest {}, not {other}", digest_a())
    );
    let e = check(
        &layer(P256_SIGNATURE, PAYLOAD),
        &keys,
        &digest_a(),
        &image("r.example/team/other:1"),
        &rule,
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "the payload names r.example/team/app:1, which does not match r.example/team/other:1 (matchRepoDigestOrExact)"
    );
}

#[test]
fn payloads_with_unknown_or_missing_critical_fields_are_refused() {
    assert!(Payload::parse(PAYLOAD.as_bytes()).is_ok());
    for (text, says) in [
        ("[]", "not an object"),
        (
            &PAYLOAD.replace(r#","optional":null"#, ""),
            "no member optional",
        ),
        (
            &PAYLOAD.replace(r#""optional":null"#, r#""optional":3"#),
            "optional is not an object",
        ),
        (
            &PAYLOAD.replace(r#""type":"#, r#""extra":1,"type":"#),
            "unknown member extra",
        ),
        (
            &PAYLOAD.replace("cosign container image signature", "other"),
            "critical.type",
        ),
        (&PAYLOAD.replace("sha256:aaaa", "sha256:zzzz"), "digest"),
        (
            &PAYLOAD.replace("r.example/team/app:1", "docker://r.example/a"),
            "has a scheme",
        ),
    ] {
        let e = Payload::parse(text.as_bytes()).unwrap_err().to_string();
        assert!(e.contains(says), "{text}: {e}");
    }
    let optional = PAYLOAD.replace(
        r#""optional":null"#,
        r#""optional":{"creator":"x","anything":[1]}"#,
    );
    assert!(Payload::parse(optional.as_bytes()).is_ok());
}

#[test]
fn a_signed_reference_keeps_a_tag_only_where_written() {
    assert_eq!(
        signed("busybox"),
        SignedReference {
            name: "docker.io/library/busybox".into(),
            tag: None,
            digest: None
        }
    );
    assert_eq!(signed("busybox:1").tag.as_deref(), Some("1"));
    assert_eq!(signed("localhost:5000/a").tag, None);
    assert_eq!(signed("localhost:5000/a:2").tag.as_deref(), Some("2"));
    let pinned = signed(&format!("r.example/a@{}", digest_a()));
    assert_eq!((pinned.tag, pinned.digest), (None, Some(digest_a())));
}

#[test]
fn each_signed_identity_rule_relates_the_signed_name_to_the_image_as_documented() {
    let pinned = format!("r.example/team/app@{}", digest_a());
    let cases: &[(SignedIdentity, &str, &str, bool)] = &[
        (
            SignedIdentity::MatchRepoDigestOrExact,
            "r.example/team/app:1",
            "r.example/team/app:1",
            true,
        ),
        (
            SignedIdentity::MatchRepoDigestOrExact,
            "r.example/team/app:1",
            "r.example/team/app:2",
            false,
        ),
        (
            SignedIdentity::MatchRepoDigestOrExact,
            "r.example/team/app:1",
            "r.example/team/app",
            false,
        ),
        (
            SignedIdentity::MatchRepoDigestOrExact,
            &pinned,
            "r.example/team/app:2",
            true,
        ),
        (
            SignedIdentity::MatchRepoDigestOrExact,
            &pinned,
            "r.example/team/other:2",
            false,
        ),
        (
            SignedIdentity::MatchRepository,
            "r.example/team/app:1",
            "r.example/team/app:2",
            true,
        ),
        (
            SignedIdentity::MatchRepository,
            "r.example/team/app:1",
            "r.example/team/app",
            true,
        ),
        (
            SignedIdentity::MatchRepository,
            "r.example/team/app:1",
            "r.example/team/other:1",
            false,
        ),
        (
            SignedIdentity::MatchExact,
            "r.example/team/app:1",
            "r.example/team/app:1",
            true,
        ),
        (
            SignedIdentity::MatchExact,
            &pinned,
            "r.example/team/app:1",
            false,
        ),
        (SignedIdentity::MatchExact, &pinned, &pinned, true),
        (
            SignedIdentity::ExactReference("r.example/x:3".into()),
            "r.example/team/app:1",
            "r.example/x:3",
            true,
        ),
        (
            SignedIdentity::ExactReference("r.example/x:3".into()),
            "r.example/team/app:1",
            "r.example/team/app:1",
            false,
        ),
        (
            SignedIdentity::ExactRepository("r.example/x".into()),
            "r.example/team/app:1",
            "r.example/x:9",
            true,
        ),
        (
            SignedIdentity::ExactRepository("r.example/x".into()),
            "r.example/team/app:1",
            "r.example/team/app:1",
            false,
        ),
        (
            SignedIdentity::RemapIdentity {
                prefix: "mirror.example/team".into(),
                signed_prefix: "r.example/team".into(),
            },
            "mirror.example/team/app:1",
            "r.example/team/app:1",
            true,
        ),
        (
            SignedIdentity::RemapIdentity {
                prefix: "mirror.example/team".into(),
                signed_prefix: "r.example/team".into(),
            },
            "mirror.example/teamster/app:1",
            "r.example/team/app:1",
            false,
        ),
        (
            SignedIdentity::RemapIdentity {
                prefix: "mirror.example/team".into(),
                signed_prefix: "r.example/team".into(),
            },
            "r.example/team/app:1",
            "r.example/team/app:1",
            true,
        ),
    ];
    for (rule, pulled, names, expected) in cases {
        assert_eq!(
            identity_matches(rule, &image(pulled), &signed(names)),
            *expected,
            "{rule:?}: pulling {pulled}, signature names {names}"
        );
    }
}

#[test]
fn the_signature_tag_is_cosigns() {
    assert_eq!(
        signature_tag(&digest_a()),
        format!("sha256-{}.sig", "a".repeat(64))
    );
}
