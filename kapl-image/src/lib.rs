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
//! An [`Image`] holds one policy: its objectives and intents (names and
//! `about`), its plans, and the provenance table ([`Grant`], indexed by grant
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
//! # Binary format, version 1
//!
//! Little-endian throughout. A file is a 64-byte header, a section table,
//! then the sections, each starting at an 8-byte aligned offset (zero
//! padding between).
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic `KAPLIMG\0` |
//! | 8 | 2 | format version (`1`) |
//! | 10 | 2 | header length (`64`) |
//! | 12 | 4 | section count (`7`) |
//! | 16 | 8 | total file length |
//! | 24 | 32 | SHA-256 of the whole file with these 32 bytes zeroed |
//! | 56 | 8 | reserved, zero |
//! | 64 | 24 × n | section table: `u32 kind, u32 reserved, u64 offset, u64 length` |
//!
//! The layout is canonical: every section starts at the first 8-byte
//! boundary after the previous one (the first after the table), padding
//! is zero, and the file ends at the boundary after the last section, so
//! an image has exactly one encoding. Sections appear once each, in this
//! order:
//! 1 `meta`, 2 `chain`, 3 `grants`, 4 `plans`, 5 `dfas`, 6 `net`,
//! 7 `landlock`. Encodings: `str` = `u32 len` + UTF-8 bytes; `bytes` =
//! `u32 len` + bytes; `opt str` = `u8 0` or `u8 1` + `str`; `opt u32` =
//! `u32` with `0xffffffff` for none; `list<T>` = `u32 count` + items;
//! `loc` = 5 × `u32` (file index, line, column, end line, end column);
//! `ports` = `list<u16 lo, u16 hi, u32 grant>`.
//!
//! - `meta`: `str policy`, `str compiler`, `list<str> sources`.
//! - `chain`: `list<str name, opt str about>` objectives;
//!   `list<str name, opt str about, u32 objective>` intents.
//! - `grants`: `list<u32 id, u32 plan, opt u32 step, u8 kind (0 fs, 1 exec,
//!   2 net), u8 arg (fs: rights bits read=1 write=2 create=4 delete=8; net:
//!   0 connect, 1 bind), loc source, loc site, str text>`.
//! - `plans`: `list<str name, opt str about, u32 objective, opt u32 intent,
//!   list<u32> plan-wide grants, list<str name, opt str about, list<u32>
//!   after, list<u32> grants> steps>`.
//! - `dfas`: `u32 plan count`, then per plan the fs DFA then the exec DFA,
//!   each: `u8 kind (0 fs, 1 exec), u8 0, u16 class_count, u32 steps, u32
//!   start, u8 classes[256], u32 states, u32 transitions[states ×
//!   class_count], u32 state_row[states], u32 rows, u32 grant[rows × steps ×
//!   R], u8 beneath[rows × steps × R]` (R = 4 for fs, 1 for exec).
//! - `net`: `u32 plan count`, per plan `list<u32 step, u8 op, u8 proto (6
//!   tcp, 17 udp), u8 family (4, 6), u8 prefix, u8 addr[16] (IPv4 in the
//!   first 4, rest zero), ports>`.
//! - `landlock`: `u32 plan count`, per plan `u32 step count`, per step:
//!   `u8 abi, u64 handled_fs, u64 handled_net, list<u32 grant, u8 dfa, u8
//!   rights, u64 access, list<bytes> prefixes> walks, ports tcp_bind, ports
//!   tcp_connect, list<u32 grant, str note> precision`.
//!
//! The reader checks, in order: length ≥ 8 and magic (KAPL0702, or
//! KAPL0701 for a prefix of the magic), length ≥ 64 (KAPL0701), version
//! (KAPL0703), header length (KAPL0706), declared length vs actual
//! (KAPL0701 truncated, KAPL0705 trailing bytes), checksum (KAPL0704),
//! section table (KAPL0707), each section's encoding and exact length
//! (KAPL0708), then [`Image::validate`]: indices, DFA totality, grant
//! ownership, acyclic `after`, sorted ports and entries (KAPL0709), and
//! the [`limits`] (KAPL0710).
//!
//! BPF map layouts for the runtime are in [`bpf`].

pub mod bpf;
mod error;
pub mod eval;
mod format;
mod model;
mod validate;

pub use error::ImageError;
pub use eval::{Decision, Evaluator, Request, path_grant};
pub use format::{FORMAT_VERSION, HEADER_LEN, MAGIC, SECTION_ENTRY_LEN, SectionKind, read, write};
pub use model::*;
pub use validate::limits;

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]
mod tests;
