//! Filter cases on nulls and missing fields, type brackets, ObjectIds and dates, nested paths;
//! the positional match, upsert seeds, `_id` lookups and parse errors.

use serde_json::{json, Value};

use super::{doc, run_error_cases, run_filter_cases, FilterCase};
use crate::docstore::query::Filter;

const A: &str = "5f0000000000000000000aa1";
const B: &str = "5f0000000000000000000bb2";
const C: &str = "5f0000000000000000000cc3";

/// "Query for Null or Missing Fields", plus a document with a value.
fn nulls() -> Value {
    json!([ { "_id": 1, "item": null }, { "_id": 2 }, { "_id": 3, "item": 5 } ])
}

/// One field holding values of many types.
fn mixed() -> Value {
    json!([
        { "_id": 1, "a": 10 }, { "_id": 2, "a": "10" }, { "_id": 3, "a": 4.5 }, { "_id": 4, "a": 6.0 },
        { "_id": 5, "a": [1, 20] }, { "_id": 6, "a": true }, { "_id": 7, "a": null }, { "_id": 8 }
    ])
}

/// The `$exists` reference page.
fn exists() -> Value {
    json!([
        { "_id": 1, "a": 5, "b": 5, "c": null }, { "_id": 2, "a": 3, "b": null, "c": 8 },
        { "_id": 3, "a": null, "b": 3, "c": 9 }, { "_id": 4, "a": 1, "b": 2, "c": 3 },
        { "_id": 5, "a": 2, "c": 5 }, { "_id": 6, "a": 3, "b": 2 }, { "_id": 7, "a": 4 },
        { "_id": 8, "b": 2, "c": 4 }, { "_id": 9, "b": 2 }, { "_id": 10, "c": 6 }
    ])
}

fn oid(hex: &str) -> Value {
    json!({ "$oid": hex })
}

fn ids_and_dates() -> Value {
    json!([
        { "_id": oid(A), "t": { "$date": 1000 } },
        { "_id": oid(B), "t": { "$date": 2000 } },
        { "_id": oid(C), "t": 1500 }
    ])
}

fn nested() -> Value {
    json!([
        { "_id": 1, "a": { "b": { "c": 1 } } }, { "_id": 2, "a": { "b": { "c": 2 } } },
        { "_id": 3, "a": [ { "b": [ { "c": 1 } ] } ] }, { "_id": 4, "a": 5 }, { "_id": 5 }
    ])
}

