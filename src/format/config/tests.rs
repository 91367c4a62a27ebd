//! Unit tests of `config`, beside it so the module itself stays readable.

use super::*;

const KEY: &str = "l0D28J2fiIXvWPbeZP7wkaq+dB55Gl2ysigl9mQH29k=";

fn good() -> String {
    format!(
        "Origin=https://images.example.com/app-foo/\nPublicKey={KEY}\nDestination=/var/lib/images/app-foo\nVersion=1.*\n"
    )
}

fn error(text: &str) -> ConfigError {
    parse("app.tako", text).unwrap_err()
}

#[test]
fn parses_the_documented_example() {
    let text = format!(
        "{}\n# Restart app-foo after a new image has been fetched.\nRestart=app-foo.service\n",
        good()
    );
    let c = parse("app.tako", &text).unwrap();
    assert_eq!(c.origin, "https://images.example.com/app-foo");
    assert_eq!(c.public_keys, [PublicKey::parse(KEY).unwrap()]);
    assert_eq!(c.destination, PathBuf::from("/var/lib/images/app-foo"));
    assert_eq!(c.version.as_str(), "1.*");
    assert_eq!(c.restart, ["app-foo.service"]);
}

#[test]
fn ignores_whitespace_comments_and_blank_lines() {
    let text = format!(
        "  ; a comment\n\n\t# another\n  Origin  =  file:///srv/x  \n PublicKey= {KEY}\nDestination =/d\nVersion= 2.3 <= v < 3.0 \n"
    );
    let c = parse("a", &text).unwrap();
    assert_eq!(c.origin, "file:///srv/x");
    assert_eq!(c.version.as_str(), "2.3 <= v < 3.0");
}

#[test]
fn restart_lines_accumulate_and_an_empty_one_clears_them() {
    let text = format!("{}Restart=a.service b.service\nRestart=c.service\n", good());
    assert_eq!(
        parse("a", &text).unwrap().restart,
        ["a.service", "b.service", "c.service"]
    );
    let text = format!("{}Restart=a.service\nRestart=\nRestart=d.service\n", good());
    assert_eq!(parse("a", &text).unwrap().restart, ["d.service"]);
    let text = format!("{}Restart=a.service\nRestart=  \n", good());
    assert!(parse("a", &text).unwrap().restart.is_empty());
}

#[test]
fn rejects_an_unknown_key_naming_file_line_and_the_known_keys() {
    let text = "Origin=https://x\n\nOrign=https://y\n";
    assert_eq!(
        error(text).to_string(),
        "app.tako:3: unknown key 'Orign'; did you mean Origin? expected one of Origin, PublicKey, Destination, Version, Restart, HeaderFile, CACertificate, ClientCertificate, ClientKey, Keep, MirrorStaleAfter, Kind, Platform"
    );
}

#[test]
fn rejects_a_line_without_equals() {
    let e = error(&format!("{}Restart\n", good()));
    assert_eq!(e.line, Some(5));
    assert!(e.message.contains("Key=Value"), "{e}");
}

#[test]
fn rejects_a_repeated_single_valued_key() {
    for key in ["Destination", "Version"] {
        let text = format!("{}{key}=again\n", good());
        let e = error(&text);
        assert_eq!(e.line, Some(5), "{e}");
        assert!(e.message.contains("twice"), "{e}");
    }
}

#[test]
fn rejects_missing_required_keys() {
    for key in ["Origin", "PublicKey", "Destination", "Version"] {
        let text: String = good()
            .lines()
            .filter(|l| !l.starts_with(&format!("{key}=")))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(
            error(&text).to_string(),
            format!("app.tako: missing {key}=")
        );
    }
}

#[test]
fn rejects_empty_required_values() {
    let text = good().replace("Version=1.*", "Version=");
    assert_eq!(error(&text).to_string(), "app.tako:4: Version= is empty");
}

#[test]
fn rejects_other_url_schemes() {
    let e = error(&good().replace("https://images", "ftp://images"));
    assert_eq!(e.line, Some(1));
    assert!(e.message.contains("unsupported origin"), "{e}");
}

const KEY2: &str = "CIXmyAykawJ4QprUaE1+bqcHVjQUhW+FwPdmHsYsFK8=";

