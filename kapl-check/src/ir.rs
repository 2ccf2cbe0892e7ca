//! The flat, resolved IR: what the prover and the code generator read.
//!
//! Input: the checked ASTs of a policy's files and stdlib modules.
//! Output: objectives, intents and plans with every `use` expanded into
//! plain rules, every name resolved to an index, and every node keeping the
//! span it came from (so findings point at the source).
//!
//! INVARIANT: indices are valid within the `Policy` that holds them; steps'
//! `after` lists name steps of the same plan and form no cycle.

use kapl_syntax::Span;
use kapl_syntax::ast::{NetOp, Right};
use kapl_syntax::glob::Glob;
use std::net::IpAddr;
use std::sync::Arc;

/// Index into `Policy::objectives`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectiveId(pub u32);
/// Index into `Policy::intents`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IntentId(pub u32);
/// Index into `Policy::plans`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PlanId(pub u32);
/// Index into `Plan::steps`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StepId(pub u32);
/// Index into `Policy::grants`; stable for one policy text, used as the
/// grant id in images and audit records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GrantId(pub u32);

/// A whole checked policy.
#[derive(Clone, Debug, Default)]
pub struct Policy {
    /// Objectives in source order.
    pub objectives: Vec<Objective>,
    /// Intents in source order.
    pub intents: Vec<Intent>,
    /// Plans in source order.
    pub plans: Vec<Plan>,
    /// Every grant of every plan, flattened (one per expanded rule).
    pub grants: Vec<Grant>,
    /// The parameters' values the patterns were made concrete with,
    /// `(name, value)` sorted by name.
    pub params: Vec<(String, String)>,
}

/// A set of file-system rights.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Rights(pub u8);

impl Rights {
    /// The bit for one right.
    pub fn of(r: Right) -> Rights {
        Rights(match r {
            Right::Read => 1,
            Right::Write => 2,
            Right::Create => 4,
            Right::Delete => 8,
        })
    }
    /// Whether `r` is in the set.
    pub fn has(self, r: Right) -> bool {
        self.0 & Rights::of(r).0 != 0
    }
    /// Union.
    #[must_use]
    pub fn with(self, r: Right) -> Rights {
        Rights(self.0 | Rights::of(r).0)
    }
    /// The rights in canonical order.
    pub fn iter(self) -> impl Iterator<Item = Right> {
        Right::ALL.into_iter().filter(move |r| self.has(*r))
    }
}

/// A glob with the span it was written at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PatternRef {
    /// The glob text as written, with parameters' values substituted
    /// (escaped) when it uses any (for messages and provenance), shared
    /// with the AST and every other expansion of the same `use`.
    pub source: Arc<str>,
    /// The parsed glob, shared likewise (lowering clones no glob).
    pub glob: Arc<Glob>,
    /// Where it is written.
    pub span: Span,
}

/// An address block. IPv4-mapped IPv6 (`::ffff:a.b.c.d/N`, N ≥ 96) is stored
/// as the IPv4 block; host bits are masked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cidr {
    /// Network address.
    pub addr: IpAddr,
    /// Prefix length.
    pub prefix: u8,
}

/// An inclusive port range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortRange {
    /// Low end.
    pub lo: u16,
    /// High end (≥ `lo`).
    pub hi: u16,
}

/// A plain rule with every `use` expanded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RuleKind {
    /// File-system access.
    Fs {
        /// Rights granted (or bounded, or forbidden).
        rights: Rights,
        /// Covered paths.
        patterns: Vec<PatternRef>,
        /// Carved out.
        except: Vec<PatternRef>,
    },
    /// Program execution.
    Exec {
        /// Programs.
        patterns: Vec<PatternRef>,
    },
    /// Network access (TCP and UDP alike).
    Net {
        /// Connect or bind.
        op: NetOp,
        /// Address blocks (`any` and `localhost` expanded).
        addrs: Vec<Cidr>,
        /// Host-name patterns in normal form (`connect` only), sorted and
        /// without repeats. A name rule covers a connect to an address
        /// learned for a matching name when the address is public and in no
        /// `never` range above the rule (see the book's network reference).
        names: Vec<String>,
        /// Port ranges.
        ports: Vec<PortRange>,
    },
}

/// A rule and where it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// What it says.
    pub kind: RuleKind,
    /// The rule's own text (possibly inside an authority or a stdlib file).
    pub span: Span,
    /// The `use` sites that brought it here, outermost first (empty when the
    /// rule is written in place).
    pub via: Vec<Span>,
}

/// An objective.
#[derive(Clone, Debug)]
pub struct Objective {
    /// Its name.
    pub name: String,
    /// Where the name is written.
    pub name_span: Span,
    /// The whole item.
    pub span: Span,
    /// `about` text.
    pub about: Option<String>,
    /// The bound's rules.
    pub bound: Vec<Rule>,
    /// The `never` rules.
    pub never: Vec<Rule>,
}

/// An intent.
#[derive(Clone, Debug)]
pub struct Intent {
    /// Its name.
    pub name: String,
    /// Where the name is written.
    pub name_span: Span,
    /// The whole item.
    pub span: Span,
    /// The objective it lies inside.
    pub objective: ObjectiveId,
    /// `about` text.
    pub about: Option<String>,
    /// The bound's rules.
    pub bound: Vec<Rule>,
    /// The `never` rules.
    pub never: Vec<Rule>,
}

/// What a plan is under.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parent {
    /// Directly under an objective.
    Objective(ObjectiveId),
    /// Under an intent (and so under its objective).
    Intent(IntentId),
}

/// A plan.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Its name.
    pub name: String,
    /// Where the name is written.
    pub name_span: Span,
    /// The whole item.
    pub span: Span,
    /// The bound it must stay inside.
    pub parent: Parent,
    /// `about` text.
    pub about: Option<String>,
    /// Plan-wide grants.
    pub grants: Vec<GrantId>,
    /// Steps in source order.
    pub steps: Vec<Step>,
}

/// A step.
#[derive(Clone, Debug)]
pub struct Step {
    /// Its name.
    pub name: String,
    /// Where the name is written.
    pub name_span: Span,
    /// The whole step.
    pub span: Span,
    /// Steps that must have been current before this one.
    pub after: Vec<StepId>,
    /// `about` text.
    pub about: Option<String>,
    /// The step's own grants (plan-wide ones are in `Plan::grants`).
    pub grants: Vec<GrantId>,
}

/// One granted rule.
#[derive(Clone, Debug)]
pub struct Grant {
    /// Its id (its index in `Policy::grants`).
    pub id: GrantId,
    /// The plan it belongs to.
    pub plan: PlanId,
    /// The step, or `None` for a plan-wide grant.
    pub step: Option<StepId>,
    /// The rule.
    pub rule: Rule,
    /// The `grant ...` statement it comes from.
    pub site: Span,
}
