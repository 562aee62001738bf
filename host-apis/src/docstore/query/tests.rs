//! Table-driven tests of the query language. Every expected result follows MongoDB's documented
//! semantics; most documents and queries are the examples of MongoDB's manual ("Query an
//! Array", "Query an Array of Embedded Documents", the operator reference pages), so the
//! expected answers are the manual's. The tables live in `tests/`; this file runs them.

mod filter_cases;
mod filter_more;
mod projection_cases;
mod robustness;
mod sort_cases;
mod update_array_cases;
mod update_cases;
mod update_errors;

use serde_json::{Map, Value};

use super::{Filter, Projection, QueryError, Sort, Update};

/// A document from a `json!` literal (panics on non-objects: test tables only).
fn doc(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("not a document: {other}"),
    }
}

/// A value as JSON text, to compare documents with their field order.
fn text(value: &Value) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// The `_id`s of the documents in `docs` that `filter` matches, in order.
fn matching_ids(docs: &Value, filter: &Filter) -> Vec<Value> {
    let docs = docs.as_array().expect("documents are an array");
    docs.iter()
        .map(|d| doc(d.clone()))
        .filter(|d| filter.matches(d))
        .map(|d| d.get("_id").cloned().unwrap_or(Value::Null))
        .collect()
}

/// A filter case: name, documents, filter, the `_id`s it matches.
type FilterCase = (&'static str, Value, Value, Value);

fn run_filter_cases(cases: Vec<FilterCase>) -> usize {
    let mut failures = Vec::new();
    for (name, docs, filter, expected) in &cases {
        match Filter::parse(filter) {
            Ok(parsed) => {
                let got = Value::Array(matching_ids(docs, &parsed));
                if got != *expected {
                    failures.push(format!("{name}: {filter} matched {got}, expected {expected}"));
                }
            }
            Err(e) => failures.push(format!("{name}: {filter} failed to parse: {e}")),
        }
    }
    assert!(failures.is_empty(), "{} failing cases:\n{}", failures.len(), failures.join("\n"));
    cases.len()
}

/// An error case: name, the input, what parsing it must say (a prefix of the message).
type ErrorCase = (&'static str, Value, &'static str);

fn run_error_cases(cases: Vec<ErrorCase>, parse: impl Fn(&Value) -> Result<(), QueryError>) {
    let mut failures = Vec::new();
    for (name, input, expected) in &cases {
        match parse(input) {
            Ok(()) => failures.push(format!("{name}: {input} parsed, expected error {expected}")),
            Err(QueryError(message)) if message.starts_with(expected) => {}
            Err(QueryError(message)) => {
                failures.push(format!("{name}: {input} said {message:?}, expected {expected:?}"))
            }
        }
    }
    assert!(failures.is_empty(), "{} failing cases:\n{}", failures.len(), failures.join("\n"));
}

/// An update case: name, document, filter, update, the document after it.
type UpdateCase = (&'static str, Value, Value, Value, Value);

/// Runs an update the way a backend does: match (for the position), then apply.
fn run_update(doc_value: &Value, filter: &Value, update: &Value) -> Result<(Value, bool), String> {
    let filter = Filter::parse(filter).map_err(|e| e.0)?;
    let mut document = doc(doc_value.clone());
    let position = filter.match_position(&document).ok_or("the filter does not match")?;
    let update = Update::parse(update).map_err(|e| e.0)?;
    let changed = update.apply(&mut document, position).map_err(|e| e.0)?;
    Ok((Value::Object(document), changed))
}

fn run_update_cases(cases: Vec<UpdateCase>) -> usize {
    let mut failures = Vec::new();
    for (name, before, filter, update, expected) in &cases {
        match run_update(before, filter, update) {
            // Compared as text: field order matters.
            Ok((after, changed)) => {
                if text(&after) != text(expected) {
                    failures.push(format!("{name}: {update} gave {after}, expected {expected}"));
                }
                if changed != (text(before) != text(expected)) {
                    failures.push(format!("{name}: reported changed = {changed}"));
                }
            }
            Err(e) => failures.push(format!("{name}: {update} failed: {e}")),
        }
    }
    assert!(failures.is_empty(), "{} failing cases:\n{}", failures.len(), failures.join("\n"));
    cases.len()
}

/// A projection case: name, document, projection, the projected document.
type ProjectionCase = (&'static str, Value, Value, Value);

fn run_projection_cases(cases: Vec<ProjectionCase>) -> usize {
    let mut failures = Vec::new();
    for (name, document, projection, expected) in &cases {
        match Projection::parse(projection) {
            Ok(parsed) => {
                let got = Value::Object(parsed.apply(&doc(document.clone())));
                if text(&got) != text(expected) {
                    failures.push(format!("{name}: {projection} gave {got}, expected {expected}"));
                }
            }
            Err(e) => failures.push(format!("{name}: {projection} failed to parse: {e}")),
        }
    }
    assert!(failures.is_empty(), "{} failing cases:\n{}", failures.len(), failures.join("\n"));
    cases.len()
}

/// A sort case: name, documents, sort, the `_id`s in sorted order.
type SortCase = (&'static str, Value, Value, Value);

fn run_sort_cases(cases: Vec<SortCase>) -> usize {
    let mut failures = Vec::new();
    for (name, docs, sort, expected) in &cases {
        match Sort::parse(sort) {
            Ok(parsed) => {
                let mut docs: Vec<_> = docs.as_array().unwrap().iter().cloned().map(doc).collect();
                // Stable, as the backends sort: ties keep the documents' natural order.
                docs.sort_by(|a, b| parsed.compare(a, b));
                let got: Vec<Value> = docs.iter().map(|d| d["_id"].clone()).collect();
                if Value::Array(got.clone()) != *expected {
                    failures.push(format!("{name}: {sort} gave {got:?}, expected {expected}"));
                }
            }
            Err(e) => failures.push(format!("{name}: {sort} failed to parse: {e}")),
        }
    }
    assert!(failures.is_empty(), "{} failing cases:\n{}", failures.len(), failures.join("\n"));
    cases.len()
}
