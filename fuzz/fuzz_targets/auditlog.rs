//! Fuzz target: the kernel's audit records as the supervisor reads them.
//! Their text carries bytes untrusted processes chose (paths, comm, exe);
//! any bytes, as any record type, in any order, are parsed and joined by
//! serial without panicking, every record taken comes out once flushed,
//! and a name escaped for a record reads back to its bytes.
#![no_main]

use kapl_runtime::auditlog::{
    AUDIT_EOE, AUDIT_LANDLOCK_ACCESS, AUDIT_LANDLOCK_DOMAIN, AUDIT_SECCOMP, AUDIT_SYSCALL,
    AUDIT_USER, Assembler, escape_bytes, parse_record, unescape_bytes,
};
use libfuzzer_sys::fuzz_target;
use std::time::{Duration, Instant};

const TYPES: [u16; 7] = [
    AUDIT_LANDLOCK_ACCESS,
    AUDIT_LANDLOCK_DOMAIN,
    AUDIT_SECCOMP,
    AUDIT_SYSCALL,
    AUDIT_EOE,
    AUDIT_USER,
    1300,
];

fuzz_target!(|data: &[u8]| {
    let t0 = Instant::now();
    let mut a = Assembler::default();
    // Records separated by newlines; the first byte of each picks its type.
    for (i, rec) in data.split(|b| *b == b'\n').enumerate() {
        let Some((ty, text)) = rec.split_first() else {
            continue;
        };
        let text = String::from_utf8_lossy(text);
        let _ = parse_record(&text);
        let now = t0 + Duration::from_millis(i as u64 * 50);
        a.take(TYPES[usize::from(*ty) % TYPES.len()], &text, now);
        let _ = a.ready(false, now);
    }
    let _ = a.ready(true, t0);
    assert_eq!(a.waiting(), 0, "a flush leaves nothing waiting");
    // A literal `\x` followed by hex digits reads back as that byte (the
    // documented ambiguity, used only to find a nearest grant).
    if !data.windows(2).any(|w| w == b"\\x") {
        assert_eq!(unescape_bytes(&escape_bytes(data)), data, "escaping round-trips");
    }
});
