//! Filter cases on the MongoDB manual's example collections: embedded documents, arrays,
//! arrays of embedded documents, logical operators.

use serde_json::{json, Value};

use super::{run_filter_cases, FilterCase};

/// "Query on Embedded/Nested Documents" and "Query Documents" in the manual.
fn sizes() -> Value {
    json!([
        { "_id": 1, "item": "journal", "qty": 25, "size": { "h": 14, "w": 21, "uom": "cm" }, "status": "A" },
        { "_id": 2, "item": "notebook", "qty": 50, "size": { "h": 8.5, "w": 11, "uom": "in" }, "status": "A" },
        { "_id": 3, "item": "paper", "qty": 100, "size": { "h": 8.5, "w": 11, "uom": "in" }, "status": "D" },
        { "_id": 4, "item": "planner", "qty": 75, "size": { "h": 22.85, "w": 30, "uom": "cm" }, "status": "D" },
        { "_id": 5, "item": "postcard", "qty": 45, "size": { "h": 10, "w": 15.25, "uom": "cm" }, "status": "A" }
    ])
}

/// "Query an Array" in the manual.
fn tags() -> Value {
    json!([
        { "_id": 1, "item": "journal", "qty": 25, "tags": ["blank", "red"], "dim_cm": [14, 21] },
        { "_id": 2, "item": "notebook", "qty": 50, "tags": ["red", "blank"], "dim_cm": [14, 21] },
        { "_id": 3, "item": "paper", "qty": 100, "tags": ["red", "blank", "plain"], "dim_cm": [14, 21] },
        { "_id": 4, "item": "planner", "qty": 75, "tags": ["blank", "red"], "dim_cm": [22.85, 30] },
        { "_id": 5, "item": "postcard", "qty": 45, "tags": ["blue"], "dim_cm": [10, 15.25] }
    ])
}

/// "Query an Array of Embedded Documents" in the manual.
fn instock() -> Value {
    json!([
        { "_id": 1, "item": "journal", "instock": [ { "warehouse": "A", "qty": 5 }, { "warehouse": "C", "qty": 15 } ] },
        { "_id": 2, "item": "notebook", "instock": [ { "warehouse": "C", "qty": 5 } ] },
        { "_id": 3, "item": "paper", "instock": [ { "warehouse": "A", "qty": 60 }, { "warehouse": "B", "qty": 15 } ] },
        { "_id": 4, "item": "planner", "instock": [ { "warehouse": "A", "qty": 40 }, { "warehouse": "B", "qty": 5 } ] },
        { "_id": 5, "item": "postcard", "instock": [ { "warehouse": "B", "qty": 15 }, { "warehouse": "C", "qty": 35 } ] }
    ])
}

/// The `$all` reference page.
fn codes() -> Value {
    json!([
        { "_id": 1, "code": "xyz", "tags": ["school", "book", "bag", "headphone", "appliance"],
          "qty": [ { "size": "S", "num": 10, "color": "blue" }, { "size": "M", "num": 45, "color": "blue" }, { "size": "L", "num": 100, "color": "green" } ] },
        { "_id": 2, "code": "abc", "tags": ["appliance", "school", "book"],
          "qty": [ { "size": "6", "num": 100, "color": "green" }, { "size": "6", "num": 50, "color": "blue" }, { "size": "8", "num": 100, "color": "brown" } ] },
        { "_id": 3, "code": "efg", "tags": ["school", "book"],
          "qty": [ { "size": "S", "num": 10, "color": "blue" }, { "size": "M", "num": 100, "color": "blue" }, { "size": "L", "num": 100, "color": "green" } ] },
        { "_id": 4, "code": "ijk", "tags": ["electronics", "school"],
          "qty": [ { "size": "M", "num": 100, "color": "green" } ] }
    ])
}

/// The `$elemMatch` reference page.
fn survey() -> Value {
    json!([
        { "_id": 1, "results": [ { "product": "abc", "score": 10 }, { "product": "xyz", "score": 5 } ] },
        { "_id": 2, "results": [ { "product": "abc", "score": 8 }, { "product": "xyz", "score": 7 } ] },
        { "_id": 3, "results": [ { "product": "abc", "score": 7 }, { "product": "xyz", "score": 8 } ] },
        { "_id": 4, "results": [ { "product": "abc", "score": 7 }, { "product": "def", "score": 8 } ] }
    ])
}

