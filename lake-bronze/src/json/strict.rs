//! A strict RFC 8259 checker for one JSON text.
//!
//! Why not serde_json: it refuses `1e999` (the number is out of f64 range,
//! yet the text is valid JSON and must reach bronze so that silver can name
//! the `bad_amount`), and its skipping path does not check that `\u`
//! escapes pair their surrogates. Checking grammar only, without building
//! values, is also several times faster than parsing.

/// Why a line is not a JSON object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Invalid {
    /// Not JSON under RFC 8259.
    Json,
    /// Valid JSON, but not an object (`[1]`, `42`, `null`).
    NotAnObject,
}

/// How deep objects and arrays may nest before a line is refused.
pub const MAX_DEPTH: usize = 128;

/// Checks that `text` is exactly one JSON object, surrounded by optional
/// whitespace. `text` must already be valid UTF-8.
pub fn check_object(text: &[u8]) -> Result<(), (Invalid, String)> {
    check_object_keys(text, |_, _| {})
}

/// Like [`check_object`], calling `on_entry` with the raw text (between
/// the quotes, escapes not decoded) of every top-level key and the byte
/// range of its value in `text`, once the value is checked.
pub fn check_object_keys(
    text: &[u8],
    on_entry: impl FnMut(&[u8], std::ops::Range<usize>),
) -> Result<(), (Invalid, String)> {
    let mut parser = Parser {
        text,
        pos: 0,
        on_entry,
    };
    parser.skip_whitespace();
    let starts_object = parser.peek() == Some(b'{');
    parser
        .value(0)
        .and_then(|()| {
            parser.skip_whitespace();
            if parser.pos == text.len() {
                Ok(())
            } else {
                Err(parser.error("unexpected text after the JSON value"))
            }
        })
        .map_err(|message| (Invalid::Json, message))?;
    if starts_object {
        Ok(())
    } else {
        Err((
            Invalid::NotAnObject,
            "valid JSON, but not an object".to_string(),
        ))
    }
}

struct Parser<'a, F> {
    text: &'a [u8],
    pos: usize,
    on_entry: F,
}

