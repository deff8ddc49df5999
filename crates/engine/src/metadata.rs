//! The metadata filters read: every document's JSON, and for each field a filter has named an
//! inverted map from its values to the documents holding them, kept up to date on every write.
//! A filtered search turns its [`Filter`] into the allow-set its retrievers apply from these
//! maps (bitmap unions and intersections), without reading any document's metadata.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::Mutex;

use serde_json::Value;
use sieve_index::{AllowSet, DocId};

use crate::filter::{Filter, Range, lookup};

/// Documents' metadata, with per-field inverted maps built on first use.
pub(crate) struct Metadata {
    docs: HashMap<DocId, Value>,
    all: AllowSet,
    /// Fields some filter has named. Built under a search's read lock, hence the mutex.
    fields: Mutex<HashMap<String, FieldIndex>>,
}

/// One field's values and the documents holding each (an array's elements each count).
#[derive(Default)]
struct FieldIndex {
    /// Documents per value: numbers by value (`1` and `1.0` are one key), anything else by
    /// its JSON text.
    values: HashMap<Key, AllowSet>,
    /// Documents per number, in order, for ranges.
    numbers: BTreeMap<Number, AllowSet>,
    /// Documents where the field is present and not null.
    present: AllowSet,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Number(u64),
    Json(String),
}

/// An f64 ordered by `total_cmp` (with -0 stored as 0, so equal numbers are one key).
#[derive(Debug, Clone, Copy)]
struct Number(f64);

impl PartialEq for Number {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Number {}
impl PartialOrd for Number {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Number {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}

fn number(x: f64) -> Number {
    Number(if x == 0.0 { 0.0 } else { x })
}

/// The key `Filter::Eq` compares a value by (numbers by value, as `json_eq` does).
fn key(v: &Value) -> Key {
    match v.as_f64() {
        Some(x) => Key::Number(number(x).0.to_bits()),
        None => Key::Json(v.to_string()),
    }
}

impl FieldIndex {
    fn add(&mut self, iid: DocId, metadata: &Value, field: &str) {
        self.each(metadata, field, iid, |set, iid| {
            set.insert(iid);
        });
    }

    fn remove(&mut self, iid: DocId, metadata: &Value, field: &str) {
        self.each(metadata, field, iid, |set, iid| {
            set.remove(iid);
        });
    }

    /// Calls `f` on every set this document's `field` belongs to.
    fn each(&mut self, metadata: &Value, field: &str, iid: DocId, f: impl Fn(&mut AllowSet, DocId)) {
        let Some(v) = lookup(metadata, field) else { return };
        if !v.is_null() {
            f(&mut self.present, iid);
        }
        let items = match v {
            Value::Array(items) => items.as_slice(),
            v => std::slice::from_ref(v),
        };
        for item in items {
            f(self.values.entry(key(item)).or_default(), iid);
            if let Some(x) = item.as_f64() {
                f(self.numbers.entry(number(x)).or_default(), iid);
            }
        }
    }

    fn range(&self, range: &Range) -> AllowSet {
        let lower = match (range.gt, range.gte) {
            (Some(gt), Some(gte)) if gte > gt => Bound::Included(number(gte)),
            (Some(gt), _) => Bound::Excluded(number(gt)),
            (None, Some(gte)) => Bound::Included(number(gte)),
            (None, None) => Bound::Unbounded,
        };
        let upper = match (range.lt, range.lte) {
            (Some(lt), Some(lte)) if lte < lt => Bound::Included(number(lte)),
            (Some(lt), _) => Bound::Excluded(number(lt)),
            (None, Some(lte)) => Bound::Included(number(lte)),
            (None, None) => Bound::Unbounded,
        };
        // BTreeMap::range panics on an empty or inverted range; such a range holds nothing.
        if let (Bound::Included(lo) | Bound::Excluded(lo), Bound::Included(hi) | Bound::Excluded(hi)) = (lower, upper) {
            let open = matches!(lower, Bound::Excluded(_)) || matches!(upper, Bound::Excluded(_));
            if lo > hi || (lo == hi && open) {
                return AllowSet::new();
            }
        }
        // `contains` has the last word (NaN bounds, both bounds of one side given).
        self.numbers
            .range((lower, upper))
            .filter(|(x, _)| range.contains(x.0))
            .fold(AllowSet::new(), |acc, (_, set)| acc | set)
    }
}

impl Metadata {
    pub fn new() -> Self {
        Metadata {
            docs: HashMap::new(),
            all: AllowSet::new(),
            fields: Mutex::new(HashMap::new()),
        }
    }

    /// Documents held.
    pub fn len(&self) -> usize {
        self.docs.len()
    }

    pub fn contains(&self, iid: DocId) -> bool {
        self.docs.contains_key(&iid)
    }

    /// Adds a document's metadata, replacing what it had.
    pub fn insert(&mut self, iid: DocId, metadata: Value) {
        self.remove(iid);
        let fields = self.fields.get_mut().unwrap_or_else(|p| p.into_inner());
        for (field, index) in fields.iter_mut() {
            index.add(iid, &metadata, field);
        }
        self.all.insert(iid);
        self.docs.insert(iid, metadata);
    }

    pub fn remove(&mut self, iid: DocId) {
        let Some(old) = self.docs.remove(&iid) else { return };
        let fields = self.fields.get_mut().unwrap_or_else(|p| p.into_inner());
        for (field, index) in fields.iter_mut() {
            index.remove(iid, &old, field);
        }
        self.all.remove(iid);
    }

