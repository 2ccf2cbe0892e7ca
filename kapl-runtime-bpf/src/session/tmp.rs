//! The session's private temporary directory (stage: runtime, session
//! start and stop).
//!
//! A fresh directory (mode 0700) is made at the session's start and
//! bind-mounted at [`MOUNT`] in the session's own mount namespace (the
//! supervisor's, which its commands share), so the same path names each
//! session's own directory, and a policy grants it as `runtime.tmp`
//! (`stdlib/runtime.kapl`). Commands get `TMPDIR`, `TMP` and `TEMP`
//! pointing there. The directory is removed when the session ends; the
//! mount ends with the namespace.

use crate::error::{RunError, SessionError};
use crate::sys;
use std::io::Read;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

/// Where every session sees its own temporary directory.
pub const MOUNT: &str = "/run/kapl-tmp";

/// The environment variables that name it.
pub const VARS: [&str; 3] = ["TMPDIR", "TMP", "TEMP"];

/// A session's temporary directory; removed when dropped.
#[derive(Debug)]
pub struct SessionTmp {
    real: PathBuf,
}

fn io(what: &'static str) -> impl FnOnce(std::io::Error) -> RunError {
    move |source| SessionError::Io { what, source }.into()
}

impl SessionTmp {
    /// Makes the directory and mounts it at [`MOUNT`] in a new mount
    /// namespace of the calling (single-threaded) process.
    pub fn create(id: &str) -> Result<SessionTmp, RunError> {
        // The mount point, in the host: an empty directory only root may
        // change.
        std::fs::DirBuilder::new()
            .mode(0o755)
            .recursive(true)
            .create(MOUNT)
            .map_err(io("session temporary directory: mount point"))?;
        let mut b = [0u8; 6];
        if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
            let _ = f.read_exact(&mut b);
        }
        let rand: String = b.iter().map(|x| format!("{x:02x}")).collect();
        let real = std::env::temp_dir().join(format!("kapl-tmp-{id}-{rand}"));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&real)
            .map_err(io("session temporary directory"))?;
        let t = SessionTmp { real };
        sys::private_bind_mount(&t.real, Path::new(MOUNT))
            .map_err(io("session temporary directory: mount"))?;
        Ok(t)
    }

    /// Where the directory really is (outside the session's namespace).
    pub fn real(&self) -> &Path {
        &self.real
    }
}

impl Drop for SessionTmp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.real);
    }
}

/// `env` with the temporary-directory variables set to [`MOUNT`].
pub fn with_tmp_vars(env: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = env
        .iter()
        .filter(|e| {
            !VARS
                .iter()
                .any(|v| e.starts_with(v.as_bytes()) && e.get(v.len()) == Some(&b'='))
        })
        .cloned()
        .collect();
    out.extend(VARS.iter().map(|v| format!("{v}={MOUNT}").into_bytes()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_variables_are_replaced_not_doubled() {
        let env = vec![
            b"TMPDIR=/tmp".to_vec(),
            b"TMPDIRX=keep".to_vec(),
            b"PATH=/usr/bin".to_vec(),
        ];
        let out = with_tmp_vars(&env);
        assert_eq!(
            out,
            vec![
                b"TMPDIRX=keep".to_vec(),
                b"PATH=/usr/bin".to_vec(),
                b"TMPDIR=/run/kapl-tmp".to_vec(),
                b"TMP=/run/kapl-tmp".to_vec(),
                b"TEMP=/run/kapl-tmp".to_vec(),
            ]
        );
    }
}