#[test]
fn public_key_may_be_repeated_and_keeps_its_order() {
    let text = good().replace(
        &format!("PublicKey={KEY}\n"),
        &format!("PublicKey={KEY2}\nPublicKey = {KEY}\n"),
    );
    let c = parse("a", &text).unwrap();
    assert_eq!(
        c.public_keys,
        [
            PublicKey::parse(KEY2).unwrap(),
            PublicKey::parse(KEY).unwrap()
        ]
    );
    // Not necessarily adjacent.
    let text = format!("{}PublicKey={KEY2}\n", good());
    let c = parse("a", &text).unwrap();
    assert_eq!(c.public_keys.len(), 2);
    assert_eq!(c.public_keys[0].to_base64(), KEY);
}

#[test]
fn origin_may_be_repeated_and_keeps_its_order() {
    let text = format!(
        "{}Origin=file:///srv/mirror\nOrigin=http://u:pw@m2/a/\n",
        good()
    );
    let c = parse("a", &text).unwrap();
    let urls: Vec<&str> = c.origins.iter().map(|o| o.url.as_str()).collect();
    assert_eq!(
        urls,
        [
            "https://images.example.com/app-foo",
            "file:///srv/mirror",
            "http://***@m2/a"
        ]
    );
    assert_eq!(c.origin, urls[0]);
    assert!(c.origins[0].credentials.is_none() && c.origins[2].credentials.is_some());
}

#[test]
fn rejects_the_same_origin_twice_and_an_empty_one() {
    let e = error(&format!(
        "{}Origin=HTTPS://images.example.com/app-foo\n",
        good()
    ));
    assert_eq!(e.line, Some(5));
    assert!(e.message.contains("given twice (first on line 1)"), "{e}");
    let e = error(&format!("{}Origin=\n", good()));
    assert_eq!(e.to_string(), "app.tako:5: Origin= is empty");
    let e = error(&format!("{}Origin=ftp://x/\n", good()));
    assert_eq!(e.line, Some(5));
}

#[test]
fn toml_origin_is_a_string_or_an_array() {
    let text = good_toml().replace(
        "origin = \"https://x/\"",
        "origin = [\n  \"https://x/\",\n  \"file:///m\",\n]",
    );
    let c = parse_toml("a.toml", &text).unwrap();
    assert_eq!(c.origins.len(), 2);
    assert_eq!(c.origins[1].url, "file:///m");
    let bad = good_toml().replace(
        "origin = \"https://x/\"",
        "origin = [\n  \"https://x/\",\n  \"gopher://m\",\n]",
    );
    let e = parse_toml("a.toml", &bad).unwrap_err();
    assert_eq!(e.line, Some(3), "{e}");
    let e = parse_toml("a.toml", &good_toml().replace("\"https://x/\"", "[]")).unwrap_err();
    assert!(e.message.contains("empty array"), "{e}");
}

#[test]
fn rejects_the_same_public_key_twice_and_an_empty_one() {
    let e = error(&format!("{}PublicKey= {KEY}\n", good()));
    assert_eq!(e.line, Some(5));
    assert!(e.message.contains("given twice (first on line 2)"), "{e}");
    let e = error(&format!("{}PublicKey=\n", good()));
    assert_eq!(e.to_string(), "app.tako:5: PublicKey= is empty");
}

#[test]
fn rejects_a_bad_second_key_on_its_line() {
    let e = error(&format!("{}PublicKey=abc\n", good()));
    assert_eq!(e.line, Some(5));
    assert!(
        e.message.contains("invalid public key (3 characters)"),
        "{e}"
    );
}

#[test]
fn a_pasted_secret_key_is_not_repeated_in_the_error() {
    let secret = "SECRET+dGVzdC1rZXktdmVyeS1zZWN1cml0eS1zdWNoLXNhZmWXQPbwnZ+Ihe9Y9t5k/vCRqr50HnkaXbKyKCX2ZAfb2ZdA9vCdn4iF71j23mT+8JGqvnQeeRpdsrIoJfZkB9vZ";
    let e = error(&good().replace(KEY, secret));
    assert_eq!(e.line, Some(2));
    assert!(e.message.contains("secret key"), "{e}");
    assert!(!e.to_string().contains(&secret[7..30]), "{e}");
}

