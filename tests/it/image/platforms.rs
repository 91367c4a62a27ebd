//! Which manifest of a multi-platform image a pull takes: the host's by default, the one
//! `--platform` (or roots' `--os`/`--arch`/`--variant`) names, one without a variant when
//! none has the wanted one, never the first one silently; and `tako image digest`.

use std::fs;

use super::*;
use support::images::{Entry as E, Platform};

/// An image for `platform` whose tree says which platform it is.
fn for_platform(format: Format, platform: &str) -> Image {
    Image::new(
        format,
        Platform::parse(platform),
        vec![Layer::new(
            &[
                E::dir("etc"),
                E::file("etc/platform", format!("{platform}\n")),
            ],
            Compression::Gzip,
        )],
    )
}

/// The platform the tree in `dir` was built for.
fn platform_of(dir: &Path) -> String {
    let text = fs::read_to_string(dir.join("etc/platform")).expect("the platform file");
    text.trim().to_owned()
}

fn host() -> String {
    Platform::host().to_string()
}

fn foreign() -> String {
    Platform::foreign().to_string()
}

/// Pushes an index of the foreign platform first and then the host's, as `app:multi`.
fn two_platforms(lab: &Lab, format: Format) -> Index {
    let index = Index::new(
        format,
        vec![
            for_platform(format, &foreign()),
            for_platform(format, &host()),
        ],
    );
    lab.push_index(&index, "app:multi");
    index
}

fn default_and_named_platforms(format: Format) {
    let lab = Lab::new();
    let index = two_platforms(&lab, format);

    let dir = lab.path("default");
    let o = lab.pull(&[], "app:multi", &dir);
    assert_success(&o);
    assert_eq!(
        platform_of(&dir),
        host(),
        "the default is the host's platform"
    );
    // What it pulled: the index and the host's manifest, by digest.
    let text = all_output(&o);
    assert!(
        text.contains(&index.digest()),
        "the index digest is not printed:\n{text}"
    );
    assert!(
        text.contains(&index.images[1].manifest_digest()),
        "the platform manifest's digest is not printed:\n{text}"
    );

    let dir = lab.path("named");
    assert_success(&lab.pull(&["--platform", &foreign()], "app:multi", &dir));
    assert_eq!(platform_of(&dir), foreign());

    let dir = lab.path("roots-spelling");
    let other = Platform::foreign();
    assert_success(&lab.pull(
        &["--os", &other.os, "--arch", &other.architecture],
        "app:multi",
        &dir,
    ));
    assert_eq!(platform_of(&dir), foreign());
}

#[test]
fn an_oci_index_gives_the_host_platform_by_default_and_the_named_one_with_platform() {
    default_and_named_platforms(Format::Oci);
}

#[test]
fn a_docker_manifest_list_gives_the_host_platform_by_default_and_the_named_one_with_platform() {
    default_and_named_platforms(Format::Docker);
}

#[test]
fn an_entry_without_a_variant_is_taken_when_none_has_the_wanted_one() {
    let lab = Lab::new();
    let index = Index::new(
        Format::Oci,
        vec![
            for_platform(Format::Oci, "linux/amd64"),
            for_platform(Format::Oci, "linux/arm64"),
            for_platform(Format::Oci, "linux/arm/v6"),
        ],
    );
    lab.push_index(&index, "app:variants");
    let dir = lab.path("arm64");
    assert_success(&lab.pull(&["--platform", "linux/arm64/v8"], "app:variants", &dir));
    assert_eq!(platform_of(&dir), "linux/arm64");
    let dir = lab.path("arm64-by-parts");
    assert_success(&lab.pull(
        &["--os", "linux", "--arch", "arm64", "--variant", "v8"],
        "app:variants",
        &dir,
    ));
    assert_eq!(platform_of(&dir), "linux/arm64");
}

