//! Every stable diagnostic and error code, one constant per code: the one
//! registry the compiler (re-exported as `kapl_syntax::codes`), the image
//! reader and the runtime take their codes from.
//!
//! Input: nothing. Output: the `&'static str` codes that diagnostics carry.
//! Ranges (shared decision): KAPL00xx input/loading/CLI; KAPL01xx lexical
//! and syntax; KAPL02xx literals (glob, address, port); KAPL03xx names,
//! structure, imports; KAPL04xx proof errors; KAPL05xx proof warnings;
//! KAPL06xx build/codegen; KAPL07xx image format; KAPL08xx runtime.
//! A code, once published, keeps its meaning; retired codes are not reused.

// ---------------------------------------------------------------- KAPL01xx
// Lexical and syntax errors (kapl-syntax: lexer and parser).

/// A token the grammar does not allow here (`expected ..., found ...`).
pub const UNEXPECTED_TOKEN: &str = "KAPL0101";
/// The file ends in the middle of an item.
pub const UNEXPECTED_EOF: &str = "KAPL0102";
/// A character that starts no token (stray `#`, `;`, an unquoted `/`, ...).
pub const UNEXPECTED_CHAR: &str = "KAPL0103";
/// A string literal without its closing quote before the end of the line.
pub const UNTERMINATED_STRING: &str = "KAPL0104";
/// A `/*` comment without its closing `*/`.
pub const UNTERMINATED_COMMENT: &str = "KAPL0105";
/// A NUL byte in the source text.
pub const NUL_BYTE: &str = "KAPL0106";
/// An escape other than `\"` and `\\` in an `about` or `use` string.
pub const INVALID_ESCAPE: &str = "KAPL0107";
/// So many errors that the rest were not reported.
pub const TOO_MANY_ERRORS: &str = "KAPL0108";
/// A token after the end of the grammar (reserved; the grammar accepts any
/// number of items, so the parser should never report it).
pub const EXTRA_TOKEN: &str = "KAPL0109";

// ---------------------------------------------------------------- KAPL02xx
// Literal errors: path globs, addresses, ports.

