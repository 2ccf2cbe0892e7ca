//! The `.kapi` byte format: encoding an [`Image`] and the verifying decoder.
//!
//! Input: an [`Image`] (write) or untrusted bytes (read).
//! Output: bytes, or a validated [`Image`] / an [`ImageError`]. The decoder
//! never panics and never allocates more than the input can justify: every
//! count is checked against the bytes left before anything is reserved,
//! with the record sizes named below the layout. There is one writer and
//! one reader function per section, in file order.
//!
//! # Binary format, version 4
//!
//! Little-endian throughout. A file is a 64-byte header, a section table,
//! then the sections, each starting at an 8-byte aligned offset (zero
//! padding between).
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic `KAPLIMG\0` |
//! | 8 | 2 | format version (`4`) |
//! | 10 | 2 | header length (`64`) |
//! | 12 | 4 | section count (`9`) |
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
//! 7 `landlock`, 8 `objective`, 9 `names`. Encodings: `str` = `u32 len` + UTF-8 bytes; `bytes` =
//! `u32 len` + bytes; `opt str` = `u8 0` or `u8 1` + `str`; `opt u32` =
//! `u32` with `0xffffffff` for none; `list<T>` = `u32 count` + items;
//! `loc` = 5 × `u32` (file index, line, column, end line, end column);
//! `ports` = `list<u16 lo, u16 hi, u32 grant>`.
//!
//! - `meta`: `str policy`, `str compiler`, `list<str> sources`, then,
//!   only when the policy has parameters, `list<str name, str value>
//!   params` (sorted by name, at least one: an image without parameters
//!   ends `meta` after the sources, so it is byte for byte what it was
//!   before parameters existed; a present but empty list is refused).
//! - `chain`: `list<str name, opt str about, rules>` objectives;
//!   `list<str name, opt str about, u32 objective, rules>` intents, where
//!   `rules` (version 4) = `list<u8 never (0 bound, 1 never), loc source,
//!   str text>`: the bound and `never` rules as written, in source order
//!   (`loc` indexes `meta`'s sources), in every image, so that a plan
//!   image can show its objective as written.
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
//! - `objective`: `u8 0` (no objective tables), or `u8 1`, `u8
//!   identity[32]`, `list<str name, str text>` embedded sources,
//!   `list<u32 level, u8 never (0 bound, 1 never), u8 kind, u8 arg, loc
//!   source, str text>` rules (kind and arg as in `grants`; `loc` indexes the
//!   embedded sources), `list<u8 level kind (0 objective, 1 intent), u32
//!   index, DFA fs, DFA exec, list<net entry> net>` levels (DFAs and net
//!   entries encoded as in `dfas` and `net`, with 2 step columns: 0 the
//!   bound, 1 the `never` rules; a cell's or port range's grant id is a rule
//!   id); then `u8 0`, or `u8 1`, `str file`, `u8 identity[32]`: the
//!   objective image a plan image was built against.
//! - `names` (version 3): `u32 plan count`, per plan `list<u32 step, u8
//!   proto, str pattern, ports>` name entries, `list<u8 proto, u8 family,
//!   u8 prefix, u8 addr[16], list<u16 lo, u16 hi>>` name exclusions,
//!   `list<u8 proto, str pattern, list<u16 lo, u16 hi>>` never names; then
//!   `u32 level count` (0 without objective tables, else one per level, in
//!   level order), per level `list<name entry>` with 2 step columns as in
//!   `objective` (a port range's grant id is a rule id). Patterns are in
//!   normal form (`names::pattern`).
//!
//! The reader checks, in order: length ≥ 8 and magic (KAPL0702, or
//! KAPL0701 for a prefix of the magic), length ≥ 64 (KAPL0701), version
//! (KAPL0703), header length (KAPL0706), declared length vs actual
//! (KAPL0701 truncated, KAPL0705 trailing bytes), checksum (KAPL0704),
//! section table (KAPL0707), each section's encoding and exact length
//! (KAPL0708), then [`Image::validate`]: indices, DFA totality, grant
//! ownership, acyclic `after`, sorted ports and entries (KAPL0709), and
//! the [`limits`](crate::limits) (KAPL0710); name patterns not in normal
//! form and unsorted name tables are KAPL0709 too.
//! For an objective image, the identity is then recomputed: SHA-256 of
//! the encoded `chain` section followed by the `objective` section's tables
//! without the identity (sources, rules, levels), the parameters, and the
//! levels' name rules when any level has one; a mismatch is KAPL0709.
//! A plan image's `against` record is not checked here: the runtime's
//! containment checker compares it with the objective image it is given.
//!
//! The reader bounds every count by the fewest bytes an item can take
//! (the record sizes below, a `str`, `bytes` or list counted as its `u32`
//! length), so a count the section cannot hold is refused before anything
//! is reserved.

use crate::error::ImageError;
use crate::model::*;
use crate::objective::*;
use sha2::{Digest, Sha256};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The first 8 bytes of every image.
pub const MAGIC: [u8; 8] = *b"KAPLIMG\0";
/// The format version this crate writes and reads.
pub const FORMAT_VERSION: u16 = 4;
/// Size of the fixed header.
pub const HEADER_LEN: usize = 64;
/// Size of one section-table entry.
pub const SECTION_ENTRY_LEN: usize = 24;

// Record sizes of the layout above: the fewest bytes each item of a list
// can take. Variable parts count at their least: a `str`, `bytes` or list
// as its `u32` length, an `opt str` as its tag.

