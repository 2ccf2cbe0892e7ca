//! KAPL code generator: from a checked `ir::Policy` to a `kapl-image` image.
//!
//! ```text
//! ir::Policy + the prover's per-grant automata (GrantAutomata)
//!   ─► per plan: product of the distinct grant automata (fs, exec) ─►
//!      accept rows per (step, right) ─► minimized DFA + beneath flags ─►
//!      Image tables
//!   └─► net grants ─► LPM entries (ports folded) ─► Image
//!   └─► per step: Landlock walks, TCP wall, precision report
//! Image bytes ─► translate::validate_with (decode back, product walk with
//!   the same prover automata: acceptance, credited grant, beneath flags)
//! ```
//!
//! Input: a policy that checked clean, its [`SourceMap`], [`Options`] and
//! (with [`compile_with`]) the prover's automata, so what is proved is what
//! is compiled. Output: an [`Output`] (the image, warnings such as the
//! loader's effective exec authority, statistics) or build errors
//! (`KAPL06xx`). Emits data only: no I/O.

mod auto;
mod effective;
mod landlock;
mod net;
mod objective;
pub mod translate;

pub use objective::objective_tables;

use auto::HashMap;
use kapl_check::GrantAutomata;
use kapl_check::ir::{self, Policy, RuleKind};
use kapl_image::{
    BENEATH_ALL, BENEATH_SELF, BENEATH_SOME, Cell, Dfa, DfaKind, GrantKind, Image, ImageError,
    Intent, Meta, NO_GRANT, NetOp, Objective, RightSet, RuleText, SourceLoc, Step,
};
use kapl_syntax::{Diagnostic, SourceMap, Span};

/// Diagnostic codes of this stage (defined in `kapl_syntax::codes`).
pub mod codes {
    pub use kapl_syntax::codes::{
        IMAGE_ENCODING, IMAGE_UNWRITABLE, LIMIT_EXCEEDED, LOADER_EXEC_AUTHORITY,
        TRANSLATION_MISMATCH,
    };
}

/// What the build is called.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// The policy's name (the main file's stem).
    pub policy: String,
    /// The compiler's name and version, recorded in the image.
    pub compiler: String,
}

/// Sizes of one build.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Grants compiled.
    pub grants: usize,
    /// DFA states over all plans (fs + exec).
    pub dfa_states: usize,
    /// Transition-table bytes over all plans.
    pub transition_bytes: usize,
    /// Accept rows over all plans.
    pub accept_rows: usize,
    /// LPM entries over all plans.
    pub lpm_entries: usize,
}

/// A built image.
#[derive(Clone, Debug)]
pub struct Output {
    /// The image.
    pub image: Image,
    /// Warnings (the policy still builds).
    pub warnings: Vec<Diagnostic>,
    /// Sizes.
    pub stats: Stats,
}

fn loc(sources: &SourceMap, span: Span) -> SourceLoc {
    let Some(f) = sources.get(span.file) else {
        return SourceLoc::default();
    };
    let (line, column) = f.line_col(span.start);
    let (end_line, end_column) = f.line_col(span.end);
    SourceLoc {
        file: span.file.0,
        line,
        column,
        end_line,
        end_column,
    }
}

/// A level's bound and `never` rules as written, in source order.
fn rule_texts(sources: &SourceMap, bound: &[ir::Rule], never: &[ir::Rule]) -> Vec<RuleText> {
    let mut v: Vec<(Span, RuleText)> = bound
        .iter()
        .map(|r| (r, false))
        .chain(never.iter().map(|r| (r, true)))
        .map(|(r, never)| {
            (
                r.span,
                RuleText {
                    never,
                    source: loc(sources, r.span),
                    text: sources.snippet(r.span).to_string(),
                },
            )
        })
        .collect();
    v.sort_by_key(|(span, _)| (span.file.0, span.start));
    v.into_iter().map(|(_, r)| r).collect()
}

fn limit_error(e: ImageError, span: Span) -> Diagnostic {
    Diagnostic::error(
        codes::LIMIT_EXCEEDED,
        format!("the policy does not fit the image limits: {e}"),
        span,
        "in this plan",
    )
    .with_help("split the plan, or its steps, into smaller ones")
}

/// Compiles a checked policy into an image, building the grants' automata
/// first (use [`compile_with`] to reuse the prover's).
pub fn compile(
    policy: &Policy,
    sources: &SourceMap,
    opts: &Options,
) -> Result<Output, Vec<Diagnostic>> {
    compile_with(policy, &GrantAutomata::new(policy), sources, opts)
}

