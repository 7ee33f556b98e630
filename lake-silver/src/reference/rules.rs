//! Validity and typing of the reference workload, exactly as `SEMANTICS.md`
//! states them. Pure functions over the original text bronze keeps in
//! `_raw`, so a changed rule can be replayed from bronze.
//!
//! Why hand-written parsers: chrono's RFC 3339 parser accepts a space
//! separator and second 60, both invalid here; serde_json's `f64` parsing
//! refuses `1e999` outright, while the contract needs it to reach the
//! `bad_amount` rule; and the number grammar for numeric strings must be
//! JSON's, not Rust's (`"+1"`, `".5"`, `"NaN"` parse as `f64` in Rust).

use std::collections::BTreeMap;
use std::fmt;

use serde_json::value::RawValue;

use crate::scd2::Op;

/// Why an event is not valid; the first failing rule is the reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Invalid {
    /// `order_id` absent or null.
    NullOrderId,
    /// `updated_at` is not an RFC 3339 timestamp with an offset.
    BadUpdatedAt,
    /// `amount` is neither null, a finite JSON number, nor a string holding one.
    BadAmount,
    /// `op` is not `"c"`, `"u"` or `"d"`.
    BadOp,
    /// The record is not a JSON object at all (bronze lets none through).
    NotAnObject,
    /// A Debezium envelope without a known `op` (`c`, `u`, `d`, `r`) or
    /// without the row image that op needs (`after`, or `before` for `d`).
    BadEnvelope,
}

impl Invalid {
    /// The reason as stored in quarantine.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NullOrderId => "null_order_id",
            Self::BadUpdatedAt => "bad_updated_at",
            Self::BadAmount => "bad_amount",
            Self::BadOp => "bad_op",
            Self::NotAnObject => "not_an_object",
            Self::BadEnvelope => "bad_envelope",
        }
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An order event, typed.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderEvent {
    /// The business key (the empty string is a valid key).
    pub order_id: String,
    /// The buyer.
    pub customer_id: Option<String>,
    /// Product category.
    pub category: Option<String>,
    /// Sales region.
    pub region: Option<String>,
    /// Order value.
    pub amount: Option<f64>,
    /// Order status.
    pub status: Option<String>,
    /// Days since 1970-01-01, when `order_date` is a valid `YYYY-MM-DD`.
    pub order_date: Option<i32>,
    /// Canonical JSON text of `metadata` (absent and null are both `None`).
    pub metadata: Option<String>,
    /// The CDC operation.
    pub op: Op,
    /// `updated_at` as microseconds since the epoch, UTC.
    pub updated_at: i64,
}

/// Types one record of the `orders` stream, or names the first rule it breaks.
pub fn type_order(raw: &str) -> Result<OrderEvent, Invalid> {
    let fields: EventFields = serde_json::from_str(raw).map_err(|_| Invalid::NotAnObject)?;
    type_fields(|name| fields.get(name), None)
}

/// The fields of a flat event that typing reads.
const EVENT_FIELDS: [&str; 10] = [
    "order_id",
    "customer_id",
    "category",
    "region",
    "amount",
    "status",
    "order_date",
    "op",
    "updated_at",
    "metadata",
];

/// One flat event's [`EVENT_FIELDS`], read in one pass over its object,
/// each value borrowed from the text. Typing is the largest part of a
/// silver run, and a map of owned keys cost an allocation per field. Other
/// fields are checked as JSON and skipped; a repeated name keeps its last
/// value, as a map does.
struct EventFields<'a>([Option<&'a RawValue>; EVENT_FIELDS.len()]);

impl<'a> EventFields<'a> {
    fn get(&self, name: &str) -> Option<&'a str> {
        let i = EVENT_FIELDS.iter().position(|field| *field == name)?;
        self.0[i].map(RawValue::get)
    }
}