/// A `u32` (one item of a `list<u32>`).
const U32_LEN: usize = 4;
/// A `u64`.
const U64_LEN: usize = 8;
/// A `u32` length: an empty `str`, `bytes` or list.
const LEN_LEN: usize = 4;
/// One item of `bytes`.
const BYTE_LEN: usize = 1;
/// An `opt str` that is none: its `u8` tag.
const OPT_STR_MIN: usize = 1;
/// An `opt u32`.
const OPT_U32_LEN: usize = 4;
/// A `loc`: 5 × `u32`.
const LOC_LEN: usize = 5 * U32_LEN;
/// One `ports` item: `u16 lo, u16 hi, u32 grant`.
const PORT_LEN: usize = 2 + 2 + U32_LEN;
/// `meta` source: `str`.
const SOURCE_MIN: usize = LEN_LEN;
/// `meta` param: `str name, str value`.
const PARAM_MIN: usize = 2 * LEN_LEN;
/// `chain` objective: `str name, opt str about, list rules`.
const OBJECTIVE_MIN: usize = LEN_LEN + OPT_STR_MIN + LEN_LEN;
/// `chain` intent: `str name, opt str about, u32 objective, list rules`.
const INTENT_MIN: usize = LEN_LEN + OPT_STR_MIN + U32_LEN + LEN_LEN;
/// A rule as written: `u8 never, loc source, str text`.
const RULE_TEXT_MIN: usize = 1 + LOC_LEN + LEN_LEN;
/// `grants` record: `u32 id, u32 plan, opt u32 step, u8 kind, u8 arg, loc
/// source, loc site, str text` (58).
const GRANT_MIN: usize = 2 * U32_LEN + OPT_U32_LEN + 1 + 1 + 2 * LOC_LEN + LEN_LEN;
/// `plans` record as the plan count is bounded: `str name, opt str about,
/// u32 objective, opt u32 intent, list<u32> grants` (17; the `steps` count
/// after them is bounded on its own).
const PLAN_MIN: usize = LEN_LEN + OPT_STR_MIN + U32_LEN + OPT_U32_LEN + LEN_LEN;
/// `plans` step: `str name, opt str about, list<u32> after, list<u32>
/// grants`.
const STEP_MIN: usize = LEN_LEN + OPT_STR_MIN + LEN_LEN + LEN_LEN;
/// `dfas` plan count: bounded by one byte per plan (it must equal the
/// plan count; each plan's two DFAs are bounded when they are read).
const DFA_PLAN_MIN: usize = 1;
/// A DFA's byte → class table.
const CLASS_MAP_LEN: usize = 256;
/// One accept-row cell: `u32 grant` + `u8 beneath`.
const CELL_LEN: usize = U32_LEN + 1;
/// `net` and `landlock` plan count: each plan's part starts with a `u32`
/// count.
const PLAN_TABLE_MIN: usize = LEN_LEN;
/// `net` entry: `u32 step, u8 op, u8 proto, u8 family, u8 prefix, u8
/// addr[16], ports`.
const NET_ENTRY_MIN: usize = U32_LEN + 4 + 16 + LEN_LEN;
/// `names` entry: `u32 step, u8 proto, str pattern, ports`.
const NAME_ENTRY_MIN: usize = U32_LEN + 1 + LEN_LEN + LEN_LEN;
/// `names` exclusion: `u8 proto, u8 family, u8 prefix, u8 addr[16],
/// list<u16 lo, u16 hi>`.
const NAME_EXCLUSION_MIN: usize = 3 + 16 + LEN_LEN;
/// `names` never name: `u8 proto, str pattern, list<u16 lo, u16 hi>`.
const NEVER_NAME_MIN: usize = 1 + LEN_LEN + LEN_LEN;
/// One bare port range: `u16 lo, u16 hi`.
const RANGE_LEN: usize = 4;
/// `landlock` step as the step count is bounded: `u8 abi, u64 handled_fs,
/// u64 handled_net` (17; the four lists after them are bounded on their
/// own).
const LANDLOCK_STEP_MIN: usize = 1 + U64_LEN + U64_LEN;
/// `landlock` walk: `u32 grant, u8 dfa, u8 rights, u64 access,
/// list<bytes> prefixes`.
const WALK_MIN: usize = U32_LEN + 1 + 1 + U64_LEN + LEN_LEN;
/// `landlock` walk prefix: `bytes`.
const PREFIX_MIN: usize = LEN_LEN;
/// `landlock` precision note: `u32 grant, str note`.
const PRECISION_MIN: usize = U32_LEN + LEN_LEN;

// The sums, spelled out: a change to the layout must show here.
const _: () = assert!(
    PORT_LEN == 8
        && OBJECTIVE_MIN == 9
        && INTENT_MIN == 13
        && RULE_TEXT_MIN == 25
        && GRANT_MIN == 58
        && PLAN_MIN == 17
        && STEP_MIN == 13
        && NET_ENTRY_MIN == 28
        && LANDLOCK_STEP_MIN == 17
        && WALK_MIN == 18
        && PRECISION_MIN == 8
        && NAME_ENTRY_MIN == 13
        && NAME_EXCLUSION_MIN == 23
        && NEVER_NAME_MIN == 9
);

/// One DFA state: its row of `class_count` transitions and its
/// `state_row` entry, each a `u32`.
fn dfa_state_len(class_count: u16) -> usize {
    U32_LEN * (usize::from(class_count) + 1)
}

/// Section kinds, in the order they are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum SectionKind {
    /// Policy name, compiler, source file names.
    Meta = 1,
    /// Objectives and intents (names, `about`).
    Chain = 2,
    /// The provenance table.
    Grants = 3,
    /// Plans and their step graphs.
    Plans = 4,
    /// Every plan's fs and exec DFA.
    Dfas = 5,
    /// Every plan's LPM entries.
    Net = 6,
    /// Every step's Landlock plan.
    Landlock = 7,
    /// Objective tables and what a plan image was built against.
    Objective = 8,
    /// Every plan's host-name rules, exclusions and `never` names, and the
    /// objective levels' name rules.
    Names = 9,
}

impl SectionKind {
    /// Every kind, in file order.
    pub const ALL: [SectionKind; 9] = [
        SectionKind::Meta,
        SectionKind::Chain,
        SectionKind::Grants,
        SectionKind::Plans,
        SectionKind::Dfas,
        SectionKind::Net,
        SectionKind::Landlock,
        SectionKind::Objective,
        SectionKind::Names,
    ];

    /// The name used in messages.
    pub fn name(self) -> &'static str {
        match self {
            SectionKind::Meta => "meta",
            SectionKind::Chain => "chain",
            SectionKind::Grants => "grants",
            SectionKind::Plans => "plans",
            SectionKind::Dfas => "dfas",
            SectionKind::Net => "net",
            SectionKind::Landlock => "landlock",
            SectionKind::Objective => "objective",
            SectionKind::Names => "names",
        }
    }
}

// ---------------------------------------------------------------- writing

struct Out(Vec<u8>);

impl Out {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn len(&mut self, n: usize) -> Result<(), ImageError> {
        let n = u32::try_from(n).map_err(|_| ImageError::TooLarge {
            what: "a table".into(),
            limit: u32::MAX as u64,
        })?;
        self.u32(n);
        Ok(())
    }
    fn bytes(&mut self, b: &[u8]) -> Result<(), ImageError> {
        self.len(b.len())?;
        self.0.extend_from_slice(b);
        Ok(())
    }
    fn str(&mut self, s: &str) -> Result<(), ImageError> {
        self.bytes(s.as_bytes())
    }
    fn opt_str(&mut self, s: &Option<String>) -> Result<(), ImageError> {
        match s {
            None => {
                self.u8(0);
                Ok(())
            }
            Some(s) => {
                self.u8(1);
                self.str(s)
            }
        }
    }
    fn opt_u32(&mut self, v: Option<u32>) {
        self.u32(v.unwrap_or(u32::MAX));
    }
    fn u32s(&mut self, v: &[u32]) -> Result<(), ImageError> {
        self.len(v.len())?;
        for &x in v {
            self.u32(x);
        }
        Ok(())
    }
    fn loc(&mut self, l: &SourceLoc) {
        self.u32(l.file);
        self.u32(l.line);
        self.u32(l.column);
        self.u32(l.end_line);
        self.u32(l.end_column);
    }
    fn ports(&mut self, p: &[PortGrant]) -> Result<(), ImageError> {
        self.len(p.len())?;
        for x in p {
            self.u16(x.lo);
            self.u16(x.hi);
            self.u32(x.grant);
        }
        Ok(())
    }
}

