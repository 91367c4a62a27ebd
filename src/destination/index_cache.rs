//! The cache of chunk indexes of a destination's local images (`DEST/index/<hex>`), read
//! and refreshed so that a delta update chunks each installed image once.

use std::fs::File;
use std::io;
use std::path::PathBuf;

use crate::format::chunk_index::{ChunkIndex, max_index_size};
use crate::fs::{Context, Dir, Found, IoError};
use crate::stream::chunking;

/// The directory of a destination that caches the chunk indexes of the
/// images in its `store/` (see docs/fetch.md).
pub use crate::destination::INDEX as LOCAL_INDEX;

#[derive(Debug, thiserror::Error)]
pub enum LocalIndexError {
    #[error("{0} is missing or not a regular file")]
    NotAFile(PathBuf),
    #[error("{path} does not match its name: its SHA-256 is {actual}")]
    Mismatch { path: PathBuf, actual: String },
    #[error(transparent)]
    Io(#[from] IoError),
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
pub fn local_index(dest: &Dir, hex: &str) -> Result<(ChunkIndex, File), LocalIndexError> {
    let store_path = dest.path().join(crate::destination::STORE);
    let image_path = store_path.join(hex);
    let store = dest
        .subdir(crate::destination::STORE)?
        .ok_or_else(|| LocalIndexError::NotAFile(image_path.clone()))?;
    let Found::File(mut image) = store.open_file(hex)? else {
        return Err(LocalIndexError::NotAFile(image_path));
    };
    let size = image.metadata().context("inspect", &image_path)?.len();
    let cache = dest.ensure_subdir(LOCAL_INDEX)?;
    // A cache entry that is not a regular file of at most the bound, or
    // not an index of this image, is simply replaced.
    if let Ok(Some(bytes)) = cache.read_file(hex, max_index_size(size), "read")
        && let Ok(index) = ChunkIndex::parse(&bytes)
        && index.size == size
        && hex::encode(index.digest) == hex
    {
        return Ok((index, image));
    }
    let index = chunking::index_of(&mut image).context("read", &image_path)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::chunk_index::{Chunk, MAX_CHUNK};
    use crate::stream::chunking::tests::noise;
    use sha2::{Digest, Sha256};
    use std::io::Read;
    use std::os::unix::fs::PermissionsExt;

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
        let (index, mut file) = local_index(&dest, &hex).unwrap();
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
                digest: [1; 32],
                length,
            });
            left -= u64::from(length);
        }
        std::fs::remove_file(&cached).unwrap();
        std::fs::write(&cached, other.to_bytes()).unwrap();
        assert_eq!(local_index(&dest, &hex).unwrap().0, other);
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
            assert_eq!(local_index(&dest, &hex).unwrap().0, right);
            assert_eq!(std::fs::read(&cached).unwrap(), right.to_bytes());
            std::fs::remove_file(&cached).unwrap();
        }
        // A symlink is replaced, never written through.
        std::os::unix::fs::symlink(&victim, &cached).unwrap();
        assert_eq!(local_index(&dest, &hex).unwrap().0, right);
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        assert!(!std::fs::symlink_metadata(&cached).unwrap().is_symlink());
    }

    #[test]
    fn a_local_image_that_does_not_match_its_name_is_no_source() {
        let image = noise(23, 100_000);
        let (dir, dest, hex) = destination_with(&image);
        let path = dir.path().join("store").join(&hex);
        std::fs::write(&path, b"changed").unwrap();
        let err = local_index(&dest, &hex).unwrap_err();
        assert!(err.to_string().contains("does not match its name"), "{err}");
        assert!(!dir.path().join("index").join(&hex).exists());
        let err = local_index(&dest, &"0".repeat(64)).unwrap_err();
        assert!(err.to_string().contains("missing"), "{err}");
    }
}