fn more_cases() -> Vec<FilterCase> {
    vec![
        // "The { item : null } query matches documents that either contain the item field whose value is null or that do not contain the item field."
        ("null matches null and missing", nulls(), json!({ "item": null }), json!([1, 2])),
        ("$eq null", nulls(), json!({ "item": { "$eq": null } }), json!([1, 2])),
        ("$exists false", nulls(), json!({ "item": { "$exists": false } }), json!([2])),
        (
            "$exists true includes null",
            nulls(),
            json!({ "item": { "$exists": true } }),
            json!([1, 3]),
        ),
        ("$ne null", nulls(), json!({ "item": { "$ne": null } }), json!([3])),
        (
            "$in with null matches missing",
            nulls(),
            json!({ "item": { "$in": [null, 5] } }),
            json!([1, 2, 3]),
        ),
        ("$nin null", nulls(), json!({ "item": { "$nin": [null] } }), json!([3])),
        // $gte/$lte null are equality with null; $gt/$lt null match nothing.
        ("$gte null", nulls(), json!({ "item": { "$gte": null } }), json!([1, 2])),
        ("$gt null", nulls(), json!({ "item": { "$gt": null } }), json!([])),
        ("$ne matches missing", nulls(), json!({ "item": { "$ne": 5 } }), json!([1, 2])),
        ("$nin matches missing", nulls(), json!({ "item": { "$nin": [5] } }), json!([1, 2])),
        // Type bracketing: comparison operators only compare values of the same BSON type.
        ("$gt numbers only", mixed(), json!({ "a": { "$gt": 5 } }), json!([1, 4, 5])),
        ("$lt numbers only", mixed(), json!({ "a": { "$lt": 5 } }), json!([3, 5])),
        ("$gt strings only", mixed(), json!({ "a": { "$gt": "1" } }), json!([2])),
        ("$lte bool bracket", mixed(), json!({ "a": { "$lte": true } }), json!([6])),
        ("int equals float", mixed(), json!({ "a": 10.0 }), json!([1])),
        ("float equals int", mixed(), json!({ "a": 6 }), json!([4])),
        (
            "$ne keeps other types",
            mixed(),
            json!({ "a": { "$ne": 10 } }),
            json!([2, 3, 4, 5, 6, 7, 8]),
        ),
        (
            "range on array, any elements",
            mixed(),
            json!({ "a": { "$gt": 1, "$lt": 10 } }),
            json!([3, 4, 5]),
        ),
        (
            "range on array, one element",
            mixed(),
            json!({ "a": { "$elemMatch": { "$gt": 1, "$lt": 10 } } }),
            json!([]),
        ),
        ("string equality is not numeric", mixed(), json!({ "a": "10" }), json!([2])),
        (
            "$exists true",
            exists(),
            json!({ "a": { "$exists": true } }),
            json!([1, 2, 3, 4, 5, 6, 7]),
        ),
        ("$exists false page", exists(), json!({ "b": { "$exists": false } }), json!([5, 7, 10])),
        (
            "$exists with $nin",
            exists(),
            json!({ "c": { "$exists": true, "$nin": [5, 15] } }),
            json!([1, 2, 3, 4, 8, 10]),
        ),
        ("$exists 0 is false", exists(), json!({ "b": { "$exists": 0 } }), json!([5, 7, 10])),
        // ObjectIds and dates are scalars of their own type.
        ("ObjectId equality", ids_and_dates(), json!({ "_id": oid(B) }), json!([oid(B)])),
        (
            "ObjectId $gt",
            ids_and_dates(),
            json!({ "_id": { "$gt": oid(A) } }),
            json!([oid(B), oid(C)]),
        ),
        (
            "ObjectId $in",
            ids_and_dates(),
            json!({ "_id": { "$in": [oid(A), oid(C)] } }),
            json!([oid(A), oid(C)]),
        ),
        (
            "ObjectId $ne",
            ids_and_dates(),
            json!({ "_id": { "$ne": oid(A) } }),
            json!([oid(B), oid(C)]),
        ),
        (
            "date $gt skips numbers",
            ids_and_dates(),
            json!({ "t": { "$gt": { "$date": 1200 } } }),
            json!([oid(B)]),
        ),
        (
            "number $lt skips dates",
            ids_and_dates(),
            json!({ "t": { "$lt": 2000 } }),
            json!([oid(C)]),
        ),
        ("date equality", ids_and_dates(), json!({ "t": { "$date": 1000 } }), json!([oid(A)])),
        ("date is not its milliseconds", ids_and_dates(), json!({ "t": 1000 }), json!([])),
        ("deep path", nested(), json!({ "a.b.c": 1 }), json!([1, 3])),
        (
            "deep path $exists false",
            nested(),
            json!({ "a.b": { "$exists": false } }),
            json!([4, 5]),
        ),
        ("deep path $ne", nested(), json!({ "a.b.c": { "$ne": 1 } }), json!([2, 4, 5])),
        // An array equals a value when it equals it or holds an element equal to it.
        (
            "array value equality",
            json!([ { "_id": 1, "a": [1, 2] }, { "_id": 2, "a": [[1, 2], 3] }, { "_id": 3, "a": [2, 1] } ]),
            json!({ "a": [1, 2] }),
            json!([1, 2]),
        ),
        (
            "$size 0",
            json!([ { "_id": 1, "a": [] }, { "_id": 2, "a": {} }, { "_id": 3 } ]),
            json!({ "a": { "$size": 0 } }),
            json!([1]),
        ),
        (
            "empty document equality",
            json!([ { "_id": 1, "a": [] }, { "_id": 2, "a": {} }, { "_id": 3 } ]),
            json!({ "a": {} }),
            json!([2]),
        ),
        (
            "$eq with a document",
            json!([ { "_id": 1, "a": { "b": 1 } }, { "_id": 2, "a": { "b": 1, "c": 2 } } ]),
            json!({ "a": { "$eq": { "b": 1 } } }),
            json!([1]),
        ),
        (
            "document numbers compare numerically",
            json!([ { "_id": 1, "a": { "b": 1.0 } } ]),
            json!({ "a": { "b": 1 } }),
            json!([1]),
        ),
        // $not also selects documents without the field.
        (
            "nested $not and $or",
            sizes_small(),
            json!({ "$or": [ { "n": { "$not": { "$lt": 3 } } }, { "n": 0 } ] }),
            json!([0, 3, 4, 9]),
        ),
        (
            "$nor with missing",
            sizes_small(),
            json!({ "$nor": [ { "n": 1 }, { "n": { "$gte": 3 } } ] }),
            json!([0, 2, 9]),
        ),
    ]
}