/// A pattern (or one of its brace branches) that does not start with `/`.
pub const GLOB_NOT_ABSOLUTE: &str = "KAPL0201";
/// A `.` or `..` segment in a pattern.
pub const GLOB_NOT_NORMALIZED: &str = "KAPL0202";
/// An empty segment (`//`) in a pattern.
pub const GLOB_EMPTY_SEGMENT: &str = "KAPL0203";
/// A pattern other than `/` that ends with `/`.
pub const GLOB_TRAILING_SLASH: &str = "KAPL0204";
/// A `{` without `}` or a `}` without `{`.
pub const GLOB_UNBALANCED_BRACE: &str = "KAPL0205";
/// A `[` without `]`, or a `/` inside a class.
pub const GLOB_UNCLOSED_CLASS: &str = "KAPL0206";
/// A class that can match nothing (`[]` or a class of only `/`).
pub const GLOB_EMPTY_CLASS: &str = "KAPL0207";
/// A class range whose ends are reversed (`[z-a]`).
pub const GLOB_REVERSED_RANGE: &str = "KAPL0208";
/// A non-ASCII character inside a class (classes match one byte).
pub const GLOB_NON_ASCII_CLASS: &str = "KAPL0209";
/// Brace expansion yields more than 1024 alternatives.
pub const GLOB_TOO_MANY_BRANCHES: &str = "KAPL0210";
/// A `\` at the end of a pattern, escaping nothing.
pub const GLOB_DANGLING_ESCAPE: &str = "KAPL0211";
/// A NUL byte (or other control byte that no path holds) in a pattern.
pub const GLOB_NUL: &str = "KAPL0212";
/// A pattern that would expand to more than the size limit.
pub const GLOB_TOO_LARGE: &str = "KAPL0213";
/// A parameter value (a `param` default or `--param NAME=VALUE`) that does
/// not start with `/`: values are absolute paths.
pub const PARAM_VALUE_NOT_ABSOLUTE: &str = "KAPL0214";
/// A parameter value with a `.` or `..` component.
pub const PARAM_VALUE_NOT_NORMALIZED: &str = "KAPL0215";
/// A parameter value with an empty component (`//`).
pub const PARAM_VALUE_EMPTY_COMPONENT: &str = "KAPL0216";
/// A parameter value other than `/` that ends with `/`.
pub const PARAM_VALUE_TRAILING_SLASH: &str = "KAPL0217";
/// A parameter value that holds a NUL byte, or is empty.
pub const PARAM_VALUE_NUL: &str = "KAPL0218";
/// A malformed parameter reference in a pattern: `$NAME` without braces,
/// an unclosed `${`, a `${...}` that holds no name, or a reference that
/// does not start the pattern or a brace alternative (write `\$` for a
/// literal `$`).
pub const PARAM_BAD_REFERENCE: &str = "KAPL0219";
/// A text in address position that is not an IPv4 or IPv6 address.
pub const ADDR_INVALID: &str = "KAPL0221";
/// A prefix length beyond 32 (IPv4) or 128 (IPv6), or missing after `/`.
pub const ADDR_BAD_PREFIX: &str = "KAPL0222";
/// A port number that is not an integer from 0 to 65535.
pub const PORT_OUT_OF_RANGE: &str = "KAPL0231";
/// A port range whose low end is above its high end (`9000-8000`).
pub const PORT_REVERSED_RANGE: &str = "KAPL0232";
/// A host name in a `net` rule that is empty (`""`, `"."`).
pub const NAME_EMPTY: &str = "KAPL0241";
/// A host name longer than 253 bytes (without its trailing dot).
pub const NAME_TOO_LONG: &str = "KAPL0242";
/// A host name with an empty label (`"a..b"`, a leading dot).
pub const NAME_EMPTY_LABEL: &str = "KAPL0243";
/// A host-name label longer than 63 bytes.
pub const NAME_LONG_LABEL: &str = "KAPL0244";
/// A host name with a non-ASCII character: write its IDNA form
/// (`xn--...`).
pub const NAME_NON_ASCII: &str = "KAPL0245";
/// A character no host-name label holds (labels hold letters, digits, `-`
/// and `_`).
pub const NAME_BAD_CHAR: &str = "KAPL0246";
/// A wildcard that is not a whole label: `*` inside a label
/// (`"a*.example.com"`), or `**` anywhere but the leftmost label.
pub const NAME_BAD_WILDCARD: &str = "KAPL0247";

// ---------------------------------------------------------------- KAPL04xx
// Proof errors (owner: prover). Each carries a witness request when one
// exists.

/// A rule of an intent's bound reaches outside its objective's bound.
pub const INTENT_EXCEEDS_OBJECTIVE: &str = "KAPL0401";
/// A grant reaches outside its plan parent's bound.
pub const GRANT_EXCEEDS_BOUND: &str = "KAPL0402";
/// A grant reaches a `never` rule above it (fix: `except` on the grant).
pub const GRANT_REACHES_NEVER: &str = "KAPL0403";
/// The solver gave up within its limits: the obligation is not proved.
pub const PROOF_UNKNOWN: &str = "KAPL0404";
/// Internal prover error: a witness did not replay through the reference
/// semantics, or the solver failed (a bug; the policy is not accepted).
pub const PROOF_INTERNAL: &str = "KAPL0405";

// ---------------------------------------------------------------- KAPL05xx
// Proof warnings (owner: prover).