/// Encodes an image. The image is validated first: a writer never produces
/// bytes the reader would refuse.
pub fn write(image: &Image) -> Result<Vec<u8>, ImageError> {
    image.validate()?;
    if let Some(t) = &image.objective
        && objective_identity(image)? != t.identity
    {
        return Err(ImageError::Invalid(
            "the objective identity does not match the objective tables".into(),
        ));
    }
    let mut sections: Vec<(SectionKind, Vec<u8>)> = Vec::new();
    for kind in SectionKind::ALL {
        let mut o = Out(Vec::new());
        match kind {
            SectionKind::Meta => write_meta(&mut o, image)?,
            SectionKind::Chain => write_chain(&mut o, image)?,
            SectionKind::Grants => write_grants(&mut o, image)?,
            SectionKind::Plans => write_plans(&mut o, image)?,
            SectionKind::Dfas => write_dfas(&mut o, image)?,
            SectionKind::Net => write_net(&mut o, image)?,
            SectionKind::Landlock => write_landlock(&mut o, image)?,
            SectionKind::Objective => write_objective(&mut o, image)?,
            SectionKind::Names => write_names(&mut o, image)?,
        }
        sections.push((kind, o.0));
    }
    let table_end = HEADER_LEN + SECTION_ENTRY_LEN * sections.len();
    let mut offset = align8(table_end);
    let mut entries = Vec::new();
    for (kind, body) in &sections {
        entries.push((*kind, offset, body.len()));
        offset = align8(offset + body.len());
    }
    let total = offset;
    let mut o = Out(Vec::with_capacity(total));
    o.0.extend_from_slice(&MAGIC);
    o.u16(FORMAT_VERSION);
    o.u16(HEADER_LEN as u16);
    o.u32(sections.len() as u32);
    o.u64(total as u64);
    o.0.extend_from_slice(&[0u8; 32]);
    o.u64(0);
    for (kind, off, len) in &entries {
        o.u32(*kind as u32);
        o.u32(0);
        o.u64(*off as u64);
        o.u64(*len as u64);
    }
    for ((_, body), (_, off, _)) in sections.iter().zip(&entries) {
        o.0.resize(*off, 0);
        o.0.extend_from_slice(body);
    }
    o.0.resize(total, 0);
    let sum = Sha256::digest(&o.0);
    o.0[24..56].copy_from_slice(&sum);
    Ok(o.0)
}

fn align8(n: usize) -> usize {
    n.div_ceil(8) * 8
}

fn write_meta(o: &mut Out, im: &Image) -> Result<(), ImageError> {
    o.str(&im.meta.policy)?;
    o.str(&im.meta.compiler)?;
    o.len(im.meta.sources.len())?;
    for s in &im.meta.sources {
        o.str(s)?;
    }
    write_params(o, &im.meta.params)
}

/// The optional `params` list: nothing when there are none.
fn write_params(o: &mut Out, params: &[(String, String)]) -> Result<(), ImageError> {
    if params.is_empty() {
        return Ok(());
    }
    o.len(params.len())?;
    for (name, value) in params {
        o.str(name)?;
        o.str(value)?;
    }
    Ok(())
}

fn write_chain(o: &mut Out, im: &Image) -> Result<(), ImageError> {
    o.len(im.objectives.len())?;
    for x in &im.objectives {
        o.str(&x.name)?;
        o.opt_str(&x.about)?;
        write_rule_texts(o, &x.rules)?;
    }
    o.len(im.intents.len())?;
    for x in &im.intents {
        o.str(&x.name)?;
        o.opt_str(&x.about)?;
        o.u32(x.objective);
        write_rule_texts(o, &x.rules)?;
    }
    Ok(())
}

fn write_rule_texts(o: &mut Out, rules: &[RuleText]) -> Result<(), ImageError> {
    o.len(rules.len())?;
    for r in rules {
        o.u8(u8::from(r.never));
        o.loc(&r.source);
        o.str(&r.text)?;
    }
    Ok(())
}

fn write_grants(o: &mut Out, im: &Image) -> Result<(), ImageError> {
    o.len(im.grants.len())?;
    for g in &im.grants {
        o.u32(g.id);
        o.u32(g.plan);
        o.opt_u32(g.step);
        match g.kind {
            GrantKind::Fs(r) => {
                o.u8(0);
                o.u8(r.0);
            }
            GrantKind::Exec => {
                o.u8(1);
                o.u8(0);
            }
            GrantKind::Net(op) => {
                o.u8(2);
                o.u8(op as u8);
            }
        }
        o.loc(&g.source);
        o.loc(&g.site);
        o.str(&g.text)?;
    }
    Ok(())
}

fn write_plans(o: &mut Out, im: &Image) -> Result<(), ImageError> {
    o.len(im.plans.len())?;
    for p in &im.plans {
        o.str(&p.name)?;
        o.opt_str(&p.about)?;
        o.u32(p.objective);
        o.opt_u32(p.intent);
        o.u32s(&p.grants)?;
        o.len(p.steps.len())?;
        for s in &p.steps {
            o.str(&s.name)?;
            o.opt_str(&s.about)?;
            o.u32s(&s.after)?;
            o.u32s(&s.grants)?;
        }
    }
    Ok(())
}

fn write_dfa(o: &mut Out, d: &Dfa) -> Result<(), ImageError> {
    o.u8(d.kind as u8);
    o.u8(0);
    o.u16(d.class_count);
    o.u32(d.steps);
    o.u32(d.start);
    o.0.extend_from_slice(&d.classes);
    o.len(d.state_row.len())?;
    for &t in &d.transitions {
        o.u32(t);
    }
    for &r in &d.state_row {
        o.u32(r);
    }
    o.len(d.row_count())?;
    for c in &d.rows {
        o.u32(c.grant);
    }
    for c in &d.rows {
        o.u8(c.beneath);
    }
    Ok(())
}

fn write_dfas(o: &mut Out, im: &Image) -> Result<(), ImageError> {
    o.len(im.plans.len())?;
    for p in &im.plans {
        write_dfa(o, &p.fs)?;
        write_dfa(o, &p.exec)?;
    }
    Ok(())
}

fn write_net(o: &mut Out, im: &Image) -> Result<(), ImageError> {
    o.len(im.plans.len())?;
    for p in &im.plans {
        write_net_entries(o, &p.net)?;
    }
    Ok(())
}

