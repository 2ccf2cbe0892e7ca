//! The kernel's audit records, parsed and joined (stage: runtime, decision
//! reporting; the bytes come from the kernel crate's netlink reader).
//!
//! Input: `(type, text)` pairs as the audit multicast delivers them:
//! Landlock access records (`AUDIT_LANDLOCK_ACCESS`, 1423), Landlock domain
//! records (1424), seccomp records (1326), and the `SYSCALL`/`EOE` records
//! that share a serial with them. Output: [`Record`]s, each Landlock access
//! record joined with its syscall's pid, comm and exe.
//!
//! Everything here parses bytes the kernel took from untrusted processes
//! (paths, comm, exe): it never panics, and it is fuzzed
//! (`fuzz/fuzz_targets/auditlog.rs`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// `AUDIT_SYSCALL`.
pub const AUDIT_SYSCALL: u16 = 1300;
/// `AUDIT_USER` (the barrier's own messages).
pub const AUDIT_USER: u16 = 1107;
/// `AUDIT_EOE`: the end of a multi-record event.
pub const AUDIT_EOE: u16 = 1320;
/// `AUDIT_SECCOMP`.
pub const AUDIT_SECCOMP: u16 = 1326;
/// `AUDIT_LANDLOCK_ACCESS`.
pub const AUDIT_LANDLOCK_ACCESS: u16 = 1423;
/// `AUDIT_LANDLOCK_DOMAIN`.
pub const AUDIT_LANDLOCK_DOMAIN: u16 = 1424;

/// The text the barrier sends as an `AUDIT_USER` message, followed by its
/// token.
pub const BARRIER_TAG: &str = "kapl-run barrier ";

/// How long a record waits for its `SYSCALL` record before it is reported
/// without one.
pub const JOIN_WAIT: Duration = Duration::from_millis(200);

/// Key/value fields of one record, in order.
pub type Fields = Vec<(String, String)>;

/// The value of field `k`.
pub fn field<'a>(f: &'a Fields, k: &str) -> Option<&'a str> {
    f.iter().find(|(a, _)| a == k).map(|(_, v)| v.as_str())
}

/// One Landlock denial, with the syscall context when the kernel gave it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Denial {
    /// The audit serial.
    pub serial: u64,
    /// The audit timestamp (`sec.ms`).
    pub time: String,
    /// The Landlock domain id (hex as logged).
    pub domain: String,
    /// Blockers (e.g. `fs.read_file`).
    pub blockers: Vec<String>,
    /// Every field of the access record.
    pub fields: Fields,
    /// pid from the SYSCALL record.
    pub pid: Option<i32>,
    /// comm from the SYSCALL record.
    pub comm: Option<String>,
    /// exe from the SYSCALL record.
    pub exe: Option<String>,
}

impl Denial {
    /// The value of field `k` of the access record.
    pub fn get(&self, k: &str) -> Option<&str> {
        field(&self.fields, k)
    }
}

/// A domain record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomainRecord {
    /// The domain id.
    pub domain: String,
    /// `allocated` or `deallocated`.
    pub status: String,
    /// The pid that created it (allocated records).
    pub pid: Option<i32>,
}

/// An `AUDIT_SECCOMP` record (any process on the host: the engine keeps
/// those of its sessions).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeccompRecord {
    /// The audit serial.
    pub serial: u64,
    /// The process.
    pub pid: i32,
    /// Its comm.
    pub comm: String,
    /// Its executable.
    pub exe: Option<String>,
    /// The system call number (x86_64).
    pub syscall: u32,
}

/// What the assembler produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    /// A denial.
    Denial(Denial),
    /// A domain record.
    Domain(DomainRecord),
    /// A system call refused by the logged seccomp filter.
    Seccomp(SeccompRecord),
}

#[derive(Debug, Default)]
struct Pending {
    at: Option<Instant>,
    access: Vec<Fields>,
    domains: Vec<Fields>,
    seccomp: Vec<Fields>,
    syscall: Option<Fields>,
}