/// A grant can never match anything (e.g. its `except` removes every path).
pub const GRANT_MATCHES_NOTHING: &str = "KAPL0501";
/// A grant is wholly covered by another grant of the same step (or, for a
/// plan-wide grant, by another plan-wide grant).
pub const GRANT_REDUNDANT: &str = "KAPL0502";
/// A `never` rule that no bound at or below its level reaches.
pub const NEVER_UNREACHED: &str = "KAPL0503";
/// `kaplc diff`: NEW allows more than OLD at this level: a wider bound or
/// grant, or a `never` that forbids less (`--format sarif` result).
pub const DIFF_WIDENS: &str = "KAPL0510";
/// `kaplc diff`: NEW allows less than OLD at this level (`--format sarif`
/// result).
pub const DIFF_NARROWS: &str = "KAPL0511";
/// `kaplc diff`: an example request did not replay through the reference
/// semantics, so the comparison is undecided and counts as a widening
/// (`--format sarif` result).
pub const DIFF_UNDECIDED: &str = "KAPL0512";

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
/// `--param NAME=VALUE` names no parameter the policy declares, or is not
/// of the form `NAME=VALUE` (exit 2, with a did-you-mean when one is
/// close).
pub const UNKNOWN_PARAM_FLAG: &str = "KAPL0011";

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
/// A pattern uses `${NAME}` but the policy declares no `param NAME`.
pub const UNKNOWN_PARAM: &str = "KAPL0315";
/// A parameter is used but has no value: no `--param NAME=/path` was
/// given and its declaration has no default.
pub const PARAM_WITHOUT_VALUE: &str = "KAPL0316";
/// A parameter is declared but no pattern uses it (warning).
pub const UNUSED_PARAM: &str = "KAPL0317";
/// The checker found itself in a state it should not reach (a bug).
pub const INTERNAL: &str = "KAPL0399";
/// A host name in a `net bind` rule: a socket binds a local address, which
/// no name stands for.
pub const NAME_IN_BIND: &str = "KAPL0318";

// ---------------------------------------------------------------- KAPL06xx
// Build and code generation (owner: image; `kapl-codegen`, `kaplc build`).

/// Translation validation failed: the emitted tables, decoded back, differ
/// from the prover's automata or the grants (a compiler bug; nothing is
/// written). Carries a witness request.
pub const TRANSLATION_MISMATCH: &str = "KAPL0601";
/// A table exceeds a documented image or BPF map limit
/// (`kapl_image::limits`).
pub const LIMIT_EXCEEDED: &str = "KAPL0602";
/// Warning: a step may execute the dynamic loader, so files it may read can
/// be run as programs (`ld.so FILE`), and that effective exec authority
/// leaves the objective's exec bound. Carries an exec witness.
pub const LOADER_EXEC_AUTHORITY: &str = "KAPL0603";
/// The generated image is internally inconsistent (a compiler bug).
pub const IMAGE_ENCODING: &str = "KAPL0604";
/// The image file cannot be written (`kaplc build`, exit 2).
pub const IMAGE_UNWRITABLE: &str = "KAPL0605";
/// Warning: an exec grant names a path that is a symbolic link on the
/// building machine. The runtime grants the regular file it resolves to
/// when the step starts, and only if no step of the plan may create, write
/// or delete the link or any directory on the way (otherwise the session
/// could plant or redirect it, and the exec is refused with that reason);
/// naming the file itself makes the grant independent of the link. Links the
/// standard library names on purpose (the loader by every path a system
/// may use) are not reported.
pub const EXEC_GRANT_SYMLINK: &str = "KAPL0606";
/// Warning: a program an exec grant names cannot start in its step on the
/// building machine, because the kernel also executes its ELF loader
/// (`PT_INTERP`) or its script's `#!` interpreter, and no exec grant of
/// that step covers it (the runtime refuses the exec, exit 126).
pub const EXEC_STARTER_NOT_GRANTED: &str = "KAPL0607";
/// `--against IMAGE`: the image cannot be read, fails verification, or is
/// not an objective image (it holds no objective tables; build one with
/// `kaplc build` of a file that holds objectives and no plans).
pub const AGAINST_IMAGE: &str = "KAPL0608";
/// `--against IMAGE`: the plan file declares an objective or intent; with
/// `--against` they come from the image only (one with the same name as
/// the image's would replace the objective the plan is proved against).
pub const AGAINST_REDEFINES: &str = "KAPL0609";
/// `--against IMAGE`: `--param` gives a parameter of the objective image a
/// value other than the one the image was built (and proved) with; a plan
/// takes the objective's values.
pub const AGAINST_REBINDS_PARAM: &str = "KAPL0610";