fn filter_cases() -> Vec<FilterCase> {
    vec![
        ("empty filter matches all", sizes(), json!({}), json!([1, 2, 3, 4, 5])),
        (
            "embedded document equality",
            sizes(),
            json!({ "size": { "h": 14, "w": 21, "uom": "cm" } }),
            json!([1]),
        ),
        // "Equality matches on the whole embedded document require an exact match ... including the field order."
        (
            "embedded document field order matters",
            sizes(),
            json!({ "size": { "w": 21, "h": 14, "uom": "cm" } }),
            json!([]),
        ),
        (
            "embedded document must not miss fields",
            sizes(),
            json!({ "size": { "h": 14, "w": 21 } }),
            json!([]),
        ),
        ("dotted path equality", sizes(), json!({ "size.uom": "in" }), json!([2, 3])),
        ("dotted path $lt", sizes(), json!({ "size.h": { "$lt": 15 } }), json!([1, 2, 3, 5])),
        (
            "implicit and",
            sizes(),
            json!({ "size.h": { "$lt": 15 }, "size.uom": "in", "status": "D" }),
            json!([3]),
        ),
        (
            "and of equality and $lt",
            sizes(),
            json!({ "status": "A", "qty": { "$lt": 30 } }),
            json!([1]),
        ),
        (
            "$or",
            sizes(),
            json!({ "$or": [ { "status": "A" }, { "qty": { "$lt": 30 } } ] }),
            json!([1, 2, 5]),
        ),
        (
            "and with $or",
            sizes(),
            json!({ "status": "A", "$or": [ { "qty": { "$lt": 30 } }, { "item": "postcard" } ] }),
            json!([1, 5]),
        ),
        ("$in", sizes(), json!({ "status": { "$in": ["A", "D"] } }), json!([1, 2, 3, 4, 5])),
        ("$nin", sizes(), json!({ "status": { "$nin": ["A"] } }), json!([3, 4])),
        (
            "$gte and $lte on one field",
            sizes(),
            json!({ "qty": { "$gte": 50, "$lte": 75 } }),
            json!([2, 4]),
        ),
        (
            "explicit $and",
            sizes(),
            json!({ "$and": [ { "qty": { "$gt": 40 } }, { "qty": { "$lt": 60 } } ] }),
            json!([2, 5]),
        ),
        // $nor: documents that fail every clause.
        (
            "$nor",
            sizes(),
            json!({ "$nor": [ { "status": "A" }, { "qty": { "$lt": 80 } } ] }),
            json!([3]),
        ),
        ("$not", sizes(), json!({ "qty": { "$not": { "$gt": 50 } } }), json!([1, 2, 5])),
        ("$ne on dotted path", sizes(), json!({ "size.uom": { "$ne": "cm" } }), json!([2, 3])),
        ("$eq explicit", sizes(), json!({ "item": { "$eq": "paper" } }), json!([3])),
        ("$comment is ignored", sizes(), json!({ "item": "paper", "$comment": "why" }), json!([3])),
        // "Query an Array": exact array match, in order.
        ("array exact match", tags(), json!({ "tags": ["red", "blank"] }), json!([2])),
        (
            "array exact match other order",
            tags(),
            json!({ "tags": ["blank", "red"] }),
            json!([1, 4]),
        ),
        (
            "$all ignores order",
            tags(),
            json!({ "tags": { "$all": ["red", "blank"] } }),
            json!([1, 2, 3, 4]),
        ),
        ("array contains element", tags(), json!({ "tags": "red" }), json!([1, 2, 3, 4])),
        ("array element $gt", tags(), json!({ "dim_cm": { "$gt": 25 } }), json!([4])),
        // Compound conditions on an array: different elements may satisfy each condition.
        (
            "array compound condition",
            tags(),
            json!({ "dim_cm": { "$gt": 15, "$lt": 20 } }),
            json!([1, 2, 3, 5]),
        ),
        (
            "array $elemMatch values",
            tags(),
            json!({ "dim_cm": { "$elemMatch": { "$gt": 22, "$lt": 30 } } }),
            json!([4]),
        ),
        ("array index path", tags(), json!({ "dim_cm.1": { "$gt": 25 } }), json!([4])),
        ("array $size", tags(), json!({ "tags": { "$size": 3 } }), json!([3])),
        ("array index equality", tags(), json!({ "tags.0": "red" }), json!([2, 3])),
        ("$in on arrays", tags(), json!({ "tags": { "$in": ["blue", "plain"] } }), json!([3, 5])),
        // $nin: "the field holds an array with no element equal to a value in the specified array".
        ("$nin on arrays", tags(), json!({ "tags": { "$nin": ["blank"] } }), json!([5])),
        ("$ne on arrays", tags(), json!({ "tags": { "$ne": "red" } }), json!([5])),
        ("$all empty matches nothing", tags(), json!({ "tags": { "$all": [] } }), json!([])),
        ("$all single", tags(), json!({ "tags": { "$all": ["blue"] } }), json!([5])),
        ("$exists on array index", tags(), json!({ "tags.2": { "$exists": true } }), json!([3])),
        ("$not $size", tags(), json!({ "tags": { "$not": { "$size": 2 } } }), json!([3, 5])),
        // "Query an Array of Embedded Documents": whole-element match is exact, field order included.
        (
            "array of documents element equality",
            instock(),
            json!({ "instock": { "warehouse": "A", "qty": 5 } }),
            json!([1]),
        ),
        (
            "array of documents element order matters",
            instock(),
            json!({ "instock": { "qty": 5, "warehouse": "A" } }),
            json!([]),
        ),
        (
            "path through array of documents",
            instock(),
            json!({ "instock.qty": { "$lte": 20 } }),
            json!([1, 2, 3, 4, 5]),
        ),
        (
            "index then field",
            instock(),
            json!({ "instock.0.qty": { "$lte": 20 } }),
            json!([1, 2, 5]),
        ),
        (
            "$elemMatch documents",
            instock(),
            json!({ "instock": { "$elemMatch": { "qty": 5, "warehouse": "A" } } }),
            json!([1]),
        ),
        (
            "$elemMatch range",
            instock(),
            json!({ "instock": { "$elemMatch": { "qty": { "$gt": 10, "$lte": 20 } } } }),
            json!([1, 3, 5]),
        ),
        // Without $elemMatch, any combination of elements can satisfy the conditions.
        (
            "range without $elemMatch",
            instock(),
            json!({ "instock.qty": { "$gt": 10, "$lte": 20 } }),
            json!([1, 3, 4, 5]),
        ),
        (
            "two paths into one array",
            instock(),
            json!({ "instock.qty": 5, "instock.warehouse": "A" }),
            json!([1, 4]),
        ),
        (
            "$ne through array",
            instock(),
            json!({ "instock.warehouse": { "$ne": "A" } }),
            json!([2, 5]),
        ),
        (
            "$exists through array",
            instock(),
            json!({ "instock.warehouse": { "$exists": true } }),
            json!([1, 2, 3, 4, 5]),
        ),
        (
            "$all with $elemMatch",
            codes(),
            json!({ "qty": { "$all": [
            { "$elemMatch": { "size": "M", "num": { "$gt": 50 } } },
            { "$elemMatch": { "num": 100, "color": "green" } } ] } }),
            json!([3, 4]),
        ),
        (
            "$all values",
            codes(),
            json!({ "tags": { "$all": ["appliance", "school", "book"] } }),
            json!([1, 2]),
        ),
        (
            "$elemMatch with condition",
            survey(),
            json!({ "results": { "$elemMatch": { "product": "xyz", "score": { "$gte": 8 } } } }),
            json!([3]),
        ),
        (
            "$elemMatch single field",
            survey(),
            json!({ "results": { "$elemMatch": { "product": "xyz" } } }),
            json!([1, 2, 3]),
        ),
        // The same conditions without $elemMatch may be met by different elements.
        (
            "no $elemMatch, different elements",
            survey(),
            json!({ "results.product": "xyz", "results.score": { "$gte": 8 } }),
            json!([1, 2, 3]),
        ),
        (
            "$elemMatch with $or",
            survey(),
            json!({ "results": { "$elemMatch": { "$or": [ { "score": 10 }, { "product": "def" } ] } } }),
            json!([1, 4]),
        ),
        (
            "$elemMatch values page",
            json!([ { "_id": 1, "results": [82, 85, 88] }, { "_id": 2, "results": [75, 88, 89] } ]),
            json!({ "results": { "$elemMatch": { "$gte": 80, "$lt": 85 } } }),
            json!([1]),
        ),
    ]
}

#[test]
fn filters_on_manual_collections() {
    let count = run_filter_cases(filter_cases());
    assert!(count >= 50, "{count}");
}