impl<'de> serde::Deserialize<'de> for EventFields<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Fields;
        impl<'de> serde::de::Visitor<'de> for Fields {
            type Value = EventFields<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                let mut fields = EventFields([None; EVENT_FIELDS.len()]);
                while let Some(Key(key)) = map.next_key()? {
                    // Unknown values are read as raw JSON too, not skipped
                    // as `IgnoredAny`: that parses numbers, and `1e999` in
                    // an extra field must not make the record unreadable.
                    let value: &RawValue = map.next_value()?;
                    if let Some(i) = EVENT_FIELDS.iter().position(|field| *field == key) {
                        fields.0[i] = Some(value);
                    }
                }
                Ok(fields)
            }
        }
        deserializer.deserialize_map(Fields)
    }
}

/// An object key, borrowed from the text unless it has escapes.
struct Key<'de>(std::borrow::Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Text;
        impl<'de> serde::de::Visitor<'de> for Text {
            type Value = Key<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }

            fn visit_borrowed_str<E>(self, text: &'de str) -> Result<Self::Value, E> {
                Ok(Key(text.into()))
            }

            fn visit_str<E>(self, text: &str) -> Result<Self::Value, E> {
                Ok(Key(text.to_string().into()))
            }
        }
        deserializer.deserialize_str(Text)
    }
}

/// Types one Debezium-style change envelope of the `orders` stream:
/// `{"op": "c"|"u"|"d"|"r", "before": {…}, "after": {…}, …}`.
///
/// The row image is `after` for `c`, `u` and `r` (a snapshot read, typed as
/// a create) and `before` for `d`; its fields are then typed exactly as a
/// flat event's, so `updated_at` inside the image stays the sequence column.
///
/// A delete's instant is not in its image: `before` is the row as the last
/// write left it, so its `updated_at` is that write's instant (and many
/// sources put only the key in `before`). Taken as the delete's instant, it
/// would make the delete a sequence conflict with the write it ends, which
/// the delete wins, and the last version would vanish. So a delete happens
/// at the source's commit time, `source.ts_ms` (else the envelope's
/// `ts_ms`), in milliseconds, but never before one microsecond after
/// `before.updated_at`; without either time it is `bad_updated_at`. Other
/// envelope fields (`transaction`, `source.lsn`) are ignored. An envelope
/// without a known `op`, or without the image that op needs, is
/// [`Invalid::BadEnvelope`].
///
/// Kafka Connect's JSON converter with schemas on (its default) wraps the
/// envelope as `{"schema": …, "payload": {…}}`; such a record is read
/// through its `payload`.
pub fn type_debezium_order(raw: &str) -> Result<OrderEvent, Invalid> {
    let mut envelope: BTreeMap<String, &RawValue> =
        serde_json::from_str(raw).map_err(|_| Invalid::NotAnObject)?;
    if !envelope.contains_key("op")
        && let Some(payload) = envelope.get("payload")
    {
        envelope = serde_json::from_str(payload.get()).map_err(|_| Invalid::BadEnvelope)?;
    }
    let (op, image) = match envelope
        .get("op")
        .and_then(|op| json_string(op.get()))
        .as_deref()
    {
        Some("c") => ("\"c\"", "after"),
        Some("r") => ("\"c\"", "after"),
        Some("u") => ("\"u\"", "after"),
        Some("d") => ("\"d\"", "before"),
        _ => return Err(Invalid::BadEnvelope),
    };
    let image: BTreeMap<String, &RawValue> = envelope
        .get(image)
        .and_then(|image| serde_json::from_str(image.get()).ok())
        .ok_or(Invalid::BadEnvelope)?;
    let field = |name: &str| {
        if name == "op" {
            Some(op)
        } else {
            image.get(name).map(|v| v.get())
        }
    };
    if op != "\"d\"" {
        return type_fields(field, None);
    }
    let millis = |raw: Option<&&RawValue>| raw.and_then(|v| v.get().parse::<i64>().ok());
    let source: Option<BTreeMap<String, &RawValue>> = envelope
        .get("source")
        .and_then(|source| serde_json::from_str(source.get()).ok());
    let committed = millis(source.as_ref().and_then(|s| s.get("ts_ms")))
        .or_else(|| millis(envelope.get("ts_ms")))
        .and_then(|ms| ms.checked_mul(1000));
    let last_write = image
        .get("updated_at")
        .and_then(|v| json_string(v.get()))
        .and_then(|text| parse_timestamp(&text))
        .and_then(|at| at.checked_add(1));
    let at = match (committed, last_write) {
        (Some(committed), Some(after)) => committed.max(after),
        (Some(at), None) | (None, Some(at)) => at,
        // No usable time: typed as any event, which names the missing key
        // or `updated_at`.
        (None, None) => return type_fields(field, None),
    };
    type_fields(field, Some(at))
}

