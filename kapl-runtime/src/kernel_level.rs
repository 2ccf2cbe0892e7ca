//! The Landlock level a session runs at, and what a level below 7 loses
//! (stage: runtime, start report).
//!
//! Input: the kernel's Landlock ABI, the floor the user accepts
//! (`kapl-run --min-abi N`, default [`FULL`]) and an optional cap (a test
//! asks Landlock for less than the kernel has: `KAPL_LANDLOCK_ABI`).
//! Output: the ABI the rulesets are built at ([`choose`]), or a refusal;
//! and, for that ABI, every guarantee that is lost, each with what replaces
//! it or that nothing does ([`losses`]). The start report, `kapl-run
//! status` and the audit file's level record all print these same lines.
//!
//! What each ABI adds (and what KAPL uses it for):
//!
//! | ABI | Landlock adds | KAPL loses below it |
//! |---|---|---|
//! | 4 | TCP bind/connect ports | (the floor: never run below it) |
//! | 5 | `ioctl_dev` | device ioctls are not restricted |
//! | 6 | abstract UNIX socket and signal scopes | replaced: abstract sockets refused by the cgroup UNIX hooks, signals decided by the supervisor |
//! | 7 | audit logging of denials | Landlock's denials are not reported |

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::fmt;

/// The lowest Landlock ABI `--min-abi` accepts: TCP ports (ABI 4) are the
/// network wall's Landlock half.
pub const FLOOR: u8 = 4;
/// The ABI everything KAPL enforces and reports needs (the default floor).
pub const FULL: u8 = 7;

/// Why a session does not start at the level asked for.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LevelRefusal {
    /// The kernel (or the cap) offers less than the floor.
    #[error(
        "Landlock ABI {min} is required (--min-abi {min}) and {found} is available{capped}; boot Linux 6.15 or later for ABI 7, or accept less with --min-abi N (4 to 7), which reports what is lost"
    )]
    Below {
        /// The floor asked for.
        min: u8,
        /// What the kernel (or the cap) offers.
        found: u8,
        /// `" (capped by KAPL_LANDLOCK_ABI)"` or empty.
        capped: &'static str,
    },
    /// `--min-abi` outside 4..=7.
    #[error("--min-abi {0}: Landlock ABI 4 to 7 are supported")]
    Unsupported(u8),
}

/// The ABI rulesets are built at: the kernel's (or the cap's, if lower),
/// at most [`FULL`] (KAPL asks for nothing newer), and at least `min`.
pub fn choose(kernel: u8, min: u8, cap: Option<u8>) -> Result<u8, LevelRefusal> {
    if !(FLOOR..=FULL).contains(&min) {
        return Err(LevelRefusal::Unsupported(min));
    }
    let found = kernel.min(cap.unwrap_or(FULL)).min(FULL);
    if found < min {
        return Err(LevelRefusal::Below {
            min,
            found,
            capped: if cap.is_some_and(|c| c < kernel) {
                " (capped by KAPL_LANDLOCK_ABI)"
            } else {
                ""
            },
        });
    }
    Ok(found)
}

/// One guarantee lost at a level, and what stands in for it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct LevelLoss {
    /// A short stable name (`landlock_audit`, `abstract_unix_scope`,
    /// `signal_scope`, `ioctl_dev`).
    pub feature: String,
    /// The Landlock ABI that provides it.
    pub needs_abi: u8,
    /// What is lost, in a sentence.
    pub lost: String,
    /// What replaces it (another layer, in part or whole), or `None`:
    /// nothing does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaced_by: Option<String>,
}

impl fmt::Display for LevelLoss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (needs ABI {}); ", self.lost, self.needs_abi)?;
        match &self.replaced_by {
            Some(r) => write!(f, "instead: {r}"),
            None => write!(f, "not replaced"),
        }
    }
}

fn loss(feature: &str, needs_abi: u8, lost: &str, replaced_by: Option<&str>) -> LevelLoss {
    LevelLoss {
        feature: feature.into(),
        needs_abi,
        lost: lost.into(),
        replaced_by: replaced_by.map(str::to_string),
    }
}