#[test]
fn checks_the_origin_as_a_url_on_its_line() {
    let e = error(&good().replace("app-foo/", "app-foo/?v=1"));
    assert_eq!(e.line, Some(1));
    assert!(e.message.contains("has a query"), "{e}");
    let c = parse("a", &good().replace("https://", "HTTPS://u:p%40ss@")).unwrap();
    assert_eq!(c.origin, "https://***@images.example.com/app-foo");
    assert!(c.origins[0].credentials.is_some());
}

#[test]
fn rejects_bad_keys_and_patterns_on_their_lines() {
    let e = error(&good().replace(KEY, "abc"));
    assert_eq!(e.line, Some(2));
    assert!(e.message.contains("invalid public key"), "{e}");
    let e = error(&good().replace("1.*", "1.*.2"));
    assert_eq!(e.line, Some(4));
    assert!(e.message.contains("invalid version pattern"), "{e}");
}

#[test]
fn a_secret_key_in_public_key_is_named_but_never_quoted() {
    let secret = "SECRET+dGVzdC1rZXktdmVyeS1zZWN1cml0eS1zdWNoLXNhZmWXQPbwnZ+Ihe9Y9t5k/vCRqr50HnkaXbKyKCX2ZAfb2ZdA9vCdn4iF71j23mT+8JGqvnQeeRpdsrIoJfZkB9vZ";
    let e = error(&good().replace(KEY, secret));
    assert_eq!(e.line, Some(2));
    assert!(e.message.contains("holds a secret key"), "{e}");
    assert!(!e.to_string().contains(&secret[7..20]), "{e}");
    let garbage = "x".repeat(5000);
    let e = error(&good().replace(KEY, &garbage));
    assert!(e.message.contains("5000 characters"), "{e}");
    assert!(!e.to_string().contains("xxxx"), "{e}");
}

#[test]
fn restart_names_are_completed_and_checked_on_their_lines() {
    let text = format!("{}Restart=app db.socket\nRestart=getty@tty1\n", good());
    assert_eq!(
        parse("a", &text).unwrap().restart,
        ["app.service", "db.socket", "getty@tty1.service"]
    );
    for bad in ["foo@.service", "a/b", "x.service\u{1b}[2J"] {
        let e = error(&format!("{}Restart=ok.service\nRestart=a {bad}\n", good()));
        assert_eq!(e.line, Some(6), "{e}");
        assert!(e.message.contains("invalid unit name"), "{e}");
        assert!(!e.message.contains('\u{1b}'), "{e}");
    }
    let e = parse_toml(
        "a.toml",
        &format!("{}restart = [\n  \"a\",\n  \"b/c\",\n]\n", good_toml()),
    )
    .unwrap_err();
    assert_eq!(e.line, Some(5), "{e}");
    assert!(e.message.contains("'b/c'"), "{e}");
}

#[test]
fn a_version_with_spaces_that_is_not_a_range_is_an_error_on_its_line() {
    for pattern in [">= 1.0", "1.0 - 2.0", "1.0 || 2.0"] {
        let e = error(&good().replace("1.*", pattern));
        assert_eq!(e.line, Some(4), "{e}");
        assert!(e.message.contains("invalid version pattern"), "{e}");
    }
}

#[test]
fn values_quoted_in_errors_are_escaped_and_cut() {
    let hostile = "\u{1b}[2J".repeat(2000);
    let e = error(&format!("{}{hostile}\n", good()));
    let shown = e.to_string();
    assert!(!shown.contains('\u{1b}'), "{shown}");
    assert!(shown.len() < 1000, "{} bytes", shown.len());
    let e = error(&good().replace("1.*", &format!("1.{hostile}*")));
    assert!(!e.to_string().contains('\u{1b}'));
    assert!(e.to_string().len() < 1000);
}

