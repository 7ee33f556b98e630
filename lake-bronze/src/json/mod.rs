//! Reading newline-delimited JSON the way `SEMANTICS.md` defines it.
//!
//! - A line ends at LF; a CR just before the LF belongs to the line end; a
//!   last line without LF counts; an empty input has no lines.
//! - A blank line (empty or ASCII whitespace only) is not a record: it is
//!   counted, never stored.
//! - Every other line is a record when it is valid UTF-8 and exactly one
//!   RFC 8259 JSON object; otherwise it is dead-lettered as `invalid_utf8`,
//!   `invalid_json` or `not_an_object`.
//!
//! [`LineSplitter`] works on chunks of any size, so an input is never read
//! whole.

pub mod strict;

use std::fmt;

/// Why a record was dead-lettered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeadLetterReason {
    /// Not JSON under RFC 8259.
    InvalidJson,
    /// Bytes that are not UTF-8.
    InvalidUtf8,
    /// Valid JSON that is not an object.
    NotAnObject,
    /// A CSV record whose fields do not match the header.
    InvalidCsv,
}

impl DeadLetterReason {
    /// The reason as stored in the dead-letter table.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidJson => "invalid_json",
            Self::InvalidUtf8 => "invalid_utf8",
            Self::NotAnObject => "not_an_object",
            Self::InvalidCsv => "invalid_csv",
        }
    }
}

impl fmt::Display for DeadLetterReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One line of input, without its line end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Line<'a> {
    /// 1-based line number.
    pub number: u64,
    /// Byte offset of the line's first byte in the input.
    pub offset: u64,
    /// The line's bytes, without LF or the CR before it.
    pub bytes: &'a [u8],
}

/// What a line is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Classified<'a> {
    /// Empty or whitespace only: skipped and counted.
    Blank,
    /// A JSON object: a bronze row.
    Record(&'a str),
    /// Not readable: a dead-letter row.
    Dead {
        /// The rule it broke.
        reason: DeadLetterReason,
        /// Where and how, for the dead-letter table.
        detail: String,
    },
}

/// Classifies one line (given without its line end).
pub fn classify(bytes: &[u8]) -> Classified<'_> {
    classify_with_keys(bytes, |_, _| {})
}

/// Like [`classify`], calling `on_entry` with the raw text of every
/// top-level key and the byte range of its value as the line is checked
/// (one pass over the bytes, not two). Keys of a line that turns out not
/// to be a record are reported too: callers keep them only once the line
/// is a [`Classified::Record`].
pub fn classify_with_keys(
    bytes: &[u8],
    on_entry: impl FnMut(&[u8], std::ops::Range<usize>),
) -> Classified<'_> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Classified::Blank;
    }
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => {
            return Classified::Dead {
                reason: DeadLetterReason::InvalidUtf8,
                detail: format!("invalid UTF-8 at byte {}", e.valid_up_to()),
            };
        }
    };
    match strict::check_object_keys(bytes, on_entry) {
        Ok(()) => Classified::Record(text),
        Err((strict::Invalid::Json, detail)) => Classified::Dead {
            reason: DeadLetterReason::InvalidJson,
            detail,
        },
        Err((strict::Invalid::NotAnObject, detail)) => Classified::Dead {
            reason: DeadLetterReason::NotAnObject,
            detail,
        },
    }
}

/// Splits a byte stream into lines, chunk by chunk.
#[derive(Debug, Default)]
pub struct LineSplitter {
    carry: Vec<u8>,
    carry_offset: u64,
    next_number: u64,
    consumed: u64,
}

impl LineSplitter {
    /// A splitter at the start of an input.
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes fed so far.
    pub fn bytes_read(&self) -> u64 {
        self.consumed
    }

