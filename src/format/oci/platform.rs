//! Platforms (`OS/ARCH[/VARIANT]` in Go's names) and the choice of one entry of an index.
//!
//! The choice never falls back to "the first entry": an index without an entry this host can
//! run is an error that lists what the image does have, so an operator sees at once that an
//! image was built for `linux/amd64` only, rather than unpacking binaries that cannot run.
//!
//! Rules: os and architecture match exactly. The wanted variant comes first; for `arm64` a
//! missing variant and `v8` are the same thing; for `arm` the wanted variant falls back to
//! older ones (`v8`, `v7`, `v6`, `v5`), which the newer cores run; an entry without a variant
//! is taken last, when no entry has a variant the host runs. Attestations (BuildKit's
//! provenance and SBOM manifests, marked `unknown/unknown`) and artifacts are never chosen.

use std::fmt;

use super::manifest::{Descriptor, ImageIndex, PlatformSpec};
use super::media::ManifestKind;
use crate::format::text::untrusted;

/// The annotation BuildKit puts on an attestation entry of an index.
pub const REFERENCE_TYPE_ANNOTATION: &str = "vnd.docker.reference.type";
pub const ATTESTATION_MANIFEST: &str = "attestation-manifest";

/// The longest os, architecture or variant name accepted.
const MAX_NAME: usize = 32;
/// The most platforms an error lists.
const MAX_LISTED: usize = 20;
/// 32-bit ARM variants, newest first: a core runs its own and every older one.
const ARM_LADDER: [&str; 4] = ["v8", "v7", "v6", "v5"];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlatformError {
    #[error("invalid platform '{0}': use OS/ARCH[/VARIANT] in Go's names, e.g. linux/arm64/v8")]
    Invalid(String),
    #[error(
        "no container platform is known for this host ({arch} on {os}): name one with --platform OS/ARCH[/VARIANT]"
    )]
    UnknownHost { os: String, arch: String },
    #[error("the image has no entry for {wanted}; {has}")]
    NoMatch { wanted: String, has: String },
    #[error(
        "the image is for {image}, not {wanted}: pass --platform {image} if that is the platform wanted"
    )]
    OtherPlatform { image: String, wanted: String },
}

/// An operating system, architecture and optional variant, as in an OCI platform.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(variant) = &self.variant {
            write!(f, "/{variant}")?;
        }
        Ok(())
    }
}

/// A Go os, architecture or variant name: lowercase letters and digits, with `.`, `_` and
/// `-` after the first.
fn name_ok(name: &str) -> bool {
    name.bytes()
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && name.len() <= MAX_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
}

impl Platform {
    pub fn new(os: &str, architecture: &str, variant: Option<&str>) -> Platform {
        Platform {
            os: os.to_string(),
            architecture: architecture.to_string(),
            variant: variant.map(str::to_string),
        }
    }

    /// Parses `OS/ARCH[/VARIANT]`, as `--platform` takes it. Case is ignored, and the
    /// architecture names other tools print (`x86_64`, `aarch64`, `i686`, `armhf`) are
    /// read as Go's.
    pub fn parse(text: &str) -> Result<Platform, PlatformError> {
        let invalid = || PlatformError::Invalid(untrusted(text));
        let lower = text.to_ascii_lowercase();
        let mut parts = lower.split('/');
        let (Some(os), Some(arch), variant, None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(invalid());
        };
        let (arch, implied_variant) = match arch {
            "x86_64" | "x86-64" => ("amd64", None),
            "aarch64" => ("arm64", None),
            "i386" | "i486" | "i586" | "i686" => ("386", None),
            "armhf" => ("arm", Some("v7")),
            "armel" => ("arm", Some("v6")),
            other => (other, None),
        };
        let variant = variant.or(implied_variant);
        if !name_ok(os) || !name_ok(arch) || variant.is_some_and(|v| !name_ok(v)) {
            return Err(invalid());
        }
        Ok(Platform::new(os, arch, variant))
    }

