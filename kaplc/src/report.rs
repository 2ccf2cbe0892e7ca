//! The machine-readable documents kaplc prints, as typed data.
//!
//! Input: nothing; the subcommands fill these structs (`render.rs` for
//! `check`/`build --format json`, `diff.rs`, `inspect.rs`). Output: the
//! JSON (serde) and its JSON Schema (schemars, draft 2020-12, describing
//! what is serialized), from the same types, so the published schemas in
//! `schemas/` cannot drift from what kaplc prints (`kaplc schema`, and
//! `kaplc/tests/schemas.rs` checks both the files and real outputs).
//!
//! Every document starts with `schema_version`. Bump a document's version
//! when it changes incompatibly (a field removed, renamed or retyped, a
//! value's meaning changed); a new field keeps the version, so consumers
//! ignore fields they do not know. The field order is the order the
//! documents had when they were built with `serde_json::json!` (whose maps
//! sort keys): declaration order for `check`, alphabetical for `diff` and
//! `inspect`, so the output stayed byte for byte the same apart from
//! `schema_version` (and the key order inside a diff's witness, which is
//! now the same as in `check`).

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};
use std::borrow::Cow;

/// A document's `schema_version`: serialized as the integer `N`, and its
/// schema admits exactly `N`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Version<const N: u32>;

impl<const N: u32> Serialize for Version<N> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u32(N)
    }
}

impl<const N: u32> JsonSchema for Version<N> {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        format!("SchemaVersion{N}").into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"type": "integer", "const": N})
    }
}

// ------------------------------------------------------------------ check

/// The JSON document of `kaplc check --format json` (and `kaplc build
/// --format json`): every finding of every file given.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(title = "kaplc check --format json")]
pub struct CheckReport<'a> {
    /// The version of this document's shape (see `schemas/README.md`).
    pub schema_version: Version<1>,
    /// True when no file has errors (warnings allowed) and every file could
    /// be read.
    pub ok: bool,
    /// Every finding of every file, each file's sorted by position.
    pub diagnostics: Vec<DiagnosticReport<'a>>,
    /// Every parameter each policy declares and the value its proofs were
    /// made for (`--param NAME=VALUE` or the declaration's default).
    pub params: Vec<ParamReport>,
}

/// A declared parameter and its value in this check.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct ParamReport {
    /// The policy file checked, as given.
    pub file: String,
    /// The parameter's name.
    pub name: String,
    /// The value the proofs were made for (`null` when it has none).
    pub value: Option<String>,
    /// Where the value comes from.
    pub source: ParamSourceReport,
}

/// Where a parameter's value comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ParamSourceReport {
    /// `--param NAME=VALUE`.
    Given,
    /// The declaration's default.
    Default,
    /// The editor's placeholder (no value, no default).
    Placeholder,
    /// No value (an error when the parameter is used).
    Missing,
}

impl From<kapl_check::ValueSource> for ParamSourceReport {
    fn from(s: kapl_check::ValueSource) -> Self {
        match s {
            kapl_check::ValueSource::Given => ParamSourceReport::Given,
            kapl_check::ValueSource::Default => ParamSourceReport::Default,
            kapl_check::ValueSource::Placeholder => ParamSourceReport::Placeholder,
            kapl_check::ValueSource::Missing => ParamSourceReport::Missing,
        }
    }
}

/// One finding.
#[derive(Debug, Serialize, JsonSchema)]
pub struct DiagnosticReport<'a> {
    /// How bad it is.
    pub severity: SeverityReport,
    /// The stable code, `KAPL` and four digits (listed in the book).
    #[schemars(pattern(r"^KAPL[0-9]{4}$"))]
    pub code: &'a str,
    /// The title: short, lowercase, user text in backticks.
    pub message: &'a str,
    /// The file of the primary span, as named on the command line or by
    /// `use`; standard-library modules show as `<stdlib/NAME.kapl>`.
    pub file: String,
    /// First line of the primary span (1-based).
    #[schemars(range(min = 1))]
    pub line: u32,
    /// First column of the primary span (1-based, in characters).
    #[schemars(range(min = 1))]
    pub column: u32,
    /// Line of the primary span's end (1-based).
    #[schemars(range(min = 1))]
    pub end_line: u32,
    /// Column of the primary span's end (1-based, exclusive).
    #[schemars(range(min = 1))]
    pub end_column: u32,
    /// Every label, the primary one first.
    pub labels: Vec<LabelReport>,
    /// How to fix it, or null.
    pub help: Option<&'a str>,
    /// For proof findings, a concrete request that shows the problem;
    /// otherwise null.
    pub witness: Option<WitnessReport>,
}

