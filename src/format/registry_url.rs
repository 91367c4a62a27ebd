//! A registry repository as tako's `Origin=` names it: `oci://REGISTRY[:PORT]/REPOSITORY`
//! (HTTPS) or `oci+http://HOST:PORT/REPOSITORY` (plain HTTP, for a local registry).
//!
//! This is tako's own origin syntax, not a container image reference (`docker.io/library/
//! alpine:3`): it names a repository, never a tag or digest, and carries no credentials
//! (they come from the registry auth files). Kept pure so that the config check, the
//! origin parser and the registry client all read it the same way.

use super::origin_url::show_url;

/// `oci://REGISTRY[:PORT]/REPOSITORY` (HTTPS) or `oci+http://HOST:PORT/REPOSITORY`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryUrl {
    pub https: bool,
    /// `host[:port]`.
    pub registry: String,
    pub repository: String,
}

/// A text that is no registry repository URL; it holds the text with any password hidden.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid registry origin '{0}': use oci://REGISTRY[:PORT]/REPOSITORY or oci+http://HOST:PORT/REPOSITORY (lowercase repository path)"
)]
pub struct RegistryUrlError(pub String);

impl RegistryUrl {
    /// Whether `text` is meant as a registry repository (its scheme says so), valid or not.
    pub fn is_registry_url(text: &str) -> bool {
        text.starts_with("oci://") || text.starts_with("oci+http://")
    }

    pub fn parse(text: &str) -> Result<RegistryUrl, RegistryUrlError> {
        // `show_url` hides a password someone put in the URL anyway.
        let bad = || RegistryUrlError(show_url(text));
        let (https, rest) = if let Some(rest) = text.strip_prefix("oci://") {
            (true, rest)
        } else if let Some(rest) = text.strip_prefix("oci+http://") {
            (false, rest)
        } else {
            return Err(bad());
        };
        let (registry, repository) = rest.split_once('/').ok_or_else(bad)?;
        let repository = repository.trim_end_matches('/');
        // Credentials in the URL are refused: they belong in an auth file, where they are
        // not shown by `ps` or written into configs.
        let host_ok = !registry.is_empty()
            && registry
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b));
        if let Some((host, port)) = registry.rsplit_once(':')
            && !registry.ends_with(']')
            && (host.is_empty() || port.parse::<u16>().is_err())
        {
            // `oci://:80/a`: a port with no host.
            return Err(bad());
        }
        // The distribution spec's repository grammar: lowercase components separated by
        // `/`, each alphanumerics joined by `.`, `_`, `__` or `-`.
        let component_ok = |c: &str| {
            let bytes = c.as_bytes();
            bytes
                .first()
                .zip(bytes.last())
                .is_some_and(|(first, last)| {
                    first.is_ascii_alphanumeric() && last.is_ascii_alphanumeric()
                })
                && bytes
                    .iter()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(b))
        };
        if !host_ok || repository.len() > 255 || !repository.split('/').all(component_ok) {
            return Err(bad());
        }
        Ok(RegistryUrl {
            https,
            registry: registry.to_string(),
            repository: repository.to_string(),
        })
    }
}

impl std::fmt::Display for RegistryUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.https { "oci" } else { "oci+http" };
        write!(f, "{scheme}://{}/{}", self.registry, self.repository)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_origins_name_a_registry_and_a_lowercase_repository() {
        let r = RegistryUrl::parse("oci://ghcr.io/acme/images/app").unwrap();
        assert!(r.https);
        assert_eq!(r.registry, "ghcr.io");
        assert_eq!(r.repository, "acme/images/app");
        let r = RegistryUrl::parse("oci+http://127.0.0.1:5000/app/").unwrap();
        assert!(!r.https);
        assert_eq!(r.to_string(), "oci+http://127.0.0.1:5000/app");
        for bad in [
            "oci://ghcr.io",
            "oci://ghcr.io/",
            "oci://user:pw@ghcr.io/app",
            "oci://ghcr.io/App",
            "oci://ghcr.io/a//b",
            "oci://ghcr.io:x/app",
            "oci://ghcr.io/app?x",
            "oci://ghcr.io/-app",
            "http://ghcr.io/app",
        ] {
            assert!(RegistryUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_password_in_a_registry_origin_is_never_shown() {
        let err = RegistryUrl::parse("oci://u:secret@ghcr.io/app").unwrap_err();
        let msg = err.to_string();
        assert!(
            !msg.contains("secret") && msg.contains("***@ghcr.io"),
            "{msg}"
        );
    }
}
