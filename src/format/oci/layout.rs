//! The OCI image layout's `index.json`: which of its entries `oci:PATH[:TAG]` names.
//!
//! A tag is the `org.opencontainers.image.ref.name` annotation of an entry (the first entry
//! carrying it, as containers/image reads a layout); no tag names the only entry, and a
//! layout with several entries then needs one.

use super::manifest::{Descriptor, ImageIndex};
use crate::format::text::untrusted;

/// The annotation that names an entry of a layout's `index.json`.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// Why no entry of a layout's index was chosen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    #[error("no image in index.json is named {0} (org.opencontainers.image.ref.name)")]
    NoSuchTag(String),
    #[error("index.json lists no image")]
    Empty,
    #[error(
        "index.json lists {0} images; name one with oci:PATH:TAG (its org.opencontainers.image.ref.name)"
    )]
    Ambiguous(usize),
}

/// The entry of `index` that `tag` names, or the only entry when `tag` is `None`.
pub fn entry<'a>(index: &'a ImageIndex, tag: Option<&str>) -> Result<&'a Descriptor, LayoutError> {
    match tag {
        Some(tag) => index
            .manifests
            .iter()
            .find(|d| {
                d.annotations
                    .as_ref()
                    .and_then(|a| a.get(REF_NAME))
                    .is_some_and(|name| name == tag)
            })
            .ok_or_else(|| LayoutError::NoSuchTag(untrusted(tag))),
        None => match index.manifests.as_slice() {
            [] => Err(LayoutError::Empty),
            [only] => Ok(only),
            many => Err(LayoutError::Ambiguous(many.len())),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::oci::manifest::{self, ParsedManifest};
    use crate::format::oci::media;

    fn index(names: &[Option<&str>]) -> ImageIndex {
        let entries: Vec<String> = names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let annotations = name
                    .map(|n| format!(r#","annotations":{{"{REF_NAME}":"{n}"}}"#))
                    .unwrap_or_default();
                format!(
                    r#"{{"mediaType":"{}","digest":"sha256:{}","size":{}{annotations}}}"#,
                    media::OCI_MANIFEST,
                    format!("{i:02x}").repeat(32),
                    100 + i
                )
            })
            .collect();
        let json = format!(
            r#"{{"schemaVersion":2,"manifests":[{}]}}"#,
            entries.join(",")
        );
        match manifest::parse(json.as_bytes(), Some(media::OCI_INDEX)).unwrap() {
            ParsedManifest::Index { index, .. } => index,
            other => panic!("not an index: {other:?}"),
        }
    }

    #[test]
    fn a_tag_names_the_entry_whose_ref_name_it_is() {
        let index = index(&[Some("1.0"), None, Some("2.0")]);
        assert_eq!(entry(&index, Some("2.0")).unwrap().size, 102);
        assert_eq!(entry(&index, Some("1.0")).unwrap().size, 100);
        assert_eq!(
            entry(&index, Some("3.0")).unwrap_err(),
            LayoutError::NoSuchTag("3.0".to_owned())
        );
    }

    #[test]
    fn no_tag_names_the_only_image_and_refuses_to_guess_among_several() {
        assert_eq!(entry(&index(&[Some("x")]), None).unwrap().size, 100);
        assert_eq!(
            entry(&index(&[None, None]), None).unwrap_err(),
            LayoutError::Ambiguous(2)
        );
        assert_eq!(entry(&index(&[]), None).unwrap_err(), LayoutError::Empty);
    }
}