fn write_landlock(o: &mut Out, im: &Image) -> Result<(), ImageError> {
    o.len(im.plans.len())?;
    for p in &im.plans {
        o.len(p.steps.len())?;
        for s in &p.steps {
            let l = &s.landlock;
            o.u8(l.abi);
            o.u64(l.handled_fs);
            o.u64(l.handled_net);
            o.len(l.walks.len())?;
            for w in &l.walks {
                o.u32(w.grant);
                o.u8(w.dfa as u8);
                o.u8(w.rights.0);
                o.u64(w.access);
                o.len(w.prefixes.len())?;
                for pre in &w.prefixes {
                    o.bytes(pre)?;
                }
            }
            o.ports(&l.tcp_bind)?;
            o.ports(&l.tcp_connect)?;
            o.len(l.precision.len())?;
            for x in &l.precision {
                o.u32(x.grant);
                o.str(&x.note)?;
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- reading

struct In<'a> {
    section: SectionKind,
    data: &'a [u8],
    pos: usize,
}

impl<'a> In<'a> {
    fn err(&self, reason: impl Into<String>) -> ImageError {
        ImageError::Malformed {
            section: self.section.name(),
            offset: self.pos,
            reason: reason.into(),
        }
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], ImageError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.data.len())
            .ok_or_else(|| self.err(format!("needs {n} more bytes, the section ends first")))?;
        let s = self
            .data
            .get(self.pos..end)
            .ok_or_else(|| self.err("out of bounds"))?;
        self.pos = end;
        Ok(s)
    }
    fn arr<const N: usize>(&mut self) -> Result<[u8; N], ImageError> {
        let s = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, ImageError> {
        Ok(self.arr::<1>()?[0])
    }
    fn u16(&mut self) -> Result<u16, ImageError> {
        Ok(u16::from_le_bytes(self.arr()?))
    }
    fn u32(&mut self) -> Result<u32, ImageError> {
        Ok(u32::from_le_bytes(self.arr()?))
    }
    fn u64(&mut self) -> Result<u64, ImageError> {
        Ok(u64::from_le_bytes(self.arr()?))
    }
    /// A count of items each at least `min` bytes long, checked against
    /// the bytes left so no huge allocation happens on bad input.
    fn count(&mut self, min: usize) -> Result<usize, ImageError> {
        let n = self.u32()? as usize;
        let left = self.data.len() - self.pos.min(self.data.len());
        if n.saturating_mul(min.max(1)) > left {
            return Err(self.err(format!(
                "a count of {n} items does not fit in the {left} bytes left"
            )));
        }
        Ok(n)
    }
    fn bytes(&mut self) -> Result<Vec<u8>, ImageError> {
        let n = self.count(BYTE_LEN)?;
        Ok(self.take(n)?.to_vec())
    }
    fn str(&mut self) -> Result<String, ImageError> {
        let b = self.bytes()?;
        String::from_utf8(b).map_err(|_| self.err("a string is not UTF-8"))
    }
    fn opt_str(&mut self) -> Result<Option<String>, ImageError> {
        match self.u8()? {
            0 => Ok(None),
            1 => Ok(Some(self.str()?)),
            t => Err(self.err(format!("bad option tag {t}"))),
        }
    }
    fn opt_u32(&mut self) -> Result<Option<u32>, ImageError> {
        let v = self.u32()?;
        Ok((v != u32::MAX).then_some(v))
    }
    fn u32s(&mut self) -> Result<Vec<u32>, ImageError> {
        let n = self.count(U32_LEN)?;
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push(self.u32()?);
        }
        Ok(v)
    }
    fn loc(&mut self) -> Result<SourceLoc, ImageError> {
        Ok(SourceLoc {
            file: self.u32()?,
            line: self.u32()?,
            column: self.u32()?,
            end_line: self.u32()?,
            end_column: self.u32()?,
        })
    }
    fn ports(&mut self) -> Result<Vec<PortGrant>, ImageError> {
        let n = self.count(PORT_LEN)?;
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push(PortGrant {
                lo: self.u16()?,
                hi: self.u16()?,
                grant: self.u32()?,
            });
        }
        Ok(v)
    }
    fn end(&self) -> Result<(), ImageError> {
        if self.pos != self.data.len() {
            return Err(self.err(format!(
                "{} unexpected bytes at the end of the section",
                self.data.len() - self.pos
            )));
        }
        Ok(())
    }
}

fn rd_u16(b: &[u8], at: usize) -> u16 {
    let mut a = [0u8; 2];
    if let Some(s) = b.get(at..at + 2) {
        a.copy_from_slice(s);
    }
    u16::from_le_bytes(a)
}
fn rd_u32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    if let Some(s) = b.get(at..at + 4) {
        a.copy_from_slice(s);
    }
    u32::from_le_bytes(a)
}
fn rd_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    if let Some(s) = b.get(at..at + 8) {
        a.copy_from_slice(s);
    }
    u64::from_le_bytes(a)
}

