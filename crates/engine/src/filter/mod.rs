//! Metadata filters: conditions on a document's JSON metadata, turned into the allow-set
//! each retriever applies inside its search. Build them with [`Filter`]'s constructors, or parse
//! them from the expression language `sieve search --filter` reads:
//!
//! ```text
//! expr      := and ("or" and)*
//! and       := unary ("and" unary)*
//! unary     := "not" unary | "(" expr ")" | condition
//! condition := "exists" FIELD
//!            | FIELD ("=" | "==" | "!=") VALUE
//!            | FIELD ("<" | "<=" | ">" | ">=") NUMBER
//!            | FIELD "in" "(" VALUE ("," VALUE)* ")"
//! FIELD     := a bare word (dotted for nested keys: source.kind) or a quoted string
//! VALUE     := a number, true, false, null, a bare word, or a "quoted" / 'quoted' string
//! ```
//!
//! Keywords are case-insensitive; `and` binds tighter than `or`; parentheses and `not` nest at
//! most [`MAX_DEPTH`] deep. A bare number also matches the same digits stored as a string
//! (`year=2021` matches `2021` and `"2021"`); quote it to match the string only.
//!
//! Filters also come as MongoDB-style JSON documents ([`Filter::from_json`]):
//! `{"kind": "recipe", "year": {"$gte": 2023}}`, with `$eq $ne $gt $gte $lt $lte $in $nin
//! $exists $not` on fields and `$and $or $not` around whole documents.
//!
//! ```
//! use sieve_engine::Filter;
//! use serde_json::json;
//!
//! let parsed: Filter = "lang = en and year >= 2020".parse()?;
//! let built = Filter::eq("lang", "en").and(Filter::range("year").gte(2020.0));
//! assert_eq!(parsed.matches(&json!({"lang": "en", "year": 2023})), built.matches(&json!({"lang": "en", "year": 2023})));
//! # Ok::<(), sieve_engine::ParseFilterError>(())
//! ```

mod json;
mod parse;

pub use json::JsonFilterError;
pub use parse::{MAX_DEPTH, ParseFilterError};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A condition on metadata fields. Field names are top-level keys, or dotted paths into
/// nested objects (`"source.kind"`). When a field holds an array, a condition on it holds if
/// it holds for any element.
///
/// ```
/// use sieve_engine::Filter;
/// use serde_json::json;
///
/// let f = Filter::eq("lang", "en").and(Filter::range("year").gte(2020.0));
/// assert!(f.matches(&json!({"lang": "en", "year": 2023})));
/// assert!(!f.matches(&json!({"lang": "en", "year": 2019})));
/// assert!(Filter::is_in("tag", ["a", "b"]).matches(&json!({"tag": ["x", "b"]})));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Filter {
    /// The field equals the value (numbers compare by value: `1` equals `1.0`).
    Eq(String, Value),
    /// The field equals one of the values.
    In(String, Vec<Value>),
    /// The field is a number within the bounds.
    Range(Range),
    /// The field is present and not null.
    Exists(String),
    /// Every condition holds.
    And(Vec<Filter>),
    /// At least one condition holds.
    Or(Vec<Filter>),
    /// The condition does not hold.
    Not(Box<Filter>),
}

/// Numeric bounds on a field; build with [`Filter::range`].
///
/// ```
/// use sieve_engine::Filter;
/// use serde_json::json;
///
/// let recent = Filter::range("year").gt(2020.0);
/// assert!(recent.matches(&json!({"year": 2021})));
/// assert!(!recent.matches(&json!({"year": 2020})));
/// // Each bound makes a filter; a two-sided range is two joined with `and`.
/// let twenties = Filter::range("year").gte(2020.0).and(Filter::range("year").lt(2030.0));
/// assert!(twenties.matches(&json!({"year": 2025})));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Range {
    /// The field.
    pub field: String,
    /// Exclusive lower bound.
    pub gt: Option<f64>,
    /// Inclusive lower bound.
    pub gte: Option<f64>,
    /// Exclusive upper bound.
    pub lt: Option<f64>,
    /// Inclusive upper bound.
    pub lte: Option<f64>,
}

impl Range {
    /// Adds `field > v`.
    pub fn gt(mut self, v: f64) -> Filter {
        self.gt = Some(v);
        Filter::Range(self)
    }
    /// Adds `field >= v`.
    pub fn gte(mut self, v: f64) -> Filter {
        self.gte = Some(v);
        Filter::Range(self)
    }
    /// Adds `field < v`.
    pub fn lt(mut self, v: f64) -> Filter {
        self.lt = Some(v);
        Filter::Range(self)
    }
    /// Adds `field <= v`.
    pub fn lte(mut self, v: f64) -> Filter {
        self.lte = Some(v);
        Filter::Range(self)
    }

