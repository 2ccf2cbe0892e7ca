//! The abstract syntax tree of one `.kapl` file.
//!
//! Input: produced by the parser from tokens. Output: consumed by the checker
//! (name resolution, lowering to the IR), the formatter and the language
//! server. Every node keeps the byte span it was parsed from. Literals are
//! already validated: a `Pattern`, `AddrSpec` or `PortSpec` in the tree is
//! well formed (malformed literals are reported and left out of the tree).

use crate::glob::Glob;
use crate::param::ParamRef;
use crate::span::Span;
use std::net::IpAddr;
use std::sync::Arc;

/// A parsed file: its items in source order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct File {
    /// Top-level items.
    pub items: Vec<Item>,
    /// Comments, in order, with their spans (kept for the formatter).
    pub comments: Vec<Comment>,
    /// The whole file.
    pub span: Span,
}

/// A `//` or `/* */` comment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Comment {
    /// The comment text including its delimiters.
    pub text: String,
    /// Where it is.
    pub span: Span,
}

/// A name as written.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Ident {
    /// The name.
    pub name: String,
    /// Where it is written.
    pub span: Span,
}

/// A possibly qualified name: `loader`, `runtime.loader`, `std.runtime.loader`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct QualName {
    /// The dot-separated parts, at least one.
    pub parts: Vec<Ident>,
    /// The whole name.
    pub span: Span,
}

impl QualName {
    /// The name as written, parts joined by dots.
    pub fn dotted(&self) -> String {
        self.parts
            .iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>()
            .join(".")
    }
}

/// A string literal (`about` text or a `use` path), escapes resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StrLit {
    /// The value.
    pub value: String,
    /// Including the quotes.
    pub span: Span,
}

/// A top-level item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item {
    /// `use std.NAME` or `use "./file.kapl"`.
    Use(UseItem),
    /// `param NAME` or `param NAME = "/default"`.
    Param(ParamDecl),
    /// `authority NAME { RULES }`.
    Authority(Authority),
    /// `objective NAME { ... }`.
    Objective(Bounded),
    /// `intent NAME under OBJECTIVE { ... }`.
    Intent(Bounded),
    /// `plan NAME under PARENT { ... }`.
    Plan(Plan),
}

/// What a `use` item imports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UseTarget {
    /// `use std.NAME` (the name as written, `std` included).
    Module(QualName),
    /// `use "./file.kapl"`, relative to the using file.
    File(StrLit),
}

/// `use ...` at the top level.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UseItem {
    /// What is imported.
    pub target: UseTarget,
    /// The whole item.
    pub span: Span,
}

/// `param NAME [= "VALUE"]`: a path the policy is parameterised by,
/// used as `${NAME}` at the start of path patterns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamDecl {
    /// Its name.
    pub name: Ident,
    /// Its default value, as written (checked by the checker).
    pub default: Option<StrLit>,
    /// The whole item.
    pub span: Span,
}

/// `authority NAME { RULES }`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authority {
    /// Its name.
    pub name: Ident,
    /// Its rules.
    pub rules: Vec<Rule>,
    /// The whole item.
    pub span: Span,
}

/// An objective or an intent: both state a bound and optional holes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bounded {
    /// Its name.
    pub name: Ident,
    /// `under OBJECTIVE` (intents only; `None` for objectives).
    pub under: Option<QualName>,
    /// `about "..."` clauses (more than one is reported by the checker).
    pub about: Vec<StrLit>,
    /// `bound { ... }` blocks (exactly one is required; the checker says so).
    pub bound: Vec<Block>,
    /// `never { ... }` blocks (at most one).
    pub never: Vec<Block>,
    /// The whole item.
    pub span: Span,
}

/// `bound { RULES }` or `never { RULES }`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Block {
    /// The rules.
    pub rules: Vec<Rule>,
    /// From the keyword to the closing brace.
    pub span: Span,
}

/// `plan NAME under PARENT { ... }`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Its name.
    pub name: Ident,
    /// The intent or objective it serves.
    pub under: QualName,
    /// `about` clauses.
    pub about: Vec<StrLit>,
    /// Plan-wide grants.
    pub grants: Vec<Grant>,
    /// Steps in source order.
    pub steps: Vec<Step>,
    /// The whole item.
    pub span: Span,
}

/// `step NAME [after A, B] { ... }`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// Its name.
    pub name: Ident,
    /// Steps that must have been current before this one.
    pub after: Vec<Ident>,
    /// `about` clauses.
    pub about: Vec<StrLit>,
    /// The step's grants.
    pub grants: Vec<Grant>,
    /// The whole step.
    pub span: Span,
}

