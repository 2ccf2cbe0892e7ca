//! The CLI's [`Loader`]: reads policy files from disk.
//!
//! Input: paths from the command line and from `use "..."` (already joined
//! and normalized by the checker). Output: bytes and a canonical key (the
//! canonicalized path) so one file reached by two spellings loads once.

use kapl_check::load::MAX_FILE_BYTES;
use kapl_check::{LoadError, LoadedFile, Loader};
use std::fs;
use std::io::{ErrorKind, Read};
use std::path::Path;

/// Reads from the file system.
#[derive(Debug, Default)]
pub struct FsLoader;

fn io_error(e: &std::io::Error) -> LoadError {
    match e.kind() {
        ErrorKind::NotFound => LoadError::NotFound,
        ErrorKind::PermissionDenied => LoadError::Io("permission denied".to_string()),
        ErrorKind::IsADirectory => LoadError::IsDirectory,
        _ => LoadError::Io(e.to_string()),
    }
}

impl Loader for FsLoader {
    fn read(&mut self, path: &str) -> Result<LoadedFile, LoadError> {
        let p = Path::new(path);
        let meta = fs::metadata(p).map_err(|e| io_error(&e))?;
        if meta.is_dir() {
            return Err(LoadError::IsDirectory);
        }
        let file = fs::File::open(p).map_err(|e| io_error(&e))?;
        // Read one byte past the limit so the checker can say "too large"
        // without reading an endless file (a device, a pipe) to its end.
        let mut bytes = Vec::new();
        let limit = u64::try_from(MAX_FILE_BYTES)
            .unwrap_or(u64::MAX)
            .saturating_add(1);
        file.take(limit)
            .read_to_end(&mut bytes)
            .map_err(|e| io_error(&e))?;
        let key = fs::canonicalize(p)
            .map_or_else(|_| path.to_string(), |c| c.to_string_lossy().into_owned());
        Ok(LoadedFile { key, bytes })
    }
}