/// Joins audit records by serial into [`Record`]s.
#[derive(Debug, Default)]
pub struct Assembler {
    pending: BTreeMap<u64, Pending>,
    /// The last barrier token seen (`kapl-run barrier N`).
    pub barrier_seen: Option<String>,
}

impl Assembler {
    /// Takes one record of type `ty` received at `now`.
    pub fn take(&mut self, ty: u16, text: &str, now: Instant) {
        if ty == AUDIT_USER {
            if let Some(i) = text.find(BARRIER_TAG) {
                let t = &text[i..];
                let end = t.find(['\'', '"']).unwrap_or(t.len());
                self.barrier_seen = Some(t[..end].to_string());
            }
            return;
        }
        let interesting = matches!(
            ty,
            AUDIT_LANDLOCK_ACCESS
                | AUDIT_LANDLOCK_DOMAIN
                | AUDIT_SECCOMP
                | AUDIT_SYSCALL
                | AUDIT_EOE
        );
        if !interesting {
            return;
        }
        let Some((time, serial, fields)) = parse_record(text) else {
            return;
        };
        if ty == AUDIT_SYSCALL || ty == AUDIT_EOE {
            // Only join records we already hold a Landlock record for.
            if let Some(p) = self.pending.get_mut(&serial) {
                if ty == AUDIT_SYSCALL {
                    p.syscall = Some(fields);
                } else if p.syscall.is_none() {
                    p.syscall = Some(Vec::new());
                }
            }
            return;
        }
        let p = self.pending.entry(serial).or_default();
        p.at.get_or_insert(now);
        let mut fields = fields;
        fields.push(("@time".into(), time));
        match ty {
            AUDIT_LANDLOCK_ACCESS => p.access.push(fields),
            AUDIT_SECCOMP => p.seccomp.push(fields),
            _ => p.domains.push(fields),
        }
    }

    /// The records that are complete at `now` (their `SYSCALL` record
    /// seen, or waiting longer than [`JOIN_WAIT`]); every pending one with
    /// `flush_all`.
    pub fn ready(&mut self, flush_all: bool, now: Instant) -> Vec<Record> {
        let keys: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| {
                flush_all
                    || p.syscall.is_some()
                    || p.at
                        .is_some_and(|t| now.saturating_duration_since(t) > JOIN_WAIT)
            })
            .map(|(k, _)| *k)
            .collect();
        let mut out = Vec::new();
        for k in keys {
            if let Some(p) = self.pending.remove(&k) {
                assemble(k, p, &mut out);
            }
        }
        out
    }

    /// Records waiting for their `SYSCALL` record.
    pub fn waiting(&self) -> usize {
        self.pending.len()
    }
}

fn assemble(serial: u64, p: Pending, out: &mut Vec<Record>) {
    let owned = |f: &Fields, k: &str| field(f, k).map(str::to_string);
    for d in p.domains {
        out.push(Record::Domain(DomainRecord {
            domain: owned(&d, "domain").unwrap_or_default(),
            status: owned(&d, "status").unwrap_or_default(),
            pid: field(&d, "pid").and_then(|v| v.parse().ok()),
        }));
    }
    for f in p.seccomp {
        if let (Some(pid), Some(nr)) = (
            field(&f, "pid").and_then(|v| v.parse().ok()),
            field(&f, "syscall").and_then(|v| v.parse().ok()),
        ) {
            out.push(Record::Seccomp(SeccompRecord {
                serial,
                pid,
                comm: owned(&f, "comm").unwrap_or_default(),
                exe: owned(&f, "exe"),
                syscall: nr,
            }));
        }
    }
    for a in p.access {
        let sc = p.syscall.as_ref();
        out.push(Record::Denial(Denial {
            serial,
            time: owned(&a, "@time").unwrap_or_default(),
            domain: owned(&a, "domain").unwrap_or_default(),
            blockers: field(&a, "blockers")
                .unwrap_or_default()
                .split(',')
                .map(str::to_string)
                .collect(),
            pid: sc
                .and_then(|s| field(s, "pid"))
                .and_then(|v| v.parse().ok()),
            comm: sc.and_then(|s| owned(s, "comm")),
            exe: sc.and_then(|s| owned(s, "exe")),
            fields: a,
        }));
    }
}

