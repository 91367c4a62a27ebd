//! A static directory of files as an origin: `manifest`, `manifest.<keyid>` and
//! `store/<hex>` under one base URL, over `http(s)://` or `file://` (SPEC §6).

use url::Url;

use super::{Answer, Body, ManifestFile, ManifestName, Origin, OriginError, Resume, Validators};
use crate::format::manifest::Entry;
use crate::format::origin_url::show_url;
use crate::net::{Conditions, Transport, TransportError};

/// The signed manifest of a server directory, and the prefix of each `manifest.<keyid>`.
pub const MANIFEST: &str = "manifest";
/// The directory of images, each named by its SHA-256 in lowercase hex.
pub const STORE: &str = "store";
/// The directory of chunk indexes, each named as its image (see docs/index.md).
pub const INDEX: &str = "index";
/// The directory of a container image's blobs, `blobs/sha256/<hex>` as in an OCI image
/// layout: every manifest, config and layer a published image pins (docs/containers.md).
pub const BLOBS: &str = "blobs";

/// A server directory reached through a [`Transport`] that carries its credentials.
#[derive(Debug)]
pub struct Dir {
    /// The directory's URL with a trailing slash, so that joining a relative name keeps
    /// its last segment. Any password in it is already `***` (see `transport::parse_origin`).
    base: Url,
    transport: Transport,
}

impl Dir {
    /// The directory at `url` (as `Config::origin` holds it), reached through `transport`.
    pub fn new(url: &str, transport: Transport) -> Result<Dir, TransportError> {
        let mut base = Url::parse(url).map_err(|e| TransportError::InvalidUrl {
            url: show_url(url),
            reason: e.to_string(),
        })?;
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        Ok(Dir { base, transport })
    }

    /// The URL of a file in the directory; `name` is one of tako's own relative names.
    fn url_of(&self, name: &str) -> String {
        // Joining a relative path of plain segments onto a URL with a trailing slash
        // cannot fail; fall back to the text form all the same rather than panic.
        self.base
            .join(name)
            .map_or_else(|_| format!("{}{name}", self.base), String::from)
    }
}

impl Origin for Dir {
    fn describe(&self) -> String {
        show_url(self.base.as_str().trim_end_matches('/'))
    }

    fn manifest(
        &self,
        name: ManifestName<'_>,
        max: u64,
        known: Option<&Validators>,
    ) -> Result<ManifestFile, OriginError> {
        let file = name.slot().name(MANIFEST);
        let url = self.url_of(&file);
        // Validators are only worth anything to the server, and the file, that made them.
        let conditions = match known.filter(|k| k.url == show_url(&url)) {
            Some(known) => Conditions {
                if_none_match: known.etag.clone(),
                if_modified_since: known.last_modified.clone(),
                ..Conditions::default()
            },
            None => Conditions::default(),
        };
        let small = self.transport.get_capped_with(&url, max, &conditions)?;
        let validators =
            (small.etag.is_some() || small.last_modified.is_some()).then(|| Validators {
                url: show_url(&url),
                etag: small.etag,
                last_modified: small.last_modified,
            });
        Ok(ManifestFile {
            url: small.url,
            bytes: (small.answer != Answer::NotModified).then_some(small.bytes),
            validators,
        })
    }

    fn open_image(&self, hex: &str, resume: Option<&Resume>) -> Result<Body, OriginError> {
        let conditions = match resume {
            Some(resume) => Conditions {
                range_from: Some(resume.offset),
                if_range: resume.if_range.clone(),
                ..Conditions::default()
            },
            None => Conditions::default(),
        };
        let body = self
            .transport
            .open_with(&self.url_of(&format!("{STORE}/{hex}")), &conditions)?;
        Ok(body.into())
    }

    fn open_blob(&self, hex: &str, resume: Option<&Resume>) -> Result<Body, OriginError> {
        let conditions = match resume {
            Some(resume) => Conditions {
                range_from: Some(resume.offset),
                if_range: resume.if_range.clone(),
                ..Conditions::default()
            },
            None => Conditions::default(),
        };
        let body = self
            .transport
            .open_with(&self.url_of(&format!("{BLOBS}/sha256/{hex}")), &conditions)?;
        Ok(body.into())
    }

    fn image_manifest(&self, hex: &str, max: u64) -> Result<Vec<u8>, OriginError> {
        Ok(self
            .transport
            .get_capped(&self.url_of(&format!("{BLOBS}/sha256/{hex}")), max)?)
    }

