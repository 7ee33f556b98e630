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
    /// A line (or CSV record) longer than
    /// [`BronzeOptions::max_line_bytes`](crate::BronzeOptions::max_line_bytes):
    /// the dead letter holds its first [`DEAD_LETTER_PREFIX`] bytes.
    LineTooLong,
}

/// How many bytes of an overlong line its dead letter keeps.
pub const DEAD_LETTER_PREFIX: usize = 64 * 1024;

impl DeadLetterReason {
    /// The reason as stored in the dead-letter table.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidJson => "invalid_json",
            Self::InvalidUtf8 => "invalid_utf8",
            Self::NotAnObject => "not_an_object",
            Self::InvalidCsv => "invalid_csv",
            Self::LineTooLong => "line_too_long",
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
    /// The line's length in bytes, without LF or the CR before it: more
    /// than `bytes` holds when the line was longer than the splitter's bound.
    pub length: u64,
    /// The line's bytes, without LF or the CR before it (at most the
    /// splitter's bound of them).
    pub bytes: &'a [u8],
}

impl Line<'_> {
    /// Whether the line was longer than the splitter keeps.
    pub fn is_cut(&self) -> bool {
        self.length > self.bytes.len() as u64
    }
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
///
/// A line longer than the splitter's bound is not held whole: its first
/// bytes up to the bound are kept, the rest is counted and dropped, and the
/// line is handed on with its full [`Line::length`], so memory stays at the
/// bound whatever the input.
#[derive(Debug)]
pub struct LineSplitter {
    carry: Vec<u8>,
    carry_offset: u64,
    /// Bytes of the carried line dropped past `max_line`.
    dropped: u64,
    max_line: usize,
    next_number: u64,
    consumed: u64,
}

impl Default for LineSplitter {
    fn default() -> Self {
        Self::new()
    }
}

impl LineSplitter {
    /// A splitter at the start of an input, with no bound on line length.
    pub fn new() -> Self {
        Self::with_max_line(usize::MAX)
    }

    /// A splitter that keeps at most `max_line` bytes of any line.
    pub fn with_max_line(max_line: usize) -> Self {
        Self {
            carry: Vec::new(),
            carry_offset: 0,
            dropped: 0,
            max_line,
            next_number: 0,
            consumed: 0,
        }
    }

    /// Adds `bytes` to the carried line, up to the bound.
    fn carry_more(&mut self, bytes: &[u8]) {
        let room = self.max_line.saturating_sub(self.carry.len());
        let kept = bytes.len().min(room);
        self.carry.extend_from_slice(&bytes[..kept]);
        self.dropped += (bytes.len() - kept) as u64;
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
        if !self.carry.is_empty() || self.dropped > 0 {
            match memchr(rest) {
                Some(end) => {
                    self.carry_more(&rest[..end]);
                    let carry = std::mem::take(&mut self.carry);
                    let length = carry.len() as u64 + std::mem::take(&mut self.dropped);
                    self.emit(&carry, self.carry_offset, length, &mut on_line)?;
                    self.carry = carry;
                    self.carry.clear();
                    rest = &rest[end + 1..];
                    rest_offset += end as u64 + 1;
                }
                None => {
                    self.carry_more(rest);
                    return Ok(());
                }
            }
        }
        while let Some(end) = memchr(rest) {
            let kept = end.min(self.max_line);
            self.emit(&rest[..kept], rest_offset, end as u64, &mut on_line)?;
            rest = &rest[end + 1..];
            rest_offset += end as u64 + 1;
        }
        if !rest.is_empty() {
            self.carry_offset = rest_offset;
            self.carry_more(rest);
        }
        Ok(())
    }

    /// Ends the input: a last line without LF still counts.
    pub fn finish<E>(
        mut self,
        mut on_line: impl FnMut(Line<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        if !self.carry.is_empty() || self.dropped > 0 {
            let carry = std::mem::take(&mut self.carry);
            let length = carry.len() as u64 + self.dropped;
            self.emit(&carry, self.carry_offset, length, &mut on_line)?;
        }
        Ok(())
    }

    /// Hands on a line whose first bytes are `line` and whose full length
    /// (without its LF) is `length`.
    fn emit<E>(
        &mut self,
        line: &[u8],
        offset: u64,
        length: u64,
        on_line: &mut impl FnMut(Line<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        self.next_number += 1;
        let whole = line.len() as u64 == length;
        let (bytes, length) = match line.strip_suffix(b"\r") {
            Some(stripped) if whole => (stripped, length - 1),
            _ => (line, length),
        };
        on_line(Line {
            number: self.next_number,
            offset,
            length,
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
    fn an_overlong_line_keeps_only_its_first_bytes_and_its_length() {
        let input = format!("ab\n{}\r\n{}\ncd", "x".repeat(25), "y".repeat(9));
        for chunk in [1, 3, 7, 100] {
            let mut lines = Vec::new();
            let mut splitter = LineSplitter::with_max_line(10);
            let mut push = |l: Line<'_>| -> Result<(), ()> {
                lines.push((l.number, l.length, l.is_cut(), l.bytes.to_vec()));
                Ok(())
            };
            for piece in input.as_bytes().chunks(chunk) {
                splitter.feed(piece, &mut push).unwrap();
            }
            splitter.finish(&mut push).unwrap();
            assert_eq!(
                lines,
                vec![
                    (1, 2, false, b"ab".to_vec()),
                    (2, 26, true, b"x".repeat(10)),
                    (3, 9, false, b"y".repeat(9)),
                    (4, 2, false, b"cd".to_vec()),
                ],
                "chunks of {chunk}"
            );
        }
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