/// Parses `audit(SEC.MS:SERIAL): k=v k="v" ...`, decoding hex-encoded
/// untrusted strings.
pub fn parse_record(text: &str) -> Option<(String, u64, Fields)> {
    let rest = text.strip_prefix("audit(")?;
    let (stamp, rest) = rest.split_once("):")?;
    let (time, serial) = stamp.split_once(':')?;
    let serial = serial.parse().ok()?;
    Some((time.to_string(), serial, parse_fields(rest)))
}

/// Parses `k=v k="v" ...`.
pub fn parse_fields(s: &str) -> Fields {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && b[i] == b' ' {
            i += 1;
        }
        let ks = i;
        while i < b.len() && b[i] != b'=' && b[i] != b' ' {
            i += 1;
        }
        let key = &s[ks..i];
        if i >= b.len() || b[i] != b'=' {
            continue;
        }
        i += 1;
        let val = if i < b.len() && b[i] == b'"' {
            let vs = i + 1;
            let mut j = vs;
            while j < b.len() && b[j] != b'"' {
                j += 1;
            }
            i = (j + 1).min(b.len());
            s[vs..j.min(b.len())].to_string()
        } else {
            let vs = i;
            while i < b.len() && b[i] != b' ' {
                i += 1;
            }
            decode_value(key, &s[vs..i])
        };
        if !key.is_empty() {
            out.push((key.to_string(), val));
        }
    }
    out
}

/// Untrusted strings with special bytes are logged as hex.
fn decode_value(key: &str, raw: &str) -> String {
    if matches!(key, "path" | "comm" | "exe" | "name" | "ocomm")
        && raw.len().is_multiple_of(2)
        && !raw.is_empty()
        && raw.bytes().all(|c| c.is_ascii_hexdigit())
    {
        let bytes: Vec<u8> = (0..raw.len())
            .step_by(2)
            .filter_map(|k| {
                raw.get(k..k + 2)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
            })
            .collect();
        escape_bytes(&bytes)
    } else {
        raw.to_string()
    }
}

/// A file name as text: valid UTF-8 unchanged; otherwise each byte that is
/// not part of valid UTF-8 becomes `\xNN`, so a non-UTF-8 name is reported
/// byte for byte (and [`unescape_bytes`] gives the bytes back) instead of
/// collapsing into replacement characters.
pub fn escape_bytes(b: &[u8]) -> String {
    let mut out = String::new();
    for chunk in b.utf8_chunks() {
        out.push_str(chunk.valid());
        for x in chunk.invalid() {
            out.push_str(&format!("\\x{x:02x}"));
        }
    }
    out
}

