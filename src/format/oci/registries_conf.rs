//! containers-registries.conf(5), version 2: the `[[registry]]` tables (prefix, location,
//! insecure, blocked, mirrors) and `[aliases]`, merged over the drop-ins as
//! containers/image merges them, and the pulls a reference resolves to.
//!
//! Pure: the caller reads the files (in name order) and hands their text here. Only the
//! keys tako acts on are read; the rest (`unqualified-search-registries`,
//! `short-name-mode`, `credential-helpers`, version 1 tables, …) are ignored, as
//! containers/image ignores keys it does not know, so a host's file never stops a pull.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::reference::{Reference, ReferenceError};
use crate::format::text::untrusted;

/// The most `[[registry]]` tables, mirrors per table and aliases kept, all files together:
/// a bound on what a hostile file makes every resolution walk through.
pub const MAX_ENTRIES: usize = 10_000;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfError {
    #[error("{file}{}: {message}", line.map(|l| format!(", line {l}")).unwrap_or_default())]
    Syntax {
        file: String,
        line: Option<usize>,
        message: String,
    },
    #[error("{file}: {what}")]
    Invalid { file: String, what: String },
    #[error("{file}: more than {MAX_ENTRIES} registries, mirrors or aliases")]
    TooMany { file: String },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ResolveError {
    #[error(
        "{image}: the registry {prefix} is blocked by {file} (registries.conf): no request was sent"
    )]
    Blocked {
        image: String,
        prefix: String,
        file: String,
    },
    #[error("{image}: {what} {location} (from {file}) does not make an image reference: {source}")]
    Rewrite {
        image: String,
        what: &'static str,
        location: String,
        file: String,
        source: Box<ReferenceError>,
    },
    #[error("the alias {name} (from {file}) is not an image reference: {source}")]
    Alias {
        name: String,
        file: String,
        source: Box<ReferenceError>,
    },
}

/// When a mirror is used, by the kind of reference pulled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullFromMirror {
    All,
    DigestOnly,
    TagOnly,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mirror {
    pub location: String,
    pub insecure: bool,
    pub pull_from: PullFromMirror,
}

/// One `[[registry]]` table, as merged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registry {
    /// The prefix matched: `host[:port][/path…][:tag|@digest]` or `*.domain`.
    pub prefix: String,
    /// What the matched prefix is rewritten to; empty for a wildcard prefix (the matched
    /// host stays).
    pub location: String,
    pub insecure: bool,
    pub blocked: bool,
    pub mirrors: Vec<Mirror>,
    /// The file that defined it, for messages.
    pub file: String,
}

/// An alias of `[aliases]` and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alias {
    pub target: String,
    pub file: String,
}

/// The configuration of all files, merged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegistriesConf {
    pub registries: Vec<Registry>,
    pub aliases: BTreeMap<String, Alias>,
}

