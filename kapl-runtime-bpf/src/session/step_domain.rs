//! Building a step's Landlock ruleset: the walk of the step's automata
//! over the live file system, the rules, the TCP wall, and the guard that
//! refuses a step whose rules would reach what the runtime stands on
//! (stage: runtime, step set-up).

use crate::domain::{self, StepDomain, WalkLimits, access};
use crate::error::RunError;
use kapl_image::{DfaKind, Plan};
use kapl_runtime::attribution;
use kapl_runtime::automaton::{self, PathAutomaton, StepAutomaton, Without};
use kapl_runtime::precision::Findings;
use kapl_runtime::step::StepError;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// Builds the Landlock ruleset of `step` (walk + rules + TCP wall).
pub fn build(plan: &Plan, step: u32) -> Result<StepDomain, RunError> {
    let fs_full = StepAutomaton::new(&plan.fs, step).with_plan_fs(&plan.fs);
    let ex_full = StepAutomaton::new(&plan.exec, step).with_plan_fs(&plan.fs);
    // Making, removing and moving names is the supervised layer's: the
    // rules carry no right for it (see `session::supervised`).
    let fs_a = Without {
        inner: &fs_full,
        mask: access::PARENT,
    };
    let ex_a = Without {
        inner: &ex_full,
        mask: access::PARENT,
    };
    let mut w = domain::Walk::default();
    for (a, kind) in [(&fs_a, DfaKind::Fs), (&ex_a, DfaKind::Exec)] {
        let prefixes = automaton::prefixes(plan, step, kind);
        domain::walk_into(a, &mut w, &prefixes, WalkLimits::default())?;
    }
    runtime_state_guard(plan, step, &w.rules, &fs_full)?;
    let mut d = domain::build_walked(
        std::mem::take(&mut w.rules),
        &automaton::tcp_ports(plan, step),
        &|p| fs_a.creatable(p),
    )?;
    for p in &d.refused_links {
        w.refused_link(&fs_a, p);
        w.refused_link(&ex_a, p);
    }
    d.findings = Findings {
        notes: w.narrowed.into_iter().collect(),
        counts: w.counts,
    };
    Ok(d)
}

/// Refuses a step whose Landlock rules would let its commands change what
/// the runtime stands on, which Landlock cannot except from a rule above
/// it: write access to a cgroup file system (writing a pid to a
/// `cgroup.procs` outside the session moves a command out of its cgroup,
/// its network hooks and its step's end), and write, create or delete
/// access to kapl-run's state directory (the session registry and the
/// audit state shared by sessions).
fn runtime_state_guard(
    plan: &Plan,
    step: u32,
    rules: &[domain::AddedRule],
    fs: &dyn PathAutomaton,
) -> Result<(), StepError> {
    const WRITE: u64 = access::WRITE_FILE | access::TRUNCATE;
    let changes = WRITE
        | access::MAKE_REG
        | access::MAKE_DIR
        | access::MAKE_SYM
        | access::REMOVE_FILE
        | access::REMOVE_DIR
        | access::REFER;
    let mut guarded: Vec<(PathBuf, u64, &str)> = crate::cgroup::cgroup_mounts()
        .into_iter()
        .map(|m| {
            (
                m,
                WRITE,
                "the cgroup file system mounted at {}, where a command could move itself out of its cgroup (and so out of its network hooks and its step's end)",
            )
        })
        .collect();
    guarded.push((
        crate::control::state_dir(),
        changes,
        "kapl-run's state directory {} (the session registry and the audit state every session shares)",
    ));
    for r in rules {
        let hit = guarded.iter().find(|(m, rights, _)| {
            r.access & rights != 0
                && (r.path.starts_with(m) || (r.subtree && m.starts_with(&r.path)))
        });
        if let Some((m, rights, what)) = hit {
            let path = r.path.as_os_str().as_bytes();
            let bit = 1u64 << (r.access & rights).trailing_zeros();
            let grant = attribution::fs_grant(plan, step, path, bit)
                .map_or_else(String::new, |g| format!(" (grant {g})"));
            return Err(unsafe_step(
                plan,
                step,
                &format!("{}{grant}", r.path.display()),
                m,
                what,
            ));
        }
    }
    // Names are made and removed by the supervisor, not through rules:
    // the grants themselves must not reach a guarded directory.
    for (m, rights, what) in &guarded {
        let names = rights & access::PARENT;
        if names == 0 {
            continue;
        }
        let at = automaton::run(fs, m.as_os_str().as_bytes());
        let below = fs.next(at, b'/');
        if (fs.accept(at) | fs.live(below)) & names != 0 {
            let at = format!("{} (making or removing names there)", m.display());
            return Err(unsafe_step(plan, step, &at, m, what));
        }
    }
    Ok(())
}

/// The refusal of a step whose write access to `at` reaches the guarded
/// directory `m` (`what`, with `{}` for its path).
fn unsafe_step(plan: &Plan, step: u32, at: &str, m: &std::path::Path, what: &str) -> StepError {
    let name = plan
        .steps
        .get(step as usize)
        .map_or("?", |s| s.name.as_str());
    StepError::Unsafe {
        step: name.to_string(),
        reason: format!(
            "its write access to {at} reaches {}; narrow the grant, e.g. `except \"{}/**\"`",
            what.replace("{}", &m.display().to_string()),
            m.display()
        ),
    }
}
