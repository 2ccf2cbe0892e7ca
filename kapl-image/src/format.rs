//! The `.kapi` byte format: encoding an [`Image`] and the verifying decoder.
//!
//! Input: an [`Image`] (write) or untrusted bytes (read).
//! Output: bytes, or a validated [`Image`] / an [`ImageError`]. The decoder
//! never panics and never allocates more than the input can justify: every
//! count is checked against the bytes left before anything is reserved.
//! The layout is documented in the crate docs.

use crate::error::ImageError;
use crate::model::*;
use sha2::{Digest, Sha256};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The first 8 bytes of every image.
pub const MAGIC: [u8; 8] = *b"KAPLIMG\0";
/// The format version this crate writes and reads.
pub const FORMAT_VERSION: u16 = 1;
/// Size of the fixed header.
pub const HEADER_LEN: usize = 64;
/// Size of one section-table entry.
pub const SECTION_ENTRY_LEN: usize = 24;

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
}

impl SectionKind {
    /// Every kind, in file order.
    pub const ALL: [SectionKind; 7] = [
        SectionKind::Meta,
        SectionKind::Chain,
        SectionKind::Grants,
        SectionKind::Plans,
        SectionKind::Dfas,
        SectionKind::Net,
        SectionKind::Landlock,
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
    Ok(())
}

fn write_chain(o: &mut Out, im: &Image) -> Result<(), ImageError> {
    o.len(im.objectives.len())?;
    for x in &im.objectives {
        o.str(&x.name)?;
        o.opt_str(&x.about)?;
    }
    o.len(im.intents.len())?;
    for x in &im.intents {
        o.str(&x.name)?;
        o.opt_str(&x.about)?;
        o.u32(x.objective);
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
        o.len(p.net.len())?;
        for e in &p.net {
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
        let n = self.count(1)?;
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
        let n = self.count(4)?;
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
        let n = self.count(8)?;
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
    let inp = |i: usize| In {
        section: SectionKind::ALL[i],
        data: bodies.get(i).copied().unwrap_or(&[]),
        pos: 0,
    };

    let mut s = inp(0);
    let meta = Meta {
        policy: s.str()?,
        compiler: s.str()?,
        sources: {
            let n = s.count(4)?;
            let mut v = Vec::with_capacity(n);
            for _ in 0..n {
                v.push(s.str()?);
            }
            v
        },
    };
    s.end()?;

    let mut s = inp(1);
    let n = s.count(5)?;
    let mut objectives = Vec::with_capacity(n);
    for _ in 0..n {
        objectives.push(Objective {
            name: s.str()?,
            about: s.opt_str()?,
        });
    }
    let n = s.count(9)?;
    let mut intents = Vec::with_capacity(n);
    for _ in 0..n {
        intents.push(Intent {
            name: s.str()?,
            about: s.opt_str()?,
            objective: s.u32()?,
        });
    }
    s.end()?;

    let mut s = inp(2);
    let n = s.count(58)?;
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
    s.end()?;

    let mut s = inp(3);
    let n = s.count(17)?;
    let mut plans = Vec::with_capacity(n);
    for _ in 0..n {
        let name = s.str()?;
        let about = s.opt_str()?;
        let objective = s.u32()?;
        let intent = s.opt_u32()?;
        let pgrants = s.u32s()?;
        let ns = s.count(13)?;
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
        });
    }
    s.end()?;

    let mut s = inp(4);
    if s.count(1)? != plans.len() {
        return Err(s.err("DFA count differs from the plan count"));
    }
    for p in &mut plans {
        p.fs = read_dfa(&mut s, DfaKind::Fs)?;
        p.exec = read_dfa(&mut s, DfaKind::Exec)?;
    }
    s.end()?;

    let mut s = inp(5);
    if s.count(4)? != plans.len() {
        return Err(s.err("net table count differs from the plan count"));
    }
    for p in &mut plans {
        let n = s.count(28)?;
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
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
            v.push(NetEntry {
                step,
                op,
                proto,
                family,
                addr,
                prefix,
                ports: s.ports()?,
            });
        }
        p.net = v;
    }
    s.end()?;

    let mut s = inp(6);
    if s.count(4)? != plans.len() {
        return Err(s.err("Landlock table count differs from the plan count"));
    }
    for p in &mut plans {
        if s.count(17)? != p.steps.len() {
            return Err(s.err("Landlock step count differs from the plan's steps"));
        }
        for st in &mut p.steps {
            let abi = s.u8()?;
            let handled_fs = s.u64()?;
            let handled_net = s.u64()?;
            let nw = s.count(18)?;
            let mut walks = Vec::with_capacity(nw);
            for _ in 0..nw {
                let grant = s.u32()?;
                let dfa = match s.u8()? {
                    0 => DfaKind::Fs,
                    1 => DfaKind::Exec,
                    x => return Err(s.err(format!("bad DFA kind {x}"))),
                };
                let rights = RightSet(s.u8()?);
                let access = s.u64()?;
                let np = s.count(4)?;
                let mut prefixes = Vec::with_capacity(np);
                for _ in 0..np {
                    prefixes.push(s.bytes()?);
                }
                walks.push(Walk {
                    grant,
                    dfa,
                    rights,
                    access,
                    prefixes,
                });
            }
            let tcp_bind = s.ports()?;
            let tcp_connect = s.ports()?;
            let nprec = s.count(8)?;
            let mut precision = Vec::with_capacity(nprec);
            for _ in 0..nprec {
                precision.push(Precision {
                    grant: s.u32()?,
                    note: s.str()?,
                });
            }
            st.landlock = Landlock {
                abi,
                handled_fs,
                handled_net,
                walks,
                tcp_bind,
                tcp_connect,
                precision,
            };
        }
    }
    s.end()?;

    let image = Image {
        meta,
        objectives,
        intents,
        plans,
        grants,
    };
    image.validate()?;
    Ok(image)
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
    let classes = s.take(256)?.to_vec();
    let states = s.count(4 * (class_count as usize + 1))?;
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
    let nrows = s.count(width.saturating_mul(5))?;
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
