//! Projection cases, from "Project Fields to Return from Query" and the `$elemMatch` and
//! `$slice` projection pages of the MongoDB manual.

use serde_json::{json, Value};

use super::{run_error_cases, run_projection_cases, ProjectionCase};
use crate::docstore::query::Projection;

fn journal() -> Value {
    json!({ "_id": 1, "item": "journal", "status": "A", "size": { "h": 14, "w": 21, "uom": "cm" },
            "instock": [ { "warehouse": "A", "qty": 5 }, { "warehouse": "C", "qty": 15 } ] })
}

fn school(id: i64) -> Value {
    match id {
        1 => json!({ "_id": 1, "zipcode": "63109", "students": [
            { "name": "john", "school": 102, "age": 10 }, { "name": "jess", "school": 102, "age": 11 },
            { "name": "jeff", "school": 108, "age": 15 } ] }),
        _ => json!({ "_id": 3, "zipcode": "63109", "students": [
            { "name": "ajax", "school": 100, "age": 7 }, { "name": "achilles", "school": 100, "age": 8 } ] }),
    }
}

fn cases() -> Vec<ProjectionCase> {
    vec![
        ("empty projection", journal(), json!({}), journal()),
        // "_id field is included by default".
        (
            "inclusion",
            journal(),
            json!({ "item": 1, "status": 1 }),
            json!({ "_id": 1, "item": "journal", "status": "A" }),
        ),
        (
            "inclusion without _id",
            journal(),
            json!({ "item": 1, "status": 1, "_id": 0 }),
            json!({ "item": "journal", "status": "A" }),
        ),
        (
            "inclusion with true",
            journal(),
            json!({ "status": true }),
            json!({ "_id": 1, "status": "A" }),
        ),
        (
            "exclusion",
            journal(),
            json!({ "status": 0, "instock": 0 }),
            json!({ "_id": 1, "item": "journal", "size": { "h": 14, "w": 21, "uom": "cm" } }),
        ),
        (
            "embedded inclusion",
            journal(),
            json!({ "item": 1, "status": 1, "size.uom": 1 }),
            json!({ "_id": 1, "item": "journal", "status": "A", "size": { "uom": "cm" } }),
        ),
        (
            "embedded exclusion",
            journal(),
            json!({ "size.uom": 0 }),
            json!({ "_id": 1, "item": "journal", "status": "A", "size": { "h": 14, "w": 21 },
                    "instock": [ { "warehouse": "A", "qty": 5 }, { "warehouse": "C", "qty": 15 } ] }),
        ),
        (
            "inclusion in an array of documents",
            journal(),
            json!({ "item": 1, "status": 1, "instock.qty": 1 }),
            json!({ "_id": 1, "item": "journal", "status": "A", "instock": [ { "qty": 5 }, { "qty": 15 } ] }),
        ),
        (
            "exclusion in an array of documents",
            journal(),
            json!({ "instock.warehouse": 0, "size": 0 }),
            json!({ "_id": 1, "item": "journal", "status": "A", "instock": [ { "qty": 5 }, { "qty": 15 } ] }),
        ),
        (
            "$slice last in inclusion",
            journal(),
            json!({ "item": 1, "status": 1, "instock": { "$slice": -1 } }),
            json!({ "_id": 1, "item": "journal", "status": "A", "instock": [ { "warehouse": "C", "qty": 15 } ] }),
        ),
        (
            "only _id excluded",
            journal(),
            json!({ "_id": 0 }),
            json!({ "item": "journal", "status": "A", "size": { "h": 14, "w": 21, "uom": "cm" },
                    "instock": [ { "warehouse": "A", "qty": 5 }, { "warehouse": "C", "qty": 15 } ] }),
        ),
        ("only _id", journal(), json!({ "_id": 1 }), json!({ "_id": 1 })),
        (
            "document order, not projection order",
            journal(),
            json!({ "status": 1, "item": 1 }),
            json!({ "_id": 1, "item": "journal", "status": "A" }),
        ),
        (
            "missing fields are left out",
            journal(),
            json!({ "nope": 1, "size.nope": 1 }),
            json!({ "_id": 1, "size": {} }),
        ),
        // The $elemMatch projection page: the first matching element, or no field at all.
        (
            "$elemMatch",
            school(1),
            json!({ "students": { "$elemMatch": { "school": 102 } } }),
            json!({ "_id": 1, "students": [ { "name": "john", "school": 102, "age": 10 } ] }),
        ),
        (
            "$elemMatch without a match",
            school(3),
            json!({ "students": { "$elemMatch": { "school": 102 } } }),
            json!({ "_id": 3 }),
        ),
        (
            "$elemMatch with a condition",
            school(1),
            json!({ "zipcode": 1, "students": { "$elemMatch": { "school": 102, "age": { "$gt": 10 } } } }),
            json!({ "_id": 1, "zipcode": "63109", "students": [ { "name": "jess", "school": 102, "age": 11 } ] }),
        ),
        // "$slice" alone returns every other field.
        (
            "$slice first",
            json!({ "_id": 1, "title": "t", "comments": [1, 2, 3, 4] }),
            json!({ "comments": { "$slice": 2 } }),
            json!({ "_id": 1, "title": "t", "comments": [1, 2] }),
        ),
        (
            "$slice last",
            json!({ "_id": 1, "comments": [1, 2, 3, 4] }),
            json!({ "comments": { "$slice": -3 } }),
            json!({ "_id": 1, "comments": [2, 3, 4] }),
        ),
        (
            "$slice skip limit",
            json!({ "_id": 1, "comments": [1, 2, 3, 4, 5] }),
            json!({ "comments": { "$slice": [1, 2] } }),
            json!({ "_id": 1, "comments": [2, 3] }),
        ),
        (
            "$slice negative skip",
            json!({ "_id": 1, "comments": [1, 2, 3, 4, 5] }),
            json!({ "comments": { "$slice": [-2, 1] } }),
            json!({ "_id": 1, "comments": [4] }),
        ),
        (
            "$slice past the end",
            json!({ "_id": 1, "comments": [1, 2] }),
            json!({ "comments": { "$slice": 5 } }),
            json!({ "_id": 1, "comments": [1, 2] }),
        ),
        (
            "$slice on a non-array",
            json!({ "_id": 1, "comments": "none" }),
            json!({ "comments": { "$slice": 1 } }),
            json!({ "_id": 1, "comments": "none" }),
        ),
        (
            "$slice with exclusion",
            json!({ "_id": 1, "a": 1, "c": [1, 2, 3] }),
            json!({ "a": 0, "c": { "$slice": 1 } }),
            json!({ "_id": 1, "c": [1] }),
        ),
        // Inclusion keeps only documents inside arrays (scalars there have no such field).
        (
            "inclusion drops scalars in arrays",
            json!({ "_id": 1, "a": [1, { "b": 1, "c": 2 }] }),
            json!({ "a.b": 1 }),
            json!({ "_id": 1, "a": [ { "b": 1 } ] }),
        ),
    ]
}

