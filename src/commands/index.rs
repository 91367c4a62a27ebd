//! `tako index`: write the missing chunk indexes of a server directory's images.
//!
//! For directories published before `tako store` wrote indexes, by the
//! original Tako included. No key is needed: an index is unsigned, and each
//! image is hashed here and indexed only under the name its bytes give it, so
//! a damaged store file never gets an index that vouches for it.

use std::fs;
use std::path::PathBuf;

use crate::cli::IndexArgs;
use crate::format::chunk_index::{ChunkIndex, ChunkIndexError, max_index_size};
use crate::fs::{Context, Dir, Found, IoError};
use crate::origin::dir::INDEX;
use crate::stream::chunking;
use crate::ui::output;

#[derive(Debug, thiserror::Error)]
pub enum ReindexError {
    #[error(
        "{0} is a registry repository; tako index writes indexes into server directories only, and for registries the index is written by tako store (publish the version again to add one)"
    )]
    Registry(String),
    #[error("output directory {0} does not exist or is not a directory")]
    NoOutputDir(PathBuf),
    #[error("{0} has no store/ directory: nothing to index")]
    NoStore(PathBuf),
    #[error("{failed} of {total} images could not be indexed")]
    Failed { failed: usize, total: usize },
    #[error(transparent)]
    Io(#[from] IoError),
}

/// What became of one store file.
enum Outcome {
    Written(usize),
    Present,
    Failed,
}

/// Runs `tako index`; prints a line per index written and one in all.
pub fn run(args: &IndexArgs) -> Result<(), ReindexError> {
    let out = args.output.as_path();
    let given = out.to_string_lossy();
    if given.starts_with("oci://") || given.starts_with("oci+http://") {
        return Err(ReindexError::Registry(crate::format::text::untrusted(
            &given,
        )));
    }
    if !out.is_dir() {
        return Err(ReindexError::NoOutputDir(out.to_path_buf()));
    }
    let out_dir = Dir::open(out)?;
    // The lock `tako store` takes: no image or index changes meanwhile.
    let _lock = out_dir.lock()?;
    let store = out_dir
        .subdir("store")?
        .ok_or_else(|| ReindexError::NoStore(out.to_path_buf()))?;
    let mut names: Vec<String> = Vec::new();
    for entry in fs::read_dir(store.path()).context("list", store.path())? {
        let entry = entry.context("list", store.path())?;
        if let Ok(name) = entry.file_name().into_string()
            && is_digest_name(&name)
        {
            names.push(name);
        }
    }
    names.sort();
    let index_dir = out_dir.ensure_subdir(INDEX)?;

    let (mut written, mut present, mut failed) = (0, 0, 0);
    for name in &names {
        match index_one(&store, &index_dir, name)? {
            Outcome::Written(chunks) => {
                written += 1;
                output::stdout_line(&format!(
                    "{} ({chunks} chunks)",
                    index_dir.path().join(name).display()
                ));
            }
            Outcome::Present => present += 1,
            Outcome::Failed => failed += 1,
        }
    }
    output::stdout_line(&format!(
        "{written} indexes written, {present} already present"
    ));
    if failed > 0 {
        return Err(ReindexError::Failed {
            failed,
            total: names.len(),
        });
    }
    Ok(())
}

fn is_digest_name(name: &str) -> bool {
    name.len() == 64
        && name
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Indexes `store/<name>` unless a valid index of it is there already.
/// Problems with one image are reported and counted, not fatal, so that
/// one bad file does not keep the others from their indexes.
fn index_one(store: &Dir, index_dir: &Dir, name: &str) -> Result<Outcome, IoError> {
    let image_path = store.path().join(name);
    let warn = |what: String| output::stderr_line(&format!("tako: error: {what}"));
    let mut image = match store.open_file(name)? {
        Found::File(file) => file,
        Found::Missing => return Ok(Outcome::Present),
        Found::Directory => {
            warn(format!("{} is a directory; skipped", image_path.display()));
            return Ok(Outcome::Failed);
        }
        Found::Other(what) => {
            warn(format!("{} is {what}; skipped", image_path.display()));
            return Ok(Outcome::Failed);
        }
    };
    let size = image.metadata().context("inspect", &image_path)?.len();
    let index_path = index_dir.path().join(name);
    // An index already there is kept only if it is one of this image.
    match index_dir.read_file(name, max_index_size(size), "read") {
        Ok(None) => {}
        Ok(Some(bytes)) => match ChunkIndex::parse(&bytes) {
            Ok(index) if index.size == size && hex::encode(index.digest) == name => {
                return Ok(Outcome::Present);
            }
            Ok(_) => output::stderr_line(&format!(
                "tako: warning: {} is the index of another image; replacing it",
                index_path.display()
            )),
            Err(ChunkIndexError::Version1) => output::stderr_line(&format!(
                "tako: warning: {} is a version-1 index, written by a tako before chunk index version 2; replacing it",
                index_path.display()
            )),
            Err(e) => output::stderr_line(&format!(
                "tako: warning: {} is invalid ({e}); replacing it",
                index_path.display()
            )),
        },
        Err(e) => output::stderr_line(&format!("tako: warning: {e}; replacing it")),
    }
    let index = chunking::index_of(&mut image).context("read", &image_path)?;
    let actual = hex::encode(index.digest);
    if actual != name {
        warn(format!(
            "{} does not match its name: its SHA-256 is {actual}; not indexed",
            image_path.display()
        ));
        return Ok(Outcome::Failed);
    }
    index_dir.write_file(name, &index.to_bytes())?;
    Ok(Outcome::Written(index.chunks.len()))
}