/// Types the fields of one event, given the raw JSON text of each;
/// `updated_at`, when given, is the event's instant instead of its field.
fn type_fields<'a>(
    field: impl Fn(&str) -> Option<&'a str>,
    updated_at: Option<i64>,
) -> Result<OrderEvent, Invalid> {
    let get = |name: &str| field(name).filter(|v| *v != "null");

    let order_id = get("order_id").ok_or(Invalid::NullOrderId)?;
    let order_id = string_value(order_id);
    let updated_at = match updated_at {
        Some(at) => at,
        None => get("updated_at")
            .and_then(json_string)
            .and_then(|s| parse_timestamp(&s))
            .ok_or(Invalid::BadUpdatedAt)?,
    };
    let amount = match get("amount") {
        None => None,
        Some(raw) => Some(parse_amount(raw).ok_or(Invalid::BadAmount)?),
    };
    let op = get("op")
        .and_then(json_string)
        .and_then(|s| Op::parse(&s))
        .ok_or(Invalid::BadOp)?;
    Ok(OrderEvent {
        order_id,
        customer_id: get("customer_id").map(string_value),
        category: get("category").map(string_value),
        region: get("region").map(string_value),
        amount,
        status: get("status").map(string_value),
        order_date: get("order_date")
            .and_then(json_string)
            .and_then(|s| parse_date(&s)),
        metadata: get("metadata").map(canonical_json),
        op,
        updated_at,
    })
}

/// The value of a JSON string literal, or `None` for any other JSON value.
pub fn json_string(raw: &str) -> Option<String> {
    if !raw.starts_with('"') {
        return None;
    }
    // Most strings have no escapes: their value is the text between the
    // quotes, when that text has no quote, backslash or control character
    // (exactly JSON's grammar for such a string; `&str` is valid UTF-8).
    if let Some(inner) = raw[1..].strip_suffix('"')
        && !inner.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20)
    {
        return Some(inner.to_string());
    }
    serde_json::from_str::<String>(raw).ok()
}

