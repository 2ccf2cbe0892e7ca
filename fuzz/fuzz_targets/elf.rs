//! Fuzz target: a program's first bytes as the runtime and `kaplc build`
//! read them for its ELF loader or `#!` interpreter. Any bytes are an
//! answer or an error, never a panic, and a loader named is never empty.
#![no_main]

use kapl_runtime::elf::{Starter, starter};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = starter(data) {
        assert!(s.path().is_none_or(|p| !p.is_empty()), "{s:?}");
        if let Starter::Elf(Some(p)) = &s {
            assert!(!p.contains(&0), "a loader name stops at its NUL");
        }
    }
});
