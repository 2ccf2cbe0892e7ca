//! Generates the parser from `src/grammar.lalrpop` (once it exists).
fn main() {}
