//! The normalized-path automaton: the universe every path language lives in.
//!
//! A normalized absolute path is `/` alone, or one or more `/SEGMENT` where
//! a segment is non-empty, is neither `.` nor `..`, and contains neither `/`
//! nor NUL. (The kernel never hands a path with NUL to a program, and
//! requests reach the runtime already resolved.)

/// Before anything.
pub(crate) const START: u8 = 0;
/// After `/` at the very start (the root path; accepting).
pub(crate) const ROOT: u8 = 1;
/// After a `/` that starts a segment (not at the start).
pub(crate) const SLASH: u8 = 2;
/// Segment so far is `.`.
pub(crate) const DOT1: u8 = 3;
/// Segment so far is `..`.
pub(crate) const DOT2: u8 = 4;
/// Inside a proper segment (accepting).
pub(crate) const SEG: u8 = 5;
/// Rejected.
pub(crate) const DEAD: u8 = 6;
/// Start of a suffix below a directory: the empty suffix is accepted, and
/// otherwise the suffix must start with `/` (used by `full_beneath`).
pub(crate) const BENEATH: u8 = 7;

/// One step of the normalized-path automaton.
pub(crate) fn step(state: u8, b: u8) -> u8 {
    match state {
        START | BENEATH => {
            if b == b'/' {
                if state == START { ROOT } else { SLASH }
            } else {
                DEAD
            }
        }
        ROOT | SLASH | DOT1 | DOT2 => match b {
            b'/' | 0 => DEAD,
            b'.' if state == ROOT || state == SLASH => DOT1,
            b'.' if state == DOT1 => DOT2,
            _ => SEG,
        },
        SEG => match b {
            b'/' => SLASH,
            0 => DEAD,
            _ => SEG,
        },
        _ => DEAD,
    }
}

/// Whether `state` accepts.
pub(crate) fn accepting(state: u8) -> bool {
    matches!(state, ROOT | SEG | BENEATH)
}

/// Whether `path` is a normalized absolute path.
pub fn is_normalized(path: &[u8]) -> bool {
    accepting(path.iter().fold(START, |s, &b| step(s, b)))
}

#[cfg(test)]
mod tests {
    use super::is_normalized;

    #[test]
    fn normalized_paths() {
        for ok in [
            "/", "/a", "/a/b", "/.env", "/a/...", "/a/.b", "/a/b..", "/ a",
        ] {
            assert!(is_normalized(ok.as_bytes()), "{ok}");
        }
        for bad in [
            "", "a", "//", "/a/", "/a//b", "/.", "/..", "/a/./b", "/a/../b", "/a/.", "/a\0b",
        ] {
            assert!(!is_normalized(bad.as_bytes()), "{bad:?}");
        }
    }
}