/// Compiles a checked policy into an image from the prover's per-grant
/// automata (`FrontEnd::automata` after `prove_front_end`). Automata that
/// were not built for this policy are rebuilt.
pub fn compile_with(
    policy: &Policy,
    automata: &GrantAutomata,
    sources: &SourceMap,
    opts: &Options,
) -> Result<Output, Vec<Diagnostic>> {
    if !automata.fits(policy) {
        return compile(policy, sources, opts);
    }
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    let mut stats = Stats {
        grants: policy.grants.len(),
        ..Stats::default()
    };
    let meta = Meta {
        policy: opts.policy.clone(),
        compiler: opts.compiler.clone(),
        sources: sources.iter().map(|(_, f)| f.display_name()).collect(),
        params: policy.params.clone(),
    };
    let objectives = policy
        .objectives
        .iter()
        .map(|o| Objective {
            name: o.name.clone(),
            about: o.about.clone(),
            rules: rule_texts(sources, &o.bound, &o.never),
        })
        .collect();
    let intents = policy
        .intents
        .iter()
        .map(|i| Intent {
            name: i.name.clone(),
            about: i.about.clone(),
            objective: i.objective.0,
            rules: rule_texts(sources, &i.bound, &i.never),
        })
        .collect();
    let grants = policy
        .grants
        .iter()
        .map(|g| kapl_image::Grant {
            id: g.id.0,
            plan: g.plan.0,
            step: g.step.map(|s| s.0),
            kind: match &g.rule.kind {
                RuleKind::Fs { rights, .. } => GrantKind::Fs(RightSet(rights.0)),
                RuleKind::Exec { .. } => GrantKind::Exec,
                RuleKind::Net { op, .. } => GrantKind::Net(match op {
                    kapl_syntax::ast::NetOp::Connect => NetOp::Connect,
                    kapl_syntax::ast::NetOp::Bind => NetOp::Bind,
                }),
            },
            source: loc(sources, g.rule.span),
            site: loc(sources, g.site),
            text: sources.snippet(g.rule.span).to_string(),
        })
        .collect();
    let mut plans = Vec::new();
    for plan in &policy.plans {
        let p = compile_plan(policy, automata, plan);
        stats.dfa_states += p.fs.states() + p.exec.states();
        stats.transition_bytes += p.fs.transition_bytes() + p.exec.transition_bytes();
        stats.accept_rows += p.fs.row_count() + p.exec.row_count();
        stats.lpm_entries += p.net.len();
        warnings.extend(effective::loader_warnings(policy, automata, plan, &p));
        plans.push(p);
    }
    // A policy without plans is an objective image: it carries the
    // objectives' tables, their sources and their identity.
    let objective = policy
        .plans
        .is_empty()
        .then(|| objective_tables(policy, sources));
    let mut image = Image {
        meta,
        objectives,
        intents,
        plans,
        grants,
        objective,
        // Set by the caller that built against an objective image.
        against: None,
    };
    if image.objective.is_some() {
        match kapl_image::format::objective_identity(&image) {
            Ok(id) => {
                if let Some(t) = &mut image.objective {
                    t.identity = id;
                }
            }
            Err(e) => errors.push(Diagnostic::error(
                codes::IMAGE_ENCODING,
                format!("internal error: the objective tables do not encode: {e}"),
                policy
                    .objectives
                    .first()
                    .map_or(Span::new(kapl_syntax::FileId(0), 0, 0), |o| o.name_span),
                "while compiling this objective",
            )),
        }
    }
    if let Err(e) = image.validate() {
        let span = policy
            .plans
            .first()
            .map_or(Span::new(kapl_syntax::FileId(0), 0, 0), |p| p.name_span);
        match e {
            ImageError::TooLarge { .. } => errors.push(limit_error(e, span)),
            e => errors.push(Diagnostic::error(
                codes::IMAGE_ENCODING,
                format!("internal error: the generated image is inconsistent: {e}"),
                span,
                "while compiling this policy",
            )),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Output {
        image,
        warnings,
        stats,
    })
}

/// The steps (indices) a grant holds in.
fn grant_steps(plan: &ir::Plan, g: &ir::Grant) -> Vec<usize> {
    match g.step {
        Some(s) => vec![s.0 as usize],
        None => (0..plan.steps.len()).collect(),
    }
}

/// Every grant id of a plan: plan-wide first, then each step's.
fn plan_grants(plan: &ir::Plan) -> Vec<ir::GrantId> {
    let mut v = plan.grants.clone();
    for s in &plan.steps {
        v.extend_from_slice(&s.grants);
    }
    v
}

/// Builds one DFA (fs or exec) for a plan from the prover's automata: the
/// product of the distinct grant languages, each state labelled with its
/// accept row (per step and right, the lowest-id grant that allows it).
pub(crate) fn build_dfa(
    policy: &Policy,
    automata: &GrantAutomata,
    plan: &ir::Plan,
    kind: DfaKind,
) -> Dfa {
    let steps = plan.steps.len();
    let r = kind.rights();
    let width = steps * r;
    // Components: distinct languages; per component the cells it credits
    // (step * r + right) with the lowest grant id per cell.
    let mut comp_of: HashMap<&kapl_automata::Dfa, usize> = HashMap::default();
    let mut comps: Vec<&kapl_automata::Dfa> = Vec::new();
    let mut credit: Vec<Vec<(u32, u32)>> = Vec::new();
    for gid in plan_grants(plan) {
        let Some(g) = policy.grants.get(gid.0 as usize) else {
            continue;
        };
        let cols: Vec<usize> = match (&g.rule.kind, kind) {
            (RuleKind::Fs { rights, .. }, DfaKind::Fs) => kapl_syntax::ast::Right::ALL
                .iter()
                .enumerate()
                .filter(|(_, x)| rights.has(**x))
                .map(|(i, _)| i)
                .collect(),
            (RuleKind::Exec { .. }, DfaKind::Exec) => vec![0],
            _ => continue,
        };
        let Some(d) = automata.get(g.id) else {
            continue;
        };
        if d.is_empty() {
            continue;
        }
        let k = *comp_of.entry(d).or_insert_with(|| {
            comps.push(d);
            credit.push(Vec::new());
            comps.len() - 1
        });
        let cells = &mut credit[k];
        for s in grant_steps(plan, g) {
            for &c in &cols {
                let cell = (s * r + c) as u32;
                match cells.iter_mut().find(|(x, _)| *x == cell) {
                    Some((_, id)) => *id = (*id).min(g.id.0),
                    None => cells.push((cell, g.id.0)),
                }
            }
        }
    }
    // Accept rows (grant ids only), interned; row 0 is the empty row.
    let mut row_ids: HashMap<Vec<u32>, u32> = HashMap::default();
    let mut rows: Vec<Vec<u32>> = Vec::new();
    let mut scratch = vec![NO_GRANT; width];
    let tagged = auto::product(&comps, &mut |accepting: &[u32]| {
        scratch.fill(NO_GRANT);
        for &k in accepting {
            for &(cell, g) in &credit[k as usize] {
                let x = &mut scratch[cell as usize];
                *x = (*x).min(g);
            }
        }
        if let Some(&id) = row_ids.get(&scratch) {
            return id;
        }
        let id = rows.len() as u32;
        rows.push(scratch.clone());
        row_ids.insert(scratch.clone(), id);
        id
    });
    let label = tagged.label;
    let m = auto::minimize(
        tagged.classes,
        tagged.class_count,
        tagged.start,
        &tagged.trans,
        &label,
    );
    // Beneath flags per column (identical columns computed once).
    let n = m.states();
    let mut flags = vec![0u8; n * width];
    let mut done: HashMap<Vec<bool>, (Vec<bool>, Vec<bool>)> = HashMap::default();
    let mut graph: Option<auto::BeneathGraph> = None;
    for col in 0..width {
        let accept: Vec<bool> = (0..n)
            .map(|q| rows[m.label[q] as usize][col] != NO_GRANT)
            .collect();
        let (all, some) = match done.get(&accept) {
            Some(x) => x.clone(),
            None => {
                let x = if accept.iter().any(|&a| a) {
                    graph
                        .get_or_insert_with(|| auto::BeneathGraph::new(&m))
                        .beneath(&accept)
                } else {
                    (vec![false; n], vec![false; n])
                };
                done.insert(accept.clone(), x.clone());
                x
            }
        };
        for q in 0..n {
            let mut f = 0;
            if accept[q] {
                f |= BENEATH_SELF;
            }
            if all[q] {
                f |= BENEATH_ALL;
            }
            if some[q] {
                f |= BENEATH_SOME;
            }
            flags[q * width + col] = f;
        }
    }
    // Final rows: grant + flags, deduplicated.
    let mut cell_rows: HashMap<Vec<Cell>, u32> = HashMap::default();
    let mut out_rows: Vec<Cell> = Vec::new();
    let mut state_row = Vec::with_capacity(n);
    let mut row: Vec<Cell> = Vec::with_capacity(width);
    for q in 0..n {
        row.clear();
        row.extend((0..width).map(|col| Cell {
            grant: rows[m.label[q] as usize][col],
            beneath: flags[q * width + col],
        }));
        let id = match cell_rows.get(row.as_slice()) {
            Some(&id) => id,
            None => {
                let id = cell_rows.len() as u32;
                cell_rows.insert(row.clone(), id);
                out_rows.extend_from_slice(&row);
                id
            }
        };
        state_row.push(id);
    }
    if width == 0 {
        out_rows.clear();
        state_row.iter_mut().for_each(|r| *r = 0);
    }
    Dfa {
        kind,
        steps: steps as u32,
        classes: m.classes.to_vec(),
        class_count: m.class_count as u16,
        start: m.start,
        transitions: m.trans,
        state_row,
        rows: out_rows,
    }
}

fn compile_plan(policy: &Policy, automata: &GrantAutomata, plan: &ir::Plan) -> kapl_image::Plan {
    let (objective, intent) = match plan.parent {
        ir::Parent::Objective(o) => (o.0, None),
        ir::Parent::Intent(i) => (
            policy
                .intents
                .get(i.0 as usize)
                .map_or(0, |x| x.objective.0),
            Some(i.0),
        ),
    };
    let fs = build_dfa(policy, automata, plan, DfaKind::Fs);
    let exec = build_dfa(policy, automata, plan, DfaKind::Exec);
    let net_grants: Vec<net::NetGrant<'_>> = plan_grants(plan)
        .iter()
        .filter_map(|gid| policy.grants.get(gid.0 as usize))
        .filter_map(|g| match &g.rule.kind {
            RuleKind::Net {
                op,
                addrs,
                names,
                ports,
            } => Some(net::NetGrant {
                grant: g.id.0,
                op: match op {
                    kapl_syntax::ast::NetOp::Connect => NetOp::Connect,
                    kapl_syntax::ast::NetOp::Bind => NetOp::Bind,
                },
                addrs,
                names,
                ports,
            }),
            _ => None,
        })
        .collect();
    let holds_net: Vec<Vec<&net::NetGrant<'_>>> = (0..plan.steps.len())
        .map(|s| {
            net_grants
                .iter()
                .filter(|n| {
                    policy
                        .grants
                        .get(n.grant as usize)
                        .is_some_and(|g| g.step.is_none_or(|x| x.0 as usize == s))
                })
                .collect()
        })
        .collect();
    let net = net::entries(plan.steps.len(), &holds_net);
    let names = net::name_entries(&holds_net);
    let never: Vec<&ir::Rule> = never_above(policy, plan.parent);
    let (name_excluded, never_names) = net::name_limits(&never);
    let steps = plan
        .steps
        .iter()
        .enumerate()
        .map(|(si, s)| {
            let holds: Vec<&ir::Grant> = plan
                .grants
                .iter()
                .chain(&s.grants)
                .filter_map(|g| policy.grants.get(g.0 as usize))
                .collect();
            Step {
                name: s.name.clone(),
                about: s.about.clone(),
                after: s.after.iter().map(|a| a.0).collect(),
                grants: s.grants.iter().map(|g| g.0).collect(),
                landlock: landlock::plan(&holds, &holds_net[si]),
            }
        })
        .collect();
    kapl_image::Plan {
        name: plan.name.clone(),
        about: plan.about.clone(),
        objective,
        intent,
        grants: plan.grants.iter().map(|g| g.0).collect(),
        steps,
        fs,
        exec,
        net,
        names,
        name_excluded,
        never_names,
    }
}

/// The `never` rules above a plan: its objective's and, under an intent,
/// the intent's.
fn never_above(policy: &Policy, parent: ir::Parent) -> Vec<&ir::Rule> {
    let (objective, intent) = match parent {
        ir::Parent::Objective(o) => (policy.objectives.get(o.0 as usize), None),
        ir::Parent::Intent(i) => {
            let x = policy.intents.get(i.0 as usize);
            (
                x.and_then(|x| policy.objectives.get(x.objective.0 as usize)),
                x,
            )
        }
    };
    objective
        .map(|o| o.never.as_slice())
        .unwrap_or(&[])
        .iter()
        .chain(intent.map(|i| i.never.as_slice()).unwrap_or(&[]))
        .collect()
}
