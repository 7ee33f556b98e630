//! Event lines for tests: a JSON-lines record builder, and the reference
//! workload's `orders` change event (`SEMANTICS.md`) on top of it.
//!
//! Fields keep the order they were first set in, and setting a field again
//! replaces its value in place, so a line reads as the tests expect it in
//! `_raw`. [`Record::raw`] puts JSON text in as it is: numbers, `null`,
//! objects, or something broken on purpose.

/// One JSON-lines record, built field by field.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    fields: Vec<(String, String)>,
}

impl Record {
    /// A record with no fields.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `name` to the JSON string `value` (escaped).
    pub fn text(self, name: &str, value: &str) -> Self {
        let json = serde_json::to_string(value).expect("a string serialises");
        self.raw(name, &json)
    }

    /// Sets `name` to `json`, as it is.
    pub fn raw(mut self, name: &str, json: &str) -> Self {
        match self.fields.iter_mut().find(|(n, _)| n == name) {
            Some((_, value)) => *value = json.to_string(),
            None => self.fields.push((name.to_string(), json.to_string())),
        }
        self
    }

    /// Sets `name` to the JSON string `value`, or to `null` when `None`.
    pub fn text_or_null(self, name: &str, value: Option<&str>) -> Self {
        match value {
            Some(value) => self.text(name, value),
            None => self.raw(name, "null"),
        }
    }

    /// Removes `name`.
    pub fn without(mut self, name: &str) -> Self {
        self.fields.retain(|(n, _)| n != name);
        self
    }

    /// The record as one JSON line, without the newline.
    pub fn line(&self) -> String {
        let fields: Vec<String> = self
            .fields
            .iter()
            .map(|(name, value)| {
                let name = serde_json::to_string(name).expect("a string serialises");
                format!("{name}:{value}")
            })
            .collect();
        format!("{{{}}}", fields.join(","))
    }
}

/// An `orders` change event of the reference workload for `order_id`, with
/// every other field at a default to override: customer `c1`, category
/// `books`, region `eu`, amount `1`, status `placed`, order date
/// 2025-11-04, op `c`, updated at 2025-11-04T00:00:00Z.
pub fn order_event(order_id: &str) -> Record {
    Record::new()
        .text("order_id", order_id)
        .text("customer_id", "c1")
        .text("category", "books")
        .text("region", "eu")
        .raw("amount", "1")
        .text("status", "placed")
        .text("order_date", "2025-11-04")
        .text("op", "c")
        .text("updated_at", "2025-11-04T00:00:00Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_keep_their_order_and_values_are_escaped_or_raw() {
        let line = order_event("o\"1")
            .raw("amount", "\"12.50\"")
            .text("op", "u")
            .raw("metadata", "{\"b\":1}")
            .line();
        assert_eq!(
            line,
            "{\"order_id\":\"o\\\"1\",\"customer_id\":\"c1\",\"category\":\"books\",\"region\":\"eu\",\
             \"amount\":\"12.50\",\"status\":\"placed\",\"order_date\":\"2025-11-04\",\"op\":\"u\",\
             \"updated_at\":\"2025-11-04T00:00:00Z\",\"metadata\":{\"b\":1}}"
        );
        let generic = Record::new()
            .text("id", "7")
            .text_or_null("email", None)
            .without("id");
        assert_eq!(generic.line(), "{\"email\":null}");
    }
}
