//! The cache of chunk indexes of a destination's local images (`DEST/index/<hex>`), read
//! and refreshed so that a delta update chunks each installed image once.

use std::fs::File;
use std::io::{self, Read};
use std::path::PathBuf;
use std::time::Instant;

use crate::format::chunk_index::{ChunkIndex, max_index_size};
use crate::fs::{Context, Dir, Found, IoError};
use crate::stream::chunking;
use crate::stream::deadline::UntilDeadline;

/// The directory of a destination that caches the chunk indexes of the
/// images in its `store/` (see docs/fetch.md).
pub use crate::destination::INDEX as LOCAL_INDEX;

#[derive(Debug, thiserror::Error)]
pub enum LocalIndexError {
    #[error("{0} is missing or not a regular file")]
    NotAFile(PathBuf),
    #[error("{path} does not match its name: its SHA-256 is {actual}")]
    Mismatch { path: PathBuf, actual: String },
    #[error("{} is {size} bytes, {allowed}; not reading it", path.display())]
    WrongSize {
        path: PathBuf,
        size: u64,
        allowed: Allowed,
    },
    #[error(transparent)]
    Io(#[from] IoError),
}

/// The size the signed manifest allows a local image: the size of its entry, or, for an
/// image it no longer lists, at most that of the largest it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allowed {
    Signed(u64),
    AtMost(u64),
}

impl Allowed {
    fn admits(self, size: u64) -> bool {
        match self {
            Allowed::Signed(signed) => size == signed,
            Allowed::AtMost(largest) => size <= largest,
        }
    }

    fn most(self) -> u64 {
        match self {
            Allowed::Signed(n) | Allowed::AtMost(n) => n,
        }
    }
}

impl std::fmt::Display for Allowed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Allowed::Signed(n) => write!(f, "not the {n} bytes signed for it"),
            Allowed::AtMost(n) => write!(
                f,
                "more than the largest image the manifest lists ({n} bytes)"
            ),
        }
    }
}

/// The chunk index of the installed image `store/<hex>` of a destination,
/// with the image opened for reading.
///
/// The index is cached as `index/<hex>` (read-only, written atomically), so
/// an image is chunked once, not on every update. A cached index is used
/// only if it is a valid index of an image of this size and digest;
/// otherwise (missing, damaged, planted) the image is chunked again, its
/// digest checked against its name, and the cache replaced. Callers hold
/// the destination's lock.
///
/// Nothing is read of an image whose size the signed manifest does not allow (`allowed`):
/// a planted sparse file of terabytes costs no disk but would take hours to chunk, on every
/// run, since its digest cannot match its name. Nor is a cached index larger than an index
/// of that size can be. Chunking stops at `deadline` (`--max-time`).
pub fn local_index(
    dest: &Dir,
    hex: &str,
    allowed: Allowed,
    deadline: Option<Instant>,
) -> Result<(ChunkIndex, File), LocalIndexError> {
    let store_path = dest.path().join(crate::destination::STORE);
    let image_path = store_path.join(hex);
    let store = dest
        .subdir(crate::destination::STORE)?
        .ok_or_else(|| LocalIndexError::NotAFile(image_path.clone()))?;
    let Found::File(mut image) = store.open_file(hex)? else {
        return Err(LocalIndexError::NotAFile(image_path));
    };
    let size = image.metadata().context("inspect", &image_path)?.len();
    if !allowed.admits(size) {
        return Err(LocalIndexError::WrongSize {
            path: image_path,
            size,
            allowed,
        });
    }
    let cache = dest.ensure_subdir(LOCAL_INDEX)?;
    // A cache entry that is not a regular file of at most the bound, or
    // not an index of this image, is simply replaced.
    if let Some(bytes) = read_cached(&cache, hex, max_index_size(size))
        && let Ok(index) = ChunkIndex::parse(&bytes)
        && index.size == size
        && hex::encode(index.digest) == hex
    {
        return Ok((index, image));
    }
    // Cut at the size allowed, in case the file grows while it is read.
    let mut input = UntilDeadline::new((&image).take(allowed.most().saturating_add(1)), deadline);
    let index = chunking::index_of(&mut input).context("read", &image_path)?;
    let actual = hex::encode(index.digest);
    if actual != hex {
        return Err(LocalIndexError::Mismatch {
            path: image_path,
            actual,
        });
    }
    cache.write_file(hex, &index.to_bytes())?;
    // Returned as it was opened: at its start.
    io::Seek::rewind(&mut image).context("read", &image_path)?;
    Ok((index, image))
}