fn sizes_small() -> Value {
    json!([ { "_id": 0, "n": 0 }, { "_id": 1, "n": 1 }, { "_id": 2, "n": 2 }, { "_id": 3, "n": 3 }, { "_id": 4, "n": 4 }, { "_id": 9 } ])
}

#[test]
fn filters_on_nulls_types_and_ids() {
    let count = run_filter_cases(more_cases());
    assert!(count >= 40, "{count}");
}

#[test]
fn filter_errors() {
    run_error_cases(
        vec![
            ("unknown operator", json!({ "a": { "$foo": 1 } }), "unknown operator: $foo"),
            (
                "unknown top level operator",
                json!({ "$foo": [ { "a": 1 } ] }),
                "unknown top level operator: $foo",
            ),
            ("empty $and", json!({ "$and": [] }), "$and/$or/$nor must be a nonempty array"),
            (
                "$or not an array",
                json!({ "$or": { "a": 1 } }),
                "$and/$or/$nor must be a nonempty array",
            ),
            (
                "$nor entry not a document",
                json!({ "$nor": [1] }),
                "$or/$and/$nor entries need to be full objects",
            ),
            ("$in not an array", json!({ "a": { "$in": 1 } }), "$in needs an array"),
            ("$nin not an array", json!({ "a": { "$nin": "x" } }), "$nin needs an array"),
            ("$all not an array", json!({ "a": { "$all": 1 } }), "$all needs an array"),
            ("negative $size", json!({ "a": { "$size": -1 } }), "$size may not be negative"),
            ("fractional $size", json!({ "a": { "$size": 1.5 } }), "$size must be a whole number"),
            ("$size string", json!({ "a": { "$size": "2" } }), "$size needs a number"),
            (
                "$elemMatch not a document",
                json!({ "a": { "$elemMatch": 1 } }),
                "$elemMatch needs an Object",
            ),
            (
                "$not not a document",
                json!({ "a": { "$not": 1 } }),
                "$not needs a regex or a document",
            ),
            ("$not empty", json!({ "a": { "$not": {} } }), "$not cannot be empty"),
            (
                "$regex unsupported",
                json!({ "a": { "$regex": "^ab", "$options": "i" } }),
                "$regex is not supported",
            ),
            ("$type unsupported", json!({ "a": { "$type": "string" } }), "$type is not supported"),
            ("$where unsupported", json!({ "$where": "true" }), "$where is not supported"),
            (
                "$all mixing $elemMatch",
                json!({ "a": { "$all": [ { "$elemMatch": { "b": 1 } }, 2 ] } }),
                "$all/$elemMatch has to be consistent",
            ),
            (
                "operator in $in",
                json!({ "a": { "$in": [ { "$gt": 1 } ] } }),
                "cannot nest $ under $in",
            ),
            ("invalid ObjectId", json!({ "_id": { "$oid": "xyz" } }), "invalid $oid"),
            ("invalid date", json!({ "t": { "$date": "yesterday" } }), "invalid $date"),
            ("field among operators", json!({ "a": { "$gt": 1, "b": 2 } }), "unknown operator: b"),
            (
                "empty path component",
                json!({ "a..b": 1 }),
                "The path 'a..b' contains an empty field name",
            ),
            ("not an object", json!([1]), "filter must be an object"),
        ],
        |input| Filter::parse(input).map(drop),
    );
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    type Build = fn(Value) -> Value;
    let shapes: [(Value, Build, Build); 3] = [
        (json!({ "a": 1 }), |inner| json!({ "$and": [inner] }), |inner| inner),
        (json!({ "b": 1 }), |inner| json!({ "a": { "$elemMatch": inner } }), |inner| inner),
        (json!({ "$gt": 1 }), |inner| json!({ "$not": inner }), |inner| json!({ "a": inner })),
    ];
    for (start, wrap, finish) in shapes {
        let mut filter = start;
        for _ in 0..150 {
            filter = wrap(filter);
        }
        let filter = finish(filter);
        let error = Filter::parse(&filter).expect_err("too deep");
        assert!(error.0.starts_with("exceeded maximum query tree depth"), "{error}");
    }
    let mut shallow = json!({ "a": 1 });
    for _ in 0..50 {
        shallow = json!({ "$or": [shallow] });
    }
    assert!(Filter::parse(&shallow).unwrap().matches(&doc(json!({ "a": 1 }))));
}

