//! Fuzz target: the session control protocol. Bytes a client sends are cut
//! into lines by the supervisor's `LineBuffer` and parsed as requests (and
//! the client parses the supervisor's replies the same way): any bytes are
//! refused or accepted without panicking, and whatever is accepted
//! re-encodes to a line that parses to the same encoding.
#![no_main]

use kapl_runtime::protocol::{LineBuffer, Reply, Request};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut r = LineBuffer::default();
    // Feed in two pieces, as two reads would deliver them.
    let cut = data.first().map_or(0, |b| usize::from(*b)).min(data.len());
    r.push(&data[..cut]);
    let mut lines = Vec::new();
    while let Some(l) = r.line() {
        lines.push(l);
    }
    r.push(&data[cut..]);
    while let Some(l) = r.line() {
        lines.push(l);
    }
    let newlines = data.iter().filter(|b| **b == b'\n').count();
    assert_eq!(lines.len(), newlines, "one line per newline");
    for line in &lines {
        assert!(!line.contains(&b'\n'));
        if let Ok(req) = Request::parse(line) {
            let once = serde_json::to_vec(&req).expect("a parsed request encodes");
            let again = Request::parse(&once).expect("an encoded request parses");
            assert_eq!(serde_json::to_vec(&again).ok(), Some(once));
        }
        if let Ok(rep) = serde_json::from_slice::<Reply>(line) {
            let once = serde_json::to_vec(&rep).expect("a parsed reply encodes");
            let again: Reply = serde_json::from_slice(&once).expect("an encoded reply parses");
            assert_eq!(serde_json::to_vec(&again).ok(), Some(once));
        }
    }
});
