//! Entry points for the fuzz targets in the repository's `fuzz/` folder and for the tests that
//! replay their corpus (`tests/fuzz_corpus.rs`): each takes raw bytes as a function's call would
//! bring them, runs the real parsers and evaluators on them and checks what must hold for any
//! input, panicking when it does not. Not an API: the fuzzer and the replay tests are the only
//! callers.

use std::cmp::Ordering;

use serde_json::{json, Map, Value};

use super::value::compare_values;
use super::{check_replacement, Filter, Meter, Projection, Sort, Update};
use crate::docstore::json::parse_json;

/// What became of one input (the replay tests count them, so that a corpus that stopped
/// reaching the parsers shows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Not JSON (or not UTF-8, or nested too deeply): refused before any parser saw it.
    Unreadable,
    /// JSON that every parser refused with a [`QueryError`](super::QueryError).
    Refused,
    /// Accepted by at least one parser and evaluated.
    Accepted,
}

/// Documents the parsed filters, sorts, projections and updates run against: every BSON type
/// the query language knows, nested documents, arrays of documents and arrays of arrays.
pub fn sample_documents() -> Vec<Map<String, Value>> {
    let docs = [
        json!({
            "_id": {"$oid": "64b7f0c2a1b2c3d4e5f60718"},
            "name": "widget",
            "qty": 5,
            "price": 2.5,
            "tags": ["a", "b", "c"],
            "sizes": [{"h": 14, "w": 21, "uom": "cm"}, {"h": 8.5, "w": 11, "uom": "in"}],
            "created": {"$date": 1_700_000_000_000_i64},
            "meta": {"a": {"b": [1, [2, 3], {"c": null}]}},
            "flag": true,
            "empty": [],
        }),
        json!({"_id": 1, "qty": [1, 5, 10], "name": null, "a": [{"b": 1}, {"b": [2, 3]}]}),
        json!({
            "_id": "x",
            "a": {"b": {"c": "d"}},
            "arr": [[1, 2], [3]],
            "n": -0.0,
            "big": 9_007_199_254_740_993_u64,
            "neg": -9_223_372_036_854_775_808_i64,
        }),
        json!({}),
    ];
    docs.into_iter().map(|doc| doc.as_object().cloned().expect("an object")).collect()
}

/// A filter, sort and projection in one: the input is parsed as each, and what parses is run
/// on [`sample_documents`] (and on the input itself when it is an object).
pub fn query(data: &[u8]) -> Outcome {
    let Ok(value) = parse_json(data) else { return Outcome::Unreadable };
    let mut docs = sample_documents();
    if let Value::Object(map) = &value {
        docs.push(map.clone());
    }
    let mut accepted = false;

    if let Ok(filter) = Filter::parse(&value) {
        accepted = true;
        check_filter(&filter, &value, &docs);
    }
    if let Ok(sort) = Sort::parse(&value) {
        accepted = true;
        check_sort(&sort, &docs);
    }
    if let Ok(projection) = Projection::parse(&value) {
        accepted = true;
        for doc in &docs {
            let projected = projection.apply(doc);
            // A projection only keeps or drops what is there: it never nests deeper.
            let depth = |doc: &Map<String, Value>| nesting(&Value::Object(doc.clone()));
            assert!(depth(&projected) <= depth(doc), "projection nested deeper: {projected:?}");
        }
    }
    if accepted {
        Outcome::Accepted
    } else {
        Outcome::Refused
    }
}

