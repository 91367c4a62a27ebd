//! A publisher's server directory and a host's config, built with the real binary.

use std::fs;
use std::path::{Path, PathBuf};

use super::tako::*;

/// A temporary directory holding an origin (`origin/`), a host destination
/// (`dest/`) and config files.
pub struct World {
    pub dir: tempfile::TempDir,
}

impl World {
    pub fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("origin")).unwrap();
        fs::create_dir(dir.path().join("dest")).unwrap();
        World { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn origin(&self) -> PathBuf {
        self.path("origin")
    }

    pub fn dest(&self) -> PathBuf {
        self.path("dest")
    }

    pub fn file_url(&self) -> String {
        format!("file://{}", self.origin().display())
    }

    /// The content published for `version` by [`World::publish`].
    pub fn content(version: &str) -> Vec<u8> {
        format!("image of version {version}\n").into_bytes()
    }

    /// Publishes `version` with the test key; returns its digest.
    pub fn publish(&self, version: &str) -> String {
        self.publish_bytes(version, &World::content(version))
    }

    pub fn publish_bytes(&self, version: &str, content: &[u8]) -> String {
        let image = self.path(&format!("image-{version}"));
        fs::write(&image, content).unwrap();
        let origin = self.origin();
        let o = tako(&[
            "store",
            "-k",
            &test_secret(),
            "-o",
            origin.to_str().unwrap(),
            image.to_str().unwrap(),
            version,
        ]);
        assert_exit(&o, 0);
        sha256_hex(content)
    }

    /// Writes a config named `name` for this world's destination.
    pub fn config(&self, name: &str, origin_url: &str, pattern: &str, extra: &str) -> PathBuf {
        let text = format!(
            "Origin={origin_url}\nPublicKey={TEST_PUBLIC}\nDestination={}\nVersion={pattern}\n{extra}",
            self.dest().display()
        );
        let path = self.path(name);
        fs::write(&path, text).unwrap();
        path
    }

    /// Where `dest/latest` points, if anywhere.
    pub fn latest(&self) -> Option<PathBuf> {
        fs::read_link(self.dest().join("latest")).ok()
    }

    /// Asserts `latest` points at the store file of `digest` and that the
    /// file holds `content`.
    #[track_caller]
    pub fn assert_latest(&self, digest: &str, content: &[u8]) {
        assert_eq!(
            self.latest(),
            Some(Path::new("store").join(digest)),
            "where latest points"
        );
        let file = self.dest().join("latest");
        assert_eq!(fs::read(&file).unwrap(), content);
        assert_eq!(mode(&self.dest().join("store").join(digest)), 0o444);
    }

    /// Names in `dest/store`, sorted.
    pub fn store_files(&self) -> Vec<String> {
        let Ok(dir) = fs::read_dir(self.dest().join("store")) else {
            return Vec::new();
        };
        let mut names: Vec<String> = dir
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }
}
