//! KAPL path automata: the path half of the prover and of code generation.
//!
//! ```text
//! Glob (branches of segments of atoms) ─► NFA ─► DFA × normalized paths
//!        ─► minimized, canonical byte-class DFA ─► products / emptiness /
//!           shortest witness (prover)  ·  transition tables (codegen)
//! ```
//!
//! Input: [`kapl_syntax::glob::Glob`]s. Output: [`Dfa`]s. Every language is a
//! set of *normalized absolute paths*: `/`, or `/SEG(/SEG)*` where a segment
//! is non-empty, is not `.` or `..`, and holds no `/` or NUL byte
//! ([`is_normalized`]). A glob's automaton accepts exactly the normalized
//! paths the reference matcher `Glob::matches` accepts.
//!
//! For code generation a [`Dfa`] exposes its byte classes
//! ([`Dfa::byte_classes`], [`Dfa::class_ranges`]), its complete row-major
//! transition table ([`Dfa::transitions`], [`Dfa::next_class`]), its start
//! state, accepting states, dead states ([`Dfa::is_dead`]: no continuation
//! can be accepted) and, per state, whether everything beneath is accepted
//! ([`Dfa::full_beneath`], for Landlock's beneath-a-directory rules).
//!
//! Pure: no I/O, no unsafe.

mod bytes;
mod dfa;
mod nfa;
mod norm;
mod partition;

pub use bytes::{ByteSet, readability_rank};
pub use dfa::Dfa;
pub use norm::is_normalized;
pub use partition::coarsest_partition;
