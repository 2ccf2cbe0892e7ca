//! Every stable diagnostic code, one constant each.
//!
//! Input: none (constants). Output: the `code` field of [`crate::Diagnostic`].
//! Ranges: KAPL00xx input, loading and CLI; KAPL01xx lexical and syntax;
//! KAPL02xx literals (glob, address, port); KAPL03xx names, structure,
//! imports; KAPL04xx proof errors; KAPL05xx proof warnings; KAPL06xx build
//! and codegen; KAPL07xx image format; KAPL08xx runtime.
//!
//! INVARIANT: a code, once published, keeps its meaning; retired codes are
//! not reused.

// ---- KAPL00xx: input, loading, CLI (owner: check) ----

/// A file named on the command line or by `use "..."` could not be read:
/// it does not exist, is a directory, or the read failed.
pub const FILE_UNREADABLE: &str = "KAPL0001";
/// A source file is not valid UTF-8 (the label points at the first bad byte).
pub const NOT_UTF8: &str = "KAPL0002";
/// A source file is larger than the checker accepts.
pub const FILE_TOO_LARGE: &str = "KAPL0003";
/// `use std.NAME` names no standard-library module.
pub const UNKNOWN_MODULE: &str = "KAPL0004";
/// `use` of a module path that does not start with `std.` or has extra parts.
pub const BAD_MODULE_PATH: &str = "KAPL0005";
/// A file imports itself.
pub const SELF_IMPORT: &str = "KAPL0006";
/// Files import each other in a cycle.
pub const IMPORT_CYCLE: &str = "KAPL0007";
/// The same module or file is imported twice by one file (warning).
pub const DUPLICATE_IMPORT: &str = "KAPL0008";
/// `use "..."` of a path that cannot name a policy file (empty, or ending
/// in `/`), or a file import inside a stdlib module.
pub const BAD_IMPORT_PATH: &str = "KAPL0009";
/// The policy defines nothing (warning): an empty or comment-only root file.
pub const EMPTY_POLICY: &str = "KAPL0010";

// ---- KAPL03xx: names, structure, imports (owner: check) ----

/// A name is used but not defined (with a did-you-mean when one is close).
pub const UNKNOWN_NAME: &str = "KAPL0301";
/// A name is defined twice in one namespace (both places are shown).
pub const DUPLICATE_DEFINITION: &str = "KAPL0302";
/// A name refers to the wrong kind of item (`under` an authority, `use` of a
/// plan, ...).
pub const WRONG_KIND: &str = "KAPL0303";
/// `after` names a step that is not a step of the same plan.
pub const UNKNOWN_STEP: &str = "KAPL0304";
/// Steps are ordered after each other in a cycle.
pub const STEP_CYCLE: &str = "KAPL0305";
/// An objective or intent has no `bound` block.
pub const MISSING_BOUND: &str = "KAPL0306";
/// A clause that may appear once (`bound`, `never`, `about`) appears twice.
pub const DUPLICATE_CLAUSE: &str = "KAPL0307";
/// Authorities `use` each other in a cycle.
pub const AUTHORITY_CYCLE: &str = "KAPL0308";
/// An authority is defined but never used (warning).
pub const UNUSED_AUTHORITY: &str = "KAPL0309";
/// An address has bits set beyond its prefix length; they are ignored
/// (warning).
pub const HOST_BITS_SET: &str = "KAPL0310";
/// An IPv6 block also contains the IPv4-mapped range, so it covers IPv4
/// addresses too (warning).
pub const V6_BLOCK_COVERS_V4: &str = "KAPL0311";
/// `after` lists the same step twice (warning).
pub const DUPLICATE_AFTER: &str = "KAPL0312";
/// A qualified name refers to a stdlib module the policy does not `use`.
pub const MODULE_NOT_IMPORTED: &str = "KAPL0313";
/// An authority expands (through nested `use`) to too many rules.
pub const EXPANSION_TOO_LARGE: &str = "KAPL0314";
/// The checker found itself in a state it should not reach (a bug).
pub const INTERNAL: &str = "KAPL0399";