/// Everything a session at Landlock ABI `abi` loses against ABI 7, newest
/// feature first. Empty at 7. Each line says only what is true of the
/// other layers (checked by the escape suite per level, `levels.rs`).
/// `cgroups`: the session has its cgroups and cgroup BPF programs (not
/// `--unprivileged`); without them nothing tells the session's processes
/// from others, so neither scope is replaced.
pub fn losses(abi: u8, cgroups: bool) -> Vec<LevelLoss> {
    let mut v = Vec::new();
    if abi < 7 {
        v.push(loss(
            "landlock_audit",
            7,
            "file-system and exec denials, TCP ports Landlock refuses and (at ABI 6) refusals by the abstract-socket and signal scopes are enforced but not reported: Landlock logs denials to audit from ABI 7 on, so they reach no deny line, no audit file record, no denial count and no `kapl-run explain`",
            Some(
                "the other layers still report their own refusals: cgroup BPF (addresses, UDP, pathname UNIX sockets), seccomp and the supervised layer (making, moving and removing names, metadata)",
            ),
        ));
    }
    if abi < 6 {
        v.push(loss(
            "abstract_unix_scope",
            6,
            "abstract UNIX sockets are not scoped: Landlock cannot keep a command from an abstract socket bound outside the session (a desktop bus, a container runtime's socket)",
            cgroups.then_some(
                "stricter: the cgroup UNIX socket hooks refuse every abstract connect and send of the session's commands, reported as denials (bpf), even to a socket the command bound itself, which the scope would allow",
            ),
        ));
        v.push(loss(
            "signal_scope",
            6,
            "signals are not scoped: Landlock cannot keep a command from signalling processes of its user outside the session, the supervisor included (commands run as uid 0)",
            cgroups.then_some(
                "the supervisor decides kill, tkill, tgkill, rt_sigqueueinfo, rt_tgsigqueueinfo and pidfd_send_signal (seccomp user notification) and refuses, reported as denials (supervisor), any that reaches a process outside the session's cgroups; signals between the session's own processes still work",
            ),
        ));
    }
    if abi < 5 {
        v.push(loss(
            "ioctl_dev",
            5,
            "device ioctls are not restricted: a command may issue any ioctl on a device file it may open",
            Some(
                "in part: the seccomp filter refuses terminal injection (TIOCSTI, TIOCLINUX) at every level",
            ),
        ));
    }
    v
}

/// The start report's lines for a session at `abi` with floor `min` (and
/// `cgroups` as for [`losses`]): one
/// line naming the level, then one per loss (nothing at ABI 7).
pub fn report(abi: u8, kernel: u8, min: u8, cgroups: bool) -> Vec<String> {
    if abi >= FULL {
        return Vec::new();
    }
    let n = losses(abi, cgroups).len();
    let mut v = vec![format!(
        "Landlock ABI {abi} (kernel has {kernel}, --min-abi {min}): TCP ports kept (ABI 4); {n} {} against ABI 7",
        if n == 1 { "loss" } else { "losses" }
    )];
    v.extend(losses(abi, cgroups).iter().map(|l| format!("lost: {l}")));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_floor_is_kept_and_the_default_fails_closed() {
        assert_eq!(choose(7, 7, None), Ok(7));
        assert_eq!(choose(9, 7, None), Ok(7));
        assert_eq!(choose(6, 4, None), Ok(6));
        assert_eq!(choose(7, 4, Some(5)), Ok(5));
        assert!(matches!(
            choose(6, 7, None),
            Err(LevelRefusal::Below {
                min: 7,
                found: 6,
                capped: ""
            })
        ));
        assert!(matches!(
            choose(7, 5, Some(4)),
            Err(LevelRefusal::Below { capped, .. }) if !capped.is_empty()
        ));
        assert_eq!(choose(7, 3, None), Err(LevelRefusal::Unsupported(3)));
        assert_eq!(choose(7, 8, None), Err(LevelRefusal::Unsupported(8)));
    }

    #[test]
    fn each_level_loses_what_its_missing_features_gave() {
        let names =
            |abi| -> Vec<String> { losses(abi, true).into_iter().map(|l| l.feature).collect() };
        assert!(losses(7, true).is_empty());
        assert_eq!(names(6), ["landlock_audit"]);
        assert_eq!(
            names(5),
            ["landlock_audit", "abstract_unix_scope", "signal_scope"]
        );
        assert_eq!(
            names(4),
            [
                "landlock_audit",
                "abstract_unix_scope",
                "signal_scope",
                "ioctl_dev"
            ]
        );
        assert!(report(7, 7, 7, true).is_empty());
        let r = report(4, 7, 4, true);
        assert_eq!(r.len(), 5);
        assert!(
            r[1].starts_with("lost: file-system and exec denials"),
            "{r:?}"
        );
        assert!(
            r[2].contains("instead: stricter: the cgroup UNIX socket hooks"),
            "{r:?}"
        );
        assert!(
            r[3].contains("instead: the supervisor decides kill"),
            "{r:?}"
        );
        assert!(r.iter().all(|l| !l.ends_with("not replaced")), "{r:?}");
        // --unprivileged: no session cgroups, so neither scope is replaced.
        let r = report(4, 7, 4, false);
        assert!(r[2].ends_with("not replaced"), "{r:?}");
        assert!(r[3].ends_with("not replaced"), "{r:?}");
    }
}