    /// Feeds the next chunk, calling `on_line` for every line it completes.
    pub fn feed<E>(
        &mut self,
        chunk: &[u8],
        mut on_line: impl FnMut(Line<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        let chunk_offset = self.consumed;
        self.consumed += chunk.len() as u64;
        let mut rest = chunk;
        let mut rest_offset = chunk_offset;
        if !self.carry.is_empty() {
            match memchr(rest) {
                Some(end) => {
                    self.carry.extend_from_slice(&rest[..end]);
                    let carry = std::mem::take(&mut self.carry);
                    self.emit(&carry, self.carry_offset, &mut on_line)?;
                    self.carry = carry;
                    self.carry.clear();
                    rest = &rest[end + 1..];
                    rest_offset += end as u64 + 1;
                }
                None => {
                    self.carry.extend_from_slice(rest);
                    return Ok(());
                }
            }
        }
        while let Some(end) = memchr(rest) {
            self.emit(&rest[..end], rest_offset, &mut on_line)?;
            rest = &rest[end + 1..];
            rest_offset += end as u64 + 1;
        }
        if !rest.is_empty() {
            self.carry.extend_from_slice(rest);
            self.carry_offset = rest_offset;
        }
        Ok(())
    }

    /// Ends the input: a last line without LF still counts.
    pub fn finish<E>(
        mut self,
        mut on_line: impl FnMut(Line<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        if !self.carry.is_empty() {
            let carry = std::mem::take(&mut self.carry);
            self.emit(&carry, self.carry_offset, &mut on_line)?;
        }
        Ok(())
    }

    fn emit<E>(
        &mut self,
        line: &[u8],
        offset: u64,
        on_line: &mut impl FnMut(Line<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        self.next_number += 1;
        let bytes = line.strip_suffix(b"\r").unwrap_or(line);
        on_line(Line {
            number: self.next_number,
            offset,
            bytes,
        })
    }
}

fn memchr(haystack: &[u8]) -> Option<usize> {
    memchr::memchr(b'\n', haystack)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(input: &[u8], chunk: usize) -> Vec<(u64, u64, Vec<u8>)> {
        let mut lines = Vec::new();
        let mut splitter = LineSplitter::new();
        let mut push = |l: Line<'_>| -> Result<(), ()> {
            lines.push((l.number, l.offset, l.bytes.to_vec()));
            Ok(())
        };
        for piece in input.chunks(chunk.max(1)) {
            splitter.feed(piece, &mut push).unwrap();
        }
        splitter.finish(&mut push).unwrap();
        lines
    }

    #[test]
    fn line_ends_follow_the_contract() {
        let input = b"a\r\nb\n\n  \nc\rd\ne";
        let expected = vec![
            (1, 0, b"a".to_vec()),
            (2, 3, b"b".to_vec()),
            (3, 5, b"".to_vec()),
            (4, 6, b"  ".to_vec()),
            (5, 9, b"c\rd".to_vec()),
            (6, 13, b"e".to_vec()),
        ];
        for chunk in 1..=input.len() {
            assert_eq!(split(input, chunk), expected, "chunk size {chunk}");
        }
        assert!(split(b"", 4).is_empty());
        assert_eq!(split(b"x\n", 4), vec![(1, 0, b"x".to_vec())]);
        assert_eq!(split(b"\n", 4), vec![(1, 0, b"".to_vec())]);
    }

    #[test]
    fn lines_are_classified() {
        assert_eq!(classify(b""), Classified::Blank);
        assert_eq!(classify(b" \t "), Classified::Blank);
        assert_eq!(classify(b"{\"a\":1}"), Classified::Record("{\"a\":1}"));
        let reason = |b: &[u8]| match classify(b) {
            Classified::Dead { reason, .. } => Some(reason),
            _ => None,
        };
        assert_eq!(reason(b"{\"a\":\xff}"), Some(DeadLetterReason::InvalidUtf8));
        assert_eq!(reason(b"{\"a\":NaN}"), Some(DeadLetterReason::InvalidJson));
        assert_eq!(reason(b"[1]"), Some(DeadLetterReason::NotAnObject));
        assert_eq!(reason(b"null"), Some(DeadLetterReason::NotAnObject));
        // A non-breaking space is not JSON whitespace.
        assert_eq!(
            reason("\u{a0}".as_bytes()),
            Some(DeadLetterReason::InvalidJson)
        );
    }
}
