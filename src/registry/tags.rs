//! The two calls publishing needs beyond pushes: listing a repository's tags (to find
//! every `tako-manifest.<keyid>`) and deleting a manifest (to retire a key's tag).

use super::{Client, MAX_OCI_MANIFEST, OciError, Request, api_base, host_of};
use crate::format::text::untrusted;
use crate::net::Method;

/// The most pages of a tag list followed: with the page sizes registries use (100 to
/// 1000 and more), far more tags than a repository of Tako versions has.
const MAX_TAG_PAGES: usize = 100;

/// What became of a manifest asked to be deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deleted {
    /// The registry deleted it, and every tag that named it.
    Yes,
    /// It was not there.
    Absent,
    /// The registry does not delete manifests, or not for these credentials.
    Refused,
}

#[derive(serde::Deserialize)]
struct TagList {
    #[serde(default)]
    tags: Option<Vec<String>>,
}

impl Client {
    /// Every tag of the repository (none when it does not exist yet), following the
    /// registry's `Link` to further pages.
    pub fn tags(&self) -> Result<Vec<String>, OciError> {
        let what = format!("tag list of {}", self.reference);
        let invalid = |reason: String| OciError::Invalid {
            what: what.clone(),
            registry: self.reference.registry.clone(),
            reason,
        };
        let mut url = format!("{}/tags/list", api_base(&self.reference));
        let home = host_of(&url);
        let mut tags = Vec::new();
        for _ in 0..MAX_TAG_PAGES {
            let request = Request {
                method: Method::Get,
                url: &url,
                headers: &[],
                body: None,
            };
            let mut response = self.send(&what, &request)?;
            match response.status() {
                200 => {}
                404 if tags.is_empty() => return Ok(tags),
                _ => return Err(self.status(&what, &mut response)),
            }
            let next = response
                .header("link")
                .and_then(next_link)
                .map(str::to_owned);
            let bytes = response
                .body()
                .read_capped(MAX_OCI_MANIFEST)
                .map_err(|e| self.transport_error(&what, e))?;
            let page: TagList = serde_json::from_slice(&bytes)
                .map_err(|_| invalid("the answer is not a tag list".to_string()))?;
            tags.extend(page.tags.unwrap_or_default());
            let Some(next) = next else {
                return Ok(tags);
            };
            // The next page is on the registry itself: the request carries `Authorization`.
            let joined = url::Url::parse(&url)
                .and_then(|base| base.join(&next))
                .map_err(|_| invalid(format!("a Link to '{}'", untrusted(&next))))?;
            if host_of(joined.as_str()) != home {
                return Err(invalid("a Link to another host".to_string()));
            }
            url = joined.to_string();
        }
        Err(invalid(format!("more than {MAX_TAG_PAGES} pages of tags")))
    }

    /// Deletes the manifest `digest` (`sha256:<hex>`), and with it every tag that names it.
    pub fn delete_manifest(&self, digest: &str) -> Result<Deleted, OciError> {
        let what = format!("deletion of manifest {digest} of {}", self.reference);
        let url = format!("{}/manifests/{digest}", api_base(&self.reference));
        let request = Request {
            method: Method::Delete,
            url: &url,
            headers: &[],
            body: None,
        };
        let mut response = match self.send(&what, &request) {
            Ok(response) => response,
            // A token without the right to delete: the same as a registry that forbids it.
            Err(OciError::Refused { .. } | OciError::NoCredentials { .. }) => {
                return Ok(Deleted::Refused);
            }
            Err(e) => return Err(e),
        };
        match response.status() {
            200 | 202 | 204 => Ok(Deleted::Yes),
            404 => Ok(Deleted::Absent),
            // 405 UNSUPPORTED: deletes are disabled; 403 DENIED: not for this publisher;
            // 400: a registry that deletes tags only in its own API.
            400 | 403 | 405 => Ok(Deleted::Refused),
            _ => Err(self.status(&what, &mut response)),
        }
    }
}

/// The target of the `rel="next"` link of a `Link` header value
/// (`</v2/app/tags/list?last=x&n=100>; rel="next"`).
fn next_link(value: &str) -> Option<&str> {
    value.split(',').find_map(|link| {
        let (target, params) = link.split_once(';')?;
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        let next = params.split(';').any(|p| {
            let p = p.trim();
            p == "rel=\"next\"" || p == "rel=next"
        });
        next.then_some(target)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_page_of_tags_is_the_link_marked_next() {
        assert_eq!(
            next_link("</v2/app/tags/list?last=b&n=2>; rel=\"next\""),
            Some("/v2/app/tags/list?last=b&n=2")
        );
        assert_eq!(
            next_link(
                "<https://r/v2/a/tags/list?n=1&last=a>; rel=\"prev\", </v2/a/tags/list?n=1&last=c>; rel=next"
            ),
            Some("/v2/a/tags/list?n=1&last=c")
        );
        assert_eq!(next_link("</v2/a>; rel=\"prev\""), None);
        assert_eq!(next_link("garbage"), None);
    }
}