#[test]
fn mirror_stale_after_is_a_day_unless_given_with_a_unit() {
    let day = Duration::from_secs(86_400);
    assert_eq!(parse("a", &good()).unwrap().mirror_stale_after, day);
    for (text, secs) in [
        ("0", 0),
        ("90", 90),
        ("90s", 90),
        ("30m", 1800),
        ("12h", 43_200),
        ("2d", 172_800),
    ] {
        let c = parse("a", &format!("{}MirrorStaleAfter={text}\n", good())).unwrap();
        assert_eq!(c.mirror_stale_after, Duration::from_secs(secs), "{text}");
    }
    for bad in [
        "",
        "d",
        "1w",
        "-1",
        "1.5h",
        "1 d",
        "99999999999999999999",
        "5000d",
    ] {
        let e = error(&format!("{}MirrorStaleAfter={bad}\n", good()));
        assert_eq!(e.line, Some(5), "{bad}");
        assert!(
            e.message.starts_with("MirrorStaleAfter= must be"),
            "{bad}: {e}"
        );
    }
    let c = parse_toml(
        "a.toml",
        &format!("{}mirror_stale_after = \"6h\"\n", good_toml()),
    )
    .unwrap();
    assert_eq!(c.mirror_stale_after, Duration::from_secs(21_600));
    let c = parse_toml(
        "a.toml",
        &format!("{}mirror_stale_after = 60\n", good_toml()),
    )
    .unwrap();
    assert_eq!(c.mirror_stale_after, Duration::from_secs(60));
    let e = parse_toml(
        "a.toml",
        &format!("{}mirror_stale_after = -1\n", good_toml()),
    )
    .unwrap_err();
    assert!(e.message.starts_with("MirrorStaleAfter= must be"), "{e}");
}

#[test]
fn kind_is_file_unless_a_config_says_container() {
    let c = parse("a", &good()).unwrap();
    assert_eq!((c.kind, c.platform), (Kind::File, None));
    let c = parse("a", &format!("{}Kind=container\n", good())).unwrap();
    assert_eq!((c.kind, c.platform), (Kind::Container, None));
    let c = parse("a", &format!("{}Kind=file\n", good())).unwrap();
    assert_eq!(c.kind, Kind::File);
    for bad in ["Container", "oci", "", "files"] {
        let e = error(&format!("{}Kind={bad}\n", good()));
        assert_eq!(e.line, Some(5), "{bad}: {e}");
        assert!(
            e.message.starts_with("Kind= must be file or container"),
            "{bad}: {e}"
        );
    }
    let e = error(&format!("{}Kind=file\nKind=container\n", good()));
    assert_eq!(e.line, Some(6), "{e}");
}

#[test]
fn platform_names_the_container_platform_as_image_pull_reads_it() {
    let c = parse(
        "a",
        &format!("{}Kind=container\nPlatform=linux/aarch64\n", good()),
    )
    .unwrap();
    assert_eq!(c.platform, Some(Platform::new("linux", "arm64", None)));
    let c = parse(
        "a",
        &format!("{}Kind=container\nPlatform=linux/arm/v6\n", good()),
    )
    .unwrap();
    assert_eq!(c.platform, Some(Platform::new("linux", "arm", Some("v6"))));
    let e = error(&format!("{}Kind=container\nPlatform=linux\n", good()));
    assert_eq!(e.line, Some(6), "{e}");
    assert!(e.message.contains("invalid platform 'linux'"), "{e}");
    assert!(e.message.contains("OS/ARCH[/VARIANT]"), "{e}");
}

#[test]
fn platform_without_kind_container_is_refused_with_the_fix() {
    let e = error(&format!("{}Platform=linux/amd64\n", good()));
    assert_eq!(e.line, Some(5), "{e}");
    assert!(e.message.contains("add Kind=container"), "{e}");
}

#[test]
fn toml_names_kind_and_platform_in_snake_case() {
    let c = parse_toml(
        "a.toml",
        &format!(
            "{}kind = \"container\"\nplatform = \"linux/amd64\"\n",
            good_toml()
        ),
    )
    .unwrap();
    assert_eq!(c.kind, Kind::Container);
    assert_eq!(c.platform, Some(Platform::new("linux", "amd64", None)));
    let e = parse_toml("a.toml", &format!("{}kind = 1\n", good_toml())).unwrap_err();
    assert_eq!(e.line, Some(5), "{e}");
    assert!(e.message.starts_with("kind must be a string"), "{e}");
    let e = parse_toml("a.toml", &format!("{}kind = \"tar\"\n", good_toml())).unwrap_err();
    assert!(
        e.message.starts_with("Kind= must be file or container"),
        "{e}"
    );
}

