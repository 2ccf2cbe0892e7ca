//! Name resolution and structural checks.
//!
//! Input: the loaded units (policy files share one namespace; each stdlib
//! module has its own, reached as `runtime.loader` or `std.runtime.loader`).
//! Output: a [`Resolved`] table from every name use to its definition, and
//! diagnostics for unknown names (with "did you mean"), duplicates (both
//! places shown), wrong kinds (`under` an authority), `after` problems and
//! cycles, missing or repeated clauses, authority cycles and unused
//! authorities. Every problem is reported; nothing stops at the first.

use crate::graph;
use crate::load::{ImportTarget, Loaded, Scope};
use crate::stdlib;
use kapl_syntax::ast::{self, Item, QualName, Rule, RuleKind};
use kapl_syntax::diag::suggest;
use kapl_syntax::{Diagnostic, Severity, Span, codes};
use std::collections::{BTreeMap, HashMap, HashSet};

/// The kinds of named item.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `authority`.
    Authority,
    /// `objective`.
    Objective,
    /// `intent`.
    Intent,
    /// `plan`.
    Plan,
}

impl Kind {
    /// The keyword.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Authority => "authority",
            Kind::Objective => "objective",
            Kind::Intent => "intent",
            Kind::Plan => "plan",
        }
    }

    fn with_article(self) -> &'static str {
        match self {
            Kind::Authority => "an authority",
            Kind::Objective => "an objective",
            Kind::Intent => "an intent",
            Kind::Plan => "a plan",
        }
    }
}

/// Index into [`Resolved::defs`].
pub type DefId = usize;

/// A namespace: 0 is the policy's, `1 + i` is stdlib module `modules[i]`.
pub type ScopeId = usize;

/// One named definition.
#[derive(Clone, Debug)]
pub struct Def {
    /// The unit it is in.
    pub unit: usize,
    /// Its index among the unit's items.
    pub item: usize,
    /// What it is.
    pub kind: Kind,
    /// Its name.
    pub name: String,
    /// Where the name is written.
    pub name_span: Span,
    /// Its namespace.
    pub scope: ScopeId,
    /// Another definition of the same name came first.
    pub shadowed: bool,
}

/// What resolution found.
#[derive(Clone, Debug, Default)]
pub struct Resolved {
    /// Every definition, in unit then item order.
    pub defs: Vec<Def>,
    /// Each resolved name use (by the span of the written name) to its
    /// definition: `under` targets and `use` rules.
    pub refs: HashMap<Span, DefId>,
    /// Each resolved `after` entry (by the span of the name) to the index of
    /// the step it names in its plan.
    pub after: HashMap<Span, usize>,
}

struct Ctx<'a> {
    loaded: &'a Loaded,
    /// Module names in scope-id order (`modules[i]` is scope `i + 1`).
    modules: Vec<String>,
    unit_scope: Vec<ScopeId>,
    names: Vec<HashMap<String, DefId>>,
    /// Per scope, the stdlib modules visible from it (name → scope id).
    visible: Vec<BTreeMap<String, ScopeId>>,
    out: Resolved,
    diags: Vec<Diagnostic>,
    /// Definitions offered as "did you mean": not reported as unused, since
    /// the misspelled use already points at them.
    suggested: HashSet<DefId>,
}

/// Resolves every name of the loaded units and checks their structure.
pub fn resolve(loaded: &Loaded) -> (Resolved, Vec<Diagnostic>) {
    let mut modules: Vec<String> = Vec::new();
    let mut unit_scope = Vec::with_capacity(loaded.units.len());
    for u in &loaded.units {
        unit_scope.push(match &u.scope {
            Scope::Policy => 0,
            Scope::Stdlib(m) => match modules.iter().position(|x| x == m) {
                Some(i) => i + 1,
                None => {
                    modules.push(m.clone());
                    modules.len()
                }
            },
        });
    }
    let n_scopes = modules.len() + 1;
    let mut visible = vec![BTreeMap::new(); n_scopes];
    for imp in &loaded.imports {
        if let ImportTarget::Module { name, unit } = &imp.target
            && let (Some(&from), Some(&to)) = (unit_scope.get(imp.from), unit_scope.get(*unit))
        {
            visible[from].insert(name.clone(), to);
        }
    }
    let mut cx = Ctx {
        loaded,
        modules,
        unit_scope,
        names: vec![HashMap::new(); n_scopes],
        visible,
        out: Resolved::default(),
        diags: Vec::new(),
        suggested: HashSet::new(),
    };
    cx.collect_defs();
    cx.check_items();
    cx.check_authority_cycles();
    cx.unused_authorities();
    (cx.out, cx.diags)
}

