//! Filters written as JSON documents in the MongoDB style that Chroma, LanceDB and Qdrant users
//! know, behind [`Filter::from_json`]:
//!
//! ```text
//! {"kind": "recipe"}                          equality (an array or object value must match exactly)
//! {"year": {"$gte": 2020, "$lt": 2030}}       $eq $ne $gt $gte $lt $lte $in $nin $exists, joined by and
//! {"$and": [{...}, {...}]}, {"$or": [...]}    combinators; several keys in one object are joined by and
//! {"$not": {...}}, {"year": {"$not": {...}}}  negation of a whole filter or of a field's operators
//! ```
//!
//! Field names are metadata keys, dotted for nested objects, as in the expression language.

use serde_json::{Map, Value};

use super::{Filter, MAX_DEPTH};

/// Where and why a JSON filter is malformed.
///
/// ```
/// use serde_json::json;
/// use sieve_engine::Filter;
///
/// let err = Filter::from_json(&json!({"year": {"$gte": "2020"}})).unwrap_err();
/// assert_eq!(err.to_string(), "filter at year.$gte: expected a number, found \"2020\"");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("filter at {path}: {message}")]
pub struct JsonFilterError {
    /// The keys leading to the problem, joined by `.` (`$` for the whole document).
    pub path: String,
    /// What was expected or found.
    pub message: String,
}

impl Filter {
    /// Builds a filter from a MongoDB-style JSON document, `{"kind": "recipe", "year": {"$gte": 2023}}`:
    /// a plain value is equality, an object of operators (`$eq $ne $gt $gte $lt $lte $in $nin
    /// $exists $not`) constrains one field, `$and` / `$or` / `$not` combine whole documents, and
    /// the keys of one object are joined by and.
    ///
    /// ```
    /// use serde_json::json;
    /// use sieve_engine::Filter;
    ///
    /// let filter = Filter::from_json(&json!({"kind": "recipe", "year": {"$gte": 2023}}))?;
    /// assert!(filter.matches(&json!({"kind": "recipe", "year": 2024})));
    /// assert!(!filter.matches(&json!({"kind": "recipe", "year": 2021})));
    /// let either = Filter::from_json(&json!({"$or": [{"kind": "note"}, {"tags": {"$in": ["rust", "db"]}}]}))?;
    /// assert!(either.matches(&json!({"kind": "recipe", "tags": ["db"]})));
    /// # Ok::<(), sieve_engine::filter::JsonFilterError>(())
    /// ```
    pub fn from_json(value: &Value) -> Result<Filter, JsonFilterError> {
        document(value, &mut Vec::new())
    }
}

/// The keys walked so far, for error messages.
type Path = Vec<String>;

fn error(path: &Path, message: impl Into<String>) -> JsonFilterError {
    JsonFilterError {
        path: if path.is_empty() {
            "$".to_string()
        } else {
            path.join(".")
        },
        message: message.into(),
    }
}

fn nested<T>(
    path: &mut Path,
    key: &str,
    inner: impl FnOnce(&mut Path) -> Result<T, JsonFilterError>,
) -> Result<T, JsonFilterError> {
    if path.len() >= MAX_DEPTH {
        return Err(error(path, format!("nested more than {MAX_DEPTH} deep")));
    }
    path.push(key.to_string());
    let out = inner(path)?;
    path.pop();
    Ok(out)
}

/// A whole filter document: its keys joined by `and`.
fn document(value: &Value, path: &mut Path) -> Result<Filter, JsonFilterError> {
    let Value::Object(map) = value else {
        return Err(error(path, format!("expected an object, found {value}")));
    };
    let mut all = Vec::with_capacity(map.len());
    for (key, value) in map {
        all.push(nested(path, key, |path| match key.as_str() {
            "$and" | "$or" => {
                let Value::Array(items) = value else {
                    return Err(error(path, format!("expected an array of filters, found {value}")));
                };
                let mut parts = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    parts.push(nested(path, &i.to_string(), |path| document(item, path))?);
                }
                Ok(if key == "$and" {
                    Filter::And(parts)
                } else {
                    Filter::Or(parts)
                })
            }
            "$not" => Ok(document(value, path)?.not()),
            op if op.starts_with('$') => Err(error(
                path,
                "unknown operator at the top level (expected $and, $or, $not or a field name)",
            )),
            field => field_condition(field, value, path),
        })?);
    }
    Ok(single_or_and(all))
}

fn single_or_and(mut all: Vec<Filter>) -> Filter {
    if all.len() == 1 {
        all.remove(0)
    } else {
        Filter::And(all)
    }
}

/// The condition on one field: a plain value (equality) or an object of `$` operators.
fn field_condition(field: &str, value: &Value, path: &mut Path) -> Result<Filter, JsonFilterError> {
    match value {
        Value::Object(ops) if ops.keys().any(|k| k.starts_with('$')) => operators(field, ops, path),
        other => Ok(Filter::eq(field, other.clone())),
    }
}

