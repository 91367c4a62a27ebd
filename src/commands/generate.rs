//! `tako generate`: print or write the man pages and completion scripts that `cli::doc`
//! renders from the command-line definition.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::cli::doc::{self, GenerateCommand, RenderError};
use crate::fs::IoError;
use crate::ui::output;

#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error("cannot write to standard output: {0}")]
    Print(io::Error),
    #[error(transparent)]
    Render(#[from] RenderError),
    #[error("cannot write man pages into {}: {source}", dir.display())]
    Directory {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot write man pages into {}: not a directory", .0.display())]
    NotADirectory(PathBuf),
    #[error(transparent)]
    Write(#[from] IoError),
}

/// Runs `tako generate …`.
pub fn run(command: &GenerateCommand) -> Result<(), GenerateError> {
    match command {
        GenerateCommand::Man(args) => match &args.dir {
            None => {
                let (_, page) = doc::man_pages()?
                    .into_iter()
                    .next()
                    .ok_or_else(|| doc::render_error("tako.1", "no pages"))?;
                print(&page)
            }
            Some(dir) => {
                for path in write_man_pages(dir)? {
                    output::stdout_line(&path.display().to_string());
                }
                Ok(())
            }
        },
        GenerateCommand::Completion(args) => print(&doc::completion(args.shell)),
    }
}

fn print(bytes: &[u8]) -> Result<(), GenerateError> {
    // Both generators only ever produce UTF-8 from our own (UTF-8) help texts.
    output::stdout(&String::from_utf8_lossy(bytes)).map_err(GenerateError::Print)
}

/// Writes every man page into `dir` (atomically each, like every file Tako writes) and
/// returns the paths written, `tako.1` first.
fn write_man_pages(dir: &Path) -> Result<Vec<PathBuf>, GenerateError> {
    let meta = fs::metadata(dir).map_err(|source| GenerateError::Directory {
        dir: dir.to_path_buf(),
        source,
    })?;
    if !meta.is_dir() {
        return Err(GenerateError::NotADirectory(dir.to_path_buf()));
    }
    let mut written = Vec::new();
    for (name, page) in doc::man_pages()? {
        written.push(crate::fs::write_file(dir, &name, &page)?);
    }
    Ok(written)
}