#[test]
fn an_entry_with_the_wanted_variant_is_taken_before_one_without() {
    let lab = Lab::new();
    // The entry without a variant comes first, so "the first that fits" is not enough.
    for (wanted, without, tag) in [
        ("linux/arm/v7", "linux/arm", "app:arm"),
        ("linux/arm64/v8", "linux/arm64", "app:arm64"),
    ] {
        let index = Index::new(
            Format::Oci,
            vec![
                for_platform(Format::Oci, without),
                for_platform(Format::Oci, wanted),
            ],
        );
        lab.push_index(&index, tag);
        let dir = lab.path(&tag[4..]);
        assert_success(&lab.pull(&["--platform", wanted], tag, &dir));
        assert_eq!(
            platform_of(&dir),
            wanted,
            "an index with {without} and {wanted}"
        );
    }
}

#[test]
fn no_matching_platform_is_an_error_listing_the_platforms_the_image_has() {
    let lab = Lab::new();
    let index = Index::new(
        Format::Oci,
        vec![
            for_platform(Format::Oci, "linux/amd64"),
            for_platform(Format::Oci, "linux/arm64/v8"),
            for_platform(Format::Oci, "linux/arm/v7"),
        ],
    );
    lab.push_index(&index, "app:multi");
    let dir = lab.path("root");
    let o = lab.pull(&["--platform", "linux/riscv64"], "app:multi", &dir);
    assert_failure(&o);
    let message = err(&o);
    for listed in [
        "linux/amd64",
        "linux/arm64/v8",
        "linux/arm/v7",
        "linux/riscv64",
    ] {
        assert!(
            message.contains(listed),
            "{listed} is not in the error:\n{message}"
        );
    }
    assert!(!dir.exists(), "a failed pull created {}", dir.display());
    // Nor does a pull for the wrong OS take the same architecture.
    let o = lab.pull(&["--platform", "windows/amd64"], "app:multi", &dir);
    assert_failure(&o);
}

#[test]
fn a_single_platform_image_for_another_platform_is_refused_unless_named() {
    let lab = Lab::new();
    lab.push(&for_platform(Format::Oci, &foreign()), "app:foreign");
    let dir = lab.path("root");
    let o = lab.pull(&[], "app:foreign", &dir);
    assert_failure(&o);
    assert!(
        err(&o).contains(&foreign()),
        "the error should name the image's platform:\n{}",
        err(&o)
    );
    assert!(!dir.exists());
    assert_success(&lab.pull(&["--platform", &foreign()], "app:foreign", &dir));
    assert_eq!(platform_of(&dir), foreign());
}

#[test]
fn digest_prints_the_index_digest_or_with_platform_the_platform_manifest_digest() {
    let lab = Lab::new();
    let index = two_platforms(&lab, Format::Oci);
    let image = lab.image("app:multi");

    let o = lab.image_command(&["digest", &image]);
    assert_success(&o);
    assert_eq!(out(&o), format!("{}\n", index.digest()));

    let o = lab.image_command(&["digest", "--platform", &foreign(), &image]);
    assert_success(&o);
    assert_eq!(out(&o), format!("{}\n", index.images[0].manifest_digest()));

    // A single-platform image: its manifest's digest.
    let single = for_platform(Format::Docker, &host());
    let digest = lab.push(&single, "app:single");
    let o = lab.image_command(&["digest", &lab.image("app:single")]);
    assert_success(&o);
    assert_eq!(out(&o), format!("{digest}\n"));

    // --json: both digests and the platforms.
    let o = lab.image_command(&["digest", "--json", "--platform", &foreign(), &image]);
    assert_success(&o);
    let json: serde_json::Value = serde_json::from_str(&out(&o))
        .unwrap_or_else(|e| panic!("digest --json is not JSON ({e}):\n{}", out(&o)));
    let text = json.to_string();
    for wanted in [
        index.digest(),
        index.images[0].manifest_digest(),
        Platform::foreign().architecture,
        Platform::host().architecture,
    ] {
        assert!(text.contains(&wanted), "{wanted} is not in {text}");
    }

    // A tag that moves shows a new digest.
    let moved = Index::new(
        Format::Oci,
        vec![
            for_platform(Format::Oci, &host()),
            for_platform(Format::Oci, &foreign()),
        ],
    );
    lab.push_index(&moved, "app:multi");
    let o = lab.image_command(&["digest", &image]);
    assert_eq!(out(&o), format!("{}\n", moved.digest()));
}