// ---------------------------------------------------------------- KAPL07xx
// Image format (owner: image; `kapl_image::ImageError::code`).

/// The image is shorter than its header or than the length it declares.
pub const IMAGE_TRUNCATED: &str = "KAPL0701";
/// Not a KAPL image (bad magic).
pub const IMAGE_BAD_MAGIC: &str = "KAPL0702";
/// An image format version this build does not read.
pub const IMAGE_VERSION: &str = "KAPL0703";
/// The SHA-256 checksum does not match (corruption or tampering).
pub const IMAGE_CHECKSUM: &str = "KAPL0704";
/// More bytes than the header declares.
pub const IMAGE_TRAILING_BYTES: &str = "KAPL0705";
/// The header is inconsistent (header length, reserved bytes).
pub const IMAGE_BAD_HEADER: &str = "KAPL0706";
/// The section table is inconsistent (missing, misplaced or reordered
/// sections, non-zero padding).
pub const IMAGE_BAD_SECTIONS: &str = "KAPL0707";
/// A section's bytes do not decode.
pub const IMAGE_MALFORMED: &str = "KAPL0708";
/// The decoded tables are inconsistent (an index out of range, a cycle in
/// `after`, a grant where it does not hold, ...).
pub const IMAGE_INVALID: &str = "KAPL0709";
/// A table exceeds a documented limit.
pub const IMAGE_TOO_LARGE: &str = "KAPL0710";

// ---------------------------------------------------------------- KAPL08xx
// Runtime (kapl-run): each names the missing piece and how to get it.

/// Landlock is missing or below the ABI the image needs (7).
pub const RUN_LANDLOCK: &str = "KAPL0801";
/// cgroup v2 is not mounted, not writable, or lacks `cgroup.kill`.
pub const RUN_CGROUP: &str = "KAPL0802";
/// The BPF programs cannot be loaded or attached (not root, no BTF, ...).
pub const RUN_BPF: &str = "KAPL0803";
/// The audit netlink socket is unavailable (Landlock denial reports).
pub const RUN_AUDIT: &str = "KAPL0804";
/// The image cannot be read or fails verification.
pub const RUN_IMAGE: &str = "KAPL0805";
/// No such plan or step, or a refused step change.
pub const RUN_STEP: &str = "KAPL0806";
/// The command could not be started under the step's confinement.
pub const RUN_SPAWN: &str = "KAPL0807";
/// Session control failed (no session, unreachable, bad request).
pub const RUN_SESSION: &str = "KAPL0808";
/// `kapl-run` was called with arguments it does not take.
pub const RUN_USAGE: &str = "KAPL0809";
/// The command's program was not found (exit status 127).
pub const RUN_NOT_FOUND: &str = "KAPL0810";
/// A plan image was built against another objective image than the one
/// it is checked against (its recorded objective identity differs).
pub const RUN_OTHER_OBJECTIVE: &str = "KAPL0811";
/// The runtime's own containment checker found a step whose authority
/// leaves its objective's or intent's bound, or reaches a `never` rule (the
/// finding carries a witness: a path, a program, or an address and port).
pub const RUN_NOT_CONTAINED: &str = "KAPL0812";
/// `kapl-run report` cannot make its page: the audit file cannot be read
/// or the page written, or the session named with `--session` left no
/// record of its audit file (it ran without `--audit`, as another user, or
/// before the machine restarted).
pub const RUN_REPORT: &str = "KAPL0813";

// ---------------------------------------------------------------- the table
// Built from this file by `build.rs`: every constant above, with its doc
// comment, so descriptions (SARIF rules, the book) cannot drift.

