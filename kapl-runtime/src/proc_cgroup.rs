//! `/proc/PID/cgroup`: which cgroups a process is in, and so whether it is
//! inside a kapl-run session.
//!
//! Input: the file's text (`HIERARCHY:CONTROLLERS:PATH` per line; the
//! cgroup v2 line is `0::PATH`). Output: its lines, the v2 path, and the
//! two security questions the supervisor and its clients ask: is this
//! process inside *this* session, or inside *any* session? Both are
//! answered from the path's segments, never by substring: a session's
//! cgroup is a directory named `kapl-<ID>` (eight hex digits for a session,
//! `oneshot-<PID>` for a one-shot run).

/// One line of `/proc/PID/cgroup`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Line<'a> {
    /// The hierarchy id (`0` for cgroup v2).
    pub hierarchy: &'a str,
    /// The controllers (empty for cgroup v2).
    pub controllers: &'a str,
    /// The cgroup's path from the hierarchy's root.
    pub path: &'a str,
}

/// The well-formed lines of the file's text (others are skipped).
pub fn lines(text: &str) -> impl Iterator<Item = Line<'_>> {
    text.lines().filter_map(|l| {
        let mut it = l.splitn(3, ':');
        Some(Line {
            hierarchy: it.next()?,
            controllers: it.next()?,
            path: it.next()?,
        })
    })
}

/// The cgroup v2 path (`0::PATH`), if the process has one.
pub fn unified_path(text: &str) -> Option<&str> {
    lines(text)
        .find(|l| l.hierarchy == "0" && l.controllers.is_empty())
        .map(|l| l.path)
}

/// The name of session `id`'s cgroup directory.
pub fn session_dir(id: &str) -> String {
    format!("kapl-{id}")
}

/// Whether `name` is the cgroup directory of some kapl-run session.
pub fn is_session_dir(name: &str) -> bool {
    name.strip_prefix("kapl-").is_some_and(|id| {
        (id.len() == 8 && id.bytes().all(|b| b.is_ascii_hexdigit()))
            || id
                .strip_prefix("oneshot-")
                .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
    })
}

/// Whether the process whose file this is runs inside session `id` (in its
/// cgroup or below it, on any hierarchy).
pub fn in_session(text: &str, id: &str) -> bool {
    let dir = session_dir(id);
    lines(text).any(|l| l.path.split('/').any(|seg| seg == dir))
}

/// Whether the process whose file this is runs inside any session.
pub fn in_any_session(text: &str) -> bool {
    lines(text).any(|l| l.path.split('/').any(is_session_dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "12:pids:/user.slice\n1:name=systemd:/user.slice/session-3.scope\n0::/kapl-0a1b2c3d/step-0-work/cmd-4\n";

    #[test]
    fn reads_the_v2_path_of_a_hybrid_layout() {
        assert_eq!(
            unified_path(HYBRID),
            Some("/kapl-0a1b2c3d/step-0-work/cmd-4")
        );
        assert_eq!(lines(HYBRID).count(), 3);
        assert_eq!(unified_path("12:pids:/x\n"), None);
        assert_eq!(unified_path(""), None);
    }

    #[test]
    fn session_membership_is_decided_by_whole_segments() {
        assert!(in_session(HYBRID, "0a1b2c3d"));
        assert!(
            !in_session(HYBRID, "0a1b2c3"),
            "a prefix of the id is another session"
        );
        assert!(!in_session(HYBRID, "0a1b2c3d0"));
        assert!(in_any_session(HYBRID));
        assert!(in_any_session("0::/kapl-oneshot-1234/step-0-s/cmd-1\n"));
        assert!(in_session("0::/kapl-oneshot-1234\n", "oneshot-1234"));
        for outside in [
            "0::/user.slice/session-3.scope\n",
            "0::/kapl-xyz/step\n",
            "0::/kapl-0a1b2c3dd\n",
            "0::/kapl-oneshot-\n",
            "0::/not-kapl-0a1b2c3d\n",
            "garbage without colons\n",
        ] {
            assert!(!in_any_session(outside), "{outside:?}");
        }
    }
}