/// Checks the header (magic, version, length, checksum) without decoding
/// the sections; returns the section table as (kind, offset, length).
fn verify_header(bytes: &[u8]) -> Result<Vec<(u32, usize, usize)>, ImageError> {
    if bytes.len() < 8 || bytes.get(..8) != Some(&MAGIC[..]) {
        if bytes.len() < 8 && MAGIC.starts_with(bytes) {
            return Err(ImageError::Truncated {
                len: bytes.len(),
                expected: HEADER_LEN,
            });
        }
        return Err(ImageError::BadMagic);
    }
    if bytes.len() < HEADER_LEN {
        return Err(ImageError::Truncated {
            len: bytes.len(),
            expected: HEADER_LEN,
        });
    }
    let version = rd_u16(bytes, 8);
    if version != FORMAT_VERSION {
        return Err(ImageError::UnsupportedVersion {
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    let header_len = rd_u16(bytes, 10) as usize;
    if header_len != HEADER_LEN {
        return Err(ImageError::BadHeader(format!(
            "header length {header_len}, expected {HEADER_LEN}"
        )));
    }
    let total = rd_u64(bytes, 16);
    if total != bytes.len() as u64 {
        if total > bytes.len() as u64 {
            return Err(ImageError::Truncated {
                len: bytes.len(),
                expected: usize::try_from(total).unwrap_or(usize::MAX),
            });
        }
        return Err(ImageError::TrailingBytes {
            len: bytes.len(),
            expected: total as usize,
        });
    }
    let mut hasher = Sha256::new();
    hasher.update(&bytes[..24]);
    hasher.update([0u8; 32]);
    hasher.update(&bytes[56..]);
    if hasher.finalize().as_slice() != &bytes[24..56] {
        return Err(ImageError::ChecksumMismatch);
    }
    if rd_u64(bytes, 56) != 0 {
        return Err(ImageError::BadHeader(
            "reserved header bytes are not zero".into(),
        ));
    }
    section_table(bytes)
}

/// Reads the section table of an image whose header is verified, as (kind,
/// offset, length), and checks the canonical layout of the sections.
fn section_table(bytes: &[u8]) -> Result<Vec<(u32, usize, usize)>, ImageError> {
    let count = rd_u32(bytes, 12) as usize;
    let table_end = count
        .checked_mul(SECTION_ENTRY_LEN)
        .and_then(|n| n.checked_add(HEADER_LEN))
        .filter(|&e| e <= bytes.len())
        .ok_or_else(|| ImageError::BadSectionTable(format!("{count} sections do not fit")))?;
    let mut table = Vec::with_capacity(count);
    // INVARIANT (canonical layout): each section starts at the first 8-byte
    // boundary after the previous one, padding is zero, and the file ends
    // at the 8-byte boundary after the last section.
    let mut expect = align8(table_end);
    let mut prev_end = table_end;
    for i in 0..count {
        let at = HEADER_LEN + i * SECTION_ENTRY_LEN;
        let kind = rd_u32(bytes, at);
        let reserved = rd_u32(bytes, at + 4);
        let off = rd_u64(bytes, at + 8);
        let len = rd_u64(bytes, at + 16);
        let end = off.checked_add(len).filter(|&e| e <= bytes.len() as u64);
        let (Some(end), true, 0) = (end, off == expect as u64, reserved) else {
            return Err(ImageError::BadSectionTable(format!(
                "section {i} (kind {kind}) at {off}+{len} is out of bounds or not where the layout puts it"
            )));
        };
        if bytes
            .get(prev_end..off as usize)
            .is_none_or(|pad| pad.iter().any(|&b| b != 0))
        {
            return Err(ImageError::BadSectionTable(format!(
                "non-zero padding before section {i}"
            )));
        }
        prev_end = end as usize;
        expect = align8(prev_end);
        table.push((kind, off as usize, len as usize));
    }
    if expect != bytes.len()
        || bytes
            .get(prev_end..)
            .is_none_or(|pad| pad.iter().any(|&b| b != 0))
    {
        return Err(ImageError::BadSectionTable(
            "bytes after the last section".into(),
        ));
    }
    Ok(table)
}

/// Decodes and verifies an image: header, checksum, every section, then
/// [`Image::validate`]. Never panics.
pub fn read(bytes: &[u8]) -> Result<Image, ImageError> {
    let table = verify_header(bytes)?;
    let bodies = section_bodies(bytes, &table)?;
    let meta = decode(&bodies, SectionKind::Meta, read_meta)?;
    let (objectives, intents) = decode(&bodies, SectionKind::Chain, read_chain)?;
    let grants = decode(&bodies, SectionKind::Grants, read_grants)?;
    let mut plans = decode(&bodies, SectionKind::Plans, read_plans)?;
    decode(&bodies, SectionKind::Dfas, |s| read_dfas(s, &mut plans))?;
    decode(&bodies, SectionKind::Net, |s| read_net(s, &mut plans))?;
    decode(&bodies, SectionKind::Landlock, |s| {
        read_landlock(s, &mut plans)
    })?;
    let (mut objective, against) = decode(&bodies, SectionKind::Objective, read_objective)?;
    decode(&bodies, SectionKind::Names, |s| {
        read_names(s, &mut plans, objective.as_mut())
    })?;
    let image = Image {
        meta,
        objectives,
        intents,
        plans,
        grants,
        objective,
        against,
    };
    image.validate()?;
    if let Some(t) = &image.objective
        && objective_identity(&image)? != t.identity
    {
        return Err(ImageError::Invalid(
            "the objective identity does not match the objective tables".into(),
        ));
    }
    Ok(image)
}

/// The body of every section, in [`SectionKind::ALL`] order, once the table
/// is known to list each kind once, in order.
fn section_bodies<'a>(
    bytes: &'a [u8],
    table: &[(u32, usize, usize)],
) -> Result<Vec<&'a [u8]>, ImageError> {
    let mut bodies: Vec<&[u8]> = Vec::new();
    for (i, kind) in SectionKind::ALL.iter().enumerate() {
        let Some(&(k, off, len)) = table.get(i) else {
            return Err(ImageError::BadSectionTable(format!(
                "section `{}` is missing",
                kind.name()
            )));
        };
        if k != *kind as u32 {
            return Err(ImageError::BadSectionTable(format!(
                "section {i} has kind {k}, expected {} (`{}`)",
                *kind as u32,
                kind.name()
            )));
        }
        bodies.push(bytes.get(off..off + len).unwrap_or(&[]));
    }
    if table.len() != SectionKind::ALL.len() {
        return Err(ImageError::BadSectionTable(format!(
            "{} sections, expected {}",
            table.len(),
            SectionKind::ALL.len()
        )));
    }
    Ok(bodies)
}

/// Decodes the section `kind` with `f`, which must use up its body exactly.
fn decode<'a, T>(
    bodies: &[&'a [u8]],
    kind: SectionKind,
    f: impl FnOnce(&mut In<'a>) -> Result<T, ImageError>,
) -> Result<T, ImageError> {
    let at = SectionKind::ALL.iter().position(|k| *k == kind);
    let mut s = In {
        section: kind,
        data: at.and_then(|i| bodies.get(i)).copied().unwrap_or(&[]),
        pos: 0,
    };
    let v = f(&mut s)?;
    s.end()?;
    Ok(v)
}

fn read_meta(s: &mut In<'_>) -> Result<Meta, ImageError> {
    Ok(Meta {
        policy: s.str()?,
        compiler: s.str()?,
        sources: {
            let n = s.count(SOURCE_MIN)?;
            let mut v = Vec::with_capacity(n);
            for _ in 0..n {
                v.push(s.str()?);
            }
            v
        },
        params: {
            let mut v = Vec::new();
            if s.pos < s.data.len() {
                let n = s.count(PARAM_MIN)?;
                if n == 0 {
                    return Err(s.err("an empty params list is written as no list"));
                }
                v.reserve(n);
                for _ in 0..n {
                    v.push((s.str()?, s.str()?));
                }
            }
            v
        },
    })
}

fn read_chain(s: &mut In<'_>) -> Result<(Vec<Objective>, Vec<Intent>), ImageError> {
    let n = s.count(OBJECTIVE_MIN)?;
    let mut objectives = Vec::with_capacity(n);
    for _ in 0..n {
        objectives.push(Objective {
            name: s.str()?,
            about: s.opt_str()?,
            rules: read_rule_texts(s)?,
        });
    }
    let n = s.count(INTENT_MIN)?;
    let mut intents = Vec::with_capacity(n);
    for _ in 0..n {
        intents.push(Intent {
            name: s.str()?,
            about: s.opt_str()?,
            objective: s.u32()?,
            rules: read_rule_texts(s)?,
        });
    }
    Ok((objectives, intents))
}

fn read_rule_texts(s: &mut In<'_>) -> Result<Vec<RuleText>, ImageError> {
    let n = s.count(RULE_TEXT_MIN)?;
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        let never = match s.u8()? {
            0 => false,
            1 => true,
            b => return Err(s.err(format!("rule kind {b} is neither bound (0) nor never (1)"))),
        };
        v.push(RuleText {
            never,
            source: s.loc()?,
            text: s.str()?,
        });
    }
    Ok(v)
}

fn read_grants(s: &mut In<'_>) -> Result<Vec<Grant>, ImageError> {
    let n = s.count(GRANT_MIN)?;
    let mut grants = Vec::with_capacity(n);
    for _ in 0..n {
        let id = s.u32()?;
        let plan = s.u32()?;
        let step = s.opt_u32()?;
        let tag = s.u8()?;
        let arg = s.u8()?;
        let kind = match (tag, arg) {
            (0, r) if r != 0 && r < 16 => GrantKind::Fs(RightSet(r)),
            (1, 0) => GrantKind::Exec,
            (2, 0) => GrantKind::Net(NetOp::Connect),
            (2, 1) => GrantKind::Net(NetOp::Bind),
            _ => return Err(s.err(format!("bad grant kind {tag}/{arg}"))),
        };
        grants.push(Grant {
            id,
            plan,
            step,
            kind,
            source: s.loc()?,
            site: s.loc()?,
            text: s.str()?,
        });
    }
    Ok(grants)
}

/// The `plans` section: plans with their step graphs; their DFAs, network
/// entries and Landlock plans come from the later sections.
fn read_plans(s: &mut In<'_>) -> Result<Vec<Plan>, ImageError> {
    let n = s.count(PLAN_MIN)?;
    let mut plans = Vec::with_capacity(n);
    for _ in 0..n {
        let name = s.str()?;
        let about = s.opt_str()?;
        let objective = s.u32()?;
        let intent = s.opt_u32()?;
        let pgrants = s.u32s()?;
        let ns = s.count(STEP_MIN)?;
        let mut steps = Vec::with_capacity(ns);
        for _ in 0..ns {
            steps.push(Step {
                name: s.str()?,
                about: s.opt_str()?,
                after: s.u32s()?,
                grants: s.u32s()?,
                landlock: Landlock::default(),
            });
        }
        plans.push(Plan {
            name,
            about,
            objective,
            intent,
            grants: pgrants,
            steps,
            fs: Dfa::empty(DfaKind::Fs, 0),
            exec: Dfa::empty(DfaKind::Exec, 0),
            net: Vec::new(),
            names: Vec::new(),
            name_excluded: Vec::new(),
            never_names: Vec::new(),
        });
    }
    Ok(plans)
}

fn read_dfas(s: &mut In<'_>, plans: &mut [Plan]) -> Result<(), ImageError> {
    if s.count(DFA_PLAN_MIN)? != plans.len() {
        return Err(s.err("DFA count differs from the plan count"));
    }
    for p in plans {
        p.fs = read_dfa(s, DfaKind::Fs)?;
        p.exec = read_dfa(s, DfaKind::Exec)?;
    }
    Ok(())
}

fn read_dfa(s: &mut In<'_>, want: DfaKind) -> Result<Dfa, ImageError> {
    let kind = match s.u8()? {
        0 => DfaKind::Fs,
        1 => DfaKind::Exec,
        x => return Err(s.err(format!("bad DFA kind {x}"))),
    };
    if kind != want {
        return Err(s.err("DFAs out of order (fs then exec per plan)"));
    }
    if s.u8()? != 0 {
        return Err(s.err("reserved DFA byte is not zero"));
    }
    let class_count = s.u16()?;
    if class_count == 0 || class_count > 256 {
        return Err(s.err(format!("{class_count} byte classes (1..=256 allowed)")));
    }
    let steps = s.u32()?;
    let start = s.u32()?;
    let classes = s.take(CLASS_MAP_LEN)?.to_vec();
    let states = s.count(dfa_state_len(class_count))?;
    if states == 0 {
        return Err(s.err("a DFA with no states"));
    }
    let mut transitions = Vec::with_capacity(states * class_count as usize);
    for _ in 0..states * class_count as usize {
        transitions.push(s.u32()?);
    }
    let mut state_row = Vec::with_capacity(states);
    for _ in 0..states {
        state_row.push(s.u32()?);
    }
    let width = (steps as usize).saturating_mul(kind.rights());
    let nrows = s.count(width.saturating_mul(CELL_LEN))?;
    let cells = nrows.saturating_mul(width);
    let mut rows = Vec::with_capacity(cells);
    for _ in 0..cells {
        rows.push(Cell {
            grant: s.u32()?,
            beneath: 0,
        });
    }
    for c in rows.iter_mut() {
        c.beneath = s.u8()?;
    }
    Ok(Dfa {
        kind,
        steps,
        classes,
        class_count,
        start,
        transitions,
        state_row,
        rows,
    })
}

fn read_net(s: &mut In<'_>, plans: &mut [Plan]) -> Result<(), ImageError> {
    if s.count(PLAN_TABLE_MIN)? != plans.len() {
        return Err(s.err("net table count differs from the plan count"));
    }
    for p in plans {
        let n = s.count(NET_ENTRY_MIN)?;
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push(read_net_entry(s)?);
        }
        p.net = v;
    }
    Ok(())
}

