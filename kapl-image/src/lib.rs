//! The KAPL image (`.kapi`): what `kaplc build` writes and `kapl-run` loads.
//!
//! ```text
//! ir::Policy ─► kapl-codegen ─► Image ─► write() ─► bytes (.kapi)
//!                                              read() ─► Image ─► kapl-run / kaplc inspect / Evaluator
//! ```
//!
//! Pure: no I/O, no syscalls. Kept apart from `kapl-codegen` so the runtime
//! links neither the compiler nor Z3. [`read`] verifies everything (header,
//! checksum, every section, every index) before it returns an [`Image`], and
//! never panics on bad bytes; errors are [`ImageError`]s with stable codes
//! `KAPL07xx`.
//!
//! # Data model
//!
//! An [`Image`] holds one policy: its objectives and intents (names,
//! `about`, and their bound and `never` rules as written), its plans, and the provenance table ([`Grant`], indexed by grant
//! id: plan, step, kind, source file/line/column, source text). Each
//! [`Plan`] holds:
//!
//! - the step graph: [`Step`]s by index with `after` edges
//!   ([`Plan::start_steps`] are those without), each step's own grant ids,
//!   and the plan-wide grant ids ([`Plan::grants`]);
//! - the path DFA [`Plan::fs`] and the exec DFA [`Plan::exec`] ([`Dfa`]):
//!   a byte → class table, a `states × classes` transition table over whole
//!   absolute paths (from the first `/`), and per state an accept row: for
//!   each step and right (read, write, create, delete; or exec) a [`Cell`]
//!   with the lowest-id grant of that step (plan-wide grants included) that
//!   allows the path, or [`NO_GRANT`], and *beneath* flags:
//!   [`BENEATH_SELF`] (the path itself is granted), [`BENEATH_ALL`] (every
//!   path strictly beneath it is granted), [`BENEATH_SOME`] (some path
//!   strictly beneath it is granted). The DFA has no accepting dead ends:
//!   a state whose flags are all zero for every column can be pruned;
//! - the network rules [`Plan::net`]: [`NetEntry`]s (step, op, protocol,
//!   family, network address, prefix, port ranges each with its grant),
//!   sorted; the ports of less specific entries are already folded into
//!   more specific ones so one longest-prefix lookup decides. IPv4-mapped
//!   IPv6 is stored and looked up as IPv4. Grants cover TCP and UDP alike;
//!   both protocols get entries;
//! - per step, the [`Landlock`] plan (see below).
//!
//! # Landlock plans
//!
//! Each step's [`Landlock`] lists the access bits the ruleset handles
//! (every ABI 7 filesystem right; TCP bind/connect unless the port set is
//! too large for rules, in which case the BPF programs alone enforce it),
//! one [`Walk`] per fs or exec grant (its rights, the Landlock access bits
//! they map to via [`access::of_right`], and the literal prefixes where a
//! walk starts), the TCP ports for the network wall, and the precision
//! report. The runtime builds rules like this, per walk and prefix `P`:
//!
//! 1. `q = dfa.walk(P)` (the walk's DFA: fs or exec).
//! 2. For each right `r` of the walk (exec: column 0), with
//!    `c = dfa.cell(q, step, r)`:
//!    - read, write, exec: if `c.beneath` has `SELF | ALL`, add one
//!      path-beneath rule on `P` with `access::of_right(r)` (exec:
//!      `EXECUTE`) and stop descending for `r`. Else if `SELF` and `P` is
//!      not a directory, add a rule on the file `P` with
//!      `access::file_only(r)` (exec: `EXECUTE`).
//!    - create, delete: if `P` is a directory and `c.beneath` has `ALL`,
//!      add a rule on `P` with `access::of_right(r)` and stop descending for
//!      `r` (Landlock checks these rights on the parent directory, so only a
//!      wholly granted directory is exact).
//!    - if `SOME` is set and `P` is a directory (never following symlinks),
//!      for each entry `n`: `q' = dfa.walk_from(q, b"/" + n)`, and visit
//!      `P/n` if `dfa.cell(q', ...)` has `SELF` or `SOME`.
//!
//! The root is special: for `P = "/"` use `q = dfa.start` (its beneath
//! flags describe every path below the root, and children are
//! `dfa.walk_from(dfa.start, b"/" + n)`), while whether `/` itself is
//! granted is `dfa.cell(dfa.walk(b"/"), ...)`.
//!
//! Every rule so made is inside the grant. What it cannot express (listing
//! a partly granted directory, creating or deleting in a partly granted
//! directory, files created later in a partly granted directory) is listed
//! per grant in [`Landlock::precision`].
//!
//! # Objective images
//!
//! `kaplc build` of a file that holds objectives (with their intents and the
//! authorities and stdlib modules they use) and no plans writes an *objective
//! image*: the `chain` as usual, no plans and no grants, and
//! [`Image::objective`] ([`ObjectiveTables`]):
//!
//! - one [`LevelTables`] per objective, then per intent, in `chain` order.
//!   Each is laid out exactly like a plan with two steps: step column
//!   [`BOUND`] (0) holds the level's bound, [`NEVER`] (1) the union of its
//!   `never` rules, in an fs DFA (4 columns per step column), an exec DFA
//!   and network entries of the same kind as a plan's. The code generator
//!   builds them with the plan machinery (each level becomes a two-step
//!   plan whose grants are its rules), and translation validation checks
//!   them the same way;
//! - the rules ([`BoundRule`]: level, bound or `never`, kind, source location,
//!   text), indexed by the ids the tables credit, so a finding names the
//!   rule it breaks;
//! - the embedded sources: the objective's file and every module it uses
//!   (stdlib included) with their text, so a plan can later be proved against
//!   the objective as it was, whatever the compiler's own stdlib;
//! - the identity: SHA-256 of the encoded `chain` section followed by the
//!   encoded tables (sources, rules, levels). The reader recomputes it, so
//!   an image whose tables were edited and resealed is refused.
//!
//! A plan image built with `kaplc build PLAN.kapl --against OBJ.kapi`
//! records [`Image::against`] ([`Against`]: the objective image's file name and
//! identity). The runtime's containment checker
//! (`kapl_runtime::containment`) decides, from these tables alone, whether
//! every step of a plan image lies inside an objective image's bounds and
//! outside its `never` rules; see the book's runtime chapter.
//!
//! # Binary format, version 3
//!
//! The byte layout, the record sizes and the order of the reader's checks
//! are documented beside the code that writes and reads them, in
//! [`format`](mod@format).
//!
//! BPF map layouts for the runtime are in [`bpf`].

pub mod bpf;
mod error;
pub mod eval;
pub mod format;
mod model;
mod objective;
mod validate;

pub use error::ImageError;
pub use eval::{Decision, Evaluator, Request, path_grant};
pub use format::{FORMAT_VERSION, HEADER_LEN, MAGIC, SECTION_ENTRY_LEN, SectionKind, read, write};
pub use model::*;
pub use objective::*;
pub use validate::limits;

/// Host names and patterns (the `kapl-names` crate): the one definition
/// the compiler, the image and the resolver share.
pub use kapl_names as names;

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]
mod tests;
