//! Positions and URIs: byte offsets ↔ LSP positions, `file:` URIs ↔ paths.
//!
//! Input: a document's text, and the position encoding agreed with the
//! client. Output: conversions both ways. LSP counts columns in UTF-16 code
//! units unless the client accepts UTF-8; spans count bytes.

use lsp_types::{Position, Range, Uri};
use std::str::FromStr;

/// How columns are counted on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// UTF-16 code units (the LSP default).
    Utf16,
    /// Bytes.
    Utf8,
}

/// Line starts of one text, for offset ↔ position conversion.
#[derive(Clone, Debug)]
pub struct LineIndex {
    starts: Vec<usize>,
    len: usize,
}

impl LineIndex {
    /// Indexes `text`.
    pub fn new(text: &str) -> LineIndex {
        let mut starts = vec![0];
        for (i, b) in text.bytes().enumerate() {
            if b == b'\n' {
                starts.push(i + 1);
            }
        }
        LineIndex {
            starts,
            len: text.len(),
        }
    }

    /// The LSP position of a byte offset (clamped to the text).
    pub fn position(&self, text: &str, offset: usize, enc: Encoding) -> Position {
        let offset = offset.min(self.len);
        let line = match self.starts.binary_search(&offset) {
            Ok(i) => i,
            Err(i) => i.saturating_sub(1),
        };
        let start = self.starts.get(line).copied().unwrap_or(0);
        let mut end = offset;
        while end > start && !text.is_char_boundary(end) {
            end -= 1;
        }
        let piece = text.get(start..end).unwrap_or("");
        let col = match enc {
            Encoding::Utf8 => piece.len(),
            Encoding::Utf16 => piece.chars().map(char::len_utf16).sum(),
        };
        Position::new(line as u32, col as u32)
    }

    /// The byte offset of an LSP position (clamped to its line and the text).
    pub fn offset(&self, text: &str, pos: Position, enc: Encoding) -> usize {
        let Some(&start) = self.starts.get(pos.line as usize) else {
            return self.len;
        };
        let end = self
            .starts
            .get(pos.line as usize + 1)
            .copied()
            .unwrap_or(self.len);
        let line = text.get(start..end).unwrap_or("");
        let want = pos.character as usize;
        let mut units = 0;
        for (i, ch) in line.char_indices() {
            if units >= want || ch == '\n' || ch == '\r' {
                return start + i;
            }
            units += match enc {
                Encoding::Utf8 => ch.len_utf8(),
                Encoding::Utf16 => ch.len_utf16(),
            };
        }
        let trimmed = line.trim_end_matches(['\n', '\r']);
        start + trimmed.len()
    }

    /// The LSP range of a byte range.
    pub fn range(&self, text: &str, r: std::ops::Range<usize>, enc: Encoding) -> Range {
        Range::new(
            self.position(text, r.start, enc),
            self.position(text, r.end, enc),
        )
    }
}

/// The file-system path of a `file:` URI (percent-decoded), if it is one.
pub fn uri_to_path(uri: &Uri) -> Option<String> {
    let s = uri.as_str();
    let rest = s.strip_prefix("file://")?;
    // `file:///p` (empty authority) or `file://localhost/p`.
    let path = if rest.starts_with('/') {
        rest
    } else {
        rest.strip_prefix("localhost")?
    };
    let path = path.split(['?', '#']).next().unwrap_or(path);
    percent_decode(path)
}

/// The `file:` URI of an absolute path.
pub fn path_to_uri(path: &str) -> Option<Uri> {
    let mut s = String::from("file://");
    for b in path.bytes() {
        let keep = b.is_ascii_alphanumeric() || b"/-._~".contains(&b);
        if keep {
            s.push(b as char);
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    Uri::from_str(&s).ok()
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests fail loudly")]
mod tests {
    use super::*;

    #[test]
    fn positions_round_trip_in_both_encodings() {
        let text = "ab\n€x𝄞y\r\nz";
        let idx = LineIndex::new(text);
        for enc in [Encoding::Utf16, Encoding::Utf8] {
            for (off, _) in text.char_indices() {
                let p = idx.position(text, off, enc);
                let back = idx.offset(text, p, enc);
                let ch = text[off..].chars().next();
                if ch == Some('\n') || ch == Some('\r') {
                    continue;
                }
                assert_eq!(back, off, "{enc:?} {p:?}");
            }
        }
        // `y` after a 3-byte and a 4-byte character: 1 + 2 UTF-16 units.
        let y = text.find('y').unwrap();
        assert_eq!(idx.position(text, y, Encoding::Utf16), Position::new(1, 4));
        assert_eq!(idx.position(text, y, Encoding::Utf8), Position::new(1, 8));
        // Past the end of a line: clamped before the line end.
        let end = idx.offset(text, Position::new(1, 99), Encoding::Utf16);
        assert_eq!(&text[end..end + 1], "\r");
        assert_eq!(
            idx.offset(text, Position::new(9, 0), Encoding::Utf16),
            text.len()
        );
    }

    #[test]
    fn uris() {
        let uri = path_to_uri("/tmp/a b/ü.kapl").unwrap();
        assert_eq!(uri.as_str(), "file:///tmp/a%20b/%C3%BC.kapl");
        assert_eq!(uri_to_path(&uri).as_deref(), Some("/tmp/a b/ü.kapl"));
        let other = Uri::from_str("untitled:Untitled-1").ok();
        assert_eq!(other.as_ref().and_then(uri_to_path), None);
    }
}
