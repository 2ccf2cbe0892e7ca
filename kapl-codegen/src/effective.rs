//! Effective exec authority: what the dynamic loader lets a step run.
//!
//! Input: a plan (IR), its compiled tables and its objective's bound.
//! Output: warnings (`KAPL0603`) with a witness path, one per step whose
//! readable files, runnable as `ld.so FILE`, leave the objective's exec
//! bound. Landlock cannot stop the loader from mapping a readable ELF file,
//! so a step that may execute the loader may effectively execute anything
//! it may read that could be a program.

use crate::auto::{self, HashMap};
use crate::codes;
use kapl_check::GrantAutomata;
use kapl_check::ir::{self, Policy, RuleKind};
use kapl_image::{FsRight, NO_GRANT};
use kapl_syntax::{Diagnostic, Witness};

/// Where dynamic loaders live on the systems KAPL targets.
pub const LOADERS: &[&str] = &[
    "/lib64/ld-linux-x86-64.so.2",
    "/usr/lib64/ld-linux-x86-64.so.2",
    "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
    "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
    "/lib/ld-linux-aarch64.so.1",
    "/usr/lib/ld-linux-aarch64.so.1",
    "/lib/aarch64-linux-gnu/ld-linux-aarch64.so.1",
    "/usr/lib/aarch64-linux-gnu/ld-linux-aarch64.so.1",
    "/lib/ld-musl-x86_64.so.1",
    "/lib/ld-musl-aarch64.so.1",
    "/lib/ld-linux.so.2",
];

/// Paths that are never regular files a loader could map as a program
/// (device, proc and sys trees); left out of effective exec authority.
pub const NOT_PROGRAMS: &[&str] = &["/dev/**", "/proc/**", "/sys/**"];

/// The exec patterns of `rules`, in order.
fn exec_globs(rules: &[ir::Rule]) -> Vec<&kapl_syntax::glob::Glob> {
    rules
        .iter()
        .filter_map(|r| match &r.kind {
            RuleKind::Exec { patterns } => Some(patterns.iter().map(|p| &*p.glob)),
            _ => None,
        })
        .flatten()
        .collect()
}

pub(crate) fn loader_warnings(
    policy: &Policy,
    automata: &GrantAutomata,
    plan: &ir::Plan,
    p: &kapl_image::Plan,
) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let objective_id = match plan.parent {
        ir::Parent::Objective(o) => o,
        ir::Parent::Intent(i) => match policy.intents.get(i.0 as usize) {
            Some(x) => x.objective,
            None => return out,
        },
    };
    let Some(objective) = policy.objectives.get(objective_id.0 as usize) else {
        return out;
    };
    let bound = exec_globs(&objective.bound);
    let never = exec_globs(&objective.never);
    let not_programs: Vec<kapl_syntax::glob::Glob> = NOT_PROGRAMS
        .iter()
        .filter_map(|g| kapl_syntax::glob::parse_glob(g, objective.name_span).ok())
        .collect();
    let mut bound = bound;
    bound.extend(not_programs.iter());
    let allowed =
        kapl_automata::Dfa::from_globs(bound).difference(&kapl_automata::Dfa::from_globs(never));
    for (si, step) in plan.steps.iter().enumerate() {
        let si32 = si as u32;
        let loader = LOADERS.iter().find_map(|l| {
            let g = p.exec.cell(p.exec.walk(l.as_bytes()), si32, 0).grant;
            (g != NO_GRANT).then_some((*l, g))
        });
        let Some((loader, loader_grant)) = loader else {
            continue;
        };
        // Readable in this step: the read grants that hold here.
        let reads: Vec<&ir::Grant> = plan
            .grants
            .iter()
            .chain(&step.grants)
            .filter_map(|g| policy.grants.get(g.0 as usize))
            .filter(|g| matches!(&g.rule.kind, RuleKind::Fs { rights, .. } if rights.has(kapl_syntax::ast::Right::Read)))
            .collect();
        // Component 0: what the objective lets run (its exec bound and the
        // non-program trees, minus its exec `never`s); then one component
        // per read grant, from the prover's automata.
        let nothing = kapl_automata::Dfa::nothing();
        let mut comps: Vec<&kapl_automata::Dfa> = vec![&allowed];
        comps.extend(reads.iter().map(|g| automata.get(g.id).unwrap_or(&nothing)));
        let mut sets: HashMap<Vec<u32>, u32> = HashMap::default();
        let mut accepted: Vec<Vec<u32>> = Vec::new();
        let t = auto::product(&comps, &mut |acc: &[u32]| {
            if let Some(&i) = sets.get(acc) {
                return i;
            }
            let i = accepted.len() as u32;
            accepted.push(acc.to_vec());
            sets.insert(acc.to_vec(), i);
            i
        });
        let goal = |s: usize| {
            let acc = &accepted[t.label[s] as usize];
            acc.iter().any(|&x| x > 0) && !acc.contains(&0)
        };
        // Prefer a witness among the step's own read grants, then any.
        let plan_wide = reads.iter().filter(|g| g.step.is_none()).count();
        let own_goal = |s: usize| {
            let acc = &accepted[t.label[s] as usize];
            acc.iter().any(|&x| x as usize > plan_wide) && !acc.contains(&0)
        };
        let Some(mut witness) =
            auto::shortest(&t.classes, t.class_count, t.start, &t.trans, &own_goal)
                .or_else(|| auto::shortest(&t.classes, t.class_count, t.start, &t.trans, &goal))
        else {
            continue;
        };
        // The shortest witness is often a granted directory; a file beneath
        // it, when it is a witness too, shows the point better.
        let walk = |p: &[u8]| {
            p.iter().fold(t.start as usize, |q, &b| {
                t.trans[q * t.class_count + t.classes[b as usize] as usize] as usize
            })
        };
        for name in ["/run", "/tool", "/a"] {
            let mut w = witness.clone();
            w.extend_from_slice(name.as_bytes());
            if goal(walk(&w)) {
                witness = w;
                break;
            }
        }
        let wtext = String::from_utf8_lossy(&witness).into_owned();
        let read_grant =
            p.fs.cell(p.fs.walk(&witness), si32, FsRight::Read.column())
                .grant;
        let mut d = Diagnostic::warning(
            codes::LOADER_EXEC_AUTHORITY,
            format!(
                "step `{}` may run the dynamic loader, so what it may read can be executed: `{wtext}` is readable but outside objective `{}`'s exec bound",
                step.name, objective.name
            ),
            step.name_span,
            "this step's effective exec authority leaves the objective's bound",
        );
        if let Some(g) = policy.grants.get(loader_grant as usize) {
            d = d.with_label(
                g.rule.span,
                format!("allows executing the loader `{loader}`"),
            );
        }
        if let Some(g) = policy.grants.get(read_grant as usize) {
            d = d.with_label(g.rule.span, format!("allows reading `{wtext}`"));
        }
        d = d
            .with_label(objective.name_span, "the exec bound that is left")
            .with_note(format!("`{loader} {wtext}` runs the file as a program if it is an ELF executable; Landlock cannot refuse that"))
            .with_help("grant the loader only in steps that run programs, or narrow what those steps may read")
            .with_witness(Witness::Exec { path: wtext });
        out.push(d);
    }
    out
}
