//! Explaining a denial in terms of the objective a session is pinned to
//! (stage: runtime; pure, no Z3, no compiler).
//!
//! Input: a denial's [`DecisionRecord`] and the pinned objective's tables.
//! Output: an [`Explanation`]: the smallest grant that would allow the
//! request (KAPL text naming the exact path, program, or address and
//! port) and the objective's [`Verdict`] on that grant, decided by
//! [`containment::judge`]: **inside** (a plan revision may add it),
//! **outside** the bound of an objective or intent, or **forbidden** by a
//! `never` rule (with its text and source line).
//!
//! The right a path request needs is read from the record's operation
//! (the kernel's blocker name or the call, e.g. `read (read_file)`,
//! `create (mkdir)`, `chmod (write)`).

use crate::containment::{self, Breach, Witness};
use crate::record::{DecisionRecord, Target, Verdict as RecordVerdict};
use kapl_image::{FsRight, Image, Level, LevelTables, NetOp, Proto};
use serde::{Deserialize, Serialize};

/// The pinned objective's verdict on a grant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Inside every bound, outside every `never`: a plan revision may add it.
    Inside,
    /// Outside the bound of the objective or of the intent.
    Outside,
    /// Forbidden by a `never` rule: no revision of any plan can allow it.
    Never,
}

impl Verdict {
    /// `inside`, `outside`, `never`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Inside => "inside",
            Verdict::Outside => "outside",
            Verdict::Never => "never",
        }
    }
}

/// A denial explained.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Explanation {
    /// When it was denied (the record's time).
    pub time: String,
    /// What was tried, on what (`read (read_file) /srv/web/.env`).
    pub denied: String,
    /// The step whose authority the process held.
    pub step: String,
    /// The smallest grant that would allow it, as KAPL text
    /// (`grant fs read "/srv/web/.env"`).
    pub grant: String,
    /// The objective's verdict on that grant.
    pub verdict: Verdict,
    /// The verdict in words, for people and agents: what to do next.
    pub why: String,
    /// For `never`: the rule's source text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// For `never`: where the rule is written (`obj.kapl:12`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule_site: Option<String>,
}

/// The fs right an operation needs, from the words of its name.
fn right_of(operation: &str) -> Option<FsRight> {
    let words: Vec<&str> = operation
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    let has = |set: &[&str]| words.iter().any(|w| set.contains(w));
    // Creation and removal first: `create (open)` is a create, not a read.
    if has(&[
        "create", "mkdir", "mknod", "symlink", "link", "make", "bind", "rename", "refer",
    ]) || words.iter().any(|w| w.starts_with("make"))
    {
        return Some(FsRight::Create);
    }
    if has(&["delete", "unlink", "rmdir", "remove"])
        || words.iter().any(|w| w.starts_with("remove"))
    {
        return Some(FsRight::Delete);
    }
    if has(&[
        "write",
        "truncate",
        "chmod",
        "chown",
        "times",
        "setxattr",
        "removexattr",
        "ioctl",
    ]) || words.iter().any(|w| w.starts_with("write"))
    {
        return Some(FsRight::Write);
    }
    if has(&["read", "list", "watch", "open"]) || words.iter().any(|w| w.starts_with("read")) {
        return Some(FsRight::Read);
    }
    None
}

/// The concrete request a denial was (`None` when the record names no
/// object a grant could name: a refused socket family, a syscall).
pub fn request(rec: &DecisionRecord) -> Option<Witness> {
    match &rec.target {
        Target::Program { path, .. } => Some(Witness::Exec {
            path: path.clone().into_bytes(),
        }),
        Target::Path {
            path: Some(path), ..
        } if path.starts_with('/') && path != "<too_long>" => {
            if rec.operation.contains("execute") || rec.operation.starts_with("exec") {
                return Some(Witness::Exec {
                    path: path.clone().into_bytes(),
                });
            }
            Some(Witness::Fs {
                right: right_of(&rec.operation)?,
                path: path.clone().into_bytes(),
            })
        }
        Target::UnixSocket { path } if path.starts_with('/') => Some(Witness::Fs {
            right: if rec.operation.contains("bind") {
                FsRight::Create
            } else {
                FsRight::Write
            },
            path: path.clone().into_bytes(),
        }),
        Target::Endpoint {
            address: Some(addr),
            port,
            ..
        } => Some(Witness::Net {
            op: if rec.operation.contains("bind") {
                NetOp::Bind
            } else {
                NetOp::Connect
            },
            proto: Proto::Tcp,
            addr: *addr,
            port: *port,
        }),
        _ => None,
    }
}