/// A labelled span.
#[derive(Debug, Serialize, JsonSchema)]
pub struct LabelReport {
    /// The file the label points into.
    pub file: String,
    /// First line (1-based).
    #[schemars(range(min = 1))]
    pub line: u32,
    /// First column (1-based, in characters).
    #[schemars(range(min = 1))]
    pub column: u32,
    /// Line of the end (1-based).
    #[schemars(range(min = 1))]
    pub end_line: u32,
    /// Column of the end (1-based, exclusive).
    #[schemars(range(min = 1))]
    pub end_column: u32,
    /// What this place has to do with the finding (may be empty).
    pub message: String,
}

/// How bad a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SeverityReport {
    /// The policy is rejected.
    Error,
    /// Accepted, but a reviewer should look.
    Warning,
    /// Extra information.
    Note,
}

impl From<kapl_syntax::Severity> for SeverityReport {
    fn from(s: kapl_syntax::Severity) -> Self {
        match s {
            kapl_syntax::Severity::Error => SeverityReport::Error,
            kapl_syntax::Severity::Warning => SeverityReport::Warning,
            kapl_syntax::Severity::Note => SeverityReport::Note,
        }
    }
}

/// A concrete request: what a proof finding or a diff change is about.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum WitnessReport {
    /// A file-system request.
    Fs {
        /// `read`, `write`, `create` or `delete`.
        right: String,
        /// The path (not valid UTF-8: shown with replacement characters).
        path: String,
    },
    /// A program execution.
    Exec {
        /// The executed file's path.
        path: String,
    },
    /// A network request.
    Net {
        /// `connect` or `bind`.
        op: String,
        /// The address: dotted IPv4 (also for an IPv4-mapped address) or
        /// IPv6 text.
        addr: String,
        /// The port.
        port: u16,
    },
    /// A connect to a host name (to a public address it resolved to).
    Name {
        /// The host name.
        name: String,
        /// The port.
        port: u16,
    },
}

impl From<&kapl_syntax::Witness> for WitnessReport {
    fn from(w: &kapl_syntax::Witness) -> Self {
        match w {
            kapl_syntax::Witness::Fs { right, path } => WitnessReport::Fs {
                right: right.clone(),
                path: path.clone(),
            },
            kapl_syntax::Witness::Exec { path } => WitnessReport::Exec { path: path.clone() },
            kapl_syntax::Witness::Net { op, addr, port } => WitnessReport::Net {
                op: op.clone(),
                addr: addr.clone(),
                port: *port,
            },
            kapl_syntax::Witness::Name { name, port } => WitnessReport::Name {
                name: name.clone(),
                port: *port,
            },
        }
    }
}

// ------------------------------------------------------------------- diff

/// The JSON document of `kaplc diff --format json`: the authority NEW adds
/// and takes away at every level, as sets.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(title = "kaplc diff --format json")]
pub struct DiffReport {
    /// The version of this document's shape (see `schemas/README.md`).
    pub schema_version: Version<2>,
    /// Every change as a set: widenings first, then narrowings.
    pub changes: Vec<ChangeReport>,
    /// Changes that neither widen nor narrow (a plan or intent moved under
    /// another parent).
    pub notes: Vec<String>,
    /// The parameters of OLD and NEW and the values they were compared for.
    pub params: Vec<ParamReport>,
    /// Examples that did not replay through the reference semantics (then
    /// `widens` is true: fail closed).
    pub unknown: Vec<String>,
    /// True when NEW allows more than OLD at some level (or `unknown` is not
    /// empty); kaplc exits 1 then.
    pub widens: bool,
}

/// One change: a set of authority of one kind that one list of rules of
/// one level gained or lost.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ChangeReport {
    /// The set that changed.
    pub authority: AuthorityReport,
    /// `widening`: NEW allows more (a bound or grants that cover more, a
    /// `never` that forbids less); `narrowing`: less.
    pub effect: EffectKind,
    /// The kind of level.
    pub level: LevelKind,
    /// The level's name.
    pub name: String,
    /// Which list of rules: `bound` or `never` (objectives, intents),
    /// `grants` (a plan's plan-wide grants, a step's own).
    pub part: PartKind,
    /// For a step, its plan; null otherwise.
    pub plan: Option<String>,
    /// `both`, or the one side that has the level (`new`: it appears,
    /// `old`: it disappears).
    pub presence: SideKind,
    /// The policy whose rules hold the set: `new` for what a bound or grant
    /// adds and what a `never` newly forbids, `old` otherwise.
    pub side: SideKind,
    /// The rules in `side` that hold part of the set (the `use` site for a
    /// rule brought in by `use`).
    pub sites: Vec<PositionReport>,
}