/// One place to pull from, in the order to try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The reference at this place: registry (and so host) and repository rewritten; the
    /// tag and digest those of the reference pulled.
    pub reference: Reference,
    /// Reached over plain HTTP (`insecure = true`, or an `oci+http://` reference).
    pub insecure: bool,
    /// A mirror rather than the registry's own location; its location as configured.
    pub mirror: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RawFile {
    #[serde(default)]
    registry: Vec<RawRegistry>,
    #[serde(default)]
    aliases: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RawRegistry {
    #[serde(default)]
    prefix: String,
    #[serde(default)]
    location: String,
    #[serde(default)]
    insecure: bool,
    #[serde(default)]
    blocked: bool,
    #[serde(default)]
    mirror_by_digest_only: bool,
    #[serde(default)]
    mirror: Vec<RawMirror>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RawMirror {
    #[serde(default)]
    location: String,
    #[serde(default)]
    insecure: bool,
    #[serde(default)]
    pull_from_mirror: String,
}

/// Checks a location (`host[:port][/path…]`) by the reference grammar.
fn location_ok(location: &str) -> bool {
    !location.contains("://") && Reference::parse(&format!("oci://{location}/x")).is_ok()
}

/// Checks a prefix: a `*.domain` wildcard, or the start of a reference.
fn prefix_ok(prefix: &str) -> bool {
    match prefix.strip_prefix("*.") {
        Some(domain) => !domain.contains(['*', '/', ':', '@']) && location_ok(domain),
        None => {
            !prefix.contains('*')
                && !prefix.contains("://")
                && (Reference::parse(&format!("oci://{prefix}")).is_ok() || location_ok(prefix))
        }
    }
}

fn registry_from(raw: RawRegistry, file: &str) -> Result<Registry, ConfError> {
    let invalid = |what: String| ConfError::Invalid {
        file: file.to_owned(),
        what: format!("[[registry]] {what}"),
    };
    let location = raw.location.trim_end_matches('/').to_owned();
    let prefix = match raw.prefix.trim_end_matches('/') {
        "" => location.clone(),
        prefix => prefix.to_owned(),
    };
    if prefix.is_empty() {
        return Err(invalid("has neither a prefix nor a location".to_owned()));
    }
    if !prefix_ok(&prefix) {
        return Err(invalid(format!(
            "prefix {} is not valid",
            untrusted(&prefix)
        )));
    }
    let wildcard = prefix.starts_with("*.");
    if wildcard && !location.is_empty() {
        return Err(invalid(format!(
            "{}: a wildcard prefix takes no location",
            untrusted(&prefix)
        )));
    }
    if !location.is_empty() && !location_ok(&location) {
        return Err(invalid(format!(
            "{}: location {} is not valid",
            untrusted(&prefix),
            untrusted(&location)
        )));
    }
    let mut mirrors = Vec::new();
    for mirror in raw.mirror {
        let location = mirror.location.trim_end_matches('/').to_owned();
        if !location_ok(&location) {
            return Err(invalid(format!(
                "{}: mirror location {} is not valid",
                untrusted(&prefix),
                untrusted(&location)
            )));
        }
        let pull_from = match mirror.pull_from_mirror.as_str() {
            "" | "all" => PullFromMirror::All,
            "digest-only" => PullFromMirror::DigestOnly,
            "tag-only" => PullFromMirror::TagOnly,
            other => {
                return Err(invalid(format!(
                    "{}: pull-from-mirror {} is not all, digest-only or tag-only",
                    untrusted(&prefix),
                    untrusted(other)
                )));
            }
        };
        // containers/image refuses the two together: which would win is not obvious.
        if raw.mirror_by_digest_only && !mirror.pull_from_mirror.is_empty() {
            return Err(invalid(format!(
                "{}: mirror-by-digest-only and a mirror's pull-from-mirror cannot both be set",
                untrusted(&prefix)
            )));
        }
        let pull_from = if raw.mirror_by_digest_only {
            PullFromMirror::DigestOnly
        } else {
            pull_from
        };
        mirrors.push(Mirror {
            location,
            insecure: mirror.insecure,
            pull_from,
        });
    }
    Ok(Registry {
        location,
        prefix,
        insecure: raw.insecure,
        blocked: raw.blocked,
        mirrors,
        file: file.to_owned(),
    })
}

impl RegistriesConf {
    /// Reads one file (`file` names it in messages) and merges it over what is read so far:
    /// call it for the main file, then for each drop-in in name order. A `[[registry]]`
    /// with a prefix already defined replaces the earlier one; aliases merge, the later
    /// file winning.
    pub fn merge(&mut self, file: &str, text: &str) -> Result<(), ConfError> {
        let raw: RawFile = toml::from_str(text).map_err(|e| ConfError::Syntax {
            file: file.to_owned(),
            line: e
                .span()
                .and_then(|span| text.get(..span.start))
                .map(|before| before.matches('\n').count() + 1),
            message: untrusted(e.message().trim_end()),
        })?;
        let entries = raw
            .registry
            .iter()
            .map(|r| r.mirror.len().saturating_add(1))
            .fold(raw.aliases.len(), usize::saturating_add);
        let held = self
            .registries
            .iter()
            .map(|r| r.mirrors.len() + 1)
            .fold(self.aliases.len(), usize::saturating_add);
        if entries.saturating_add(held) > MAX_ENTRIES {
            return Err(ConfError::TooMany {
                file: file.to_owned(),
            });
        }
        let mut ours: Vec<Registry> = Vec::new();
        for raw in raw.registry {
            let registry = registry_from(raw, file)?;
            if let Some(twin) = ours.iter().find(|r| r.prefix == registry.prefix) {
                if *twin != registry {
                    return Err(ConfError::Invalid {
                        file: file.to_owned(),
                        what: format!(
                            "[[registry]] {} is defined twice, differently",
                            untrusted(&registry.prefix)
                        ),
                    });
                }
                continue;
            }
            ours.push(registry);
        }
        for registry in ours {
            match self
                .registries
                .iter_mut()
                .find(|r| r.prefix == registry.prefix)
            {
                Some(earlier) => *earlier = registry,
                None => self.registries.push(registry),
            }
        }
        for (name, target) in raw.aliases {
            check_alias(&name, &target).map_err(|why| ConfError::Invalid {
                file: file.to_owned(),
                what: format!("alias {} = {}: {why}", untrusted(&name), untrusted(&target)),
            })?;
            self.aliases.insert(
                name,
                Alias {
                    target,
                    file: file.to_owned(),
                },
            );
        }
        Ok(())
    }

    /// The reference `text` names: a short name (no registry, written without `docker://`)
    /// that `[aliases]` names is its alias, with the tag or digest written; anything else
    /// as [`Reference::parse`] reads it (Docker's rule for short names).
    pub fn reference(&self, text: &str) -> Result<Reference, ResolveError> {
        let parsed = Reference::parse(text).map_err(|source| ResolveError::Alias {
            name: untrusted(text),
            file: "the command line".to_owned(),
            source: Box::new(source),
        })?;
        if Reference::is_registry_url(text) || text.starts_with("docker://") {
            return Ok(parsed);
        }
        let first = text.split('/').next().unwrap_or(text);
        if text.contains('/') && (first.contains(['.', ':']) || first == "localhost") {
            return Ok(parsed);
        }
        // The name before the tag and digest: a short name has no `/` after its `:`.
        let before_digest = text.split('@').next().unwrap_or(text);
        let name = match before_digest.rsplit_once(':') {
            Some((name, tag)) if !tag.contains('/') => name,
            _ => before_digest,
        };
        let suffix = text.get(name.len()..).unwrap_or("");
        match self.aliases.get(name) {
            Some(alias) => {
                Reference::parse(&format!("{}{suffix}", alias.target)).map_err(|source| {
                    ResolveError::Alias {
                        name: untrusted(name),
                        file: alias.file.clone(),
                        source: Box::new(source),
                    }
                })
            }
            None => Ok(parsed),
        }
    }

    /// The `[[registry]]` whose prefix matches `name` (`registry/repository[:tag][@digest]`)
    /// longest, with the length matched.
    fn matching(&self, name: &str) -> Option<(&Registry, usize)> {
        self.registries
            .iter()
            .filter_map(|r| matched_len(&r.prefix, name).map(|len| (r, len)))
            .max_by_key(|(_, len)| *len)
    }

    /// Where to pull `image` from, in order: the mirrors that serve this kind of reference
    /// (a digest, or a tag), then the registry's own location. A blocked registry is an
    /// error. With no matching `[[registry]]`, the image's own registry alone.
    pub fn endpoints(&self, image: &Reference) -> Result<Vec<Endpoint>, ResolveError> {
        let own_insecure = image.scheme() == super::reference::Scheme::Http;
        let name = format!("{}/{}", image.registry(), image.repository());
        let mut full = name.clone();
        if let Some(tag) = image.tag() {
            full.push(':');
            full.push_str(tag);
        }
        if let Some(digest) = image.digest() {
            full.push('@');
            full.push_str(&digest.to_string());
        }
        let Some((registry, len)) = self.matching(&full) else {
            return Ok(vec![Endpoint {
                reference: image.clone(),
                insecure: own_insecure,
                mirror: None,
            }]);
        };
        if registry.blocked {
            return Err(ResolveError::Blocked {
                image: image.to_string(),
                prefix: untrusted(&registry.prefix),
                file: registry.file.clone(),
            });
        }
        // What follows the matched prefix in the repository (the tag and digest are the
        // image's own, whatever part of them the prefix named).
        let rest = name.get(len.min(name.len())..).unwrap_or("");
        let by_digest = image.digest().is_some();
        let mut out = Vec::new();
        for mirror in &registry.mirrors {
            let serves = match mirror.pull_from {
                PullFromMirror::All => true,
                PullFromMirror::DigestOnly => by_digest,
                PullFromMirror::TagOnly => !by_digest,
            };
            if serves {
                out.push(Endpoint {
                    reference: rewritten(image, &mirror.location, rest, registry, "mirror")?,
                    insecure: mirror.insecure,
                    mirror: Some(mirror.location.clone()),
                });
            }
        }
        let primary = if registry.location.is_empty() {
            image.clone()
        } else {
            rewritten(image, &registry.location, rest, registry, "location")?
        };
        out.push(Endpoint {
            reference: primary,
            insecure: registry.insecure || own_insecure,
            mirror: None,
        });
        Ok(out)
    }
}

/// Checks an alias as containers/image does: the name a short name (no registry, tag or
/// digest), the target a repository with its registry and without a tag or digest.
fn check_alias(name: &str, target: &str) -> Result<(), &'static str> {
    let first = name.split('/').next().unwrap_or(name);
    if first.contains(['.', ':']) || first == "localhost" || name.contains('@') {
        return Err("the name is not a short name");
    }
    if Reference::parse(name).is_err() {
        return Err("the name is not an image name");
    }
    let has_registry = target
        .split_once('/')
        .is_some_and(|(first, _)| first.contains(['.', ':']) || first == "localhost");
    let tagged = target
        .rsplit_once(':')
        .is_some_and(|(_, after)| !after.contains('/'));
    if !has_registry || tagged || target.contains('@') || Reference::parse(target).is_err() {
        return Err("the alias must be registry/repository, without a tag or digest");
    }
    Ok(())
}

/// `image` at `location` + `rest`, its tag and digest kept.
fn rewritten(
    image: &Reference,
    location: &str,
    rest: &str,
    registry: &Registry,
    what: &'static str,
) -> Result<Reference, ResolveError> {
    // A wildcard's mirror replaces the host matched; the rest is the repository.
    let mut text = format!("oci://{location}{rest}");
    if let Some(tag) = image.tag() {
        text.push(':');
        text.push_str(tag);
    }
    if let Some(digest) = image.digest() {
        text.push('@');
        text.push_str(&digest.to_string());
    }
    let parsed = Reference::parse(&text).map_err(|source| ResolveError::Rewrite {
        image: image.to_string(),
        what,
        location: untrusted(location),
        file: registry.file.clone(),
        source: Box::new(source),
    })?;
    Ok(parsed)
}

/// How much of `name` the prefix matches, if it does: a plain prefix up to a `/`, `:`,
/// `@` or the end; `*.domain` a host under that domain (the host and any port it has).
fn matched_len(prefix: &str, name: &str) -> Option<usize> {
    if let Some(domain) = prefix.strip_prefix('*') {
        // `domain` is `.example.com`: the host must end in it, with something before.
        let host_end = name.find('/').unwrap_or(name.len());
        let host = name.get(..host_end)?;
        let host_only = host.split(':').next().unwrap_or(host);
        if host_only.len() > domain.len() && host_only.ends_with(domain) {
            return Some(host_only.len());
        }
        return None;
    }
    let after = name.strip_prefix(prefix)?;
    match after.chars().next() {
        None | Some('/' | ':' | '@') => Some(prefix.len()),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf(files: &[(&str, &str)]) -> RegistriesConf {
        let mut conf = RegistriesConf::default();
        for (name, text) in files {
            conf.merge(name, text).unwrap();
        }
        conf
    }

    fn pulls(conf: &RegistriesConf, image: &str) -> Vec<(String, bool, Option<String>)> {
        let image = conf.reference(image).unwrap();
        conf.endpoints(&image)
            .unwrap()
            .into_iter()
            .map(|e| (e.reference.to_string(), e.insecure, e.mirror))
            .collect()
    }

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn without_a_matching_registry_an_image_is_pulled_from_where_it_names() {
        let conf = conf(&[("a.conf", "[[registry]]\nlocation = \"quay.io\"\n")]);
        assert_eq!(
            pulls(&conf, "debian:12"),
            vec![("docker.io/library/debian:12".to_owned(), false, None)]
        );
        assert_eq!(
            pulls(&conf, "oci+http://127.0.0.1:5000/app:1"),
            vec![("oci+http://127.0.0.1:5000/app:1".to_owned(), true, None)]
        );
    }

    #[test]
    fn mirrors_come_in_order_before_the_rewritten_primary_location() {
        let conf = conf(&[(
            "r.conf",
            r#"
unqualified-search-registries = ["docker.io"]
[[registry]]
prefix = "example.com/team"
location = "primary.example.net/copy"
unknown-key = 1
[[registry.mirror]]
location = "m1.example.net:5000/a"
insecure = true
[[registry.mirror]]
location = "m2.example.net"
"#,
        )]);
        assert_eq!(
            pulls(&conf, "example.com/team/app:2"),
            vec![
                (
                    "m1.example.net:5000/a/app:2".to_owned(),
                    true,
                    Some("m1.example.net:5000/a".to_owned())
                ),
                (
                    "m2.example.net/app:2".to_owned(),
                    false,
                    Some("m2.example.net".to_owned())
                ),
                ("primary.example.net/copy/app:2".to_owned(), false, None),
            ]
        );
        // A prefix matches whole components only.
        assert_eq!(pulls(&conf, "example.com/teamwork/app").len(), 1);
    }

    #[test]
    fn the_longest_matching_prefix_wins() {
        let conf = conf(&[(
            "r.conf",
            r#"
[[registry]]
prefix = "docker.io"
location = "hub.example.net"
[[registry]]
prefix = "docker.io/library/debian"
location = "debian.example.net/debian"
"#,
        )]);
        assert_eq!(
            pulls(&conf, "debian:12")[0].0,
            "debian.example.net/debian:12"
        );
        assert_eq!(
            pulls(&conf, "alpine")[0].0,
            "hub.example.net/library/alpine:latest"
        );
    }

    #[test]
    fn a_digest_only_mirror_is_skipped_for_a_tag_and_a_tag_only_one_for_a_digest() {
        let conf = conf(&[(
            "r.conf",
            r#"
[[registry]]
location = "example.com"
mirror-by-digest-only = true
[[registry.mirror]]
location = "digests.example.net"
[[registry]]
location = "other.example.com"
[[registry.mirror]]
location = "tags.example.net"
pull-from-mirror = "tag-only"
[[registry.mirror]]
location = "all.example.net"
pull-from-mirror = "all"
"#,
        )]);
        assert_eq!(pulls(&conf, "example.com/app:1").len(), 1);
        let by_digest = pulls(&conf, &format!("example.com/app@{DIGEST}"));
        assert_eq!(by_digest.len(), 2);
        assert_eq!(by_digest[0].2.as_deref(), Some("digests.example.net"));
        let mirrors = |image: &str| -> Vec<Option<String>> {
            pulls(&conf, image).into_iter().map(|p| p.2).collect()
        };
        assert_eq!(
            mirrors("other.example.com/app:1"),
            vec![
                Some("tags.example.net".to_owned()),
                Some("all.example.net".to_owned()),
                None
            ]
        );
        assert_eq!(
            mirrors(&format!("other.example.com/app@{DIGEST}")),
            vec![Some("all.example.net".to_owned()), None]
        );
    }

    #[test]
    fn a_blocked_registry_is_an_error_naming_it_and_its_file() {
        let conf = conf(&[(
            "/etc/containers/registries.conf",
            "[[registry]]\nprefix = \"docker.io\"\nlocation = \"docker.io\"\nblocked = true\n",
        )]);
        let image = conf.reference("debian").unwrap();
        let e = conf.endpoints(&image).unwrap_err().to_string();
        assert!(e.contains("docker.io is blocked"), "{e}");
        assert!(e.contains("/etc/containers/registries.conf"), "{e}");
        // A more specific entry that is not blocked lets its repositories through.
        let mut more = conf.clone();
        more.merge(
            "d.conf",
            "[[registry]]\nprefix = \"docker.io/library/debian\"\nlocation = \"docker.io/library/debian\"\n",
        )
        .unwrap();
        assert!(more.endpoints(&image).is_ok());
    }

    #[test]
    fn a_wildcard_prefix_matches_hosts_under_the_domain_only() {
        let conf = conf(&[(
            "r.conf",
            r#"
[[registry]]
prefix = "*.example.com"
insecure = true
[[registry.mirror]]
location = "mirror.example.net"
"#,
        )]);
        assert_eq!(
            pulls(&conf, "a.b.example.com:5000/app:1"),
            vec![
                (
                    "mirror.example.net:5000/app:1".to_owned(),
                    false,
                    Some("mirror.example.net".to_owned())
                ),
                ("a.b.example.com:5000/app:1".to_owned(), true, None),
            ]
        );
        assert_eq!(pulls(&conf, "example.com/app").len(), 1);
        assert_eq!(pulls(&conf, "notexample.com/app").len(), 1);
    }

    #[test]
    fn a_drop_in_replaces_a_registry_with_the_same_prefix_and_aliases_merge() {
        let conf = conf(&[
            (
                "main.conf",
                "[aliases]\nweb = \"example.com/web/server\"\napp = \"example.com/app\"\n[[registry]]\nlocation = \"example.com\"\nblocked = true\n",
            ),
            (
                "registries.conf.d/10-open.conf",
                "[aliases]\napp = \"example.org/app\"\n[[registry]]\nlocation = \"example.com\"\n[[registry.mirror]]\nlocation = \"mirror.example.net\"\n",
            ),
        ]);
        assert_eq!(
            pulls(&conf, "web:1"),
            vec![
                (
                    "mirror.example.net/web/server:1".to_owned(),
                    false,
                    Some("mirror.example.net".to_owned())
                ),
                ("example.com/web/server:1".to_owned(), false, None),
            ]
        );
        assert_eq!(pulls(&conf, "app")[0].0, "example.org/app:latest");
    }

    #[test]
    fn an_alias_applies_to_short_names_only_and_keeps_the_tag_or_digest() {
        let conf = conf(&[(
            "shortnames.conf",
            "[aliases]\n\"fedora\" = \"registry.fedoraproject.org/fedora\"\n",
        )]);
        let named = |text: &str| conf.reference(text).unwrap().to_string();
        assert_eq!(named("fedora:40"), "registry.fedoraproject.org/fedora:40");
        assert_eq!(
            named(&format!("fedora@{DIGEST}")),
            format!("registry.fedoraproject.org/fedora@{DIGEST}")
        );
        // Docker's rule for anything else, including docker:// as skopeo reads it.
        assert_eq!(named("docker://fedora"), "docker.io/library/fedora:latest");
        assert_eq!(named("debian"), "docker.io/library/debian:latest");
        assert_eq!(named("docker.io/fedora"), "docker.io/library/fedora:latest");
        assert_eq!(named("fedora:5000/x"), "fedora:5000/x:latest");
    }

    #[test]
    fn a_file_that_does_not_parse_is_an_error_naming_it_and_the_line() {
        let mut conf = RegistriesConf::default();
        let e = conf
            .merge("/etc/containers/registries.conf", "[aliases]\n\nfoo = \n")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("/etc/containers/registries.conf, line 3:"),
            "{e}"
        );
        let e = conf
            .merge("x.conf", "[[registry]]\nlocation = 5\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("x.conf, line 2:"), "{e}");
    }

    #[test]
    fn invalid_registry_tables_are_refused_with_the_reason() {
        let refused = |text: &str| {
            RegistriesConf::default()
                .merge("r.conf", text)
                .unwrap_err()
                .to_string()
        };
        assert!(
            refused("[[registry]]\ninsecure = true\n").contains("neither a prefix nor a location")
        );
        assert!(
            refused("[[registry]]\nprefix = \"*.a.com\"\nlocation = \"b.com\"\n")
                .contains("wildcard")
        );
        assert!(refused("[[registry]]\nlocation = \"https://a.com\"\n").contains("not valid"));
        assert!(
            refused("[[registry]]\nlocation = \"a.com\"\n[[registry.mirror]]\nlocation = \"b.com\"\npull-from-mirror = \"sometimes\"\n")
                .contains("sometimes")
        );
        assert!(
            refused("[[registry]]\nlocation = \"a.com\"\nmirror-by-digest-only = true\n[[registry.mirror]]\nlocation = \"b.com\"\npull-from-mirror = \"all\"\n")
                .contains("both")
        );
        assert!(
            refused("[[registry]]\nlocation = \"a.com\"\n[[registry]]\nlocation = \"a.com\"\nblocked = true\n")
                .contains("twice")
        );
    }

    #[test]
    fn an_alias_must_name_a_repository_with_its_registry_and_no_tag() {
        let refused = |text: &str| {
            RegistriesConf::default()
                .merge("shortnames.conf", &format!("[aliases]\n{text}\n"))
                .unwrap_err()
                .to_string()
        };
        for bad in [
            "\"app\" = \"app\"",
            "\"app\" = \"example.com/app:1\"",
            "\"app\" = \"example.com/App\"",
            "\"example.com/app\" = \"example.com/app\"",
            "\"app:1\" = \"example.com/app\"",
        ] {
            let e = refused(bad);
            assert!(e.starts_with("shortnames.conf: alias "), "{bad}: {e}");
        }
        let mut conf = RegistriesConf::default();
        conf.merge(
            "ok.conf",
            "[aliases]\n\"team/app\" = \"localhost:5000/app\"\n",
        )
        .unwrap();
        assert_eq!(
            conf.reference("team/app:2").unwrap().to_string(),
            "localhost:5000/app:2"
        );
    }

    #[test]
    fn version_1_tables_and_other_keys_are_ignored() {
        let conf = conf(&[(
            "r.conf",
            "[registries.search]\nregistries = [\"quay.io\"]\n[registries.block]\nregistries = [\"docker.io\"]\nshort-name-mode = \"enforcing\"\n",
        )]);
        assert_eq!(conf, RegistriesConf::default());
    }
}