/// `grant RULE`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    /// The rule granted.
    pub rule: Rule,
    /// From `grant` to the end of the rule.
    pub span: Span,
}

/// One rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// What it says.
    pub kind: RuleKind,
    /// The rule's text.
    pub span: Span,
}

/// The kinds of rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RuleKind {
    /// `fs RIGHTS PATTERNS [except PATTERNS]`.
    Fs {
        /// The rights, as written.
        rights: Vec<RightLit>,
        /// What is covered.
        patterns: Vec<Pattern>,
        /// Carved out of `patterns`.
        except: Vec<Pattern>,
    },
    /// `exec PATTERNS`.
    Exec {
        /// Programs that may run.
        patterns: Vec<Pattern>,
    },
    /// `net connect|bind TARGETS port PORTS`, the targets addresses and
    /// quoted host-name patterns.
    Net {
        /// `connect` or `bind`.
        op: NetOp,
        /// Where `op` is written.
        op_span: Span,
        /// Addresses.
        addrs: Vec<AddrSpec>,
        /// Host-name patterns (`connect` only; in order, after the
        /// addresses when both are written).
        names: Vec<NameSpec>,
        /// Ports.
        ports: Vec<PortSpec>,
    },
    /// `use AUTHORITY`.
    Use {
        /// The authority named.
        name: QualName,
    },
}

/// A file-system right.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Right {
    /// Read file contents, list directories.
    Read,
    /// Change or truncate an existing file.
    Write,
    /// Make files, directories, links.
    Create,
    /// Remove or rename away.
    Delete,
}

impl Right {
    /// All rights, in canonical order.
    pub const ALL: [Right; 4] = [Right::Read, Right::Write, Right::Create, Right::Delete];

    /// The keyword.
    pub fn as_str(self) -> &'static str {
        match self {
            Right::Read => "read",
            Right::Write => "write",
            Right::Create => "create",
            Right::Delete => "delete",
        }
    }
}

/// A right as written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RightLit {
    /// Which right.
    pub right: Right,
    /// Where.
    pub span: Span,
}

/// A network operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NetOp {
    /// Outgoing connections and datagrams.
    Connect,
    /// Binding local addresses.
    Bind,
}

impl NetOp {
    /// The keyword.
    pub fn as_str(self) -> &'static str {
        match self {
            NetOp::Connect => "connect",
            NetOp::Bind => "bind",
        }
    }
}

/// A validated path glob as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pattern {
    /// The glob's text between the quotes, as written (shared: lowering
    /// copies patterns into every expanded `use`).
    pub source: Arc<str>,
    /// The parsed glob (shared likewise). For a pattern with parameters,
    /// the glob with each `${NAME}` replaced by a placeholder path (its
    /// syntax checked); the checker substitutes the values.
    pub glob: Arc<Glob>,
    /// The `${NAME}` references, in order (empty for most patterns).
    pub params: Vec<ParamRef>,
    /// Including the quotes.
    pub span: Span,
}

/// A host-name pattern item of a `net connect` rule (`"*.pythonhosted.org"`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NameSpec {
    /// The pattern in normal form (`names::pattern`: lower case, no
    /// trailing dot).
    pub pattern: String,
    /// Including the quotes.
    pub span: Span,
}

/// One item of a `net` rule's target list, as the parser reads it before
/// splitting addresses from host names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NetTarget {
    /// An address form.
    Addr(AddrSpec),
    /// A quoted host-name pattern.
    Name(NameSpec),
}

/// An address item.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddrSpec {
    /// What it denotes.
    pub kind: AddrKind,
    /// Where.
    pub span: Span,
}

/// Address forms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddrKind {
    /// Every IPv4 and IPv6 address.
    Any,
    /// 127.0.0.0/8 and ::1.
    Localhost,
    /// An address with a prefix length (32 or 128 when none was written).
    /// IPv4-mapped IPv6 addresses are kept as written; the checker
    /// normalizes them.
    Cidr {
        /// The network address as written (host bits may be set; the
        /// checker masks them and warns).
        addr: IpAddr,
        /// Prefix length, at most 32 for IPv4 and 128 for IPv6.
        prefix: u8,
    },
}

/// A port item.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortSpec {
    /// Inclusive range; `any` is 0-65535, a single port is `p-p`.
    pub lo: u16,
    /// Inclusive upper end, never below `lo`.
    pub hi: u16,
    /// Where.
    pub span: Span,
}