/// The direction of a change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum EffectKind {
    /// NEW allows more.
    Widening,
    /// NEW allows less.
    Narrowing,
}

/// A kind of level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LevelKind {
    /// An objective.
    Objective,
    /// An intent.
    Intent,
    /// A plan (its plan-wide grants).
    Plan,
    /// A step (its own grants).
    Step,
}

/// A list of rules of a level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PartKind {
    /// A bound.
    Bound,
    /// `never` rules.
    Never,
    /// Grants.
    Grants,
}

/// One side, or both.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SideKind {
    /// OLD and NEW.
    Both,
    /// OLD.
    Old,
    /// NEW.
    New,
}

/// A set of authority of one kind.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum AuthorityReport {
    /// Paths, for one right.
    Fs {
        /// The paths.
        paths: PathSetReport,
        /// `read`, `write`, `create` or `delete`.
        right: String,
    },
    /// Programs.
    Exec {
        /// The programs' paths.
        programs: PathSetReport,
    },
    /// Network access for one operation.
    Net {
        /// `connect` or `bind`.
        op: String,
        /// Disjoint address range × port range boxes.
        ranges: Vec<NetRangeReport>,
    },
    /// Connects by host name.
    Names {
        /// Each pattern that changed, with its ports and an example name.
        names: Vec<NameChangeReport>,
    },
}

/// A host-name pattern's changed authority.
#[derive(Debug, Serialize, JsonSchema)]
pub struct NameChangeReport {
    /// The pattern (lower case, no trailing dot).
    pub pattern: String,
    /// Low port.
    pub port_lo: u16,
    /// High port.
    pub port_hi: u16,
    /// A name the pattern reaches on that side only.
    pub example: String,
}

/// A set of paths.
#[derive(Debug, Serialize, JsonSchema)]
pub struct PathSetReport {
    /// Whether `globs` describe the set exactly; when false, each glob is
    /// one the set lies partly inside, and `examples` are members.
    pub exact: bool,
    /// Up to three shortest members.
    pub examples: Vec<String>,
    /// Globs (each with the globs carved out of it, or only its paths
    /// matching others) whose union is the set when `exact`.
    pub globs: Vec<GlobReport>,
    /// Whether `globs` are the set's members, every one listed (a set of at
    /// most eight paths).
    pub listed: bool,
}

/// A glob and what selects and carves: the paths that match `glob`, one
/// of `matching` (when not empty) and none of `except`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct GlobReport {
    /// Globs carved out.
    pub except: Vec<String>,
    /// The glob (or a literal path).
    pub glob: String,
    /// When not empty: only the glob's paths that match one of these (what
    /// an `except` kept out and no longer does, or now does).
    pub matching: Vec<String>,
}

/// An address range × port range box (TCP and UDP alike).
#[derive(Debug, Serialize, JsonSchema)]
pub struct NetRangeReport {
    /// The address range as the fewest CIDR blocks.
    pub cidrs: Vec<String>,
    /// First address of the range.
    pub first: String,
    /// Last address of the range.
    pub last: String,
    /// High port (inclusive).
    pub port_hi: u16,
    /// Low port (inclusive).
    pub port_lo: u16,
    /// The protocols: `net` rules cover `tcp` and `udp` alike.
    pub protocols: Vec<String>,
}

/// Where a grant starts.
#[derive(Debug, Serialize, JsonSchema)]
pub struct PositionReport {
    /// Column (1-based, in characters).
    #[schemars(range(min = 1))]
    pub column: u32,
    /// The file, as named on the command line or by `use`.
    pub file: String,
    /// Line (1-based).
    #[schemars(range(min = 1))]
    pub line: u32,
}

// ---------------------------------------------------------------- inspect