    fn chunk_index(&self, entry: &Entry, max: u64) -> Result<Option<Vec<u8>>, OriginError> {
        let hex = entry.digest_hex();
        match self
            .transport
            .get_capped(&self.url_of(&format!("{INDEX}/{hex}")), max)
        {
            Ok(bytes) => Ok(Some(bytes)),
            // No index (a directory published before indexes, or with `--no-index`).
            Err(TransportError::NotFound { .. } | TransportError::Gone { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn open_range(&self, hex: &str, start: u64, end: u64) -> Result<Option<Body>, OriginError> {
        let body = self.transport.open_with(
            &self.url_of(&format!("{STORE}/{hex}")),
            &super::range_conditions(start, end),
        )?;
        super::exact_range(body, start, "file", "server")
    }

    fn open_ranges(&self, hex: &str, ranges: &[(u64, u64)]) -> Result<Option<Body>, OriginError> {
        // A file:// origin reads a range by seeking: one request costs nothing there.
        if !matches!(self.base.scheme(), "http" | "https") || ranges.len() < 2 {
            return Ok(None);
        }
        let body = self.transport.open_with(
            &self.url_of(&format!("{STORE}/{hex}")),
            &Conditions {
                ranges: ranges.to_vec(),
                ..Conditions::default()
            },
        )?;
        // A 200 (the whole file) or a single 206: this server does not send several
        // ranges at once. The body is dropped unread.
        let Some(boundary) = body.multipart_boundary().map(str::to_owned) else {
            return Ok(None);
        };
        let url = body.url().to_owned();
        let parts = super::parts::Parts::new(body, &url, &boundary, ranges);
        Ok(Some(Body::new(
            url,
            Answer::Partial {
                start: ranges.first().map_or(0, |r| r.0),
            },
            Box::new(parts),
        )))
    }

    fn places(&self) -> Vec<&dyn Origin> {
        vec![self]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::transport_config::TransportConfig;
    use crate::net::ProxyConfig;

    fn dir(url: &str) -> Dir {
        let transport = Transport::with_proxies(TransportConfig::default(), ProxyConfig::none());
        Dir::new(url, transport).unwrap()
    }

    #[test]
    fn names_are_joined_under_the_directory_with_or_without_a_trailing_slash() {
        assert_eq!(dir("http://h/o").url_of("manifest"), "http://h/o/manifest");
        assert_eq!(dir("http://h/o/").url_of("manifest"), "http://h/o/manifest");
        assert_eq!(dir("http://h").url_of("store/ab"), "http://h/store/ab");
        assert_eq!(
            dir("file:///srv/o").url_of("store/ab"),
            "file:///srv/o/store/ab"
        );
        assert_eq!(
            dir("https://***@h:8/a%20b").url_of("manifest.0123"),
            "https://***@h:8/a%20b/manifest.0123"
        );
    }

    #[test]
    fn alternative_manifests_are_named_by_key_id() {
        let key =
            crate::format::key::PublicKey::parse("l0D28J2fiIXvWPbeZP7wkaq+dB55Gl2ysigl9mQH29k=")
                .unwrap();
        assert_eq!(
            ManifestName::ForKey(&key).slot().name(MANIFEST),
            "manifest.9ee3a79654281274"
        );
        assert_eq!(ManifestName::Primary.slot().name(MANIFEST), "manifest");
    }

    #[test]
    fn only_exact_manifest_names_are_manifest_files() {
        use crate::origin::Slot;
        let id = crate::format::key::KeyId::parse("9ee3a79654281274").unwrap();
        assert_eq!(Slot::parse("manifest", MANIFEST), Some(Slot::Primary));
        assert_eq!(
            Slot::parse("manifest.9ee3a79654281274", MANIFEST),
            Some(Slot::Key(id))
        );
        for other in [
            "manifest.new",
            "manifest.9EE3A79654281274",
            "manifest. 9ee3a79654281274",
            "manifest.9ee3a79654281274 ",
            "manifests",
            "manifest.",
            "store",
        ] {
            assert_eq!(Slot::parse(other, MANIFEST), None, "{other:?}");
        }
    }

    #[test]
    fn describes_itself_without_the_trailing_slash() {
        assert_eq!(dir("https://***@h/o/").describe(), "https://***@h/o");
    }
}