    /// The documents whose metadata passes `filter` (the same as [`Filter::matches`] on each).
    pub fn allowed(&self, filter: &Filter) -> AllowSet {
        let mut fields = self.fields.lock().unwrap_or_else(|p| p.into_inner());
        self.evaluate(filter, &mut fields)
    }

    fn evaluate(&self, filter: &Filter, fields: &mut HashMap<String, FieldIndex>) -> AllowSet {
        match filter {
            Filter::Eq(field, want) => self
                .field(field, fields)
                .values
                .get(&key(want))
                .cloned()
                .unwrap_or_default(),
            Filter::In(field, wants) => {
                let index = self.field(field, fields);
                wants
                    .iter()
                    .filter_map(|w| index.values.get(&key(w)))
                    .fold(AllowSet::new(), |acc, set| acc | set)
            }
            Filter::Range(range) => self.field(&range.field, fields).range(range),
            Filter::Exists(field) => self.field(field, fields).present.clone(),
            Filter::And(all) => all
                .iter()
                .fold(self.all.clone(), |acc, f| acc & self.evaluate(f, fields)),
            Filter::Or(any) => any
                .iter()
                .fold(AllowSet::new(), |acc, f| acc | self.evaluate(f, fields)),
            Filter::Not(inner) => &self.all - self.evaluate(inner, fields),
        }
    }

    /// The field's inverted map, built from every document the first time a filter names it.
    fn field<'f>(&self, field: &str, fields: &'f mut HashMap<String, FieldIndex>) -> &'f FieldIndex {
        fields.entry(field.to_string()).or_insert_with(|| {
            let mut index = FieldIndex::default();
            for (&iid, metadata) in &self.docs {
                index.add(iid, metadata, field);
            }
            index
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn documents() -> Vec<Value> {
        vec![
            json!({"lang": "en", "year": 2021, "tags": ["rust", "db"], "src": {"kind": "pdf"}}),
            json!({"lang": "de", "year": 2019.0, "tags": ["db"], "score": -0.0}),
            json!({"lang": "en", "year": "2021", "none": null, "score": 0}),
            json!({"year": [2018, 2022], "src.kind": "html", "nested": {"a": [1, 2]}}),
            json!({"lang": null, "tags": [], "score": 1.5, "nested": {"a": [1.0, 2.0]}}),
            json!(null),
            json!({"obj": {"x": 1, "y": [true, false]}, "flag": true}),
        ]
    }

    fn filters() -> Vec<Filter> {
        vec![
            Filter::eq("lang", "en"),
            Filter::eq("year", 2021),
            Filter::eq("year", 2021.0),
            Filter::eq("year", "2021"),
            Filter::eq("tags", "db"),
            Filter::eq("src.kind", "pdf"),
            Filter::eq("src.kind", "html"),
            Filter::eq("score", 0),
            Filter::eq("flag", true),
            Filter::eq("obj", json!({"y": [true, false], "x": 1})),
            Filter::eq("nested.a", 1),
            Filter::eq("none", Value::Null),
            Filter::eq("lang", Value::Null),
            Filter::is_in("lang", ["de", "fr"]),
            Filter::is_in("year", [json!(2018), json!("2021")]),
            Filter::range("year").gte(2020.0),
            Filter::range("year").gt(2021.0),
            Filter::range("year").lt(2019.0),
            Filter::range("year").lte(2019.0),
            Filter::range("score").gte(0.0),
            Filter::Range(Range {
                field: "year".into(),
                gt: Some(2019.0),
                gte: Some(2019.0),
                lt: Some(2022.0),
                lte: Some(2030.0),
            }),
            Filter::Range(Range {
                field: "year".into(),
                gt: Some(2021.0),
                gte: None,
                lt: Some(2021.0),
                lte: None,
            }),
            Filter::Range(Range {
                field: "year".into(),
                gt: None,
                gte: Some(2030.0),
                lt: None,
                lte: Some(2000.0),
            }),
            Filter::range("year").gte(f64::NAN),
            Filter::exists("lang"),
            Filter::exists("tags"),
            Filter::exists("none"),
            Filter::And(vec![]),
            Filter::Or(vec![]),
            Filter::eq("lang", "en").and(Filter::range("year").gte(2020.0)),
            Filter::eq("lang", "de").or(Filter::eq("tags", "rust")),
            Filter::eq("lang", "en").not(),
            Filter::exists("lang").not().and(Filter::exists("year")),
        ]
    }

    fn check(metadata: &Metadata, docs: &HashMap<DocId, Value>) {
        for filter in filters() {
            let scanned: AllowSet = docs
                .iter()
                .filter(|(_, m)| filter.matches(m))
                .map(|(&i, _)| i)
                .collect();
            assert_eq!(metadata.allowed(&filter), scanned, "{filter:?}");
        }
    }

    #[test]
    fn allow_sets_equal_a_scan_of_every_document() {
        let mut metadata = Metadata::new();
        let mut docs = HashMap::new();
        for (i, m) in documents().into_iter().enumerate() {
            metadata.insert(i as DocId, m.clone());
            docs.insert(i as DocId, m);
        }
        check(&metadata, &docs);
        // Writes after the fields were built keep them current: replace, remove, re-add.
        let all = documents();
        for (iid, m) in [(0, all[3].clone()), (3, all[0].clone()), (10, all[1].clone())] {
            metadata.insert(iid, m.clone());
            docs.insert(iid, m);
        }
        for iid in [1, 5, 42] {
            metadata.remove(iid);
            docs.remove(&iid);
        }
        check(&metadata, &docs);
        assert_eq!(metadata.len(), docs.len());
    }
}