fn read_net_entry(s: &mut In<'_>) -> Result<NetEntry, ImageError> {
    let step = s.u32()?;
    let op = match s.u8()? {
        0 => NetOp::Connect,
        1 => NetOp::Bind,
        x => return Err(s.err(format!("bad net op {x}"))),
    };
    let proto = match s.u8()? {
        6 => Proto::Tcp,
        17 => Proto::Udp,
        x => return Err(s.err(format!("bad protocol {x}"))),
    };
    let family = match s.u8()? {
        4 => Family::V4,
        6 => Family::V6,
        x => return Err(s.err(format!("bad address family {x}"))),
    };
    let prefix = s.u8()?;
    let a: [u8; 16] = s.arr()?;
    let addr = match family {
        Family::V4 => {
            if a[4..].iter().any(|&b| b != 0) {
                return Err(s.err("IPv4 entry with stray address bytes"));
            }
            IpAddr::V4(Ipv4Addr::new(a[0], a[1], a[2], a[3]))
        }
        Family::V6 => IpAddr::V6(Ipv6Addr::from(a)),
    };
    Ok(NetEntry {
        step,
        op,
        proto,
        family,
        addr,
        prefix,
        ports: s.ports()?,
    })
}

fn read_landlock(s: &mut In<'_>, plans: &mut [Plan]) -> Result<(), ImageError> {
    if s.count(PLAN_TABLE_MIN)? != plans.len() {
        return Err(s.err("Landlock table count differs from the plan count"));
    }
    for p in plans {
        if s.count(LANDLOCK_STEP_MIN)? != p.steps.len() {
            return Err(s.err("Landlock step count differs from the plan's steps"));
        }
        for st in &mut p.steps {
            st.landlock = read_landlock_step(s)?;
        }
    }
    Ok(())
}