#[test]
fn keep_is_an_optional_count_of_at_least_one() {
    assert_eq!(parse("a", &good()).unwrap().keep, None);
    let c = parse("a", &format!("{}Keep = 2\n", good())).unwrap();
    assert_eq!(c.keep, Some(2));
    for bad in ["0", "-1", "+2", "two", "", "1.5", "99999999999999999999999"] {
        let e = error(&format!("{}Keep={bad}\n", good()));
        assert_eq!(e.line, Some(5), "{bad}: {e}");
        assert!(e.message.contains("Keep= must be"), "{bad}: {e}");
    }
    let e = error(&format!("{}Keep=1\nKeep=2\n", good()));
    assert!(e.message.contains("twice"), "{e}");
    let c = parse_toml("a.toml", &format!("{}keep = 4\n", good_toml())).unwrap();
    assert_eq!(c.keep, Some(4));
    let e = parse_toml("a.toml", &format!("{}keep = 0\n", good_toml())).unwrap_err();
    assert_eq!(e.line, Some(5), "{e}");
    assert!(e.message.contains("at least 1"), "{e}");
    let e = parse_toml("a.toml", &format!("{}keep = \"3\"\n", good_toml())).unwrap_err();
    assert_eq!(e.line, Some(5), "{e}");
}

#[test]
fn a_toml_value_of_the_wrong_type_names_the_key_what_it_holds_and_what_to_write() {
    let e = parse_toml("a.toml", &format!("{}keep = \"3\"\n", good_toml())).unwrap_err();
    assert_eq!(
        e.to_string(),
        "a.toml:5: keep must be a whole number without quotes, like `keep = 3`; found the string \"3\""
    );
    let e = parse_toml("a.toml", &good_toml().replace("\"1.*\"", "1.0")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "a.toml:4: version must be a string in quotes, like `version = \"1.*\"`; found a decimal number"
    );
    let e = parse_toml(
        "a.toml",
        &format!("{}restart = [\"a.service\", 5]\n", good_toml()),
    )
    .unwrap_err();
    assert!(
        e.message
            .starts_with("restart must be a string in quotes, or an array of them")
            && e.message.ends_with("found an array holding number 5"),
        "{e}"
    );
    let secret = "x".repeat(40);
    let e = parse_toml("a.toml", &format!("{}keep = \"{secret}\"\n", good_toml())).unwrap_err();
    assert!(!e.message.contains(&secret), "{e}");
}

#[test]
fn keys_are_case_sensitive() {
    let e = error(&good().replace("Origin=", "origin="));
    assert_eq!(e.line, Some(1));
    assert!(e.message.contains("unknown key 'origin'"));
}

fn good_toml() -> String {
    format!(
        "origin = \"https://x/\"\npublic_key = \"{KEY}\"\ndestination = \"/d\"\nversion = \"1.*\"\n"
    )
}

#[test]
fn parses_toml_with_the_same_settings() {
    let c = parse_toml(
        "a.toml",
        &format!("{}restart = \"a.service b.service\"\n", good_toml()),
    )
    .unwrap();
    assert_eq!(c.origin, "https://x");
    assert_eq!(c.restart, ["a.service", "b.service"]);
    let c = parse_toml(
        "a.toml",
        &format!("{}restart = [\"a.service\", \"b\"]\n", good_toml()),
    )
    .unwrap();
    assert_eq!(c.restart, ["a.service", "b.service"]);
    assert!(
        parse_toml("a.toml", &good_toml())
            .unwrap()
            .restart
            .is_empty()
    );
}

#[test]
fn toml_public_key_is_a_string_or_an_array() {
    let c = parse_toml("a.toml", &good_toml()).unwrap();
    assert_eq!(c.public_keys, [PublicKey::parse(KEY).unwrap()]);
    let text = good_toml().replace(
        &format!("\"{KEY}\""),
        &format!("[\n  \"{KEY2}\",\n  \"{KEY}\",\n]"),
    );
    let c = parse_toml("a.toml", &text).unwrap();
    assert_eq!(
        c.public_keys,
        [
            PublicKey::parse(KEY2).unwrap(),
            PublicKey::parse(KEY).unwrap()
        ]
    );
}

