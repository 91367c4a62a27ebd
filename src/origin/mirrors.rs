//! Several origins that serve the same publisher's files (`Origin=` repeated), in order of
//! preference.
//!
//! The choice between them is made above the trait, by the engine (`update/`), because a mirror can fail in ways only a check of what it served
//! reveals (a stale manifest, a damaged image): they go through [`Origin::places`]. The
//! trait's own methods take the first mirror that answers at all, for callers that need
//! no more than that.

use super::{Body, Kind, ManifestFile, ManifestName, Origin, OriginError, Resume, Validators};

/// A list of mirrors, at least one.
pub struct Mirrors {
    members: Vec<Box<dyn Origin>>,
}

impl Mirrors {
    #[cfg(test)]
    pub fn new<O: Origin + 'static>(members: Vec<O>) -> Mirrors {
        Mirrors::of(
            members
                .into_iter()
                .map(|m| Box::new(m) as Box<dyn Origin>)
                .collect(),
        )
    }

    /// Mirrors of different kinds (web servers and registries).
    pub fn of(members: Vec<Box<dyn Origin>>) -> Mirrors {
        Mirrors { members }
    }

    /// The first answer of `ask` that is not a miss (404, 410, a network failure), or the
    /// last miss.
    fn first<T>(
        &self,
        ask: impl Fn(&dyn Origin) -> Result<T, OriginError>,
    ) -> Result<T, OriginError> {
        let mut last = None;
        for member in &self.members {
            match ask(member.as_ref()) {
                Err(e) if matches!(e.kind(), Kind::NotFound | Kind::Gone | Kind::Transient) => {
                    last = Some(e)
                }
                answer => return answer,
            }
        }
        Err(last.unwrap_or_else(OriginError::no_place))
    }
}

impl Origin for Mirrors {
    fn describe(&self) -> String {
        self.members
            .iter()
            .map(|m| m.describe())
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn manifest(
        &self,
        name: ManifestName<'_>,
        max: u64,
        known: Option<&Validators>,
    ) -> Result<ManifestFile, OriginError> {
        self.first(|m| m.manifest(name, max, known))
    }

    fn open_image(&self, hex: &str, resume: Option<&Resume>) -> Result<Body, OriginError> {
        self.first(|m| m.open_image(hex, resume))
    }

    fn open_blob(&self, hex: &str, resume: Option<&Resume>) -> Result<Body, OriginError> {
        self.first(|m| m.open_blob(hex, resume))
    }

    fn image_manifest(&self, hex: &str, max: u64) -> Result<Vec<u8>, OriginError> {
        self.first(|m| m.image_manifest(hex, max))
    }

    fn places(&self) -> Vec<&dyn Origin> {
        self.members.iter().flat_map(|m| m.places()).collect()
    }
}
