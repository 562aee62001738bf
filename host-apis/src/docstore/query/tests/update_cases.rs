//! Update cases for the field operators, mostly the examples of MongoDB's update operator reference pages; the expected
//! documents are the manual's (compared as text, so field order counts).

use serde_json::{json, Value};

use super::{run_update_cases, UpdateCase};

fn product() -> Value {
    json!({ "_id": 100, "quantity": 250, "instock": true, "reorder": false,
            "details": { "model": "14QQ", "make": "Clothes Corp" },
            "tags": ["apparel", "clothing"], "ratings": [ { "by": "Customer007", "rating": 4 } ] })
}

fn field_cases() -> Vec<UpdateCase> {
    let all = json!({});
    vec![
        (
            "$set top-level fields",
            product(),
            all.clone(),
            json!({ "$set": { "quantity": 500, "details": { "model": "2600", "make": "Fashionaires" }, "tags": ["coats", "outerwear", "clothing"] } }),
            json!({ "_id": 100, "quantity": 500, "instock": true, "reorder": false,
                    "details": { "model": "2600", "make": "Fashionaires" },
                    "tags": ["coats", "outerwear", "clothing"], "ratings": [ { "by": "Customer007", "rating": 4 } ] }),
        ),
        (
            "$set embedded field",
            product(),
            all.clone(),
            json!({ "$set": { "details.make": "Kustom Kidz" } }),
            json!({ "_id": 100, "quantity": 250, "instock": true, "reorder": false,
                    "details": { "model": "14QQ", "make": "Kustom Kidz" },
                    "tags": ["apparel", "clothing"], "ratings": [ { "by": "Customer007", "rating": 4 } ] }),
        ),
        (
            "$set array elements",
            product(),
            all.clone(),
            json!({ "$set": { "tags.1": "rain gear", "ratings.0.rating": 2 } }),
            json!({ "_id": 100, "quantity": 250, "instock": true, "reorder": false,
                    "details": { "model": "14QQ", "make": "Clothes Corp" },
                    "tags": ["apparel", "rain gear"], "ratings": [ { "by": "Customer007", "rating": 2 } ] }),
        ),
        // "If the field does not exist, $set will add a new field"; dotted paths create embedded documents.
        (
            "$set creates embedded documents",
            json!({ "_id": 1 }),
            all.clone(),
            json!({ "$set": { "a.b.c": 1 } }),
            json!({ "_id": 1, "a": { "b": { "c": 1 } } }),
        ),
        // Setting past the end of an array pads it with nulls.
        (
            "$set pads arrays with null",
            json!({ "_id": 1, "a": [1] }),
            all.clone(),
            json!({ "$set": { "a.3": 4 } }),
            json!({ "_id": 1, "a": [1, null, null, 4] }),
        ),
        (
            "$set same value changes nothing",
            json!({ "_id": 1, "a": 1 }),
            all.clone(),
            json!({ "$set": { "a": 1, "_id": 1 } }),
            json!({ "_id": 1, "a": 1 }),
        ),
        (
            "$set keeps field position",
            json!({ "_id": 1, "a": 1, "b": 2 }),
            all.clone(),
            json!({ "$set": { "c": 3, "a": 9 } }),
            json!({ "_id": 1, "a": 9, "b": 2, "c": 3 }),
        ),
        (
            "$set extended JSON values",
            json!({ "_id": 1 }),
            all.clone(),
            json!({ "$set": { "ref": { "$oid": "5f0000000000000000000aa1" }, "at": { "$date": 5 } } }),
            json!({ "_id": 1, "ref": { "$oid": "5f0000000000000000000aa1" }, "at": { "$date": 5 } }),
        ),
        (
            "$unset",
            json!({ "_id": 1, "sku": "unknown", "quantity": 2, "instock": true, "x": 1 }),
            all.clone(),
            json!({ "$unset": { "quantity": "", "instock": "" } }),
            json!({ "_id": 1, "sku": "unknown", "x": 1 }),
        ),
        // $unset on an array element sets it to null rather than removing it.
        (
            "$unset array element",
            json!({ "_id": 1, "a": [1, 2, 3] }),
            all.clone(),
            json!({ "$unset": { "a.1": "" } }),
            json!({ "_id": 1, "a": [1, null, 3] }),
        ),
        (
            "$unset missing field",
            json!({ "_id": 1, "a": 1 }),
            all.clone(),
            json!({ "$unset": { "b.c": "" } }),
            json!({ "_id": 1, "a": 1 }),
        ),
        (
            "$inc",
            json!({ "_id": 1, "sku": "abc123", "quantity": 10, "metrics": { "orders": 2, "ratings": 3.5 } }),
            all.clone(),
            json!({ "$inc": { "quantity": -2, "metrics.orders": 1 } }),
            json!({ "_id": 1, "sku": "abc123", "quantity": 8, "metrics": { "orders": 3, "ratings": 3.5 } }),
        ),
        (
            "$inc missing field",
            json!({ "_id": 1 }),
            all.clone(),
            json!({ "$inc": { "n": 5 } }),
            json!({ "_id": 1, "n": 5 }),
        ),
        (
            "$inc with a float",
            json!({ "_id": 1, "a": 1 }),
            all.clone(),
            json!({ "$inc": { "a": 0.5 } }),
            json!({ "_id": 1, "a": 1.5 }),
        ),
        (
            "$inc keeps integers",
            json!({ "_id": 1, "a": 1 }),
            all.clone(),
            json!({ "$inc": { "a": 2 } }),
            json!({ "_id": 1, "a": 3 }),
        ),
        (
            "$mul",
            json!({ "_id": 1, "item": "Hats", "quantity": 25 }),
            all.clone(),
            json!({ "$mul": { "quantity": 2 } }),
            json!({ "_id": 1, "item": "Hats", "quantity": 50 }),
        ),
        // "If the field does not exist in a document, $mul adds the field and sets the value to zero of the same numeric type as the multiplier."
        (
            "$mul missing field",
            json!({ "_id": 2, "item": "Unknown" }),
            all.clone(),
            json!({ "$mul": { "price": 100 } }),
            json!({ "_id": 2, "item": "Unknown", "price": 0 }),
        ),
        (
            "$mul with a float",
            json!({ "_id": 1, "a": 2 }),
            all.clone(),
            json!({ "$mul": { "a": 1.5 } }),
            json!({ "_id": 1, "a": 3.0 }),
        ),
        (
            "$min lowers",
            json!({ "_id": 1, "highScore": 800, "lowScore": 200 }),
            all.clone(),
            json!({ "$min": { "lowScore": 150 } }),
            json!({ "_id": 1, "highScore": 800, "lowScore": 150 }),
        ),
        (
            "$min keeps",
            json!({ "_id": 1, "highScore": 800, "lowScore": 150 }),
            all.clone(),
            json!({ "$min": { "lowScore": 250 } }),
            json!({ "_id": 1, "highScore": 800, "lowScore": 150 }),
        ),
        (
            "$max raises",
            json!({ "_id": 1, "highScore": 800, "lowScore": 200 }),
            all.clone(),
            json!({ "$max": { "highScore": 950 } }),
            json!({ "_id": 1, "highScore": 950, "lowScore": 200 }),
        ),
        (
            "$max keeps",
            json!({ "_id": 1, "highScore": 950, "lowScore": 200 }),
            all.clone(),
            json!({ "$max": { "highScore": 870 } }),
            json!({ "_id": 1, "highScore": 950, "lowScore": 200 }),
        ),
        (
            "$min dates",
            json!({ "_id": 1, "dateEntered": { "$date": 2000 } }),
            all.clone(),
            json!({ "$min": { "dateEntered": { "$date": 1000 } } }),
            json!({ "_id": 1, "dateEntered": { "$date": 1000 } }),
        ),
        (
            "$min missing field",
            json!({ "_id": 1 }),
            all.clone(),
            json!({ "$min": { "a": 3 } }),
            json!({ "_id": 1, "a": 3 }),
        ),
        // $max compares with the BSON order: every string is above every number.
        (
            "$max across types",
            json!({ "_id": 1, "a": 5 }),
            all.clone(),
            json!({ "$max": { "a": "x" } }),
            json!({ "_id": 1, "a": "x" }),
        ),
        // "$rename ... performs an $unset of both the old name and the new name, and then performs a $set".
        (
            "$rename",
            json!({ "_id": 1, "alias": ["The American Cincinnatus"], "mobile": "555-555-5555", "nmae": { "first": "george", "last": "washington" } }),
            all.clone(),
            json!({ "$rename": { "nmae": "name" } }),
            json!({ "_id": 1, "alias": ["The American Cincinnatus"], "mobile": "555-555-5555", "name": { "first": "george", "last": "washington" } }),
        ),
        (
            "$rename embedded field",
            json!({ "_id": 1, "name": { "first": "george", "last": "washington" } }),
            all.clone(),
            json!({ "$rename": { "name.first": "name.fname" } }),
            json!({ "_id": 1, "name": { "last": "washington", "fname": "george" } }),
        ),
        (
            "$rename missing field",
            json!({ "_id": 1, "a": 1 }),
            all.clone(),
            json!({ "$rename": { "wife": "spouse" } }),
            json!({ "_id": 1, "a": 1 }),
        ),
        (
            "$rename over an existing field",
            json!({ "_id": 1, "a": 1, "b": 2, "c": 3 }),
            all.clone(),
            json!({ "$rename": { "a": "b" } }),
            json!({ "_id": 1, "c": 3, "b": 1 }),
        ),
        (
            "several operators",
            json!({ "_id": 1, "a": 1, "b": 2, "c": 3 }),
            all.clone(),
            json!({ "$set": { "a": 10 }, "$inc": { "b": 1 }, "$unset": { "c": 1 } }),
            json!({ "_id": 1, "a": 10, "b": 3 }),
        ),
        (
            "$setOnInsert is ignored by updates",
            json!({ "_id": 1, "a": 1 }),
            all.clone(),
            json!({ "$set": { "b": 2 }, "$setOnInsert": { "c": 3 } }),
            json!({ "_id": 1, "a": 1, "b": 2 }),
        ),
    ]
}

#[test]
fn field_updates() {
    let count = run_update_cases(field_cases());
    assert!(count >= 30, "{count}");
}
