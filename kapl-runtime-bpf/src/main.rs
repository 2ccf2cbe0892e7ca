//! kapl-run.
fn main() {}
