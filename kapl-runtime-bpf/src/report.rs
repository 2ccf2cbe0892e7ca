//! `kapl-run report` (stage: runtime, after the fact): reads an audit file
//! (named, or a session's) and the images, has
//! `kapl_runtime::session_report` build the page, writes it.
//!
//! A session leaves a small record of its audit file and image in
//! [`crate::control::session_info_dir`] when it starts ([`remember`]),
//! kept after it stops, so `--session ID` finds them for a running or a
//! stopped session.

use crate::cli::ReportArgs;
use crate::error::{ReportError, RunError};
use kapl_runtime::session_report::{self, Limits, NamedImage};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// What a session leaves for `report --session`.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct SessionInfo {
    /// Its audit file (absolute), if it has one.
    pub audit: Option<PathBuf>,
    /// The image it started with (absolute).
    pub image: Option<PathBuf>,
}

/// Records session `id`'s audit file and image (best effort: a session
/// runs without it; `report --session` then says it has no record).
pub fn remember(id: &str, audit: Option<&Path>, image: &Path) {
    let info = SessionInfo {
        audit: audit.and_then(|p| std::path::absolute(p).ok()),
        image: std::path::absolute(image).ok(),
    };
    let dir = crate::control::session_info_dir();
    let _ = std::fs::create_dir_all(&dir);
    if let Ok(text) = serde_json::to_string(&info) {
        let _ = std::fs::write(dir.join(id), text);
    }
}

/// What session `id` left, or why there is nothing.
fn recall(id: &str) -> Result<SessionInfo, ReportError> {
    // An id names a file in the directory: nothing else.
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err(ReportError::UnknownSession {
            id: id.to_string(),
            why: "not a session id".into(),
        });
    }
    let path = crate::control::session_info_dir().join(id);
    let text = std::fs::read_to_string(&path).map_err(|e| ReportError::UnknownSession {
        id: id.to_string(),
        why: format!("{}: {e}", path.display()),
    })?;
    serde_json::from_str(&text).map_err(|e| ReportError::UnknownSession {
        id: id.to_string(),
        why: format!("{}: {e}", path.display()),
    })
}

/// `kapl-run report`.
pub fn run(a: &ReportArgs) -> Result<i32, RunError> {
    let (audit, mut image_paths) = match (&a.audit, &a.session) {
        (Some(p), _) => (p.clone(), Vec::new()),
        (None, Some(id)) => {
            let info = recall(id)?;
            let audit = info
                .audit
                .ok_or_else(|| ReportError::NoAudit { id: id.clone() })?;
            (audit, info.image.into_iter().collect())
        }
        (None, None) => {
            return Err(RunError::Usage(
                "name an audit file, or a session with --session ID".into(),
            ));
        }
    };
    if !a.image.is_empty() {
        image_paths.clone_from(&a.image);
    }
    let bytes = std::fs::read(&audit).map_err(|source| ReportError::ReadAudit {
        path: audit.clone(),
        source,
    })?;
    let mut text = String::from_utf8_lossy(&bytes).into_owned();
    // A running session may be writing its last line: only whole lines.
    if !text.ends_with('\n')
        && let Some(i) = text.rfind('\n')
    {
        text.truncate(i + 1);
    }
    let images = image_paths
        .iter()
        .map(|p| crate::client::load_image(p).map(|img| (file_name(p), img)))
        .collect::<Result<Vec<_>, _>>()?;
    let named: Vec<NamedImage<'_>> = images
        .iter()
        .map(|(file, image)| NamedImage { file, image })
        .collect();
    let built = session_report::build(&text, &named, &file_name(&audit), Limits::default());
    std::fs::write(&a.out, built.html.as_bytes()).map_err(|source| ReportError::Write {
        path: a.out.clone(),
        source,
    })?;
    let s = &built.stats;
    let mut line = format!(
        "report: {} ({} records: {} allowed, {} denied",
        a.out.display(),
        s.lines,
        s.allows,
        s.denials
    );
    if s.lost > 0 || s.lost_records > 0 {
        line.push_str(&format!("; {} lost", s.lost));
    }
    if s.not_understood > 0 {
        line.push_str(&format!("; {} not understood", s.not_understood));
    }
    line.push(')');
    println!("{line}");
    Ok(0)
}

fn file_name(p: &Path) -> String {
    p.file_name().map_or_else(
        || p.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}