    pub(crate) fn contains(&self, x: f64) -> bool {
        self.gt.is_none_or(|b| x > b)
            && self.gte.is_none_or(|b| x >= b)
            && self.lt.is_none_or(|b| x < b)
            && self.lte.is_none_or(|b| x <= b)
    }
}

impl Filter {
    /// `field == value`.
    pub fn eq(field: impl Into<String>, value: impl Into<Value>) -> Filter {
        Filter::Eq(field.into(), value.into())
    }

    /// `field` is one of `values`.
    pub fn is_in<V: Into<Value>>(field: impl Into<String>, values: impl IntoIterator<Item = V>) -> Filter {
        Filter::In(field.into(), values.into_iter().map(Into::into).collect())
    }

    /// Numeric bounds on `field`: follow with `.gt()`, `.gte()`, `.lt()`, `.lte()`; chain more
    /// bounds with [`Filter::and`].
    pub fn range(field: impl Into<String>) -> Range {
        Range {
            field: field.into(),
            gt: None,
            gte: None,
            lt: None,
            lte: None,
        }
    }

    /// `field` is present and not null.
    pub fn exists(field: impl Into<String>) -> Filter {
        Filter::Exists(field.into())
    }

    /// Both conditions.
    pub fn and(self, other: Filter) -> Filter {
        match self {
            Filter::And(mut all) => {
                all.push(other);
                Filter::And(all)
            }
            first => Filter::And(vec![first, other]),
        }
    }

    /// Either condition.
    pub fn or(self, other: Filter) -> Filter {
        match self {
            Filter::Or(mut any) => {
                any.push(other);
                Filter::Or(any)
            }
            first => Filter::Or(vec![first, other]),
        }
    }

    /// The negation.
    #[allow(clippy::should_implement_trait)]
    pub fn not(self) -> Filter {
        Filter::Not(Box::new(self))
    }

    /// Whether a document with this metadata passes.
    pub fn matches(&self, metadata: &Value) -> bool {
        match self {
            Filter::Eq(field, want) => any_value(metadata, field, |v| json_eq(v, want)),
            Filter::In(field, wants) => any_value(metadata, field, |v| wants.iter().any(|w| json_eq(v, w))),
            Filter::Range(range) => any_value(metadata, &range.field, |v| {
                v.as_f64().is_some_and(|x| range.contains(x))
            }),
            Filter::Exists(field) => lookup(metadata, field).is_some_and(|v| !v.is_null()),
            Filter::And(all) => all.iter().all(|f| f.matches(metadata)),
            Filter::Or(any) => any.iter().any(|f| f.matches(metadata)),
            Filter::Not(inner) => !inner.matches(metadata),
        }
    }
}

/// The value at `path`: a top-level key, or else a dotted path into nested objects.
pub(crate) fn lookup<'a>(metadata: &'a Value, path: &str) -> Option<&'a Value> {
    metadata
        .get(path)
        .or_else(|| path.split('.').try_fold(metadata, |v, part| v.get(part)))
}

fn any_value(metadata: &Value, field: &str, test: impl Fn(&Value) -> bool) -> bool {
    match lookup(metadata, field) {
        Some(Value::Array(items)) => items.iter().any(&test),
        Some(v) => test(v),
        None => false,
    }
}

fn json_eq(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn conditions_and_combinators() {
        let m = json!({"lang": "en", "year": 2021, "tags": ["rust", "db"], "src": {"kind": "pdf"}, "none": null});
        assert!(Filter::eq("year", 2021.0).matches(&m));
        assert!(Filter::eq("tags", "db").matches(&m));
        assert!(Filter::eq("src.kind", "pdf").matches(&m));
        assert!(!Filter::eq("lang", "de").matches(&m));
        assert!(Filter::is_in("lang", ["de", "en"]).matches(&m));
        assert!(
            Filter::range("year")
                .gt(2020.0)
                .and(Filter::range("year").lt(2022.0))
                .matches(&m)
        );
        assert!(
            !Filter::range("lang").gte(0.0).matches(&m),
            "strings are not in numeric ranges"
        );
        assert!(Filter::exists("lang").matches(&m) && !Filter::exists("none").matches(&m));
        assert!(!Filter::exists("missing").matches(&m));
        assert!(Filter::eq("lang", "de").or(Filter::eq("year", 2021)).matches(&m));
        assert!(Filter::eq("lang", "de").not().matches(&m));
    }
}
