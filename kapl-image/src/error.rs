//! Errors of the image reader, writer and validator (codes KAPL07xx).
//!
//! Input: whatever went wrong while reading or writing an image.
//! Output: one [`ImageError`] with a stable code ([`ImageError::code`]).

use kapl_codes as codes;

/// Why an image was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ImageError {
    /// KAPL0701: the input ends before the header or the length it declares.
    #[error("truncated image: {len} bytes, the image needs {expected}")]
    Truncated {
        /// Bytes present.
        len: usize,
        /// Bytes the header (or the header itself) requires.
        expected: usize,
    },
    /// KAPL0702: not a KAPL image.
    #[error("not a KAPL image: the file does not start with the `KAPLIMG` magic")]
    BadMagic,
    /// KAPL0703: an image of another format version.
    #[error(
        "unsupported image format version {found} (this build reads version {supported}); rebuild the image with the matching `kaplc build`"
    )]
    UnsupportedVersion {
        /// The version in the file.
        found: u16,
        /// The version this build reads.
        supported: u16,
    },
    /// KAPL0704: the sha256 checksum does not match (bit flip, tampering).
    #[error(
        "image checksum mismatch: the file was corrupted or altered after `kaplc build` wrote it"
    )]
    ChecksumMismatch,
    /// KAPL0705: more bytes than the header declares.
    #[error("image has trailing bytes: {len} bytes, the header declares {expected}")]
    TrailingBytes {
        /// Bytes present.
        len: usize,
        /// Bytes declared.
        expected: usize,
    },
    /// KAPL0706: the header is inconsistent.
    #[error("bad image header: {0}")]
    BadHeader(String),
    /// KAPL0707: the section table is inconsistent.
    #[error("bad image section table: {0}")]
    BadSectionTable(String),
    /// KAPL0708: a section's bytes do not decode.
    #[error("malformed `{section}` section at byte {offset}: {reason}")]
    Malformed {
        /// The section's name.
        section: &'static str,
        /// Offset inside the section.
        offset: usize,
        /// What is wrong.
        reason: String,
    },
    /// KAPL0709: the decoded tables are inconsistent (an index out of range,
    /// a non-total DFA, a cycle in `after`, ...).
    #[error("invalid image: {0}")]
    Invalid(String),
    /// KAPL0710: a table exceeds a documented limit.
    #[error("image too large: {what} exceeds the limit of {limit}")]
    TooLarge {
        /// What.
        what: String,
        /// The limit.
        limit: u64,
    },
}

impl ImageError {
    /// The stable diagnostic code.
    pub fn code(&self) -> &'static str {
        match self {
            ImageError::Truncated { .. } => codes::IMAGE_TRUNCATED,
            ImageError::BadMagic => codes::IMAGE_BAD_MAGIC,
            ImageError::UnsupportedVersion { .. } => codes::IMAGE_VERSION,
            ImageError::ChecksumMismatch => codes::IMAGE_CHECKSUM,
            ImageError::TrailingBytes { .. } => codes::IMAGE_TRAILING_BYTES,
            ImageError::BadHeader(_) => codes::IMAGE_BAD_HEADER,
            ImageError::BadSectionTable(_) => codes::IMAGE_BAD_SECTIONS,
            ImageError::Malformed { .. } => codes::IMAGE_MALFORMED,
            ImageError::Invalid(_) => codes::IMAGE_INVALID,
            ImageError::TooLarge { .. } => codes::IMAGE_TOO_LARGE,
        }
    }
}