impl<F: FnMut(&[u8], std::ops::Range<usize>)> Parser<'_, F> {
    fn peek(&self) -> Option<u8> {
        self.text.get(self.pos).copied()
    }

    fn error(&self, what: &str) -> String {
        format!("{what} at byte {}", self.pos)
    }

    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    fn expect(&mut self, byte: u8, what: &str) -> Result<(), String> {
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.error(what))
        }
    }

    fn value(&mut self, depth: usize) -> Result<(), String> {
        self.skip_whitespace();
        match self.peek() {
            Some(b'{') => self.object(depth + 1),
            Some(b'[') => self.array(depth + 1),
            Some(b'"') => self.string(),
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            Some(b'n') => self.literal(b"null"),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => Err(self.error("expected a JSON value")),
            None => Err(self.error("unexpected end of line")),
        }
    }

    fn object(&mut self, depth: usize) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Err(self.error(&format!("nesting deeper than {MAX_DEPTH}")));
        }
        self.pos += 1;
        self.skip_whitespace();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(());
        }
        loop {
            self.skip_whitespace();
            if self.peek() != Some(b'"') {
                return Err(self.error("expected a quoted object key"));
            }
            let key_start = self.pos + 1;
            self.string()?;
            let key_end = self.pos - 1;
            self.skip_whitespace();
            self.expect(b':', "expected `:` after an object key")?;
            self.skip_whitespace();
            let value_start = self.pos;
            self.value(depth)?;
            if depth == 1 {
                (self.on_entry)(&self.text[key_start..key_end], value_start..self.pos);
            }
            self.skip_whitespace();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return Err(self.error("expected `,` or `}` in an object")),
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Err(self.error(&format!("nesting deeper than {MAX_DEPTH}")));
        }
        self.pos += 1;
        self.skip_whitespace();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(());
        }
        loop {
            self.value(depth)?;
            self.skip_whitespace();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return Err(self.error("expected `,` or `]` in an array")),
            }
        }
    }

    fn literal(&mut self, word: &[u8]) -> Result<(), String> {
        if self.text[self.pos..].starts_with(word) {
            self.pos += word.len();
            Ok(())
        } else {
            Err(self.error("invalid literal"))
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
        self.pos - start
    }

    fn number(&mut self) -> Result<(), String> {
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(self.error("invalid number")),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if self.digits() == 0 {
                return Err(self.error("a fraction needs digits"));
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return Err(self.error("an exponent needs digits"));
            }
        }
        Ok(())
    }

    fn hex4(&mut self) -> Result<u16, String> {
        let digits = self
            .text
            .get(self.pos..self.pos + 4)
            .ok_or_else(|| self.error("truncated \\u escape"))?;
        let mut value = 0u16;
        for &d in digits {
            let nibble = match d {
                b'0'..=b'9' => d - b'0',
                b'a'..=b'f' => d - b'a' + 10,
                b'A'..=b'F' => d - b'A' + 10,
                _ => return Err(self.error("invalid \\u escape")),
            };
            value = value << 4 | u16::from(nibble);
        }
        self.pos += 4;
        Ok(value)
    }

    fn string(&mut self) -> Result<(), String> {
        self.pos += 1;
        loop {
            // Fast path over plain bytes; the text is valid UTF-8 already.
            while let Some(&b) = self.text.get(self.pos) {
                if b == b'"' || b == b'\\' || b < 0x20 {
                    break;
                }
                self.pos += 1;
            }
            match self.peek() {
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(());
                }
                Some(b'\\') => {
                    self.pos += 1;
                    match self.peek() {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => {
                            self.pos += 1;
                        }
                        Some(b'u') => {
                            self.pos += 1;
                            let unit = self.hex4()?;
                            match unit {
                                0xD800..=0xDBFF => {
                                    if !self.text[self.pos..].starts_with(b"\\u") {
                                        return Err(self.error("lone surrogate escape"));
                                    }
                                    self.pos += 2;
                                    if !(0xDC00..=0xDFFF).contains(&self.hex4()?) {
                                        return Err(self.error("lone surrogate escape"));
                                    }
                                }
                                0xDC00..=0xDFFF => {
                                    return Err(self.error("lone surrogate escape"));
                                }
                                _ => {}
                            }
                        }
                        _ => return Err(self.error("invalid escape")),
                    }
                }
                Some(_) => return Err(self.error("control character in a string")),
                None => return Err(self.error("unterminated string")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(text: &str) -> Result<(), Invalid> {
        check_object(text.as_bytes()).map_err(|(kind, _)| kind)
    }

    #[test]
    fn objects_pass() {
        for ok in [
            "{}",
            " {\"a\":1} ",
            "{\"a\":[1,2.5,-0.5e-2,1E+3,true,false,null,{\"b\":\"\\u00e9\\n\"}]}",
            "{\"amount\":1e999}",
            "{\"s\":\"\\ud83d\\ude00\"}",
            "{\"é\":\"ü\"}",
            "{\"a\":{}}",
        ] {
            assert_eq!(verdict(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn top_level_keys_are_reported_with_their_values() {
        let text = b"{\"a\":{\"inner\":1},\"b\\u0041\": [{\"x\":2}] ,\"c\":7}";
        let mut entries = Vec::new();
        check_object_keys(text, |k, value| {
            entries.push((
                String::from_utf8(k.to_vec()).unwrap(),
                String::from_utf8(text[value].to_vec()).unwrap(),
            ))
        })
        .unwrap();
        let expected = [
            ("a", "{\"inner\":1}"),
            ("b\\u0041", "[{\"x\":2}]"),
            ("c", "7"),
        ];
        let expected: Vec<(String, String)> = expected
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(entries, expected);
    }

    #[test]
    fn non_objects_are_named() {
        for text in ["[1]", "42", "null", "\"x\"", "true"] {
            assert_eq!(verdict(text), Err(Invalid::NotAnObject), "{text}");
        }
    }

    #[test]
    fn rfc_8259_is_enforced() {
        for bad in [
            "{\"a\":NaN}",
            "{\"a\":Infinity}",
            "{\"a\":-Infinity}",
            "{\"a\":1,}",
            "[1,]",
            "{'a':1}",
            "{\"a\":'x'}",
            "{\"s\":\"\\ud800\"}",
            "{\"s\":\"\\udc00\"}",
            "{\"s\":\"\\ud800\\u0041\"}",
            "{\"a\":01}",
            "{\"a\":.5}",
            "{\"a\":1.}",
            "{\"a\":+1}",
            "{\"a\":1e}",
            "{\"a\":0x1A}",
            "{\"a\":\"tab\there\"}",
            "{\"a\":\"\\x\"}",
            "{a:1}",
            "{\"a\" 1}",
            "{\"a\":1}{}",
            "{\"a\":1",
            "{\"a\":\"x",
            "",
            "{\"a\":tru}",
        ] {
            assert_eq!(verdict(bad), Err(Invalid::Json), "{bad}");
        }
    }

    #[test]
    fn deep_nesting_is_refused_not_a_stack_overflow() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(verdict(&deep), Err(Invalid::Json));
        let ok = format!("{{\"a\":{}{}}}", "[".repeat(100), "]".repeat(100));
        assert_eq!(verdict(&ok), Ok(()));
    }
}
