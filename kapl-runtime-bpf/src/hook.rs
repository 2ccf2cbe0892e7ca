//! `kapl-run hook claude-code`: Claude Code's PreToolUse hook (stage:
//! runtime, agents).
//!
//! Input: the event on stdin. Output: the decision on stdout, exit 0
//! (`kapl_runtime::hook` decides). The I/O here: reading stdin, and for a
//! `Bash` call finding the session and checking that it answers `status`.

use crate::client;
use crate::control::{Reply, Request};
use std::io::{Read, Write};

/// The most of stdin read (a larger event is malformed).
const MAX_INPUT: u64 = 16 << 20;

/// Reads the event, decides, prints the decision; always exit 0.
pub fn claude_code(session: Option<&str>) -> i32 {
    let mut input = Vec::new();
    let read = std::io::stdin()
        .lock()
        .take(MAX_INPUT)
        .read_to_end(&mut input);
    if let Err(e) = read {
        input = format!("unreadable: {e}").into_bytes();
    }
    let exe = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "kapl-run".into());
    let d = kapl_runtime::hook::decide(&input, || answering(session), &exe);
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(d.output().as_bytes());
    let _ = out.flush();
    0
}

/// The session that answers `status`: its id, or why there is none.
fn answering(session: Option<&str>) -> Result<String, String> {
    let id = client::find_session(session).map_err(|e| e.to_string())?;
    match client::ask(Some(&id), &Request::Status) {
        Ok(Reply::Ok { .. }) => Ok(id),
        Ok(Reply::Error { message, .. }) => Err(format!("session {id}: {message}")),
        Ok(_) => Err(format!("session {id} gave an unexpected reply")),
        Err(e) => Err(e.to_string()),
    }
}