/// The JSON document of `kaplc inspect --format json`: an image's plans,
/// steps, grants, Landlock plans and table sizes.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(title = "kaplc inspect --format json")]
pub struct InspectReport {
    /// The version of this document's shape (see `schemas/README.md`).
    pub schema_version: Version<1>,
    /// For a plan image built with `--against`: the objective image.
    pub against: Option<AgainstReport>,
    /// The compiler that wrote the image, e.g. `kaplc 0.1.0`.
    pub compiler: String,
    /// The image format version.
    pub format: u16,
    /// Every grant, indexed by `id`.
    pub grants: Vec<GrantReport>,
    /// For an objective image: the objective's identity (SHA-256, hex).
    pub identity: Option<String>,
    /// The intents.
    pub intents: Vec<IntentReport>,
    /// The objectives.
    pub objectives: Vec<ObjectiveReport>,
    /// The plans.
    pub plans: Vec<PlanReport>,
    /// The parameters' values the image was proved and built for.
    pub params: Vec<ImageParamReport>,
    /// The policy's name (the policy file's stem).
    pub policy: String,
    /// The image's size in bytes.
    pub size: usize,
    /// The source files grants point into.
    pub sources: Vec<String>,
}

/// A parameter's value recorded in an image.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ImageParamReport {
    /// The parameter's name.
    pub name: String,
    /// Its value.
    pub value: String,
}

/// The objective image a plan image was built against.
#[derive(Debug, Serialize, JsonSchema)]
pub struct AgainstReport {
    /// Its file name, as given to `--against`.
    pub file: String,
    /// Its objective identity (SHA-256, hex).
    pub identity: String,
}

/// One grant and where it was written.
#[derive(Debug, Serialize, JsonSchema)]
pub struct GrantReport {
    /// Column of the grant (1-based).
    pub column: u32,
    /// The file of the grant (null if the image names no such file).
    pub file: Option<String>,
    /// The grant's number, used by steps, walks and net rules.
    pub id: u32,
    /// What it grants: `fs RIGHTS`, `exec` or `net OP`.
    pub kind: String,
    /// Line of the grant (1-based).
    pub line: u32,
    /// The plan it belongs to.
    pub plan: Option<String>,
    /// The step it belongs to; null for a plan-wide grant.
    pub step: Option<String>,
    /// The grant as written.
    pub text: String,
}

/// An intent.
#[derive(Debug, Serialize, JsonSchema)]
pub struct IntentReport {
    /// Its `about` text.
    pub about: Option<String>,
    /// Its name.
    pub name: String,
    /// The objective it is under.
    pub objective: Option<String>,
}

/// An objective.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ObjectiveReport {
    /// Its `about` text.
    pub about: Option<String>,
    /// Its name.
    pub name: String,
}

/// A plan.
#[derive(Debug, Serialize, JsonSchema)]
pub struct PlanReport {
    /// Its `about` text.
    pub about: Option<String>,
    /// Plan-wide grants (hold in every step), by id.
    pub grants: Vec<u32>,
    /// The intent it is under, if any.
    pub intent: Option<String>,
    /// Its name.
    pub name: String,
    /// The objective it is under.
    pub objective: Option<String>,
    /// Its steps.
    pub steps: Vec<StepReport>,
    /// The sizes of its decision tables.
    pub tables: TablesReport,
}

/// A step.
#[derive(Debug, Serialize, JsonSchema)]
pub struct StepReport {
    /// Its `about` text.
    pub about: Option<String>,
    /// The steps it may follow, by name.
    pub after: Vec<String>,
    /// Its own grants, by id.
    pub grants: Vec<u32>,
    /// Its Landlock ruleset.
    pub landlock: LandlockReport,
    /// Its name.
    pub name: String,
    /// Its network rules, as text (`OP PROTO ADDR/PREFIX port PORTS`).
    pub net: Vec<String>,
    /// True when it may start the plan (it follows no step).
    pub start: bool,
}

/// A step's Landlock ruleset.
#[derive(Debug, Serialize, JsonSchema)]
pub struct LandlockReport {
    /// The Landlock ABI it needs.
    pub abi: u8,
    /// Handled file-system access rights (Landlock bits).
    pub handled_fs: u64,
    /// Handled network access rights (Landlock bits).
    pub handled_net: u64,
    /// Where Landlock is narrower than the grant, and why.
    pub precision: Vec<PrecisionReport>,
    /// TCP ports it may bind, e.g. `80,8000-8080`, or `none`.
    pub tcp_bind: String,
    /// TCP ports it may connect to, e.g. `443`, or `none`.
    pub tcp_connect: String,
    /// The path walks that make the ruleset's rules.
    pub walks: Vec<WalkReport>,
}

/// A note that Landlock enforces less than a grant says.
#[derive(Debug, Serialize, JsonSchema)]
pub struct PrecisionReport {
    /// The grant, by id.
    pub grant: u32,
    /// What differs.
    pub note: String,
}