fn read_landlock_step(s: &mut In<'_>) -> Result<Landlock, ImageError> {
    let abi = s.u8()?;
    let handled_fs = s.u64()?;
    let handled_net = s.u64()?;
    let nw = s.count(WALK_MIN)?;
    let mut walks = Vec::with_capacity(nw);
    for _ in 0..nw {
        walks.push(read_walk(s)?);
    }
    let tcp_bind = s.ports()?;
    let tcp_connect = s.ports()?;
    let nprec = s.count(PRECISION_MIN)?;
    let mut precision = Vec::with_capacity(nprec);
    for _ in 0..nprec {
        precision.push(Precision {
            grant: s.u32()?,
            note: s.str()?,
        });
    }
    Ok(Landlock {
        abi,
        handled_fs,
        handled_net,
        walks,
        tcp_bind,
        tcp_connect,
        precision,
    })
}

fn read_walk(s: &mut In<'_>) -> Result<Walk, ImageError> {
    let grant = s.u32()?;
    let dfa = match s.u8()? {
        0 => DfaKind::Fs,
        1 => DfaKind::Exec,
        x => return Err(s.err(format!("bad DFA kind {x}"))),
    };
    let rights = RightSet(s.u8()?);
    let access = s.u64()?;
    let np = s.count(PREFIX_MIN)?;
    let mut prefixes = Vec::with_capacity(np);
    for _ in 0..np {
        prefixes.push(s.bytes()?);
    }
    Ok(Walk {
        grant,
        dfa,
        rights,
        access,
        prefixes,
    })
}

// ------------------------------------------------------- objective section

/// `objective` embedded source: `str name, str text`.
const EMBEDDED_MIN: usize = 2 * LEN_LEN;
/// `objective` rule: `u32 level, u8 never, u8 kind, u8 arg, loc source,
/// str text` (31).
const BOUND_RULE_MIN: usize = U32_LEN + 3 + LOC_LEN + LEN_LEN;
/// `objective` level: `u8 level kind, u32 index`, then two DFAs (each at
/// least its fixed fields and class map) and a net list.
const LEVEL_MIN: usize = 1 + U32_LEN + 2 * (12 + CLASS_MAP_LEN + 2 * LEN_LEN) + LEN_LEN;

const _: () = assert!(BOUND_RULE_MIN == 31 && EMBEDDED_MIN == 8);

fn write_kind(o: &mut Out, k: GrantKind) {
    let (tag, arg) = match k {
        GrantKind::Fs(r) => (0, r.0),
        GrantKind::Exec => (1, 0),
        GrantKind::Net(op) => (2, op as u8),
    };
    o.u8(tag);
    o.u8(arg);
}

fn read_kind(s: &mut In<'_>) -> Result<GrantKind, ImageError> {
    let tag = s.u8()?;
    let arg = s.u8()?;
    Ok(match (tag, arg) {
        (0, r) if r != 0 && r < 16 => GrantKind::Fs(RightSet(r)),
        (1, 0) => GrantKind::Exec,
        (2, 0) => GrantKind::Net(NetOp::Connect),
        (2, 1) => GrantKind::Net(NetOp::Bind),
        _ => return Err(s.err(format!("bad rule kind {tag}/{arg}"))),
    })
}

fn write_net_entries(o: &mut Out, net: &[NetEntry]) -> Result<(), ImageError> {
    o.len(net.len())?;
    for e in net {
        o.u32(e.step);
        o.u8(e.op as u8);
        o.u8(e.proto as u8);
        o.u8(e.family as u8);
        o.u8(e.prefix);
        let a: [u8; 16] = match e.addr {
            IpAddr::V4(v4) => {
                let mut a = [0u8; 16];
                a[..4].copy_from_slice(&v4.octets());
                a
            }
            IpAddr::V6(v6) => v6.octets(),
        };
        o.0.extend_from_slice(&a);
        o.ports(&e.ports)?;
    }
    Ok(())
}

/// The objective tables without their identity (what the identity hashes).
fn write_tables(o: &mut Out, t: &ObjectiveTables) -> Result<(), ImageError> {
    o.len(t.sources.len())?;
    for f in &t.sources {
        o.str(&f.name)?;
        o.str(&f.text)?;
    }
    o.len(t.rules.len())?;
    for r in &t.rules {
        o.u32(r.level);
        o.u8(u8::from(r.never));
        write_kind(o, r.kind);
        o.loc(&r.source);
        o.str(&r.text)?;
    }
    o.len(t.levels.len())?;
    for l in &t.levels {
        let (k, i) = match l.level {
            Level::Objective(i) => (0, i),
            Level::Intent(i) => (1, i),
        };
        o.u8(k);
        o.u32(i);
        write_dfa(o, &l.fs)?;
        write_dfa(o, &l.exec)?;
        write_net_entries(o, &l.net)?;
    }
    Ok(())
}

/// The identity of an objective image: SHA-256 over the encoded `chain`
/// section (names, `about`s, which intent is under which objective)
/// followed by the encoded objective tables without the identity. Equal
/// objectives compiled the same way have equal identities; any change to
/// a name, a bound, a `never`, the embedded sources or a parameter's value
/// changes it.
pub fn objective_identity(image: &Image) -> Result<[u8; 32], ImageError> {
    let Some(t) = &image.objective else {
        return Err(ImageError::Invalid(
            "the image holds no objective tables".into(),
        ));
    };
    let mut o = Out(Vec::new());
    write_chain(&mut o, image)?;
    write_tables(&mut o, t)?;
    // The values the objective was proved for (nothing when it has no
    // parameters, so such identities are what they were before).
    write_params(&mut o, &image.meta.params)?;
    // The levels' name rules (nothing when no level has one, so identities
    // of objectives without names are what they were before names).
    if t.levels.iter().any(|l| !l.names.is_empty()) {
        for l in &t.levels {
            write_name_entries(&mut o, &l.names)?;
        }
    }
    Ok(Sha256::digest(&o.0).into())
}

fn write_objective(o: &mut Out, im: &Image) -> Result<(), ImageError> {
    match &im.objective {
        None => o.u8(0),
        Some(t) => {
            o.u8(1);
            o.0.extend_from_slice(&t.identity);
            write_tables(o, t)?;
        }
    }
    match &im.against {
        None => o.u8(0),
        Some(a) => {
            o.u8(1);
            o.str(&a.file)?;
            o.0.extend_from_slice(&a.identity);
        }
    }
    Ok(())
}

type ObjectiveSection = (Option<ObjectiveTables>, Option<Against>);