/// The bytes of a name written by [`escape_bytes`] (`\xNN` read back as the
/// byte; a name that contains a literal `\x` followed by two hex digits is
/// read as that byte too: used only to find the nearest grant).
pub fn unescape_bytes(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && b.get(i + 1) == Some(&b'x')
            && let Some(h) = s.get(i + 2..i + 4)
            && let Ok(v) = u8::from_str_radix(h, 16)
        {
            out.push(v);
            i += 4;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::panic, reason = "test assertions")]
    use super::*;

    fn get(f: &Fields, k: &str) -> Option<String> {
        field(f, k).map(str::to_string)
    }

    #[test]
    fn parses_landlock_access() {
        let (t, serial, f) = parse_record(
            "audit(1732572345.123:789): domain=195ba459b blockers=fs.read_file path=\"/srv/web/.env\" dev=\"vda\" ino=1234",
        )
        .unwrap_or_default();
        assert_eq!(t, "1732572345.123");
        assert_eq!(serial, 789);
        assert_eq!(get(&f, "domain").as_deref(), Some("195ba459b"));
        assert_eq!(get(&f, "blockers").as_deref(), Some("fs.read_file"));
        assert_eq!(get(&f, "path").as_deref(), Some("/srv/web/.env"));
        assert_eq!(get(&f, "ino").as_deref(), Some("1234"));
    }

    #[test]
    fn non_utf8_names_are_escaped_byte_for_byte() {
        let b = b"/srv/d\xfe\xff.txt/\xc3\xa9";
        let e = escape_bytes(b);
        assert_eq!(e, "/srv/d\\xfe\\xff.txt/\u{e9}");
        assert_eq!(unescape_bytes(&e), b.to_vec());
        let f = parse_fields("path=2F64FE");
        assert_eq!(f, vec![("path".to_string(), "/d\\xfe".to_string())]);
    }

    #[test]
    fn decodes_hex_paths() {
        let f = parse_fields("path=2F6120622F63 comm=\"x y\"");
        assert_eq!(get(&f, "path").as_deref(), Some("/a b/c"));
        assert_eq!(get(&f, "comm").as_deref(), Some("x y"));
    }

    #[test]
    fn malformed_records_are_skipped_not_fatal() {
        for bad in [
            "",
            "audit(",
            "audit(1.2:x): a=b",
            "audit(1.2:3",
            "audit(1.2:3): a=\"unterminated",
            "audit(1.2:3): ===",
            "audit(1.2:3): path=\u{e9}\u{e9}",
        ] {
            let _ = parse_record(bad);
        }
        assert_eq!(parse_record("audit(1.2:x): a=b"), None);
        assert_eq!(
            parse_fields("a=\"unterminated"),
            vec![("a".to_string(), "unterminated".to_string())]
        );
    }

    #[test]
    fn access_records_are_joined_with_their_syscall_by_serial() {
        let t0 = Instant::now();
        let mut a = Assembler::default();
        a.take(
            AUDIT_LANDLOCK_ACCESS,
            "audit(1.5:7): domain=1a blockers=fs.read_file,fs.truncate path=\"/x\"",
            t0,
        );
        a.take(
            AUDIT_LANDLOCK_DOMAIN,
            "audit(1.5:7): domain=1a status=allocated pid=42",
            t0,
        );
        // Another serial's syscall is not joined.
        a.take(AUDIT_SYSCALL, "audit(1.5:8): pid=9 comm=\"other\"", t0);
        assert_eq!(a.ready(false, t0), vec![], "waits for the syscall record");
        a.take(
            AUDIT_SYSCALL,
            "audit(1.5:7): pid=42 comm=\"cat\" exe=\"/usr/bin/cat\"",
            t0,
        );
        let out = a.ready(false, t0);
        assert_eq!(out.len(), 2, "{out:?}");
        let Record::Domain(d) = &out[0] else {
            panic!("{out:?}")
        };
        assert_eq!((d.domain.as_str(), d.pid), ("1a", Some(42)));
        let Record::Denial(d) = &out[1] else {
            panic!("{out:?}")
        };
        assert_eq!(d.serial, 7);
        assert_eq!(d.blockers, ["fs.read_file", "fs.truncate"]);
        assert_eq!((d.pid, d.comm.as_deref()), (Some(42), Some("cat")));
        assert_eq!(d.get("path"), Some("/x"));
        assert_eq!(a.waiting(), 0);
    }

    #[test]
    fn unjoined_records_leave_after_the_wait_or_a_flush() {
        let t0 = Instant::now();
        let mut a = Assembler::default();
        a.take(
            AUDIT_SECCOMP,
            "audit(1.5:9): pid=5 comm=\"x\" syscall=101",
            t0,
        );
        assert!(a.ready(false, t0).is_empty());
        let later = t0 + JOIN_WAIT + Duration::from_millis(1);
        let out = a.ready(false, later);
        assert!(
            matches!(
                &out[..],
                [Record::Seccomp(SeccompRecord {
                    pid: 5,
                    syscall: 101,
                    serial: 9,
                    ..
                })]
            ),
            "{out:?}"
        );
        a.take(
            AUDIT_LANDLOCK_ACCESS,
            "audit(1.5:10): domain=1 blockers=net.connect_tcp",
            t0,
        );
        assert_eq!(a.ready(true, t0).len(), 1);
        a.take(AUDIT_USER, "audit(1.5:11): msg='kapl-run barrier 3'", t0);
        assert_eq!(a.barrier_seen.as_deref(), Some("kapl-run barrier 3"));
    }
}