#[test]
fn projections() {
    let count = run_projection_cases(cases());
    assert!(count >= 25, "{count}");
}

#[test]
fn projection_errors() {
    run_error_cases(
        vec![
            (
                "mixed inclusion and exclusion",
                json!({ "a": 1, "b": 0 }),
                "Cannot do exclusion on field b in inclusion projection",
            ),
            (
                "$elemMatch with exclusion",
                json!({ "a": { "$elemMatch": { "x": 1 } }, "b": 0 }),
                "Cannot do exclusion on field b in inclusion projection",
            ),
            ("path collision", json!({ "a": 1, "a.b": 1 }), "Path collision at a.b"),
            ("string value", json!({ "a": "x" }), "unsupported projection for 'a'"),
            ("unknown operator", json!({ "a": { "$foo": 1 } }), "unsupported projection for 'a'"),
            (
                "nested $elemMatch",
                json!({ "a.b": { "$elemMatch": { "x": 1 } } }),
                "Cannot use $elemMatch projection on a nested field.",
            ),
            (
                "zero $slice limit",
                json!({ "a": { "$slice": [1, 0] } }),
                "$slice limit must be positive",
            ),
            (
                "fractional $slice",
                json!({ "a": { "$slice": 1.5 } }),
                "$slice only supports integers",
            ),
            ("positional projection", json!({ "a.$": 1 }), "unsupported projection path 'a.$'"),
            ("not an object", json!(1), "projection must be an object"),
        ],
        |input| Projection::parse(input).map(drop),
    );
}
