//! KAPL code generator: from a proved `ir::Policy` to a `kapl-image` image.
//!
//! PLAN (issue 4): path and exec DFAs from the prover's own automata,
//! LPM-trie entries per step, the step graph, the provenance table and the
//! Landlock plans; then translation validation (decode the tables back and
//! check equivalence with the prover's automata). Emits data only.
