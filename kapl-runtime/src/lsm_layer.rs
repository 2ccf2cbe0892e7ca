//! The BPF LSM precision layer's start-report line (stage: runtime, start
//! report; book/src/bpf-lsm.md).
//!
//! Input: what the kernel crate's probe found when it tried to load one
//! minimal `lsm/file_open` program ([`LsmProbe`]). Output: the one line
//! the start report (`kapl-run: precision layer: ...`) and `kapl-run
//! status` (`precision layer: ...`) print ([`line`]).
//!
//! The layer's programs are not attached by any release yet: where the
//! probe loads, the line says the layer could be attached and is not used
//! (only its decision core exists and is tested), never that it is on.

/// What loading a minimal `lsm/file_open` program gave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LsmProbe {
    /// It loaded (and was dropped at once, never attached).
    Loads,
    /// The kernel (or the loader) refused it: the call and the errno name,
    /// `BPF_PROG_LOAD: EPERM`, or what failed before the call.
    Refused(String),
    /// Not tried, and why (`--unprivileged`: loading BPF needs root).
    NotTried(String),
}

/// The line, after `precision layer: `.
pub fn line(p: &LsmProbe) -> String {
    match p {
        LsmProbe::Loads => {
            "BPF LSM could be attached but is not used yet (decision core only)".into()
        }
        LsmProbe::Refused(why) => {
            format!("BPF LSM not available on this kernel (lsm/file_open: {why})")
        }
        LsmProbe::NotTried(why) => format!("BPF LSM not probed ({why})"),
    }
}

/// The name of an errno a `bpf(2)` load can answer (`EPERM`), or
/// `errno N` for another.
pub fn errno_name(code: i32) -> String {
    let name = match code {
        1 => "EPERM",
        2 => "ENOENT",
        7 => "E2BIG",
        12 => "ENOMEM",
        13 => "EACCES",
        14 => "EFAULT",
        16 => "EBUSY",
        22 => "EINVAL",
        38 => "ENOSYS",
        95 => "EOPNOTSUPP",
        524 => "ENOTSUPP",
        _ => return format!("errno {code}"),
    };
    name.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lines_say_what_the_probe_found_and_never_that_the_layer_is_on() {
        assert_eq!(
            line(&LsmProbe::Refused(format!(
                "BPF_PROG_LOAD: {}",
                errno_name(1)
            ))),
            "BPF LSM not available on this kernel (lsm/file_open: BPF_PROG_LOAD: EPERM)"
        );
        assert_eq!(
            line(&LsmProbe::Loads),
            "BPF LSM could be attached but is not used yet (decision core only)"
        );
        assert_eq!(
            line(&LsmProbe::NotTried("--unprivileged".into())),
            "BPF LSM not probed (--unprivileged)"
        );
        assert_eq!(errno_name(524), "ENOTSUPP");
        assert_eq!(errno_name(4242), "errno 4242");
    }
}