    /// The platform of the host tako was built for, in Go's names (which images use), from
    /// the names Rust gives the build target's OS and architecture (the caller passes
    /// them) and the target's byte order.
    pub fn host(os: &str, arch: &str, little_endian: bool) -> Result<Platform, PlatformError> {
        let unknown = || PlatformError::UnknownHost {
            os: untrusted(os),
            arch: untrusted(arch),
        };
        let go_os = match os {
            "macos" => "darwin",
            other if name_ok(other) => other,
            _ => return Err(unknown()),
        };
        let (go_arch, variant) = match (arch, little_endian) {
            ("x86_64", _) => ("amd64", None),
            ("aarch64", _) => ("arm64", Some("v8")),
            ("arm", _) => ("arm", Some("v7")),
            ("x86", _) => ("386", None),
            ("powerpc64", true) => ("ppc64le", None),
            ("powerpc64", false) => ("ppc64", None),
            ("s390x", _) => ("s390x", None),
            ("riscv64", _) => ("riscv64", None),
            ("loongarch64", _) => ("loong64", None),
            ("mips64", true) => ("mips64le", None),
            ("mips64", false) => ("mips64", None),
            _ => return Err(unknown()),
        };
        Ok(Platform::new(go_os, go_arch, variant))
    }

    /// The platform an index entry names.
    pub fn from_spec(spec: &PlatformSpec) -> Platform {
        Platform {
            os: spec.os.clone(),
            architecture: spec.architecture.clone(),
            variant: spec.variant.clone(),
        }
    }

    /// The variants this platform runs, best first; an entry without a variant comes after
    /// all of them (except on arm64, where it is `v8`).
    fn runs(&self) -> Vec<&str> {
        match (self.architecture.as_str(), self.variant.as_deref()) {
            ("arm64", None | Some("v8")) => vec!["v8"],
            // A newer arm64 core runs v8 code.
            ("arm64", Some(v)) => vec![v, "v8"],
            ("arm", wanted) => {
                let wanted = wanted.unwrap_or("v7");
                match ARM_LADDER.iter().position(|v| *v == wanted) {
                    Some(at) => ARM_LADDER.get(at..).map(<[_]>::to_vec).unwrap_or_default(),
                    None => vec![wanted],
                }
            }
            (_, Some(v)) => vec![v],
            (_, None) => Vec::new(),
        }
    }

    /// How well this (wanted) platform runs `image`: `None` if it does not, else a rank,
    /// lower being better.
    fn rank(&self, image: &Platform) -> Option<usize> {
        if image.os != self.os || image.architecture != self.architecture {
            return None;
        }
        // Ranks step by two, so that an arm64 entry without a variant (which means v8)
        // comes just after one that names v8: an entry without the wanted variant is only
        // taken when no entry has it.
        let runs = self.runs();
        match (image.architecture.as_str(), image.variant.as_deref()) {
            (_, Some(v)) => runs.iter().position(|r| *r == v).map(|at| 2 * at),
            ("arm64", None) => runs.iter().position(|r| *r == "v8").map(|at| 2 * at + 1),
            (_, None) => Some(2 * runs.len()),
        }
    }
}

/// Whether an index entry is an attestation (provenance, SBOM) rather than an image.
pub fn is_attestation(entry: &Descriptor) -> bool {
    entry.annotation(REFERENCE_TYPE_ANNOTATION) == Some(ATTESTATION_MANIFEST)
        || entry
            .platform
            .as_ref()
            .is_some_and(|p| p.os == "unknown" && p.architecture == "unknown")
}

/// Whether an entry is an image (or nested index) one could choose: a manifest media type,
/// not an artifact, not an attestation.
fn is_candidate(entry: &Descriptor) -> bool {
    ManifestKind::from_media_type(&entry.media_type).is_some()
        && entry.artifact_type.is_none()
        && !is_attestation(entry)
}

/// The platforms an index offers, in its order, attestations and artifacts left out.
pub fn platforms(index: &ImageIndex) -> Vec<Platform> {
    index
        .manifests
        .iter()
        .filter(|e| is_candidate(e))
        .filter_map(|e| e.platform.as_ref().map(Platform::from_spec))
        .collect()
}

/// The entry of `index` for `wanted`, by the rules in the module documentation.
pub fn choose<'a>(
    index: &'a ImageIndex,
    wanted: &Platform,
) -> Result<&'a Descriptor, PlatformError> {
    let mut best: Option<(usize, &Descriptor)> = None;
    for entry in index.manifests.iter().filter(|e| is_candidate(e)) {
        let Some(spec) = &entry.platform else {
            continue;
        };
        if let Some(rank) = wanted.rank(&Platform::from_spec(spec))
            && best.is_none_or(|(b, _)| rank < b)
        {
            best = Some((rank, entry));
        }
    }
    best.map(|(_, entry)| entry)
        .ok_or_else(|| no_match(index, wanted))
}