fn read_objective(s: &mut In<'_>) -> Result<ObjectiveSection, ImageError> {
    let tables = match s.u8()? {
        0 => None,
        1 => {
            let identity: [u8; 32] = s.arr()?;
            let n = s.count(EMBEDDED_MIN)?;
            let mut sources = Vec::with_capacity(n);
            for _ in 0..n {
                sources.push(EmbeddedSource {
                    name: s.str()?,
                    text: s.str()?,
                });
            }
            let n = s.count(BOUND_RULE_MIN)?;
            let mut rules = Vec::with_capacity(n);
            for _ in 0..n {
                let level = s.u32()?;
                let never = match s.u8()? {
                    0 => false,
                    1 => true,
                    x => return Err(s.err(format!("bad never flag {x}"))),
                };
                rules.push(BoundRule {
                    level,
                    never,
                    kind: read_kind(s)?,
                    source: s.loc()?,
                    text: s.str()?,
                });
            }
            let n = s.count(LEVEL_MIN)?;
            let mut levels = Vec::with_capacity(n);
            for _ in 0..n {
                let level = match (s.u8()?, s.u32()?) {
                    (0, i) => Level::Objective(i),
                    (1, i) => Level::Intent(i),
                    (k, _) => return Err(s.err(format!("bad level kind {k}"))),
                };
                let fs = read_dfa(s, DfaKind::Fs)?;
                let exec = read_dfa(s, DfaKind::Exec)?;
                let ne = s.count(NET_ENTRY_MIN)?;
                let mut net = Vec::with_capacity(ne);
                for _ in 0..ne {
                    net.push(read_net_entry(s)?);
                }
                levels.push(LevelTables {
                    level,
                    fs,
                    exec,
                    net,
                    names: Vec::new(),
                });
            }
            Some(ObjectiveTables {
                identity,
                sources,
                rules,
                levels,
            })
        }
        t => return Err(s.err(format!("bad option tag {t}"))),
    };
    let against = match s.u8()? {
        0 => None,
        1 => Some(Against {
            file: s.str()?,
            identity: s.arr()?,
        }),
        t => return Err(s.err(format!("bad option tag {t}"))),
    };
    Ok((tables, against))
}

fn write_addr(o: &mut Out, addr: IpAddr) {
    let a: [u8; 16] = match addr {
        IpAddr::V4(v4) => {
            let mut a = [0u8; 16];
            a[..4].copy_from_slice(&v4.octets());
            a
        }
        IpAddr::V6(v6) => v6.octets(),
    };
    o.0.extend_from_slice(&a);
}

fn write_ranges(o: &mut Out, r: &[(u16, u16)]) -> Result<(), ImageError> {
    o.len(r.len())?;
    for &(lo, hi) in r {
        o.u16(lo);
        o.u16(hi);
    }
    Ok(())
}

fn write_name_entries(o: &mut Out, names: &[NameEntry]) -> Result<(), ImageError> {
    o.len(names.len())?;
    for e in names {
        o.u32(e.step);
        o.u8(e.proto as u8);
        o.str(&e.pattern)?;
        o.ports(&e.ports)?;
    }
    Ok(())
}

fn write_names(o: &mut Out, im: &Image) -> Result<(), ImageError> {
    o.len(im.plans.len())?;
    for p in &im.plans {
        write_name_entries(o, &p.names)?;
        o.len(p.name_excluded.len())?;
        for x in &p.name_excluded {
            o.u8(x.proto as u8);
            o.u8(match x.addr {
                IpAddr::V4(_) => Family::V4 as u8,
                IpAddr::V6(_) => Family::V6 as u8,
            });
            o.u8(x.prefix);
            write_addr(o, x.addr);
            write_ranges(o, &x.ports)?;
        }
        o.len(p.never_names.len())?;
        for n in &p.never_names {
            o.u8(n.proto as u8);
            o.str(&n.pattern)?;
            write_ranges(o, &n.ports)?;
        }
    }
    let levels = im.objective.as_ref().map_or(&[][..], |t| &t.levels[..]);
    o.len(levels.len())?;
    for l in levels {
        write_name_entries(o, &l.names)?;
    }
    Ok(())
}

fn read_proto(s: &mut In<'_>) -> Result<Proto, ImageError> {
    match s.u8()? {
        6 => Ok(Proto::Tcp),
        17 => Ok(Proto::Udp),
        x => Err(s.err(format!("bad protocol {x}"))),
    }
}

fn read_family_addr(s: &mut In<'_>, family: u8) -> Result<IpAddr, ImageError> {
    let a: [u8; 16] = s.arr()?;
    match family {
        4 => {
            if a[4..].iter().any(|&b| b != 0) {
                return Err(s.err("IPv4 entry with stray address bytes"));
            }
            Ok(IpAddr::V4(Ipv4Addr::new(a[0], a[1], a[2], a[3])))
        }
        6 => Ok(IpAddr::V6(Ipv6Addr::from(a))),
        x => Err(s.err(format!("bad address family {x}"))),
    }
}

fn read_ranges(s: &mut In<'_>) -> Result<Vec<(u16, u16)>, ImageError> {
    let n = s.count(RANGE_LEN)?;
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        v.push((s.u16()?, s.u16()?));
    }
    Ok(v)
}

fn read_name_entries(s: &mut In<'_>) -> Result<Vec<NameEntry>, ImageError> {
    let n = s.count(NAME_ENTRY_MIN)?;
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        v.push(NameEntry {
            step: s.u32()?,
            proto: read_proto(s)?,
            pattern: s.str()?,
            ports: s.ports()?,
        });
    }
    Ok(v)
}

/// The `names` section: every plan's name tables, then the objective
/// levels' name rules.
fn read_names(
    s: &mut In<'_>,
    plans: &mut [Plan],
    objective: Option<&mut ObjectiveTables>,
) -> Result<(), ImageError> {
    if s.count(PLAN_TABLE_MIN)? != plans.len() {
        return Err(s.err("names table count differs from the plan count"));
    }
    for p in plans {
        p.names = read_name_entries(s)?;
        let n = s.count(NAME_EXCLUSION_MIN)?;
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            let proto = read_proto(s)?;
            let family = s.u8()?;
            let prefix = s.u8()?;
            let addr = read_family_addr(s, family)?;
            v.push(NameExclusion {
                proto,
                addr,
                prefix,
                ports: read_ranges(s)?,
            });
        }
        p.name_excluded = v;
        let n = s.count(NEVER_NAME_MIN)?;
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push(NeverName {
                proto: read_proto(s)?,
                pattern: s.str()?,
                ports: read_ranges(s)?,
            });
        }
        p.never_names = v;
    }
    let n = s.count(LEN_LEN)?;
    match objective {
        None if n == 0 => {}
        Some(t) if n == t.levels.len() => {
            for l in &mut t.levels {
                l.names = read_name_entries(s)?;
            }
        }
        _ => return Err(s.err("names level count differs from the objective levels")),
    }
    Ok(())
}
