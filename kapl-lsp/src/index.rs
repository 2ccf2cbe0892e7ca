//! The names of a policy: every definition and every reference, by span.
//!
//! Input: the parsed units of a loaded policy (root file, imported files,
//! stdlib modules). Output: a [`NameIndex`] that answers "what is at this
//! offset", "where is it defined" and "what is in scope", for hover,
//! go-to-definition, completion and document symbols. Works on partial
//! trees, so a half-typed file still gets answers.

use kapl_syntax::Span;
use kapl_syntax::ast::{self, Item, QualName, RuleKind, UseTarget};
use kapl_syntax::span::FileId;

/// What kind of thing a name denotes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DefKind {
    /// `authority NAME { ... }`.
    Authority,
    /// `objective NAME { ... }`.
    Objective,
    /// `intent NAME under O { ... }`.
    Intent,
    /// `plan NAME under P { ... }`.
    Plan,
    /// `step NAME { ... }` inside a plan.
    Step,
    /// `param NAME [= "/default"]`.
    Param,
}

impl DefKind {
    /// The keyword that introduces it.
    pub fn keyword(self) -> &'static str {
        match self {
            DefKind::Authority => "authority",
            DefKind::Objective => "objective",
            DefKind::Intent => "intent",
            DefKind::Plan => "plan",
            DefKind::Step => "step",
            DefKind::Param => "param",
        }
    }
}

/// One definition.
#[derive(Clone, Debug)]
pub struct Def {
    /// Its kind.
    pub kind: DefKind,
    /// Its name as written.
    pub name: String,
    /// For a stdlib definition, the module (`runtime`); `None` for policy
    /// files.
    pub module: Option<String>,
    /// For a step, the plan it belongs to.
    pub plan: Option<String>,
    /// Where the name is written.
    pub name_span: Span,
    /// The whole definition.
    pub span: Span,
    /// `under PARENT`, as written.
    pub under: Option<String>,
    /// The first `about` text.
    pub about: Option<String>,
}

impl Def {
    /// The name as other files refer to it: `runtime.loader` for stdlib
    /// definitions, the plain name otherwise.
    pub fn qualified(&self) -> String {
        match &self.module {
            Some(m) => format!("{m}.{}", self.name),
            None => self.name.clone(),
        }
    }
}

/// What a reference points at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A top-level name, possibly qualified (`loader`, `runtime.loader`,
    /// `std.runtime.loader`).
    Item(String),
    /// A step of a plan (from `after`).
    Step {
        /// The plan.
        plan: String,
        /// The step.
        step: String,
    },
    /// A stdlib module (`use std.runtime`).
    Module(String),
    /// A parameter (`${NAME}` in a pattern).
    Param(String),
}

/// One use of a name.
#[derive(Clone, Debug)]
pub struct Ref {
    /// Where it is written.
    pub span: Span,
    /// What it names.
    pub target: Target,
}

/// Definitions and references of every unit of a policy.
#[derive(Clone, Debug, Default)]
pub struct NameIndex {
    /// Every definition, in unit then source order.
    pub defs: Vec<Def>,
    /// Every reference.
    pub refs: Vec<Ref>,
}

impl NameIndex {
    /// Adds one unit. `module` is the stdlib module's name for stdlib units.
    pub fn add_file(&mut self, file: &ast::File, module: Option<&str>) {
        for item in &file.items {
            self.add_item(item, module);
        }
    }