/// The cached index `hex` if it is a regular file of at most `max` bytes, judged by its
/// size before a byte of it is read.
fn read_cached(cache: &Dir, hex: &str, max: u64) -> Option<Vec<u8>> {
    let Ok(Found::File(file)) = cache.open_file(hex) else {
        return None;
    };
    if file.metadata().ok()?.len() > max {
        return None;
    }
    let mut bytes = Vec::new();
    file.take(max.saturating_add(1))
        .read_to_end(&mut bytes)
        .ok()?;
    (bytes.len() as u64 <= max).then_some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::chunk_index::{Chunk, DIGEST_LEN, MAX_CHUNK};
    use crate::stream::chunking::tests::noise;
    use sha2::{Digest, Sha256};
    use std::io::Read;
    use std::os::unix::fs::PermissionsExt;

    /// Any image the tests use.
    fn any() -> Allowed {
        Allowed::AtMost(1 << 30)
    }

    fn destination_with(image: &[u8]) -> (tempfile::TempDir, Dir, String) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("store")).unwrap();
        let hex = hex::encode(Sha256::digest(image));
        std::fs::write(dir.path().join("store").join(&hex), image).unwrap();
        let dest = Dir::open(dir.path()).unwrap();
        (dir, dest, hex)
    }

    #[test]
    fn the_local_index_is_computed_once_and_cached() {
        let image = noise(21, 1 << 20);
        let (dir, dest, hex) = destination_with(&image);
        let (index, mut file) = local_index(&dest, &hex, any(), None).unwrap();
        assert_eq!(index, chunking::index_of(&mut image.as_slice()).unwrap());
        let mut read_back = Vec::new();
        file.read_to_end(&mut read_back).unwrap();
        assert!(read_back == image);
        let cached = dir.path().join("index").join(&hex);
        assert_eq!(std::fs::read(&cached).unwrap(), index.to_bytes());
        assert_eq!(
            std::fs::metadata(&cached).unwrap().permissions().mode() & 0o777,
            0o444
        );

        // The cache is what a second call reads: an index of the same image
        // with other (valid) chunk boundaries is taken as it is.
        let mut other = ChunkIndex {
            size: index.size,
            digest: index.digest,
            chunks: vec![],
        };
        let mut left = index.size;
        while left > 0 {
            let length = left.min(u64::from(MAX_CHUNK)) as u32;
            other.chunks.push(Chunk {
                digest: [1; DIGEST_LEN],
                length,
            });
            left -= u64::from(length);
        }
        std::fs::remove_file(&cached).unwrap();
        std::fs::write(&cached, other.to_bytes()).unwrap();
        assert_eq!(local_index(&dest, &hex, any(), None).unwrap().0, other);
    }

    #[test]
    fn a_bad_cached_index_is_replaced() {
        let image = noise(22, 300_000);
        let (dir, dest, hex) = destination_with(&image);
        let right = chunking::index_of(&mut image.as_slice()).unwrap();
        let cached = dir.path().join("index").join(&hex);
        std::fs::create_dir(dir.path().join("index")).unwrap();
        let of_another = chunking::index_of(&mut &b"another"[..]).unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        for planted in [b"garbage".to_vec(), of_another.to_bytes()] {
            std::fs::write(&cached, &planted).unwrap();
            assert_eq!(local_index(&dest, &hex, any(), None).unwrap().0, right);
            assert_eq!(std::fs::read(&cached).unwrap(), right.to_bytes());
            std::fs::remove_file(&cached).unwrap();
        }
        // A symlink is replaced, never written through.
        std::os::unix::fs::symlink(&victim, &cached).unwrap();
        assert_eq!(local_index(&dest, &hex, any(), None).unwrap().0, right);
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        assert!(!std::fs::symlink_metadata(&cached).unwrap().is_symlink());
    }

    #[test]
    fn a_local_image_that_does_not_match_its_name_is_no_source() {
        let image = noise(23, 100_000);
        let (dir, dest, hex) = destination_with(&image);
        let path = dir.path().join("store").join(&hex);
        std::fs::write(&path, b"changed").unwrap();
        let err = local_index(&dest, &hex, any(), None).unwrap_err();
        assert!(err.to_string().contains("does not match its name"), "{err}");
        assert!(!dir.path().join("index").join(&hex).exists());
        let err = local_index(&dest, &"0".repeat(64), any(), None).unwrap_err();
        assert!(err.to_string().contains("missing"), "{err}");
    }

    #[test]
    fn an_image_of_a_size_the_manifest_does_not_allow_is_not_read_nor_its_cached_index() {
        let image = noise(24, 100_000);
        let (dir, dest, hex) = destination_with(&image);
        let path = dir.path().join("store").join(&hex);
        let err = local_index(&dest, &hex, Allowed::Signed(99_999), None).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "{} is 100000 bytes, not the 99999 bytes signed for it; not reading it",
                path.display()
            )
        );
        let err = local_index(&dest, &hex, Allowed::AtMost(50_000), None).unwrap_err();
        assert!(
            err.to_string()
                .ends_with("is 100000 bytes, more than the largest image the manifest lists (50000 bytes); not reading it"),
            "{err}"
        );
        assert!(!dir.path().join("index").join(&hex).exists());

        // A cached index larger than any index of the image can be is replaced unread: a
        // sparse file of 1 TiB would otherwise be read up to the bound.
        std::fs::create_dir(dir.path().join("index")).unwrap();
        let cached = dir.path().join("index").join(&hex);
        std::fs::File::create(&cached)
            .unwrap()
            .set_len(1 << 40)
            .unwrap();
        let (index, _) = local_index(&dest, &hex, Allowed::Signed(100_000), None).unwrap();
        assert_eq!(std::fs::read(&cached).unwrap(), index.to_bytes());

        // Chunking counts against --max-time.
        std::fs::remove_file(&cached).unwrap();
        let err = local_index(&dest, &hex, any(), Some(Instant::now())).unwrap_err();
        assert!(err.to_string().contains("--max-time"), "{err}");
    }
}