/// One path walk of a Landlock ruleset.
#[derive(Debug, Serialize, JsonSchema)]
pub struct WalkReport {
    /// Landlock access rights, `|`-separated (e.g. `read_file|read_dir`).
    pub access: String,
    /// Which table the walk follows.
    pub dfa: DfaReport,
    /// The grant, by id.
    pub grant: u32,
    /// The literal path prefixes it starts from.
    pub prefixes: Vec<String>,
}

/// Which path table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DfaReport {
    /// The file-system table.
    Fs,
    /// The exec table.
    Exec,
}

/// A plan's decision table sizes.
#[derive(Debug, Serialize, JsonSchema)]
pub struct TablesReport {
    /// The exec path automaton.
    pub exec: DfaSizeReport,
    /// The file-system path automaton.
    pub fs: DfaSizeReport,
    /// Entries of the network LPM table.
    pub lpm_entries: usize,
}

/// The size of one path automaton.
#[derive(Debug, Serialize, JsonSchema)]
pub struct DfaSizeReport {
    /// Rows of grants accepted.
    pub accept_rows: usize,
    /// Byte classes.
    pub classes: u16,
    /// States.
    pub states: usize,
    /// Bytes of the transition table.
    pub transition_bytes: usize,
}

// ---------------------------------------------------------------- schemas

/// The documents that have a schema.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Document {
    /// `kaplc check --format json` (also `kaplc build --format json`).
    Check,
    /// `kaplc diff --format json`.
    Diff,
    /// `kaplc inspect --format json`.
    Inspect,
}

impl Document {
    /// Every document, in the order `--all` writes them.
    pub const ALL: [Document; 3] = [Document::Check, Document::Diff, Document::Inspect];

    /// The name, as on the command line and in `NAME.schema.json`.
    pub fn name(self) -> &'static str {
        match self {
            Document::Check => "check",
            Document::Diff => "diff",
            Document::Inspect => "inspect",
        }
    }

    /// The JSON Schema (draft 2020-12) of this document, as printed: keys
    /// sorted at every level (the same bytes whatever `serde_json` features
    /// the build unified), two-space indented, with a final newline.
    pub fn schema_text(self) -> String {
        let generator = schemars::generate::SchemaSettings::draft2020_12()
            .for_serialize()
            .into_generator();
        let schema = match self {
            Document::Check => generator.into_root_schema_for::<CheckReport<'static>>(),
            Document::Diff => generator.into_root_schema_for::<DiffReport>(),
            Document::Inspect => generator.into_root_schema_for::<InspectReport>(),
        };
        let value = sorted(schema.to_value());
        let mut text = serde_json::to_string_pretty(&value).unwrap_or_default();
        text.push('\n');
        text
    }
}

/// `v` with every object's keys re-inserted in sorted order.
fn sorted(v: Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut entries: Vec<(String, Value)> = m.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k, sorted(v)))
                    .collect::<Map<String, Value>>(),
            )
        }
        Value::Array(a) => Value::Array(a.into_iter().map(sorted).collect()),
        other => other,
    }
}

/// Pretty JSON of a document, with the fallback the subcommands print if
/// serialization ever failed (it cannot for these types: no maps with
/// non-string keys, no failing `Serialize` impls).
pub fn to_text<T: Serialize>(doc: &T) -> String {
    serde_json::to_string_pretty(doc).unwrap_or_else(|e| {
        format!(
            "{{\"schema_version\": 1, \"internal_error\": {:?}}}",
            e.to_string()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_serializes_as_its_number_and_admits_only_it() {
        assert_eq!(
            serde_json::to_string(&Version::<3>).unwrap_or_default(),
            "3"
        );
        let mut generator = SchemaGenerator::default();
        let s = Version::<3>::json_schema(&mut generator).to_value();
        assert_eq!(s["const"], 3);
    }

    #[test]
    fn every_schema_names_its_version_and_is_sorted() {
        for d in Document::ALL {
            let text = d.schema_text();
            let v: Value = serde_json::from_str(&text).unwrap_or_default();
            let version = if d == Document::Diff { 2 } else { 1 };
            assert_eq!(
                v["properties"]["schema_version"]["const"], version,
                "{text}"
            );
            assert_eq!(text, {
                let mut t = serde_json::to_string_pretty(&sorted(v)).unwrap_or_default();
                t.push('\n');
                t
            });
        }
    }
}