fn no_match(index: &ImageIndex, wanted: &Platform) -> PlatformError {
    let unnamed = index
        .manifests
        .iter()
        .filter(|e| is_candidate(e) && e.platform.is_none())
        .count();
    let mut listed: Vec<String> = Vec::new();
    for platform in platforms(index) {
        let shown = untrusted(&platform.to_string());
        if !listed.contains(&shown) {
            listed.push(shown);
        }
    }
    let mut has = if listed.is_empty() {
        "it lists no platforms".to_string()
    } else {
        let more = listed.len().saturating_sub(MAX_LISTED);
        listed.truncate(MAX_LISTED);
        let mut has = format!("it has {}", listed.join(", "));
        if more > 0 {
            has.push_str(&format!(" and {more} more"));
        }
        has
    };
    match unnamed {
        0 => {}
        1 => has.push_str(" (and an entry that names no platform)"),
        n => has.push_str(&format!(" (and {n} entries that name no platform)")),
    }
    PlatformError::NoMatch {
        wanted: wanted.to_string(),
        has,
    }
}

/// Checks that a single-platform image, whose config names `image`, runs on `wanted`.
/// A config that names no platform passes: there is nothing to check it against.
pub fn check_image_platform(
    image: Option<&Platform>,
    wanted: &Platform,
) -> Result<(), PlatformError> {
    match image {
        Some(image) if wanted.rank(image).is_none() => Err(PlatformError::OtherPlatform {
            image: untrusted(&image.to_string()),
            wanted: wanted.to_string(),
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::oci::manifest::tests::hex_of;
    use crate::format::oci::manifest::{self, ParsedManifest};
    use crate::format::oci::media;

    /// An index with one entry per `os/arch[/variant]`, digests 1, 2, 3…; `-` is an entry
    /// without a platform, `att` an attestation.
    fn index(platforms: &[&str]) -> ImageIndex {
        let entries: Vec<String> = platforms
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let digest = hex_of(i as u8 + 1);
                let head = format!(
                    r#""mediaType":"{}","digest":"{digest}","size":100"#,
                    media::OCI_MANIFEST
                );
                match *p {
                    "-" => format!("{{{head}}}"),
                    "att" => format!(
                        r#"{{{head},"platform":{{"os":"unknown","architecture":"unknown"}},"annotations":{{"vnd.docker.reference.type":"attestation-manifest"}}}}"#
                    ),
                    p => {
                        let mut parts = p.split('/');
                        let os = parts.next().unwrap();
                        let arch = parts.next().unwrap();
                        let variant = parts
                            .next()
                            .map(|v| format!(r#","variant":"{v}""#))
                            .unwrap_or_default();
                        format!(
                            r#"{{{head},"platform":{{"os":"{os}","architecture":"{arch}"{variant}}}}}"#
                        )
                    }
                }
            })
            .collect();
        let text = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[{}]}}"#,
            media::OCI_INDEX,
            entries.join(",")
        );
        match manifest::parse(text.as_bytes(), None).unwrap() {
            ParsedManifest::Index { index, .. } => index,
            other => panic!("{other:?}"),
        }
    }

    /// Which entry (1-based, as in `index`) is chosen for `wanted`.
    fn chosen(platforms: &[&str], wanted: &str) -> Result<usize, PlatformError> {
        let index = index(platforms);
        let entry = choose(&index, &Platform::parse(wanted).unwrap())?;
        Ok(index
            .manifests
            .iter()
            .position(|e| e.digest == entry.digest)
            .unwrap()
            + 1)
    }

    #[test]
    fn a_platform_is_os_arch_and_an_optional_variant() {
        let p = Platform::parse("linux/arm64/v8").unwrap();
        assert_eq!(p, Platform::new("linux", "arm64", Some("v8")));
        assert_eq!(p.to_string(), "linux/arm64/v8");
        assert_eq!(
            Platform::parse("linux/amd64").unwrap().to_string(),
            "linux/amd64"
        );
        assert_eq!(
            Platform::parse("Linux/AMD64").unwrap().to_string(),
            "linux/amd64"
        );
    }

    #[test]
    fn other_tools_architecture_names_are_read_as_gos() {
        for (text, go) in [
            ("linux/x86_64", "linux/amd64"),
            ("linux/aarch64", "linux/arm64"),
            ("linux/i686", "linux/386"),
            ("linux/armhf", "linux/arm/v7"),
            ("linux/armel", "linux/arm/v6"),
            ("linux/armhf/v6", "linux/arm/v6"),
        ] {
            assert_eq!(Platform::parse(text).unwrap().to_string(), go, "{text}");
        }
    }

    #[test]
    fn malformed_platforms_are_refused_with_the_form_to_use() {
        for bad in [
            "",
            "linux",
            "linux/",
            "/amd64",
            "linux/amd64/",
            "linux/arm/v7/x",
            "linux amd64",
            "linux/amd64\n",
            "../x/y",
        ] {
            let e = Platform::parse(bad).unwrap_err();
            assert!(e.to_string().contains("OS/ARCH[/VARIANT]"), "{bad}: {e}");
            assert!(!e.to_string().contains('\n'));
        }
        assert!(Platform::parse(&format!("linux/{}", "a".repeat(33))).is_err());
    }

    #[test]
    fn the_host_platform_is_rusts_target_in_gos_names() {
        for ((arch, little), expected) in [
            (("x86_64", true), "linux/amd64"),
            (("aarch64", true), "linux/arm64/v8"),
            (("arm", true), "linux/arm/v7"),
            (("x86", true), "linux/386"),
            (("powerpc64", true), "linux/ppc64le"),
            (("powerpc64", false), "linux/ppc64"),
            (("s390x", false), "linux/s390x"),
            (("riscv64", true), "linux/riscv64"),
        ] {
            assert_eq!(
                Platform::host("linux", arch, little).unwrap().to_string(),
                expected
            );
        }
        assert_eq!(
            Platform::host("macos", "aarch64", true)
                .unwrap()
                .to_string(),
            "darwin/arm64/v8"
        );
        let e = Platform::host("linux", "sparc64", false).unwrap_err();
        assert!(e.to_string().contains("--platform"), "{e}");
    }

    #[test]
    fn os_and_architecture_must_match_exactly() {
        assert_eq!(
            chosen(&["linux/amd64", "linux/arm64"], "linux/arm64"),
            Ok(2)
        );
        assert_eq!(
            chosen(&["windows/amd64", "linux/amd64"], "linux/amd64"),
            Ok(2)
        );
        assert!(chosen(&["linux/amd64"], "darwin/amd64").is_err());
    }

    #[test]
    fn the_wanted_variant_comes_first() {
        assert_eq!(
            chosen(
                &["linux/arm/v6", "linux/arm/v7", "linux/arm"],
                "linux/arm/v7"
            ),
            Ok(2)
        );
        assert_eq!(
            chosen(&["linux/amd64", "linux/amd64/v3"], "linux/amd64/v3"),
            Ok(2)
        );
        // Without a wanted variant, the plain entry and not a newer microarchitecture.
        assert_eq!(
            chosen(&["linux/amd64/v3", "linux/amd64"], "linux/amd64"),
            Ok(2)
        );
        assert!(chosen(&["linux/amd64/v3"], "linux/amd64").is_err());
    }

    #[test]
    fn arm64_treats_a_missing_variant_and_v8_alike() {
        assert_eq!(
            chosen(&["linux/amd64", "linux/arm64"], "linux/arm64/v8"),
            Ok(2)
        );
        assert_eq!(
            chosen(&["linux/amd64", "linux/arm64/v8"], "linux/arm64"),
            Ok(2)
        );
        // Both fit: the entry that names the wanted variant, wherever it is.
        assert_eq!(
            chosen(&["linux/arm64", "linux/arm64/v8"], "linux/arm64/v8"),
            Ok(2)
        );
        assert_eq!(
            chosen(&["linux/arm64/v8", "linux/arm64"], "linux/arm64/v8"),
            Ok(1)
        );
        assert_eq!(
            chosen(&["linux/arm64", "linux/arm64/v8"], "linux/arm64"),
            Ok(2)
        );
        // Equal entries: the index's order decides.
        assert_eq!(
            chosen(&["linux/arm64/v8", "linux/arm64/v8"], "linux/arm64/v8"),
            Ok(1)
        );
        assert_eq!(
            chosen(&["linux/arm64/v8", "linux/arm64/v9"], "linux/arm64/v9"),
            Ok(2)
        );
        assert_eq!(chosen(&["linux/arm64"], "linux/arm64/v9"), Ok(1));
    }

    #[test]
    fn arm_falls_back_from_v7_to_v6_to_v5_and_never_up() {
        assert_eq!(
            chosen(&["linux/arm/v5", "linux/arm/v6"], "linux/arm/v7"),
            Ok(2)
        );
        assert_eq!(
            chosen(&["linux/arm/v5", "linux/amd64"], "linux/arm/v7"),
            Ok(1)
        );
        assert_eq!(chosen(&["linux/arm/v5"], "linux/arm"), Ok(1));
        assert!(chosen(&["linux/arm/v7"], "linux/arm/v6").is_err());
        assert!(chosen(&["linux/arm/v8"], "linux/arm/v7").is_err());
    }

    #[test]
    fn an_entry_without_a_variant_is_taken_only_when_none_has_one_the_host_runs() {
        assert_eq!(
            chosen(&["linux/arm", "linux/arm/v6"], "linux/arm/v7"),
            Ok(2)
        );
        assert_eq!(
            chosen(&["linux/arm", "linux/arm/v8"], "linux/arm/v7"),
            Ok(1)
        );
        assert_eq!(chosen(&["linux/ppc64le"], "linux/ppc64le/power9"), Ok(1));
    }

    #[test]
    fn attestations_artifacts_and_entries_without_a_platform_are_never_chosen() {
        assert_eq!(chosen(&["att", "linux/amd64"], "linux/amd64"), Ok(2));
        assert!(chosen(&["att"], "unknown/unknown").is_err());
        assert!(chosen(&["-"], "linux/amd64").is_err());
        let mut index = index(&["linux/amd64", "linux/amd64"]);
        index.manifests[0].artifact_type = Some("application/vnd.example.sbom".to_string());
        let entry = choose(&index, &Platform::parse("linux/amd64").unwrap()).unwrap();
        assert_eq!(entry.digest.to_string(), hex_of(2));
        assert_eq!(platforms(&index).len(), 1);
    }

    #[test]
    fn no_match_lists_the_platforms_the_image_has_and_never_takes_the_first() {
        let e = chosen(
            &["linux/amd64", "att", "linux/s390x", "linux/amd64", "-"],
            "linux/arm64/v8",
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "the image has no entry for linux/arm64/v8; it has linux/amd64, linux/s390x \
             (and an entry that names no platform)"
        );
        let e = chosen(&["att"], "linux/amd64").unwrap_err();
        assert!(e.to_string().ends_with("it lists no platforms"), "{e}");
    }

    #[test]
    fn the_listed_platforms_are_escaped_and_bounded() {
        let mut index = index(&["linux/amd64"; 30]);
        for (i, entry) in index.manifests.iter_mut().enumerate() {
            if let Some(p) = entry.platform.as_mut() {
                p.architecture = format!("arch{i}");
            }
        }
        index.manifests[0].platform.as_mut().unwrap().os = "\u{1b}[2Jlinux".to_string();
        let e = choose(&index, &Platform::parse("linux/arm64").unwrap()).unwrap_err();
        let message = e.to_string();
        assert!(!message.contains('\u{1b}'), "{message}");
        assert!(message.contains("and 10 more"), "{message}");
    }

    #[test]
    fn a_single_platform_image_for_another_platform_is_refused_unless_named() {
        let amd64 = Platform::parse("linux/amd64").unwrap();
        let arm64 = Platform::parse("linux/arm64").unwrap();
        let e = check_image_platform(Some(&arm64), &amd64).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the image is for linux/arm64, not linux/amd64: pass --platform linux/arm64 if \
             that is the platform wanted"
        );
        check_image_platform(Some(&arm64), &arm64).unwrap();
        check_image_platform(Some(&Platform::new("linux", "arm64", Some("v8"))), &arm64).unwrap();
        check_image_platform(
            Some(&Platform::new("linux", "arm", Some("v6"))),
            &Platform::parse("linux/arm/v7").unwrap(),
        )
        .unwrap();
        assert!(
            check_image_platform(
                Some(&Platform::new("linux", "arm", Some("v7"))),
                &Platform::parse("linux/arm/v6").unwrap(),
            )
            .is_err()
        );
        check_image_platform(None, &amd64).unwrap();
    }
}