fn item_name(item: &Item) -> Option<(Kind, &ast::Ident)> {
    match item {
        Item::Use(_) | Item::Param(_) => None,
        Item::Authority(a) => Some((Kind::Authority, &a.name)),
        Item::Objective(b) => Some((Kind::Objective, &b.name)),
        Item::Intent(b) => Some((Kind::Intent, &b.name)),
        Item::Plan(p) => Some((Kind::Plan, &p.name)),
    }
}

/// The span of the first `len` bytes of `span` (a clause keyword).
fn keyword(span: Span, len: u32) -> Span {
    Span {
        file: span.file,
        start: span.start,
        end: span.start.saturating_add(len).min(span.end.max(span.start)),
    }
}

impl Ctx<'_> {
    fn module_of(&self, scope: ScopeId) -> Option<&str> {
        scope
            .checked_sub(1)
            .and_then(|i| self.modules.get(i))
            .map(String::as_str)
    }

    fn display_name(&self, def: &Def) -> String {
        match self.module_of(def.scope) {
            Some(m) => format!("{m}.{}", def.name),
            None => def.name.clone(),
        }
    }

    fn collect_defs(&mut self) {
        for (ui, unit) in self.loaded.units.iter().enumerate() {
            let scope = self.unit_scope.get(ui).copied().unwrap_or(0);
            for (ii, item) in unit.ast.items.iter().enumerate() {
                let Some((kind, ident)) = item_name(item) else {
                    continue;
                };
                let id = self.out.defs.len();
                let mut shadowed = false;
                match self.names[scope].get(&ident.name) {
                    Some(&first) => {
                        shadowed = true;
                        if let Some(f) = self.out.defs.get_mut(first) {
                            f.shadowed = true;
                            let fspan = f.name_span;
                            let fkind = f.kind;
                            let what = if fkind == kind {
                                format!("{} `{}` is defined twice", kind.as_str(), ident.name)
                            } else {
                                format!("the name `{}` is defined twice", ident.name)
                            };
                            self.diags.push(
                                Diagnostic::error(
                                    codes::DUPLICATE_DEFINITION,
                                    what,
                                    ident.span,
                                    format!("{} `{}` defined again here", kind.as_str(), ident.name),
                                )
                                .with_label(fspan, format!("first defined here as {}", fkind.with_article()))
                                .with_note("objectives, intents, plans and authorities share one namespace per policy")
                                .with_help("rename or remove one of the definitions"),
                            );
                        }
                    }
                    None => {
                        self.names[scope].insert(ident.name.clone(), id);
                    }
                }
                self.out.defs.push(Def {
                    unit: ui,
                    item: ii,
                    kind,
                    name: ident.name.clone(),
                    name_span: ident.span,
                    scope,
                    shadowed,
                });
            }
        }
    }

    /// Candidates for "did you mean": names of the wanted kinds visible
    /// from `scope`, unqualified for its own, qualified for modules.
    fn candidates(&self, scope: ScopeId, want: &[Kind]) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut own: Vec<(&String, &DefId)> = self.names[scope].iter().collect();
        own.sort();
        for (name, &d) in own {
            if self.out.defs.get(d).is_some_and(|d| want.contains(&d.kind)) {
                out.push(name.clone());
            }
        }
        for (m, &ms) in &self.visible[scope] {
            let mut theirs: Vec<(&String, &DefId)> = self.names[ms].iter().collect();
            theirs.sort();
            for (name, &d) in theirs {
                if self.out.defs.get(d).is_some_and(|d| want.contains(&d.kind)) {
                    out.push(format!("{m}.{name}"));
                }
            }
        }
        out
    }

    fn want_text(want: &[Kind]) -> String {
        let words: Vec<&str> = want.iter().map(|k| k.as_str()).collect();
        words.join(" or ")
    }

    /// Resolves `q` from `scope` to a definition of one of the `want` kinds.
    fn resolve_name(&mut self, scope: ScopeId, q: &QualName, want: &[Kind]) -> Option<DefId> {
        let parts: Vec<&str> = q.parts.iter().map(|p| p.name.as_str()).collect();
        let (target_scope, name) = match parts.as_slice() {
            [] => return None,
            [name] => (scope, *name),
            [m, name] | ["std", m, name] => {
                let Some(&ms) = self.visible[scope].get(*m) else {
                    self.unknown_module(scope, q, m);
                    return None;
                };
                (ms, *name)
            }
            _ => {
                self.diags.push(
                    Diagnostic::error(
                        codes::UNKNOWN_NAME,
                        format!("`{}` is not a name", q.dotted()),
                        q.span,
                        "too many parts",
                    )
                    .with_help("names are `NAME`, `MODULE.NAME` or `std.MODULE.NAME`"),
                );
                return None;
            }
        };
        let Some(&def) = self.names[target_scope].get(name) else {
            self.unknown_name(scope, target_scope, q, name, want);
            return None;
        };
        let d = self.out.defs.get(def)?;
        if !want.contains(&d.kind) {
            let msg = format!(
                "`{}` is {}, not {}",
                q.dotted(),
                d.kind.with_article(),
                want.iter()
                    .map(|k| k.with_article())
                    .collect::<Vec<_>>()
                    .join(" or ")
            );
            let mut diag = Diagnostic::error(
                codes::WRONG_KIND,
                msg,
                q.span,
                format!("expected {}", Self::want_text(want)),
            )
            .with_label(
                d.name_span,
                format!("`{}` is defined here as {}", d.name, d.kind.with_article()),
            );
            let cands = self.candidates(scope, want);
            if let Some(s) = suggest(name, cands.iter().map(String::as_str)) {
                diag = diag.with_help(format!("did you mean `{s}`?"));
            }
            self.diags.push(diag);
            return None;
        }
        self.out.refs.insert(q.span, def);
        Some(def)
    }

    fn unknown_module(&mut self, scope: ScopeId, q: &QualName, m: &str) {
        let span = q
            .parts
            .iter()
            .find(|p| p.name == m)
            .map_or(q.span, |p| p.span);
        if stdlib::module(m).is_some() {
            self.diags.push(
                Diagnostic::error(
                    codes::MODULE_NOT_IMPORTED,
                    format!("stdlib module `{m}` is not imported"),
                    span,
                    format!("`{m}` is not in scope"),
                )
                .with_help(format!("add `use std.{m}` at the top of the file")),
            );
            return;
        }
        let mut d = Diagnostic::error(
            codes::UNKNOWN_NAME,
            format!("unknown module `{m}` in `{}`", q.dotted()),
            span,
            "no module of this name is imported",
        );
        let visible: Vec<&str> = self.visible[scope].keys().map(String::as_str).collect();
        let all: Vec<&str> = stdlib::names().collect();
        if let Some(s) = suggest(m, visible.iter().copied()) {
            d = d.with_help(format!("did you mean `{s}`?"));
        } else if let Some(s) = suggest(m, all.iter().copied()) {
            d = d.with_help(format!("did you mean `{s}`? (add `use std.{s}`)"));
        }
        self.diags.push(d);
    }

    fn unknown_name(
        &mut self,
        scope: ScopeId,
        target: ScopeId,
        q: &QualName,
        name: &str,
        want: &[Kind],
    ) {
        let what = Self::want_text(want);
        let (msg, label) = match self.module_of(target) {
            Some(m) if target != scope => (
                format!("no {what} `{name}` in `std.{m}`"),
                format!("not defined in `std.{m}`"),
            ),
            _ => (
                format!("unknown {what} `{}`", q.dotted()),
                "not defined".to_string(),
            ),
        };
        let mut d = Diagnostic::error(codes::UNKNOWN_NAME, msg, q.span, label);
        let cands: Vec<String> = if target == scope {
            self.candidates(scope, want)
        } else {
            let m = self.module_of(target).unwrap_or_default().to_string();
            let mut v: Vec<(&String, &DefId)> = self.names[target].iter().collect();
            v.sort();
            v.into_iter()
                .filter(|(_, d)| {
                    self.out
                        .defs
                        .get(**d)
                        .is_some_and(|d| want.contains(&d.kind))
                })
                .map(|(n, _)| format!("{m}.{n}"))
                .collect()
        };
        let written = q.dotted();
        let plain: Vec<&str> = cands.iter().map(String::as_str).collect();
        let bare = |c: &&&str| c.rsplit('.').next().unwrap_or(c) == name;
        if let Some(s) = suggest(&written, plain.iter().copied()) {
            if !s.contains('.')
                && let Some(&id) = self.names[scope].get(s)
            {
                self.suggested.insert(id);
            }
            d = d.with_help(format!("did you mean `{s}`?"));
        } else if let Some(s) = plain.iter().find(bare) {
            d = d.with_help(format!(
                "did you mean `{s}`? stdlib names are qualified by their module"
            ));
        } else if q.parts.len() == 1
            && let Some(m) = self.stdlib_home(name, want)
        {
            d = d.with_help(format!(
                "`std.{m}` defines `{name}`: add `use std.{m}` and write `{m}.{name}`"
            ));
        }
        self.diags.push(d);
    }

    /// A stdlib module (imported or not) that defines `name` with a wanted
    /// kind, by looking at loaded modules only.
    fn stdlib_home(&self, name: &str, want: &[Kind]) -> Option<String> {
        for (i, m) in self.modules.iter().enumerate() {
            if let Some(&d) = self.names.get(i + 1).and_then(|ns| ns.get(name))
                && self.out.defs.get(d).is_some_and(|d| want.contains(&d.kind))
            {
                return Some(m.clone());
            }
        }
        None
    }

    fn check_rules(&mut self, scope: ScopeId, rules: &[Rule]) {
        for r in rules {
            if let RuleKind::Use { name } = &r.kind {
                self.resolve_name(scope, name, &[Kind::Authority]);
            }
        }
    }

    fn check_once<T>(&mut self, items: &[T], span_of: impl Fn(&T) -> Span, kw: &str, owner: &str) {
        // `about` spans are the string alone; block spans start at the keyword.
        let kw_len = if kw == "about" {
            u32::MAX
        } else {
            u32::try_from(kw.len()).unwrap_or(0)
        };
        if let (Some(first), Some(second)) = (items.first(), items.get(1)) {
            let mut d = Diagnostic::error(
                codes::DUPLICATE_CLAUSE,
                format!("{owner} has more than one `{kw}`"),
                keyword(span_of(second), kw_len),
                format!("another `{kw}`"),
            )
            .with_label(
                keyword(span_of(first), kw_len),
                format!("first `{kw}` here"),
            );
            for extra in items.iter().skip(2) {
                d = d.with_label(keyword(span_of(extra), kw_len), format!("another `{kw}`"));
            }
            self.diags
                .push(d.with_help(format!("merge them into one `{kw}`")));
        }
    }

    fn check_bounded(&mut self, scope: ScopeId, kind: Kind, b: &ast::Bounded) {
        let owner = format!("{} `{}`", kind.as_str(), b.name.name);
        if b.bound.is_empty() {
            self.diags.push(
                Diagnostic::error(
                    codes::MISSING_BOUND,
                    format!("{owner} has no `bound`"),
                    b.name.span,
                    "needs a `bound { ... }`",
                )
                .with_help("add `bound { RULES }`: the most any work under it may touch"),
            );
        }
        self.check_once(&b.bound, |x| x.span, "bound", &owner);
        self.check_once(&b.never, |x| x.span, "never", &owner);
        self.check_once(&b.about, |x| x.span, "about", &owner);
        for block in b.bound.iter().chain(&b.never) {
            self.check_rules(scope, &block.rules);
        }
        if kind == Kind::Intent
            && let Some(under) = &b.under
        {
            self.check_under(scope, under, &[Kind::Objective]);
        }
    }

    fn check_under(&mut self, scope: ScopeId, under: &QualName, want: &[Kind]) {
        if let Some(def) = self.resolve_name(scope, under, want)
            && self.out.defs.get(def).is_some_and(|d| d.scope != 0)
        {
            self.out.refs.remove(&under.span);
            self.diags.push(Diagnostic::error(
                codes::WRONG_KIND,
                format!("`{}` is not part of this policy", under.dotted()),
                under.span,
                format!("expected {} of this policy", Self::want_text(want)),
            ));
        }
    }

    fn check_plan(&mut self, scope: ScopeId, p: &ast::Plan) {
        let owner = format!("plan `{}`", p.name.name);
        self.check_under(scope, &p.under, &[Kind::Intent, Kind::Objective]);
        self.check_once(&p.about, |x| x.span, "about", &owner);
        for g in &p.grants {
            self.check_rules(scope, std::slice::from_ref(&g.rule));
        }
        // Steps: unique names within the plan.
        let mut by_name: HashMap<&str, usize> = HashMap::new();
        for (i, s) in p.steps.iter().enumerate() {
            match by_name.get(s.name.name.as_str()) {
                Some(&first) => {
                    let fspan = p.steps.get(first).map_or(s.name.span, |f| f.name.span);
                    self.diags.push(
                        Diagnostic::error(
                            codes::DUPLICATE_DEFINITION,
                            format!(
                                "step `{}` is defined twice in plan `{}`",
                                s.name.name, p.name.name
                            ),
                            s.name.span,
                            "defined again here",
                        )
                        .with_label(fspan, "first defined here")
                        .with_help("rename or remove one of the steps"),
                    );
                }
                None => {
                    by_name.insert(s.name.name.as_str(), i);
                }
            }
            self.check_once(
                &s.about,
                |x| x.span,
                "about",
                &format!("step `{}`", s.name.name),
            );
            for g in &s.grants {
                self.check_rules(scope, std::slice::from_ref(&g.rule));
            }
        }
        // `after`: names of steps of this plan.
        let step_names: Vec<&str> = p.steps.iter().map(|s| s.name.name.as_str()).collect();
        let mut adj: Vec<Vec<usize>> = vec![Vec::new(); p.steps.len()];
        // (from, to, span of the name in `after`)
        let mut edges: Vec<(usize, usize, Span)> = Vec::new();
        for (i, s) in p.steps.iter().enumerate() {
            let mut seen: HashMap<usize, Span> = HashMap::new();
            for a in &s.after {
                let Some(&target) = by_name.get(a.name.as_str()) else {
                    let mut d = Diagnostic::error(
                        codes::UNKNOWN_STEP,
                        format!("`{}` is not a step of plan `{}`", a.name, p.name.name),
                        a.span,
                        format!("no step `{}` in plan `{}`", a.name, p.name.name),
                    )
                    .with_note("`after` names steps of the same plan");
                    if let Some(sg) = suggest(
                        &a.name,
                        step_names.iter().copied().filter(|n| *n != s.name.name),
                    ) {
                        d = d.with_help(format!("did you mean `{sg}`?"));
                    }
                    self.diags.push(d);
                    continue;
                };
                if let Some(first) = seen.get(&target) {
                    self.diags.push(
                        Diagnostic::warning(
                            codes::DUPLICATE_AFTER,
                            format!("step `{}` is listed twice in `after`", a.name),
                            a.span,
                            "listed again here",
                        )
                        .with_label(*first, "first listed here")
                        .with_help("remove the repeated name"),
                    );
                    continue;
                }
                seen.insert(target, a.span);
                self.out.after.insert(a.span, target);
                adj[i].push(target);
                edges.push((i, target, a.span));
            }
        }
        for cycle in graph::cycles(&adj) {
            let in_cycle: Vec<&(usize, usize, Span)> = edges
                .iter()
                .filter(|(f, t, _)| cycle.contains(f) && cycle.contains(t))
                .collect();
            let names: Vec<String> = cycle
                .iter()
                .filter_map(|&i| p.steps.get(i))
                .map(|s| format!("`{}`", s.name.name))
                .collect();
            let msg = match names.as_slice() {
                [one] => format!("step {one} is after itself"),
                [a, b] => format!("steps {a} and {b} are after each other"),
                _ => format!("steps {} are after each other in a cycle", names.join(", ")),
            };
            let mut sorted = in_cycle.clone();
            sorted.sort_by_key(|(_, _, sp)| *sp);
            let Some((first, rest)) = sorted.split_first() else {
                continue;
            };
            let label = |e: &(usize, usize, Span)| {
                let from = p.steps.get(e.0).map_or("", |s| s.name.name.as_str());
                let to = p.steps.get(e.1).map_or("", |s| s.name.name.as_str());
                format!("`{from}` is after `{to}`")
            };
            let mut d = Diagnostic::error(codes::STEP_CYCLE, msg, first.2, label(first));
            for e in rest {
                d = d.with_label(e.2, label(e));
            }
            d = d
                .with_note("a session can only move to a step once every step in its `after` has been current")
                .with_help("remove one of the `after` entries to break the cycle");
            self.diags.push(d);
        }
    }

    fn check_items(&mut self) {
        let loaded = self.loaded;
        for (ui, unit) in loaded.units.iter().enumerate() {
            let scope = self.unit_scope.get(ui).copied().unwrap_or(0);
            for item in &unit.ast.items {
                match item {
                    Item::Use(_) | Item::Param(_) => {}
                    Item::Authority(a) => self.check_rules(scope, &a.rules),
                    Item::Objective(b) => self.check_bounded(scope, Kind::Objective, b),
                    Item::Intent(b) => self.check_bounded(scope, Kind::Intent, b),
                    Item::Plan(p) => self.check_plan(scope, p),
                }
            }
        }
    }

    /// The `use` edges between authorities: (from, to, span of the name).
    fn authority_edges(&self) -> Vec<(DefId, DefId, Span)> {
        let mut edges = Vec::new();
        for (id, d) in self.out.defs.iter().enumerate() {
            if d.kind != Kind::Authority {
                continue;
            }
            let Some(Item::Authority(a)) = self
                .loaded
                .units
                .get(d.unit)
                .and_then(|u| u.ast.items.get(d.item))
            else {
                continue;
            };
            for r in &a.rules {
                if let RuleKind::Use { name } = &r.kind
                    && let Some(&to) = self.out.refs.get(&name.span)
                {
                    edges.push((id, to, name.span));
                }
            }
        }
        edges
    }

    fn check_authority_cycles(&mut self) {
        let edges = self.authority_edges();
        let mut adj: Vec<Vec<usize>> = vec![Vec::new(); self.out.defs.len()];
        for (f, t, _) in &edges {
            adj[*f].push(*t);
        }
        for cycle in graph::cycles(&adj) {
            let mut in_cycle: Vec<&(DefId, DefId, Span)> = edges
                .iter()
                .filter(|(f, t, _)| cycle.contains(f) && cycle.contains(t))
                .collect();
            in_cycle.sort_by_key(|(_, _, s)| *s);
            let names: Vec<String> = cycle
                .iter()
                .filter_map(|&i| self.out.defs.get(i))
                .map(|d| format!("`{}`", self.display_name(d)))
                .collect();
            let msg = match names.as_slice() {
                [one] => format!("authority {one} uses itself"),
                [a, b] => format!("authorities {a} and {b} use each other"),
                _ => format!("authorities {} use each other in a cycle", names.join(", ")),
            };
            let Some((first, rest)) = in_cycle.split_first() else {
                continue;
            };
            let label = |e: &(DefId, DefId, Span)| {
                let f = self
                    .out
                    .defs
                    .get(e.0)
                    .map(|d| self.display_name(d))
                    .unwrap_or_default();
                let t = self
                    .out
                    .defs
                    .get(e.1)
                    .map(|d| self.display_name(d))
                    .unwrap_or_default();
                format!("`{f}` uses `{t}`")
            };
            let mut d = Diagnostic::error(codes::AUTHORITY_CYCLE, msg, first.2, label(first));
            for e in rest {
                d = d.with_label(e.2, label(e));
            }
            self.diags.push(
                d.with_help("an authority cannot include itself; remove one of these `use` rules"),
            );
        }
    }

    fn unused_authorities(&mut self) {
        let used: HashSet<DefId> = self.out.refs.values().copied().collect();
        let mut warns = Vec::new();
        for (id, d) in self.out.defs.iter().enumerate() {
            if d.kind == Kind::Authority
                && d.scope == 0
                && !d.shadowed
                && !used.contains(&id)
                && !self.suggested.contains(&id)
            {
                warns.push(
                    Diagnostic::warning(
                        codes::UNUSED_AUTHORITY,
                        format!("authority `{}` is never used", d.name),
                        d.name_span,
                        "defined here, used nowhere",
                    )
                    .with_help(format!(
                        "use it with `use {}` in a bound or a grant, or remove it",
                        d.name
                    )),
                );
            }
        }
        self.diags.extend(warns);
    }
}

/// True when any diagnostic is an error.
pub fn has_errors(diags: &[Diagnostic]) -> bool {
    diags.iter().any(|d| d.severity == Severity::Error)
}