fn operators(field: &str, ops: &Map<String, Value>, path: &mut Path) -> Result<Filter, JsonFilterError> {
    let mut all = Vec::with_capacity(ops.len());
    for (op, value) in ops {
        all.push(nested(path, op, |path| {
            let number = || {
                value
                    .as_f64()
                    .ok_or_else(|| error(path, format!("expected a number, found {value}")))
            };
            let list = || match value {
                Value::Array(items) => Ok(items.clone()),
                other => Err(error(path, format!("expected an array of values, found {other}"))),
            };
            Ok(match op.as_str() {
                "$eq" => Filter::eq(field, value.clone()),
                "$ne" => Filter::eq(field, value.clone()).not(),
                "$gt" => Filter::range(field).gt(number()?),
                "$gte" => Filter::range(field).gte(number()?),
                "$lt" => Filter::range(field).lt(number()?),
                "$lte" => Filter::range(field).lte(number()?),
                "$in" => Filter::In(field.to_string(), list()?),
                "$nin" => Filter::In(field.to_string(), list()?).not(),
                "$exists" => match value {
                    Value::Bool(true) => Filter::exists(field),
                    Value::Bool(false) => Filter::exists(field).not(),
                    other => return Err(error(path, format!("expected true or false, found {other}"))),
                },
                "$not" => match value {
                    Value::Object(inner) => operators(field, inner, path)?.not(),
                    other => return Err(error(path, format!("expected an object of operators, found {other}"))),
                },
                other if other.starts_with('$') => {
                    return Err(error(
                        path,
                        "unknown operator (expected $eq, $ne, $gt, $gte, $lt, $lte, $in, $nin, $exists or $not)",
                    ));
                }
                _ => {
                    return Err(error(
                        path,
                        "operators and plain keys are mixed; write a nested field as a dotted name",
                    ));
                }
            })
        })?);
    }
    Ok(single_or_and(all))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(v: Value) -> Filter {
        Filter::from_json(&v).unwrap()
    }

    #[test]
    fn operators_match_as_their_expression_language_twins() {
        let docs = [
            json!({"kind": "recipe", "year": 2021, "tags": ["a", "b"], "src": {"kind": "pdf"}}),
            json!({"kind": "note", "year": 2024}),
            json!({"kind": "recipe", "year": "2024", "none": null}),
            json!({}),
        ];
        let cases = [
            (json!({"kind": "recipe"}), r#"kind = "recipe""#),
            (
                json!({"kind": "recipe", "year": {"$gte": 2023}}),
                r#"kind = "recipe" and year >= 2023"#,
            ),
            (
                json!({"year": {"$gt": 2020, "$lte": 2021}}),
                "year > 2020 and year <= 2021",
            ),
            (json!({"year": {"$lt": 2022}}), "year < 2022"),
            (json!({"year": {"$ne": 2021}}), "year != 2021 and year != '2021'"),
            (json!({"kind": {"$in": ["note", "x"]}}), "kind in (note, x)"),
            (json!({"kind": {"$nin": ["note"]}}), "not kind in (note)"),
            (json!({"tags": "b"}), "tags = b"),
            (json!({"src.kind": {"$eq": "pdf"}}), "src.kind = pdf"),
            (json!({"none": {"$exists": true}}), "exists none"),
            (json!({"year": {"$exists": false}}), "not exists year"),
            (
                json!({"$or": [{"kind": "note"}, {"tags": "a"}]}),
                "kind = note or tags = a",
            ),
            (
                json!({"$and": [{"kind": "recipe"}, {"$not": {"year": 2021}}]}),
                "kind = recipe and not year = '2021' and not year = 2021",
            ),
            (json!({"year": {"$not": {"$gte": 2022}}}), "not year >= 2022"),
            (
                json!({"$and": []}),
                "kind = recipe or not kind = recipe or not exists kind",
            ),
        ];
        for (json, expr) in cases {
            let from_json = parse(json.clone());
            let from_expr: Filter = expr.parse().unwrap();
            for doc in &docs {
                assert_eq!(
                    from_json.matches(doc),
                    from_expr.matches(doc),
                    "{json} vs {expr} on {doc}"
                );
            }
        }
    }

    #[test]
    fn malformed_filters_name_the_place() {
        let err = |v: Value| Filter::from_json(&v).unwrap_err().to_string();
        assert_eq!(
            err(json!(["kind"])),
            r#"filter at $: expected an object, found ["kind"]"#
        );
        assert_eq!(
            err(json!({"year": {"$gte": "x"}})),
            r#"filter at year.$gte: expected a number, found "x""#
        );
        assert!(err(json!({"year": {"$between": [1, 2]}})).starts_with("filter at year.$between: unknown operator"));
        assert!(err(json!({"$nor": []})).starts_with("filter at $nor: unknown operator at the top level"));
        assert!(err(json!({"$or": [{"a": 1}, 3]})).starts_with("filter at $or.1: expected an object"));
        assert!(err(json!({"a": {"$in": 3}})).contains("expected an array of values"));
        assert!(err(json!({"a": {"$exists": 1}})).contains("expected true or false"));
        assert!(err(json!({"a": {"$gt": 1, "b": 2}})).contains("write a nested field as a dotted name"));
        let mut deep = json!({"a": 1});
        for _ in 0..100 {
            deep = json!({ "$not": deep });
        }
        assert!(err(deep).contains("nested more than"));
    }
}