/// A value for a string column: a string's value; any other JSON value
/// (number, boolean, object, array) as its canonical JSON text (`12345`
/// becomes `"12345"`).
pub fn string_value(raw: &str) -> String {
    json_string(raw).unwrap_or_else(|| canonical_json(raw))
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±hh:mm)` (`t` and `z` accepted)
/// into microseconds since the epoch, UTC. No offset, a space separator,
/// second 60, a date alone: `None`. Fractions beyond microseconds are truncated.
pub fn parse_timestamp(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() < 20 {
        return None;
    }
    let days = parse_ymd(&b[..10])?;
    if !matches!(b[10], b'T' | b't') || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let hour = two_digits(&b[11..13])?;
    let minute = two_digits(&b[14..16])?;
    let second = two_digits(&b[17..19])?;
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let mut pos = 19;
    let mut micros: i64 = 0;
    if b[pos] == b'.' {
        pos += 1;
        let start = pos;
        while pos < b.len() && b[pos].is_ascii_digit() {
            if pos - start < 6 {
                micros = micros * 10 + i64::from(b[pos] - b'0');
            }
            pos += 1;
        }
        let digits = pos - start;
        if digits == 0 {
            return None;
        }
        for _ in digits..6 {
            micros *= 10;
        }
    }
    let offset_seconds: i64 = match b.get(pos..)? {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let hours = two_digits(&[*h1, *h2])?;
            let minutes = two_digits(&[*m1, *m2])?;
            if hours > 23 || minutes > 59 {
                return None;
            }
            let total = i64::from(hours * 3600 + minutes * 60);
            if *sign == b'+' { total } else { -total }
        }
        _ => return None,
    };
    let seconds =
        i64::from(days) * 86_400 + i64::from(hour * 3600 + minute * 60 + second) - offset_seconds;
    Some(seconds * 1_000_000 + micros)
}

/// Parses a `YYYY-MM-DD` date into days since 1970-01-01.
pub fn parse_date(text: &str) -> Option<i32> {
    let b = text.as_bytes();
    if b.len() != 10 {
        return None;
    }
    parse_ymd(b)
}

fn two_digits(b: &[u8]) -> Option<u32> {
    match b {
        [a @ b'0'..=b'9', c @ b'0'..=b'9'] => Some(u32::from(a - b'0') * 10 + u32::from(c - b'0')),
        _ => None,
    }
}

fn parse_ymd(b: &[u8]) -> Option<i32> {
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let year = two_digits(&b[0..2])? * 100 + two_digits(&b[2..4])?;
    let month = two_digits(&b[5..7])?;
    let day = two_digits(&b[8..10])?;
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if day == 0 || day > days_in_month {
        return None;
    }
    Some(days_from_civil(year as i32, month, day))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i32, month: u32, day: u32) -> i32 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = month as i32;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day as i32 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Whether `text` matches JSON's number grammar exactly.
pub fn is_json_number(text: &str) -> bool {
    let b = text.as_bytes();
    let mut i = 0;
    if b.first() == Some(&b'-') {
        i += 1;
    }
    match b.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => {
            while b.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
        }
        _ => return false,
    }
    // A run of digits starting at `i`: how many.
    let digits = |i: usize| {
        b[i.min(b.len())..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count()
    };
    if b.get(i) == Some(&b'.') {
        let n = digits(i + 1);
        if n == 0 {
            return false;
        }
        i += 1 + n;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let n = digits(i);
        if n == 0 {
            return false;
        }
        i += n;
    }
    i == b.len()
}

/// An amount from its raw JSON: a number, or a string holding exactly a
/// JSON number; finite. `None` means `bad_amount` (null is handled by the caller).
pub fn parse_amount(raw: &str) -> Option<f64> {
    let text = match json_string(raw) {
        Some(text) => text,
        None if raw.starts_with(['-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9']) => {
            raw.to_string()
        }
        None => return None,
    };
    if !is_json_number(&text) {
        return None;
    }
    let value: f64 = text.parse().ok()?;
    value
        .is_finite()
        .then_some(if value == 0.0 { 0.0 } else { value })
}

/// Canonical JSON text: object keys sorted by code point, no insignificant
/// whitespace, strings re-escaped uniformly, numbers by value (integral
/// values within 2^53 without a fraction: `1.0` and `1` are the same value).
/// Text that is not JSON is returned unchanged (bronze lets none through).
pub fn canonical_json(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    if write_canonical(raw.trim(), &mut out).is_none() {
        return raw.to_string();
    }
    out
}

fn write_canonical(raw: &str, out: &mut String) -> Option<()> {
    match raw.as_bytes().first()? {
        b'{' => {
            let fields: BTreeMap<String, &RawValue> = serde_json::from_str(raw).ok()?;
            out.push('{');
            for (i, (key, value)) in fields.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::to_string(key).ok()?);
                out.push(':');
                write_canonical(value.get(), out)?;
            }
            out.push('}');
        }
        b'[' => {
            let items: Vec<&RawValue> = serde_json::from_str(raw).ok()?;
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item.get(), out)?;
            }
            out.push(']');
        }
        b'"' => {
            let text: String = serde_json::from_str(raw).ok()?;
            out.push_str(&serde_json::to_string(&text).ok()?);
        }
        b't' | b'f' | b'n' => out.push_str(raw),
        _ => match raw.parse::<f64>() {
            Ok(v) if v.is_finite() && v.fract() == 0.0 && v.abs() < 9_007_199_254_740_992.0 => {
                out.push_str(&format!("{}", v as i64));
            }
            Ok(v) if v.is_finite() => out.push_str(&serde_json::to_string(&v).ok()?),
            // Out of f64 range: only the same text is the same value.
            _ => out.push_str(raw),
        },
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debezium_envelopes_wrapped_in_a_schema_payload_pair_are_read_through_it() {
        let inner = r#"{"op":"u","before":null,"after":{"order_id":"o1","updated_at":"2025-11-04T10:00:00Z"}}"#;
        let wrapped = format!(r#"{{"schema":{{"type":"struct"}},"payload":{inner}}}"#);
        assert_eq!(type_debezium_order(&wrapped), type_debezium_order(inner));
        assert!(type_debezium_order(inner).is_ok());
        assert_eq!(
            type_debezium_order(r#"{"schema":{},"payload":"text"}"#),
            Err(Invalid::BadEnvelope)
        );
    }

    const GOOD: &str = r#"{"order_id":"o1","customer_id":"c1","category":"books","region":"eu","amount":"12.50","status":"new","order_date":"2025-11-04","op":"c","updated_at":"2025-11-04T10:00:00Z","metadata":{"b":1,"a":{"y":[1,2.0],"x":"é"}}}"#;

    #[test]
    fn a_good_event_is_typed() {
        let e = type_order(GOOD).unwrap();
        assert_eq!(e.order_id, "o1");
        assert_eq!(e.amount, Some(12.5));
        assert_eq!(e.order_date, Some(days_from_civil(2025, 11, 4)));
        assert_eq!(
            e.metadata.as_deref(),
            Some(r#"{"a":{"x":"é","y":[1,2]},"b":1}"#)
        );
        assert_eq!(e.op, Op::Create);
        assert_eq!(e.updated_at, 1_762_250_400_000_000);
    }

    #[test]
    fn rules_apply_in_order() {
        let reason = |raw: &str| type_order(raw).unwrap_err();
        assert_eq!(
            reason(r#"{"updated_at":"x","op":"z"}"#),
            Invalid::NullOrderId
        );
        assert_eq!(reason(r#"{"order_id":null}"#), Invalid::NullOrderId);
        assert_eq!(
            reason(r#"{"order_id":"a","updated_at":"2025-11-04 10:00:00Z","op":"z"}"#),
            Invalid::BadUpdatedAt
        );
        assert_eq!(
            reason(
                r#"{"order_id":"a","updated_at":"2025-11-04T10:00:00Z","amount":true,"op":"z"}"#
            ),
            Invalid::BadAmount
        );
        assert_eq!(
            reason(r#"{"order_id":"a","updated_at":"2025-11-04T10:00:00Z","op":"x"}"#),
            Invalid::BadOp
        );
        assert_eq!(
            reason(r#"{"order_id":"a","updated_at":"2025-11-04T10:00:00Z","op":"C"}"#),
            Invalid::BadOp
        );
        assert_eq!(
            reason(
                r#"{"order_id":"a","updated_at":"2025-11-04T10:00:00Z","amount":1e999,"op":"c"}"#
            ),
            Invalid::BadAmount
        );
        // The empty string is a valid key; numbers become their JSON text.
        assert_eq!(
            type_order(r#"{"order_id":"","updated_at":"2025-11-04T10:00:00Z","op":"d"}"#)
                .unwrap()
                .order_id,
            ""
        );
        let e = type_order(
            r#"{"order_id":12345,"customer_id":true,"updated_at":"2025-11-04T10:00:00Z","op":"u"}"#,
        )
        .unwrap();
        assert_eq!(
            (e.order_id.as_str(), e.customer_id.as_deref()),
            ("12345", Some("true"))
        );
        // A bad order_date is null, not invalid.
        let e = type_order(r#"{"order_id":"a","order_date":"2025-02-30","updated_at":"2025-11-04T10:00:00Z","op":"u"}"#).unwrap();
        assert_eq!(e.order_date, None);
    }

    #[test]
    fn fields_are_found_however_the_object_spells_them() {
        let at = r#""updated_at":"2025-11-04T10:00:00Z","op":"c""#;
        // An escaped name is the same name; a repeated one keeps its last value.
        let e = type_order(&format!(r#"{{"order\u005fid":"a",{at}}}"#)).unwrap();
        assert_eq!(e.order_id, "a");
        let e = type_order(&format!(
            r#"{{"status":"x","order_id":"a","status":"y",{at}}}"#
        ))
        .unwrap();
        assert_eq!(e.status.as_deref(), Some("y"));
        // Extra fields are skipped, even a number no f64 holds.
        let e = type_order(&format!(
            r#"{{"order_id":"a","extra":1e999,"more":{{"k":[1]}},{at}}}"#
        ))
        .unwrap();
        assert_eq!(e.order_id, "a");
        for raw in ["[1]", "42", "null", r#"{"order_id":"a"} x"#] {
            assert_eq!(type_order(raw), Err(Invalid::NotAnObject), "{raw}");
        }
    }

    #[test]
    fn strings_without_escapes_read_as_serde_json_reads_them() {
        let cases = [
            r#""abc""#,
            r#""""#,
            r#""ünïcødé ✓""#,
            r#""a\nb""#,
            r#""a\"b""#,
            "\"a\nb\"",
            "\"a\"b\"",
            "\"",
            "\"a\u{1}\"",
            "12",
            "\"a",
        ];
        for raw in cases {
            assert_eq!(
                json_string(raw),
                serde_json::from_str::<String>(raw).ok(),
                "{raw:?}"
            );
        }
    }

    #[test]
    fn timestamps_follow_rfc_3339_strictly() {
        let base = parse_timestamp("2025-11-04T10:00:00Z").unwrap();
        assert_eq!(parse_timestamp("2025-11-04t10:00:00z"), Some(base));
        assert_eq!(parse_timestamp("2025-11-04T12:00:00+02:00"), Some(base));
        assert_eq!(parse_timestamp("2025-11-04T09:30:00-00:30"), Some(base));
        assert_eq!(
            parse_timestamp("2025-11-04T10:00:00.1234567Z"),
            Some(base + 123_456)
        );
        assert_eq!(
            parse_timestamp("2025-11-04T10:00:00.5Z"),
            Some(base + 500_000)
        );
        for bad in [
            "2025-11-04T10:00:00",
            "2025-11-04 10:00:00Z",
            "2025-11-04T10:00:60Z",
            "2025-11-04",
            "1762250400",
            "2025-11-04T10:00:00.Z",
            "2025-11-04T24:00:00Z",
            "2025-02-29T10:00:00Z",
            "2025-11-04T10:00:00+0200",
            "2025-11-04T10:00Z",
            " 2025-11-04T10:00:00Z",
        ] {
            assert_eq!(parse_timestamp(bad), None, "{bad}");
        }
        assert!(parse_timestamp("2024-02-29T00:00:00Z").is_some());
        assert_eq!(parse_timestamp("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_timestamp("1969-12-31T23:59:59Z"), Some(-1_000_000));
    }

    #[test]
    fn amounts_follow_the_json_number_grammar() {
        for (raw, value) in [
            ("12.5", 12.5),
            ("\"12.50\"", 12.5),
            ("\"-0.5e-2\"", -0.005),
            ("-0", 0.0),
            ("1E3", 1000.0),
        ] {
            assert_eq!(parse_amount(raw), Some(value), "{raw}");
        }
        for raw in [
            "\"\"",
            "\" 12.5\"",
            "\"+12.5\"",
            "\".5\"",
            "\"NaN\"",
            "\"0x1A\"",
            "1e999",
            "\"1e999\"",
            "true",
            "[1]",
            "{}",
            "\"12.5 \"",
            "\"01\"",
        ] {
            assert_eq!(parse_amount(raw), None, "{raw}");
        }
    }

    #[test]
    fn metadata_compares_as_a_json_value() {
        assert_eq!(
            canonical_json(r#"{ "b" : 1, "a" : 2 }"#),
            canonical_json(r#"{"a":2,"b":1}"#)
        );
        assert_ne!(canonical_json("{}"), canonical_json("null"));
        assert_eq!(canonical_json(r#""\u00e9""#), canonical_json("\"é\""));
        assert_eq!(canonical_json("1.0"), "1");
        assert_eq!(canonical_json("[1e999]"), "[1e999]");
        let absent =
            type_order(r#"{"order_id":"a","updated_at":"2025-11-04T10:00:00Z","op":"u"}"#).unwrap();
        let null = type_order(
            r#"{"order_id":"a","metadata":null,"updated_at":"2025-11-04T10:00:00Z","op":"u"}"#,
        )
        .unwrap();
        assert_eq!(absent.metadata, null.metadata);
    }
}
