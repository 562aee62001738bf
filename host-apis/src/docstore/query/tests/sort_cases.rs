//! Sort cases and the BSON comparison order ("Comparison/Sort Order" in the MongoDB manual).

use std::cmp::Ordering;

use serde_json::{json, Value};

use super::{run_error_cases, run_sort_cases, SortCase};
use crate::docstore::query::{compare_values, Sort};

fn people() -> Value {
    json!([
        { "_id": 1, "name": "carol", "age": 30 }, { "_id": 2, "name": "alice", "age": 25 },
        { "_id": 3, "name": "bob", "age": 30 }, { "_id": 4, "name": "dave", "age": 25.5 }
    ])
}

fn cases() -> Vec<SortCase> {
    let oid = json!({ "$oid": "5f0000000000000000000aa1" });
    vec![
        ("pymongo pairs", people(), json!([["age", -1], ["name", 1]]), json!([3, 1, 4, 2])),
        ("object form", people(), json!({ "age": 1, "name": -1 }), json!([2, 4, 1, 3])),
        ("one key, ties keep natural order", people(), json!([["age", -1]]), json!([1, 3, 4, 2])),
        ("no keys", people(), json!([]), json!([1, 2, 3, 4])),
        // Missing fields sort as null: first ascending, last descending.
        (
            "missing first ascending",
            json!([ { "_id": 1, "a": 2 }, { "_id": 2 }, { "_id": 3, "a": null }, { "_id": 4, "a": 1 } ]),
            json!({ "a": 1 }),
            json!([2, 3, 4, 1]),
        ),
        (
            "missing last descending",
            json!([ { "_id": 1, "a": 2 }, { "_id": 2 }, { "_id": 3, "a": null }, { "_id": 4, "a": 1 } ]),
            json!({ "a": -1 }),
            json!([1, 4, 2, 3]),
        ),
        // "an ascending sort compares the smallest elements of the arrays".
        (
            "arrays by smallest ascending",
            json!([ { "_id": 1, "a": [1, 5] }, { "_id": 2, "a": [0, 4] }, { "_id": 3, "a": 3 } ]),
            json!({ "a": 1 }),
            json!([2, 1, 3]),
        ),
        // "a descending sort compares the largest elements of the arrays".
        (
            "arrays by largest descending",
            json!([ { "_id": 1, "a": [1, 5] }, { "_id": 2, "a": [0, 4] }, { "_id": 3, "a": 3 } ]),
            json!({ "a": -1 }),
            json!([1, 2, 3]),
        ),
        // "the empty array [is] less than a null value or a missing field value".
        (
            "empty array before null",
            json!([ { "_id": 1, "a": 1 }, { "_id": 2, "a": null }, { "_id": 3, "a": [] } ]),
            json!({ "a": 1 }),
            json!([3, 2, 1]),
        ),
        (
            "BSON type order",
            json!([
                { "_id": "date", "a": { "$date": 0 } }, { "_id": "bool", "a": true }, { "_id": "oid", "a": oid },
                { "_id": "object", "a": { "x": 1 } }, { "_id": "string", "a": "s" }, { "_id": "number", "a": 5 },
                { "_id": "null", "a": null } ]),
            json!({ "a": 1 }),
            json!(["null", "number", "string", "object", "oid", "bool", "date"]),
        ),
        (
            "numbers across int and float",
            json!([ { "_id": 1, "a": 2 }, { "_id": 2, "a": 1.5 }, { "_id": 3, "a": -1 }, { "_id": 4, "a": 1 } ]),
            json!({ "a": 1 }),
            json!([3, 4, 2, 1]),
        ),
        (
            "dotted path",
            json!([ { "_id": 1, "b": { "c": "y" } }, { "_id": 2, "b": { "c": "x" } }, { "_id": 3, "b": [ { "c": "z" }, { "c": "w" } ] } ]),
            json!({ "b.c": 1 }),
            json!([3, 2, 1]),
        ),
        (
            "dates",
            json!([ { "_id": 1, "t": { "$date": 20 } }, { "_id": 2, "t": { "$date": -5 } }, { "_id": 3, "t": { "$date": 7 } } ]),
            json!({ "t": -1 }),
            json!([1, 3, 2]),
        ),
    ]
}

#[test]
fn sorts() {
    let count = run_sort_cases(cases());
    assert!(count >= 13, "{count}");
}

#[test]
fn sort_errors() {
    run_error_cases(
        vec![
            (
                "direction 2",
                json!({ "a": 2 }),
                "bad sort specification: the sort direction must be 1 or -1",
            ),
            (
                "direction string",
                json!([["a", "asc"]]),
                "bad sort specification: the sort direction must be 1 or -1",
            ),
            (
                "not a pair",
                json!([["a"]]),
                "bad sort specification: each sort key must be a [field, direction] pair",
            ),
            ("a string", json!("a"), "bad sort specification"),
            (
                "$meta",
                json!({ "$natural": 1 }),
                "bad sort specification: unsupported sort key $natural",
            ),
        ],
        |input| Sort::parse(input).map(drop),
    );
}

#[test]
fn bson_comparison_order() {
    let oid = |hex: &str| json!({ "$oid": hex });
    let cases: Vec<(Value, Value, Ordering)> = vec![
        (json!(null), json!(0), Ordering::Less),
        (json!(1e300), json!(""), Ordering::Less),
        (json!("z"), json!({}), Ordering::Less),
        (json!({ "a": 1 }), json!([]), Ordering::Less),
        (json!([1]), oid("000000000000000000000000"), Ordering::Less),
        (oid("ffffffffffffffffffffffff"), json!(false), Ordering::Less),
        (json!(true), json!({ "$date": 0 }), Ordering::Less),
        (json!(false), json!(true), Ordering::Less),
        (json!(1), json!(1.0), Ordering::Equal),
        (json!(-2.5), json!(-2), Ordering::Less),
        (json!("B"), json!("a"), Ordering::Less),
        (oid("5f0000000000000000000aa1"), oid("5F0000000000000000000AA1"), Ordering::Equal),
        (json!({ "$date": 5 }), json!({ "$date": { "$numberLong": "5" } }), Ordering::Equal),
        // Documents: pair by pair, value type before field name before value.
        (json!({ "a": 1 }), json!({ "a": 1, "b": 0 }), Ordering::Less),
        (json!({ "b": 1 }), json!({ "a": "x" }), Ordering::Less),
        (json!({ "a": 2 }), json!({ "b": 1 }), Ordering::Less),
        (json!([1, 2]), json!([1, 3]), Ordering::Less),
        (json!([2]), json!([1, 9]), Ordering::Greater),
    ];
    for (a, b, expected) in cases {
        assert_eq!(compare_values(&a, &b), expected, "{a} vs {b}");
        assert_eq!(compare_values(&b, &a), expected.reverse(), "{b} vs {a}");
    }
}
