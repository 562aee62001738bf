//! Updates that must fail (when parsed or when applied), upsert inserts, `$currentDate` and
//! replacement documents.

use serde_json::{json, Value};

use super::{doc, run_error_cases, run_update};
use crate::docstore::query::{check_replacement, Update};

#[test]
fn update_parse_errors() {
    run_error_cases(
        vec![
            ("no operators", json!({ "a": 1 }), "update only works with $ operators"),
            (
                "mixed keys",
                json!({ "$set": { "a": 1 }, "b": 2 }),
                "update only works with $ operators",
            ),
            ("empty update", json!({}), "update cannot be empty"),
            ("unknown modifier", json!({ "$foo": { "a": 1 } }), "Unknown modifier: $foo"),
            (
                "operand not a document",
                json!({ "$set": 5 }),
                "Modifiers operate on fields but we found type long instead",
            ),
            (
                "$inc by a string",
                json!({ "$inc": { "a": "x" } }),
                "Cannot increment with non-numeric argument",
            ),
            (
                "$mul by a string",
                json!({ "$mul": { "a": "x" } }),
                "Cannot multiply with non-numeric argument",
            ),
            // Two operators on one path, or on a path and its prefix, conflict.
            (
                "same path twice",
                json!({ "$set": { "a": 1 }, "$inc": { "a": 1 } }),
                "Updating the path 'a' would create a conflict at 'a'",
            ),
            (
                "path and prefix",
                json!({ "$set": { "a.b": 1, "a": 2 } }),
                "Updating the path 'a.b' would create a conflict at 'a'",
            ),
            (
                "$setOnInsert conflicts too",
                json!({ "$set": { "a": 1 }, "$setOnInsert": { "a": 2 } }),
                "Updating the path 'a' would create a conflict at 'a'",
            ),
            (
                "$rename target conflicts",
                json!({ "$rename": { "a": "b" }, "$set": { "b.c": 1 } }),
                "Updating the path 'b.c' would create a conflict at 'b'",
            ),
            (
                "$rename to itself",
                json!({ "$rename": { "a": "a" } }),
                "The source and target field for $rename must differ",
            ),
            (
                "$rename to a non-string",
                json!({ "$rename": { "a": 1 } }),
                "The 'to' field for $rename must be a string",
            ),
            ("$pop by 2", json!({ "$pop": { "a": 2 } }), "$pop expects 1 or -1"),
            (
                "$each not an array",
                json!({ "$push": { "a": { "$each": 1 } } }),
                "The argument to $each in $push must be an array",
            ),
            (
                "unknown $push clause",
                json!({ "$push": { "a": { "$each": [1], "$foo": 1 } } }),
                "Unrecognized clause in $push: $foo",
            ),
            (
                "array filters",
                json!({ "$set": { "a.$[].b": 1 } }),
                "array filters and $[] are not supported",
            ),
            (
                "dollar field",
                json!({ "$set": { "$x": 1 } }),
                "The dollar ($) prefixed field '$x' in '$x' is not valid for storage.",
            ),
            (
                "two positionals",
                json!({ "$set": { "a.$.b.$": 1 } }),
                "Too many positional (i.e. '$') elements found in path 'a.$.b.$'",
            ),
            ("empty path", json!({ "$set": { "": 1 } }), "An empty path is not valid"),
            (
                "pipeline",
                json!([ { "$set": { "a": 1 } } ]),
                "pipeline-style updates are not supported",
            ),
            (
                "$currentDate timestamp",
                json!({ "$currentDate": { "a": { "$type": "timestamp" } } }),
                "$currentDate with $type timestamp is not supported",
            ),
            (
                "$pull bad operator",
                json!({ "$pull": { "a": { "$foo": 1 } } }),
                "unknown operator: $foo",
            ),
        ],
        |input| Update::parse(input).map(drop),
    );
}

