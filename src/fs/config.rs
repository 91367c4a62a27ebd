//! Loading a config file: reading it (bounded, regular files only) and checking that the
//! destination it names is a directory. The parsing itself is `format::config`.

use std::path::Path;

use super::bounded::{ReadError, read_bounded};
use crate::format::config::{self, Config, ConfigError};
use crate::format::text::untrusted;

/// A config is a handful of lines; anything larger is not one, and is not
/// read into memory.
pub const MAX_CONFIG_SIZE: u64 = 1 << 20;

/// Reads and validates the config at `path`. A name ending in `.toml` is
/// read as TOML, anything else as `Key=Value` lines.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let file = path.display().to_string();
    let err = |message: String| ConfigError {
        file: file.clone(),
        line: None,
        message,
    };
    let bytes = read_bounded(path, MAX_CONFIG_SIZE, "config").map_err(|e| err(message(e)))?;
    let text = String::from_utf8(bytes).map_err(|_| err("config is not UTF-8 text".into()))?;
    let config = if path.extension().is_some_and(|e| e == "toml") {
        config::parse_toml(&file, &text)?
    } else {
        config::parse(&file, &text)?
    };
    if !config.destination.is_dir() {
        let shown = untrusted(&config.destination.display().to_string());
        // A file there needs another path, not a mkdir that would fail.
        let message = match std::fs::symlink_metadata(&config.destination) {
            Ok(meta) if !meta.is_dir() && !meta.file_type().is_symlink() => format!(
                "destination {shown} is a file, not a directory; Destination= names the directory that holds manifest, store/ and latest (remove the file or name another path)"
            ),
            _ => {
                format!("destination {shown} does not exist or is not a directory; create it first")
            }
        };
        return Err(ConfigError {
            file,
            line: config.destination_line(),
            message,
        });
    }
    Ok(config)
}

/// What is wrong with the file, for a message that already starts with its path.
fn message(error: ReadError) -> String {
    match error {
        ReadError::Io { source, .. } => format!("cannot read config: {source}"),
        ReadError::NotAFile { kind, .. } => format!("config is not a regular file (it is {kind})"),
        ReadError::TooLarge { .. } => format!(
            "config is larger than 1 MiB ({MAX_CONFIG_SIZE} bytes); it cannot be a Tako config"
        ),
    }
}
