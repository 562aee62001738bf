//! Sort specifications: `[["age", -1], ["name", 1]]` (what pymongo sends) or `{"age": -1}`,
//! comparing documents key by key in BSON order. A missing field sorts as null; an array sorts
//! by its smallest element ascending and its largest descending; an empty array sorts before
//! null.

use std::cmp::Ordering;

use serde_json::{Map, Value};

use super::path::{leaves, Path};
use super::value::compare_values;
use super::QueryError;

/// A parsed sort: compares documents.
#[derive(Debug, Clone)]
pub struct Sort {
    keys: Vec<(Path, bool)>,
}

impl Sort {
    /// Parses a list of `[field, 1|-1]` pairs or an object `{field: 1|-1}`.
    pub fn parse(sort: &Value) -> Result<Sort, QueryError> {
        let pairs: Vec<(&str, &Value)> = match sort {
            Value::Array(items) => items.iter().map(pair).collect::<Result<_, _>>()?,
            Value::Object(map) => map.iter().map(|(k, v)| (k.as_str(), v)).collect(),
            _ => return Err(bad_sort("a sort must be a list of [field, direction] pairs")),
        };
        let mut keys = Vec::with_capacity(pairs.len());
        for (field, direction) in pairs {
            if field.starts_with('$') {
                return Err(bad_sort(&format!("unsupported sort key {field}")));
            }
            keys.push((Path::parse(field)?, descending(direction)?));
        }
        Ok(Sort { keys })
    }

    /// The order of two documents under this sort (equal when every key ties).
    pub fn compare(&self, a: &Map<String, Value>, b: &Map<String, Value>) -> Ordering {
        for (path, descending) in &self.keys {
            let order =
                compare_keys(sort_key(a, path, *descending), sort_key(b, path, *descending));
            let order = if *descending { order.reverse() } else { order };
            if order != Ordering::Equal {
                return order;
            }
        }
        Ordering::Equal
    }
}

fn bad_sort(detail: &str) -> QueryError {
    QueryError::new(format!("bad sort specification: {detail}"))
}

fn pair(item: &Value) -> Result<(&str, &Value), QueryError> {
    match item.as_array().map(Vec::as_slice) {
        Some([Value::String(field), direction]) => Ok((field.as_str(), direction)),
        _ => Err(bad_sort("each sort key must be a [field, direction] pair")),
    }
}

/// 1 is ascending, -1 descending.
fn descending(direction: &Value) -> Result<bool, QueryError> {
    match direction.as_f64() {
        Some(1.0) => Ok(false),
        Some(-1.0) => Ok(true),
        _ => Err(bad_sort(&format!("the sort direction must be 1 or -1, not {direction}"))),
    }
}

/// The value a document sorts by on one key.
#[derive(Debug, Clone, Copy)]
enum Key<'a> {
    /// An empty array: below null.
    EmptyArray,
    /// A missing field: sorts as null.
    Missing,
    Value(&'a Value),
}

fn rank(key: Key) -> u8 {
    match key {
        Key::EmptyArray => 0,
        Key::Missing | Key::Value(Value::Null) => 1,
        Key::Value(_) => 2,
    }
}

fn compare_keys(a: Key, b: Key) -> Ordering {
    match (a, b) {
        (Key::Value(x), Key::Value(y)) => compare_values(x, y),
        _ => rank(a).cmp(&rank(b)),
    }
}

/// The smallest (ascending) or largest (descending) of the values `path` reaches, with arrays
/// contributing their elements.
fn sort_key<'a>(doc: &'a Map<String, Value>, path: &Path, descending: bool) -> Key<'a> {
    let mut best: Option<Key<'a>> = None;
    let mut consider = |key: Key<'a>| {
        let better = best.is_none_or(|current| {
            let order = compare_keys(key, current);
            if descending {
                order == Ordering::Greater
            } else {
                order == Ordering::Less
            }
        });
        if better {
            best = Some(key);
        }
    };
    for leaf in leaves(doc, path) {
        match leaf.value {
            None => consider(Key::Missing),
            Some(Value::Array(items)) if items.is_empty() => consider(Key::EmptyArray),
            Some(Value::Array(items)) => items.iter().for_each(|item| consider(Key::Value(item))),
            Some(value) => consider(Key::Value(value)),
        }
    }
    best.unwrap_or(Key::Missing)
}