#[test]
fn update_apply_errors() {
    let cases: Vec<(&str, Value, Value, Value, &str)> = vec![
        ("$set _id", json!({ "_id": 1 }), json!({}), json!({ "$set": { "_id": 2 } }),
            "Performing an update on the path '_id' would modify the immutable field '_id'"),
        ("$unset _id", json!({ "_id": 1 }), json!({}), json!({ "$unset": { "_id": "" } }),
            "Performing an update on the path '_id' would modify the immutable field '_id'"),
        ("$rename _id", json!({ "_id": 1 }), json!({}), json!({ "$rename": { "_id": "id" } }),
            "Performing an update on the path '_id' would modify the immutable field '_id'"),
        ("$set inside _id", json!({ "_id": { "a": 1 } }), json!({}), json!({ "$set": { "_id.a": 2 } }),
            "Performing an update on the path '_id' would modify the immutable field '_id'"),
        ("$inc a string", json!({ "_id": 1, "a": "x" }), json!({}), json!({ "$inc": { "a": 1 } }),
            "Cannot apply $inc to a value of non-numeric type. {_id: 1} has the field 'a' of non-numeric type string"),
        ("$inc overflow", json!({ "_id": 1, "a": i64::MAX }), json!({}), json!({ "$inc": { "a": 1 } }),
            "Failed to apply $inc operations to current value (9223372036854775807)"),
        ("$push onto a number", json!({ "_id": 1, "a": 5 }), json!({}), json!({ "$push": { "a": 1 } }),
            "The field 'a' must be an array but is of type long"),
        ("$addToSet onto a string", json!({ "_id": 1, "a": "s" }), json!({}), json!({ "$addToSet": { "a": 1 } }),
            "Cannot apply $addToSet to non-array field. Field named 'a' has non-array type string"),
        ("$pull from a number", json!({ "_id": 1, "a": 5 }), json!({}), json!({ "$pull": { "a": 1 } }),
            "Cannot apply $pull to a non-array value"),
        ("$pop a string", json!({ "_id": 1, "a": "s" }), json!({}), json!({ "$pop": { "a": 1 } }),
            "Path 'a' contains an element of non-array type 'string'"),
        ("field inside a number", json!({ "_id": 1, "a": 5 }), json!({}), json!({ "$set": { "a.b": 1 } }),
            "Cannot create field 'b' in element {a: 5}"),
        ("named field inside an array", json!({ "_id": 1, "a": [1] }), json!({}), json!({ "$set": { "a.b": 1 } }),
            "Cannot create field 'b' in element {a: [1]}"),
        // "the positional $ operator ... the array field must appear as part of the query document".
        ("positional without array match", json!({ "_id": 1, "a": [1, 2] }), json!({ "_id": 1 }), json!({ "$set": { "a.$": 3 } }),
            "The positional operator did not find the match needed from the query."),
        ("$rename out of an array", json!({ "_id": 1, "a": [ { "b": 1 } ] }), json!({}), json!({ "$rename": { "a.0.b": "c" } }),
            "The source field cannot be an array element"),
        ("huge array padding", json!({ "_id": 1, "a": [] }), json!({}), json!({ "$set": { "a.99999999": 1 } }),
            "can't backfill more than 1500000 elements"),
    ];
    for (name, document, filter, update, expected) in cases {
        match run_update(&document, &filter, &update) {
            Ok((after, _)) => panic!("{name}: {update} succeeded with {after}"),
            Err(message) => assert!(message.starts_with(expected), "{name}: {message:?}"),
        }
    }
}

#[test]
fn failed_update_leaves_the_document_alone() {
    let original = json!({ "_id": 1, "a": 1, "b": "x" });
    let mut document = doc(original.clone());
    let update = Update::parse(&json!({ "$set": { "a": 2 }, "$inc": { "b": 1 } })).unwrap();
    assert!(update.apply(&mut document, None).is_err());
    assert_eq!(Value::Object(document), original);
}

#[test]
fn upsert_inserts_apply_set_on_insert() {
    let update = Update::parse(
        &json!({ "$set": { "item": "apple" }, "$setOnInsert": { "defaultQty": 100 } }),
    )
    .unwrap();
    let mut document = doc(json!({ "_id": 1 }));
    assert!(update.apply_insert(&mut document).unwrap());
    assert_eq!(Value::Object(document), json!({ "_id": 1, "item": "apple", "defaultQty": 100 }));
    // An upsert may give the new document its _id.
    let update = Update::parse(&json!({ "$set": { "_id": 7 } })).unwrap();
    let mut document = doc(json!({ "a": 1 }));
    assert!(update.apply_insert(&mut document).unwrap());
    assert_eq!(Value::Object(document), json!({ "a": 1, "_id": 7 }));
}

#[test]
fn current_date_sets_now() {
    let update =
        Update::parse(&json!({ "$currentDate": { "a": true, "b.c": { "$type": "date" } } }))
            .unwrap();
    let mut document = doc(json!({ "_id": 1 }));
    let before = super::super::update_ops::now_millis();
    assert!(update.apply(&mut document, None).unwrap());
    let a = document["a"]["$date"].as_i64().unwrap();
    assert!(a >= before && a < before + 60_000, "{a}");
    assert_eq!(document["b"]["c"]["$date"].as_i64(), Some(a));
}

#[test]
fn replacements() {
    assert_eq!(
        check_replacement(&json!({ "a": 1, "b": { "$c": 2 } })).unwrap(),
        doc(json!({ "a": 1, "b": { "$c": 2 } }))
    );
    for (replacement, expected) in [
        (json!({ "$set": { "a": 1 } }), "replacement can not include $ operators"),
        (json!({ "a": 1, "$inc": { "b": 1 } }), "replacement can not include $ operators"),
        (json!([1]), "replacement must be an object"),
    ] {
        let error = check_replacement(&replacement).unwrap_err();
        assert!(error.0.starts_with(expected), "{replacement}: {error}");
    }
}