#[test]
fn match_positions() {
    let grades = json!({ "_id": 4, "grades": [ { "grade": 80, "mean": 75 }, { "grade": 85, "mean": 90 }, { "grade": 85, "mean": 85 } ] });
    let cases: Vec<(&str, Value, Value, Option<Option<usize>>)> = vec![
        (
            "element of a value array",
            json!({ "grades": [85, 80, 80] }),
            json!({ "grades": 80 }),
            Some(Some(1)),
        ),
        ("path through documents", grades.clone(), json!({ "grades.grade": 85 }), Some(Some(1))),
        (
            "$elemMatch",
            grades.clone(),
            json!({ "grades": { "$elemMatch": { "grade": { "$lte": 90 }, "mean": { "$gt": 80 } } } }),
            Some(Some(1)),
        ),
        ("comparison", grades.clone(), json!({ "grades.mean": { "$lt": 80 } }), Some(Some(0))),
        ("whole array", json!({ "a": [1, 2] }), json!({ "a": [1, 2] }), Some(None)),
        ("not an array", json!({ "a": 1 }), json!({ "a": 1 }), Some(None)),
        (
            "$or gives no position",
            json!({ "a": [1, 2] }),
            json!({ "$or": [ { "a": 2 } ] }),
            Some(None),
        ),
        (
            "first array in the filter",
            json!({ "a": [1, 2, 3], "b": [4, 5] }),
            json!({ "a": 3, "b": 5 }),
            Some(Some(2)),
        ),
        ("no match", json!({ "a": [1, 2] }), json!({ "a": 3 }), None),
        (
            "$all",
            json!({ "a": ["x", "y", "z"] }),
            json!({ "a": { "$all": ["z", "x"] } }),
            Some(Some(2)),
        ),
    ];
    for (name, document, filter, expected) in cases {
        let got = Filter::parse(&filter).unwrap().match_position(&doc(document));
        assert_eq!(got, expected, "{name}");
    }
}

#[test]
fn equality_fields_and_id_lookup() {
    let filter = Filter::parse(&json!({
        "a": 1, "b.c": "x", "$and": [ { "d": 2 }, { "e": { "$gt": 1 } } ], "f": { "$eq": null },
        "$or": [ { "g": 1 } ]
    }))
    .unwrap();
    let fields: Vec<(String, Value)> = filter.equality_fields();
    let expected = [("a", json!(1)), ("b.c", json!("x")), ("d", json!(2)), ("f", Value::Null)];
    assert_eq!(fields, expected.map(|(k, v)| (k.to_string(), v)));
    assert_eq!(filter.id_equality(), None);

    let id = oid(A);
    for filter in [json!({ "_id": id }), json!({ "_id": { "$eq": id } })] {
        assert_eq!(Filter::parse(&filter).unwrap().id_equality(), Some(&id), "{filter}");
    }
    for filter in [json!({ "_id": id, "a": 1 }), json!({ "_id": { "$in": [id] } }), json!({})] {
        assert_eq!(Filter::parse(&filter).unwrap().id_equality(), None, "{filter}");
    }
}