fn check_filter(filter: &Filter, value: &Value, docs: &[Map<String, Value>]) {
    let unbounded = Meter::unbounded();
    let matches: Vec<bool> = docs
        .iter()
        .map(|doc| {
            let hit = filter.match_within(doc, &unbounded).expect("an unbounded meter never stops");
            assert_eq!(hit.is_some(), filter.matches(doc), "match_within and matches disagree");
            hit.is_some()
        })
        .collect();

    // `{"$nor": [F]}` matches exactly the documents F does not (one level deeper, so it may
    // only be refused for its depth).
    match Filter::parse(&json!({"$nor": [value]})) {
        Ok(nor) => {
            for (doc, hit) in docs.iter().zip(&matches) {
                assert_eq!(nor.matches(doc), !hit, "$nor of the filter on {doc:?}");
            }
        }
        Err(error) => {
            assert!(error.0.contains("depth"), "F parses but {{$nor: [F]}} does not: {error}")
        }
    }

    // A point lookup must find the document it names.
    if let Some(id) = filter.id_equality() {
        let doc = json!({"_id": id});
        assert!(filter.matches(doc.as_object().expect("an object")), "id_equality {id} misses");
    }
    // The equality fields seed an upserted document: they are paths and values of the filter.
    for (path, _) in filter.equality_fields() {
        assert!(!path.is_empty(), "an equality field without a path");
    }
}

fn check_sort(sort: &Sort, docs: &[Map<String, Value>]) {
    for a in docs {
        assert_eq!(sort.compare(a, a), Ordering::Equal, "a document sorts apart from itself");
        for b in docs {
            assert_eq!(
                sort.compare(a, b),
                sort.compare(b, a).reverse(),
                "sort is not antisymmetric"
            );
        }
    }
    let mut sorted = docs.to_vec();
    sorted.sort_by(|a, b| sort.compare(a, b));
    for pair in sorted.windows(2) {
        assert_ne!(sort.compare(&pair[0], &pair[1]), Ordering::Greater, "sort out of order");
    }
}

/// An update (and, as `replaceOne` takes it, a replacement document), applied to each of
/// [`sample_documents`], with and without a matched array position, as an update and as an
/// upsert's insert.
pub fn update(data: &[u8]) -> Outcome {
    let Ok(value) = parse_json(data) else { return Outcome::Unreadable };
    let mut accepted = false;
    if let Ok(replacement) = check_replacement(&value) {
        accepted = true;
        assert!(
            !replacement.keys().any(|key| key.starts_with('$')),
            "a replacement with an operator: {replacement:?}"
        );
    }
    let Ok(update) = Update::parse(&value) else {
        return if accepted { Outcome::Accepted } else { Outcome::Refused };
    };
    let unbounded = Meter::unbounded();
    for before in sample_documents() {
        let runs: [(&str, Option<usize>); 4] =
            [("apply", None), ("apply", Some(0)), ("apply", Some(1)), ("insert", None)];
        for (how, position) in runs {
            let mut doc = before.clone();
            let result = if how == "insert" {
                update.apply_insert_within(&mut doc, &unbounded)
            } else {
                update.apply_within(&mut doc, position, &unbounded)
            };
            match result {
                Ok(_) => check_updated(&before, &doc),
                // All or nothing: a refused update leaves the document as it was.
                Err(_) => assert_eq!(doc, before, "a refused update changed the document"),
            }
        }
    }
    Outcome::Accepted
}

fn check_updated(before: &Map<String, Value>, after: &Map<String, Value>) {
    if let Some(id) = before.get("_id") {
        assert_eq!(after.get("_id"), Some(id), "an update changed _id");
    }
    // What the store writes it reads back: the document's text is JSON within the nesting
    // limit of `parse_json`.
    let value = Value::Object(after.clone());
    let text = serde_json::to_vec(&value).expect("a JSON value serialises");
    assert!(parse_json(&text).is_ok(), "an updated document's text does not parse again");
    // Values compare equal to themselves in the BSON order (sorts and $min/$max rely on it).
    for field in after.values() {
        assert_eq!(compare_values(field, field), Ordering::Equal);
    }
}

/// The nesting of a value in JSON levels (a scalar is 0).
fn nesting(value: &Value) -> usize {
    match value {
        Value::Array(items) => 1 + items.iter().map(nesting).max().unwrap_or(0),
        Value::Object(map) => 1 + map.values().map(nesting).max().unwrap_or(0),
        _ => 0,
    }
}