/// A path as a KAPL pattern that matches exactly it: glob characters and
/// the escape itself escaped, quotes too.
pub fn literal_pattern(path: &[u8]) -> String {
    let text = String::from_utf8_lossy(path);
    let mut out = String::with_capacity(text.len() + 2);
    for c in text.chars() {
        if matches!(
            c,
            '*' | '?' | '[' | ']' | '{' | '}' | '\\' | '"' | ',' | '$'
        ) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The smallest grant that allows `w`, as KAPL text.
pub fn grant_text(w: &Witness) -> String {
    match w {
        Witness::Fs { right, path } => {
            format!("grant fs {} \"{}\"", right.as_str(), literal_pattern(path))
        }
        Witness::Exec { path } => format!("grant exec \"{}\"", literal_pattern(path)),
        Witness::Net { op, addr, port, .. } => {
            format!("grant net {} {addr} port {port}", op.as_str())
        }
        Witness::Name { name, port, .. } => format!("grant net connect \"{name}\" port {port}"),
    }
}

/// A level's kind and name (`objective fix_deploy`, `intent triage`).
pub fn level_name(image: &Image, level: Level) -> String {
    match level {
        Level::Objective(i) => format!(
            "objective {}",
            image
                .objectives
                .get(i as usize)
                .map_or("?", |o| o.name.as_str())
        ),
        Level::Intent(i) => format!(
            "intent {}",
            image
                .intents
                .get(i as usize)
                .map_or("?", |o| o.name.as_str())
        ),
    }
}

/// Explains denial `rec` against the pinned objective (`objective` is the
/// objective image; `levels` from [`containment::pinned_levels`]). `None`
/// for an allow, or a denial no grant could name.
pub fn explain(
    objective: &Image,
    levels: &[&LevelTables],
    rec: &DecisionRecord,
) -> Option<Explanation> {
    if rec.verdict != RecordVerdict::Deny {
        return None;
    }
    let w = request(rec)?;
    let grant = grant_text(&w);
    let (verdict, why, rule, rule_site) = match containment::judge(levels, &w) {
        None => (
            Verdict::Inside,
            format!(
                "inside the objective: a plan revision may add `{grant}` (propose it with `kapl-run plan propose`)"
            ),
            None,
            None,
        ),
        Some(Breach::OutsideBound(l)) => (
            Verdict::Outside,
            format!(
                "outside the bound of {}: no plan under it can allow this; ask the person who set the objective",
                level_name(objective, l)
            ),
            None,
            None,
        ),
        Some(Breach::Never { level, rule }) => {
            let tables = objective.objective.as_ref();
            let r = tables.and_then(|t| t.rules.get(rule as usize));
            let site = r.map(|r| {
                let file = tables
                    .and_then(|t| t.sources.get(r.source.file as usize))
                    .map_or("?", |s| s.name.as_str());
                format!("{file}:{}", r.source.line)
            });
            let text = r.map(|r| r.text.clone());
            (
                Verdict::Never,
                format!(
                    "forbidden by `never` of {}{}{}: no plan can ever allow this",
                    level_name(objective, level),
                    text.as_deref()
                        .map_or(String::new(), |t| format!(" (`{t}`")),
                    site.as_deref().map_or_else(
                        || if text.is_some() {
                            ")".into()
                        } else {
                            String::new()
                        },
                        |s| format!(" at {s})")
                    ),
                ),
                text,
                site,
            )
        }
    };
    Some(Explanation {
        time: rec.time.clone(),
        denied: format!("{} {}", rec.operation, rec.object),
        step: rec.step.clone(),
        grant,
        verdict,
        why,
        rule,
        rule_site,
    })
}

/// The one line a denial notice ends with.
pub fn notice_suffix(e: &Explanation) -> String {
    match e.verdict {
        Verdict::Inside => format!("objective: inside — a plan revision may add `{}`", e.grant),
        Verdict::Outside => format!("objective: outside — {}", e.why),
        Verdict::Never => format!("objective: never — {}", e.why),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]
mod tests {
    use super::*;

    #[test]
    fn rights_are_read_from_the_operation() {
        for (op, want) in [
            ("read (read_file)", FsRight::Read),
            ("read (read_dir)", FsRight::Read),
            ("write (write_file)", FsRight::Write),
            ("write (truncate)", FsRight::Write),
            ("chmod (write)", FsRight::Write),
            ("create (open)", FsRight::Create),
            ("create (mkdir)", FsRight::Create),
            ("create (make_reg)", FsRight::Create),
            ("delete (unlink)", FsRight::Delete),
            ("delete (remove_dir)", FsRight::Delete),
            ("inotify watch (read)", FsRight::Read),
        ] {
            assert_eq!(right_of(op), Some(want), "{op}");
        }
        assert_eq!(right_of("syscall (seccomp)"), None);
    }

    #[test]
    fn a_literal_pattern_matches_only_itself() {
        assert_eq!(literal_pattern(b"/a*b/{x}?\"q\""), r#"/a\*b/\{x\}\?\"q\""#);
        assert_eq!(literal_pattern(b"/plain/path.txt"), "/plain/path.txt");
    }
}
