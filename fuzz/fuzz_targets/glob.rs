//! Fuzzes the glob parser and the reference matcher: the first line of the
//! input is a pattern, the rest are paths to match against it.
#![no_main]

use kapl_syntax::glob::parse_glob;
use kapl_syntax::{FileId, Span};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let pattern = lines.next().unwrap_or("");
    match parse_glob(pattern, Span::new(FileId(0), 0, pattern.len())) {
        Ok(glob) => {
            assert!(!glob.branches.is_empty());
            for path in lines {
                let _ = glob.matches(path.as_bytes());
            }
        }
        Err(diags) => assert!(!diags.is_empty()),
    }
});
