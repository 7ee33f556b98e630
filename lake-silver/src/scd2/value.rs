//! Typed values of tracked columns and CDC operations, with the total order
//! the conflict rule needs.

use std::cmp::Ordering;
use std::hash::{Hash, Hasher};

/// A CDC operation. The order is the conflict rank: `Create` < `Update` < `Delete`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Op {
    /// `c`: a row was created.
    Create,
    /// `u`: a row was updated.
    Update,
    /// `d`: a row was deleted.
    Delete,
}

impl Op {
    /// Parses `c`, `u` or `d`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "c" => Some(Self::Create),
            "u" => Some(Self::Update),
            "d" => Some(Self::Delete),
            _ => None,
        }
    }
}

/// The typed value of one tracked column.
///
/// Ordered with null lowest, strings by code point, numbers by value, dates
/// by day, JSON by its canonical text; values of different kinds (which a
/// well-typed column never mixes) order by kind.
#[derive(Debug, Clone)]
pub enum Cell {
    /// No value (an absent field is null: each event is a full image).
    Null,
    /// Text, compared by code points (no trimming, no normalisation).
    Str(String),
    /// A finite number; `-0.0` equals `0.0`.
    F64(f64),
    /// An integer.
    I64(i64),
    /// A date, as days since 1970-01-01.
    Date(i32),
    /// A JSON value as canonical text (keys sorted, no insignificant whitespace).
    Json(String),
}

impl Cell {
    fn kind(&self) -> u8 {
        match self {
            Cell::Null => 0,
            Cell::Str(_) => 1,
            Cell::F64(_) => 2,
            Cell::I64(_) => 3,
            Cell::Date(_) => 4,
            Cell::Json(_) => 5,
        }
    }

    /// A number cell; `-0.0` becomes `0.0` so that equal values hash alike.
    pub fn number(value: f64) -> Self {
        Cell::F64(if value == 0.0 { 0.0 } else { value })
    }
}

impl PartialEq for Cell {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Cell {}

impl PartialOrd for Cell {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Cell {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Cell::Str(a), Cell::Str(b)) | (Cell::Json(a), Cell::Json(b)) => a.cmp(b),
            // Numbers are finite (validated before typing): total_cmp is the
            // numeric order, with -0.0 normalised away by `Cell::number`.
            (Cell::F64(a), Cell::F64(b)) => {
                let (a, b) = (
                    if *a == 0.0 { 0.0 } else { *a },
                    if *b == 0.0 { 0.0 } else { *b },
                );
                a.total_cmp(&b)
            }
            (Cell::I64(a), Cell::I64(b)) => a.cmp(b),
            (Cell::Date(a), Cell::Date(b)) => a.cmp(b),
            _ => self.kind().cmp(&other.kind()),
        }
    }
}

impl Hash for Cell {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.kind().hash(state);
        match self {
            Cell::Null => {}
            Cell::Str(s) | Cell::Json(s) => s.hash(state),
            Cell::F64(v) => (if *v == 0.0 { 0.0f64 } else { *v }).to_bits().hash(state),
            Cell::I64(v) => v.hash(state),
            Cell::Date(v) => v.hash(state),
        }
    }
}