#[test]
fn toml_key_errors_name_the_line_of_the_key() {
    let text = good_toml().replace(
        &format!("\"{KEY}\""),
        &format!("[\n  \"{KEY}\",\n  \"abc\",\n]"),
    );
    let e = parse_toml("a.toml", &text).unwrap_err();
    assert_eq!(e.line, Some(4), "{e}");
    assert!(
        e.message.contains("invalid public key (3 characters)"),
        "{e}"
    );
    let text = good_toml().replace(&format!("\"{KEY}\""), &format!("[\"{KEY}\", \"{KEY}\"]"));
    let e = parse_toml("a.toml", &text).unwrap_err();
    assert!(e.message.contains("twice"), "{e}");
    let e = parse_toml("a.toml", &good_toml().replace(KEY, "abc")).unwrap_err();
    assert_eq!(e.line, Some(2), "{e}");
    let e = parse_toml("a.toml", &good_toml().replace(&format!("\"{KEY}\""), "[]")).unwrap_err();
    assert_eq!(e.line, Some(2), "{e}");
    assert!(e.message.contains("empty array"), "{e}");
    let e = parse_toml("a.toml", &good_toml().replace(&format!("\"{KEY}\""), "[1]")).unwrap_err();
    assert_eq!(e.line, Some(2), "{e}");
    let e = parse_toml("a.toml", &good_toml().replace(&format!("\"{KEY}\""), "7")).unwrap_err();
    assert!(e.message.contains("public_key must be"), "{e}");
}

#[test]
fn validates_toml_values_with_their_lines() {
    let e = parse_toml("a.toml", &good_toml().replace("1.*", "*.1")).unwrap_err();
    assert_eq!(e.line, Some(4), "{e}");
    let e = parse_toml("a.toml", &good_toml().replace("https", "gopher")).unwrap_err();
    assert_eq!(e.line, Some(1), "{e}");
}

#[test]
fn rejects_unknown_or_missing_toml_settings() {
    let e = parse_toml("a.toml", &format!("{}orign = \"x\"\n", good_toml())).unwrap_err();
    assert_eq!(e.line, Some(5), "{e}");
    assert!(e.message.contains("orign"), "{e}");
    let e = parse_toml("a.toml", "origin = \"https://x\"\n").unwrap_err();
    assert!(e.message.contains("public_key"), "{e}");
    let e = parse_toml("a.toml", "origin = \n").unwrap_err();
    assert_eq!(e.line, Some(1), "{e}");
}

#[test]
fn private_origin_files_are_read_in_both_syntaxes() {
    let text = format!(
        "{}HeaderFile=/etc/tako/h\nCACertificate=/etc/tako/ca.pem\nClientCertificate=/c.pem\nClientKey=/k.pem\n",
        good()
    );
    let c = parse("a", &text).unwrap();
    assert_eq!(c.access.header_file, Some(PathBuf::from("/etc/tako/h")));
    assert_eq!(
        c.access.ca_certificate,
        Some(PathBuf::from("/etc/tako/ca.pem"))
    );
    assert_eq!(c.access.client_certificate, Some(PathBuf::from("/c.pem")));
    assert_eq!(c.access.client_key, Some(PathBuf::from("/k.pem")));
    let toml = format!(
        "{}header_file = \"/h\"\nca_certificate = \"/ca\"\nclient_certificate = \"/c\"\nclient_key = \"/k\"\n",
        good_toml()
    );
    let t = parse_toml("a.toml", &toml).unwrap();
    assert_eq!(t.access.header_file, Some(PathBuf::from("/h")));
    assert_eq!(t.access.ca_certificate, Some(PathBuf::from("/ca")));
    assert_eq!(t.access.client_certificate, Some(PathBuf::from("/c")));
    assert_eq!(t.access.client_key, Some(PathBuf::from("/k")));
    assert_eq!(parse("a", &good()).unwrap().access, Access::default());
}

#[test]
fn a_client_certificate_needs_its_key_and_files_may_not_be_empty() {
    let e = error(&format!("{}ClientCertificate=/c.pem\n", good()));
    assert!(e.message.contains("without ClientKey="), "{e}");
    assert_eq!(e.line, Some(5));
    let e = error(&format!("{}ClientKey=/k.pem\n", good()));
    assert!(e.message.contains("without ClientCertificate="), "{e}");
    let e = error(&format!("{}HeaderFile=\n", good()));
    assert!(e.message.contains("HeaderFile= is empty"), "{e}");
    let e = error(&format!("{}CACertificate=/a\nCACertificate=/b\n", good()));
    assert!(e.message.contains("given twice"), "{e}");
    let e = parse_toml("a.toml", &format!("{}client_key = \"/k\"\n", good_toml())).unwrap_err();
    assert!(e.message.contains("without ClientCertificate="), "{e}");
}
