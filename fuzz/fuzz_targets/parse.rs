//! Fuzzes the parser on arbitrary bytes (decoded lossily, as a loader that
//! has already rejected non-UTF-8 would never hand over; the parser must
//! still cope with anything a `&str` can hold).
//! Invariants: no panic, every label inside the text on char boundaries,
//! and an error whenever the parse is incomplete is checked by the proptest
//! suite; here we check what is cheap per input.
#![no_main]

use kapl_syntax::{FileId, parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let parsed = parse(FileId(0), &text);
    for d in &parsed.diagnostics {
        assert!(!d.labels.is_empty());
        for l in &d.labels {
            let r = l.span.range();
            assert!(r.start <= r.end && r.end <= text.len());
            assert!(text.is_char_boundary(r.start) && text.is_char_boundary(r.end));
        }
    }
});