    fn add_item(&mut self, item: &Item, module: Option<&str>) {
        let module = module.map(str::to_string);
        match item {
            Item::Param(p) => {
                self.defs.push(Def {
                    kind: DefKind::Param,
                    name: p.name.name.clone(),
                    module,
                    plan: None,
                    name_span: p.name.span,
                    span: p.span,
                    under: None,
                    about: p.default.as_ref().map(|d| format!("default `{}`", d.value)),
                });
            }
            Item::Use(u) => {
                if let UseTarget::Module(q) = &u.target {
                    let dotted = q.dotted();
                    let name = dotted.strip_prefix("std.").unwrap_or(&dotted).to_string();
                    self.refs.push(Ref {
                        span: q.span,
                        target: Target::Module(name),
                    });
                }
            }
            Item::Authority(a) => {
                self.defs.push(Def {
                    kind: DefKind::Authority,
                    name: a.name.name.clone(),
                    module,
                    plan: None,
                    name_span: a.name.span,
                    span: a.span,
                    under: None,
                    about: None,
                });
                self.add_rules(&a.rules);
            }
            Item::Objective(b) | Item::Intent(b) => {
                let kind = if matches!(item, Item::Objective(_)) {
                    DefKind::Objective
                } else {
                    DefKind::Intent
                };
                self.defs.push(Def {
                    kind,
                    name: b.name.name.clone(),
                    module,
                    plan: None,
                    name_span: b.name.span,
                    span: b.span,
                    under: b.under.as_ref().map(QualName::dotted),
                    about: b.about.first().map(|s| s.value.clone()),
                });
                if let Some(u) = &b.under {
                    self.add_ref(u);
                }
                for block in b.bound.iter().chain(&b.never) {
                    self.add_rules(&block.rules);
                }
            }
            Item::Plan(p) => {
                self.defs.push(Def {
                    kind: DefKind::Plan,
                    name: p.name.name.clone(),
                    module: module.clone(),
                    plan: None,
                    name_span: p.name.span,
                    span: p.span,
                    under: Some(p.under.dotted()),
                    about: p.about.first().map(|s| s.value.clone()),
                });
                self.add_ref(&p.under);
                for g in &p.grants {
                    self.add_rules(std::slice::from_ref(&g.rule));
                }
                for s in &p.steps {
                    self.defs.push(Def {
                        kind: DefKind::Step,
                        name: s.name.name.clone(),
                        module: module.clone(),
                        plan: Some(p.name.name.clone()),
                        name_span: s.name.span,
                        span: s.span,
                        under: None,
                        about: s.about.first().map(|a| a.value.clone()),
                    });
                    for a in &s.after {
                        self.refs.push(Ref {
                            span: a.span,
                            target: Target::Step {
                                plan: p.name.name.clone(),
                                step: a.name.clone(),
                            },
                        });
                    }
                    for g in &s.grants {
                        self.add_rules(std::slice::from_ref(&g.rule));
                    }
                }
            }
        }
    }

    fn add_rules(&mut self, rules: &[ast::Rule]) {
        for r in rules {
            let patterns: Vec<&ast::Pattern> = match &r.kind {
                RuleKind::Use { name } => {
                    self.add_ref(name);
                    continue;
                }
                RuleKind::Fs {
                    patterns, except, ..
                } => patterns.iter().chain(except).collect(),
                RuleKind::Exec { patterns } => patterns.iter().collect(),
                RuleKind::Net { .. } => continue,
            };
            for p in patterns {
                for r in &p.params {
                    self.refs.push(Ref {
                        span: r.span,
                        target: Target::Param(r.name.clone()),
                    });
                }
            }
        }
    }

    fn add_ref(&mut self, q: &QualName) {
        self.refs.push(Ref {
            span: q.span,
            target: Target::Item(q.dotted()),
        });
    }

    /// The definition a top-level name refers to: a policy definition by
    /// plain name, a stdlib one by `module.name` or `std.module.name`.
    pub fn lookup(&self, name: &str) -> Option<&Def> {
        let plain = name.strip_prefix("std.").unwrap_or(name);
        self.defs.iter().find(|d| {
            !matches!(d.kind, DefKind::Step | DefKind::Param)
                && match &d.module {
                    None => d.name == name,
                    Some(_) => d.qualified() == plain,
                }
        })
    }

    /// The definition of a step of a plan.
    pub fn lookup_step(&self, plan: &str, step: &str) -> Option<&Def> {
        self.defs
            .iter()
            .find(|d| d.kind == DefKind::Step && d.name == step && d.plan.as_deref() == Some(plan))
    }

    /// What a reference resolves to.
    pub fn resolve(&self, target: &Target) -> Option<&Def> {
        match target {
            Target::Item(name) => self.lookup(name),
            Target::Step { plan, step } => self.lookup_step(plan, step),
            Target::Param(name) => self
                .defs
                .iter()
                .find(|d| d.kind == DefKind::Param && d.name == *name),
            Target::Module(_) => None,
        }
    }

    /// The name at a byte offset of a file: a reference (resolved when
    /// possible) or a definition's own name.
    pub fn at(&self, file: FileId, offset: usize) -> Option<Hit<'_>> {
        let inside =
            |s: Span| s.file == file && s.range().start <= offset && offset <= s.range().end;
        if let Some(r) = self.refs.iter().find(|r| inside(r.span)) {
            return Some(Hit::Ref(r, self.resolve(&r.target)));
        }
        self.defs.iter().find(|d| inside(d.name_span)).map(Hit::Def)
    }
}

/// What is at a position.
#[derive(Clone, Copy, Debug)]
pub enum Hit<'a> {
    /// A reference and, when it resolves, its definition.
    Ref(&'a Ref, Option<&'a Def>),
    /// A definition's name.
    Def(&'a Def),
}