/// One code of the registry with its description.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodeDoc {
    /// The code, `KAPL` and four digits.
    pub code: &'static str,
    /// The constant's name in this crate (`UNEXPECTED_TOKEN`).
    pub name: &'static str,
    /// Its doc comment, lines joined by spaces (markdown).
    pub doc: &'static str,
}

/// Every code in this file, in the order of the file.
pub const DOCS: &[CodeDoc] = include!(concat!(env!("OUT_DIR"), "/docs.rs"));

/// The registry entry of a code.
#[must_use]
pub fn doc(code: &str) -> Option<&'static CodeDoc> {
    DOCS.iter().find(|d| d.code == code)
}

/// Where the book is published; the codes page is `codes.html` under it,
/// with one anchor per code (`#kapl0101`). Set `KAPL_BOOK_URL` when
/// building to point at another copy of the book.
pub const BOOK_URL: &str = match option_env!("KAPL_BOOK_URL") {
    Some(url) => url,
    None => "https://kapl-lang.github.io/kapl/",
};

impl CodeDoc {
    /// The first sentence of the description (a period outside
    /// parentheses and code spans, followed by a space or the end).
    #[must_use]
    pub fn summary(&self) -> &'static str {
        let doc = self.doc;
        let bytes = doc.as_bytes();
        let (mut depth, mut code) = (0usize, false);
        for (i, &b) in bytes.iter().enumerate() {
            match b {
                b'`' => code = !code,
                b'(' if !code => depth += 1,
                b')' if !code => depth = depth.saturating_sub(1),
                b'.' if !code && depth == 0 && bytes.get(i + 1).is_none_or(|&n| n == b' ') => {
                    return &doc[..=i];
                }
                _ => {}
            }
        }
        doc
    }

    /// The anchor of this code on the book's codes page (`kapl0101`).
    #[must_use]
    pub fn anchor(&self) -> String {
        self.code.to_ascii_lowercase()
    }

    /// The address of this code's entry in the book.
    #[must_use]
    pub fn help_uri(&self) -> String {
        let base = BOOK_URL.trim_end_matches('/');
        format!("{base}/codes.html#{}", self.anchor())
    }
}

#[cfg(test)]
mod tests {
    use super::{DOCS, doc};

    #[test]
    fn every_code_is_in_the_table_once_with_a_description() {
        assert!(DOCS.len() > 80, "{}", DOCS.len());
        for d in DOCS {
            assert!(d.code.len() == 8 && d.code.starts_with("KAPL"), "{d:?}");
            assert!(
                !d.doc.is_empty() && d.summary().len() <= d.doc.len(),
                "{d:?}"
            );
            assert_eq!(DOCS.iter().filter(|e| e.code == d.code).count(), 1, "{d:?}");
        }
        let eof = doc("KAPL0102").map(|d| (d.name, d.doc));
        assert_eq!(
            eof,
            Some(("UNEXPECTED_EOF", "The file ends in the middle of an item."))
        );
    }

    #[test]
    fn summaries_stop_at_the_first_sentence_outside_parentheses() {
        let s = |c| doc(c).map(|d| d.summary());
        assert_eq!(
            s("KAPL0501"),
            Some("A grant can never match anything (e.g. its `except` removes every path).")
        );
        assert_eq!(
            s("KAPL0405"),
            Some(
                "Internal prover error: a witness did not replay through the reference \
                 semantics, or the solver failed (a bug; the policy is not accepted)."
            )
        );
        assert_eq!(
            s("KAPL0601").map(|x| x.ends_with("(a compiler bug; nothing is written).")),
            Some(true)
        );
    }

    #[test]
    fn help_uris_point_into_the_books_codes_page() {
        let u = doc("KAPL0403").map(super::CodeDoc::help_uri);
        assert!(
            u.as_deref().is_some_and(|u| u.starts_with("https://")
                && u.ends_with("/codes.html#kapl0403")
                && !u.contains("example.invalid")),
            "{u:?}"
        );
    }
}
