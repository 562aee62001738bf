//! Update cases for the array operators (`$push`, `$addToSet`, `$pull`, `$pullAll`, `$pop`) and
//! the positional `$`, from MongoDB's update operator reference pages; the expected documents
//! are the manual's (compared as text, so field order counts).

use serde_json::json;

use super::{run_update_cases, UpdateCase};

fn array_cases() -> Vec<UpdateCase> {
    let all = json!({});
    vec![
        (
            "$push",
            json!({ "_id": 1, "scores": [44, 78, 38, 80] }),
            all.clone(),
            json!({ "$push": { "scores": 89 } }),
            json!({ "_id": 1, "scores": [44, 78, 38, 80, 89] }),
        ),
        (
            "$push $each",
            json!({ "_id": 1, "scores": [44] }),
            all.clone(),
            json!({ "$push": { "scores": { "$each": [90, 92, 85] } } }),
            json!({ "_id": 1, "scores": [44, 90, 92, 85] }),
        ),
        (
            "$push creates the array",
            json!({ "_id": 1 }),
            all.clone(),
            json!({ "$push": { "a.b": 1 } }),
            json!({ "_id": 1, "a": { "b": [1] } }),
        ),
        (
            "$push an array",
            json!({ "_id": 1, "a": [1] }),
            all.clone(),
            json!({ "$push": { "a": [2, 3] } }),
            json!({ "_id": 1, "a": [1, [2, 3]] }),
        ),
        // The manual's quizzes example: $each, then $sort (stable), then $slice.
        (
            "$push $sort $slice",
            json!({ "_id": 5, "quizzes": [ { "wk": 1, "score": 10 }, { "wk": 2, "score": 8 }, { "wk": 3, "score": 5 }, { "wk": 4, "score": 6 } ] }),
            all.clone(),
            json!({ "$push": { "quizzes": { "$each": [ { "wk": 5, "score": 8 }, { "wk": 6, "score": 7 }, { "wk": 7, "score": 6 } ], "$sort": { "score": -1 }, "$slice": 3 } } }),
            json!({ "_id": 5, "quizzes": [ { "wk": 1, "score": 10 }, { "wk": 2, "score": 8 }, { "wk": 5, "score": 8 } ] }),
        ),
        (
            "$push $position",
            json!({ "_id": 1, "scores": [100] }),
            all.clone(),
            json!({ "$push": { "scores": { "$each": [50, 60, 70], "$position": 0 } } }),
            json!({ "_id": 1, "scores": [50, 60, 70, 100] }),
        ),
        (
            "$push negative $position",
            json!({ "_id": 1, "scores": [50, 60, 70, 100] }),
            all.clone(),
            json!({ "$push": { "scores": { "$each": [90, 80], "$position": -2 } } }),
            json!({ "_id": 1, "scores": [50, 60, 90, 80, 70, 100] }),
        ),
        (
            "$push negative $slice",
            json!({ "_id": 1, "scores": [40, 50, 60] }),
            all.clone(),
            json!({ "$push": { "scores": { "$each": [80, 78, 86], "$slice": -5 } } }),
            json!({ "_id": 1, "scores": [50, 60, 80, 78, 86] }),
        ),
        (
            "$push $sort values",
            json!({ "_id": 2, "tests": [89, 70, 89, 50] }),
            all.clone(),
            json!({ "$push": { "tests": { "$each": [40, 60], "$sort": 1 } } }),
            json!({ "_id": 2, "tests": [40, 50, 60, 70, 89, 89] }),
        ),
        (
            "$addToSet an array",
            json!({ "_id": 1, "letters": ["a", "b"] }),
            all.clone(),
            json!({ "$addToSet": { "letters": ["c", "d"] } }),
            json!({ "_id": 1, "letters": ["a", "b", ["c", "d"]] }),
        ),
        (
            "$addToSet new value",
            json!({ "_id": 1, "tags": ["electronics", "camera"] }),
            all.clone(),
            json!({ "$addToSet": { "tags": "accessories" } }),
            json!({ "_id": 1, "tags": ["electronics", "camera", "accessories"] }),
        ),
        (
            "$addToSet existing value",
            json!({ "_id": 1, "tags": ["electronics", "camera"] }),
            all.clone(),
            json!({ "$addToSet": { "tags": "camera" } }),
            json!({ "_id": 1, "tags": ["electronics", "camera"] }),
        ),
        (
            "$addToSet $each",
            json!({ "_id": 2, "item": "cable", "tags": ["electronics", "supplies"] }),
            all.clone(),
            json!({ "$addToSet": { "tags": { "$each": ["camera", "electronics", "accessories"] } } }),
            json!({ "_id": 2, "item": "cable", "tags": ["electronics", "supplies", "camera", "accessories"] }),
        ),
        (
            "$addToSet creates the array",
            json!({ "_id": 1 }),
            all.clone(),
            json!({ "$addToSet": { "a": { "$each": [1, 1, 2] } } }),
            json!({ "_id": 1, "a": [1, 2] }),
        ),
        (
            "$pull values and conditions",
            json!({ "_id": 1, "fruits": ["apples", "pears", "oranges", "grapes", "bananas"], "vegetables": ["carrots", "celery", "squash", "carrots"] }),
            all.clone(),
            json!({ "$pull": { "fruits": { "$in": ["apples", "oranges"] }, "vegetables": "carrots" } }),
            json!({ "_id": 1, "fruits": ["pears", "grapes", "bananas"], "vegetables": ["celery", "squash"] }),
        ),
        (
            "$pull condition",
            json!({ "_id": 1, "votes": [3, 5, 6, 7, 7, 8] }),
            all.clone(),
            json!({ "$pull": { "votes": { "$gte": 6 } } }),
            json!({ "_id": 1, "votes": [3, 5] }),
        ),
        (
            "$pull documents by condition",
            json!({ "_id": 1, "items": [ { "sku": "a", "qty": 0 }, { "sku": "b", "qty": 2 }, { "sku": "c", "qty": 0.5 } ] }),
            all.clone(),
            json!({ "$pull": { "items": { "qty": { "$lt": 1 } } } }),
            json!({ "_id": 1, "items": [ { "sku": "b", "qty": 2 } ] }),
        ),
        // $pull applies its query to each element as though it were a top-level document.
        (
            "$pull documents by query",
            json!({ "_id": 1, "results": [ { "item": "A", "score": 5 }, { "item": "B", "score": 8, "comment": "x" } ] }),
            all.clone(),
            json!({ "$pull": { "results": { "score": 8, "item": "B" } } }),
            json!({ "_id": 1, "results": [ { "item": "A", "score": 5 } ] }),
        ),
        (
            "$pull with nested $elemMatch",
            json!({ "_id": 1, "results": [
                { "item": "A", "score": 5, "answers": [ { "q": 1, "a": 4 }, { "q": 2, "a": 6 } ] },
                { "item": "B", "score": 8, "answers": [ { "q": 1, "a": 8 }, { "q": 2, "a": 9 } ] } ] }),
            all.clone(),
            json!({ "$pull": { "results": { "answers": { "$elemMatch": { "q": 2, "a": { "$gte": 8 } } } } } }),
            json!({ "_id": 1, "results": [ { "item": "A", "score": 5, "answers": [ { "q": 1, "a": 4 }, { "q": 2, "a": 6 } ] } ] }),
        ),
        (
            "$pull missing field",
            json!({ "_id": 1 }),
            all.clone(),
            json!({ "$pull": { "a": 1 } }),
            json!({ "_id": 1 }),
        ),
        (
            "$pullAll",
            json!({ "_id": 1, "scores": [0, 2, 5, 5, 1, 0] }),
            all.clone(),
            json!({ "$pullAll": { "scores": [0, 5] } }),
            json!({ "_id": 1, "scores": [2, 1] }),
        ),
        (
            "$pop first",
            json!({ "_id": 1, "scores": [8, 9, 10] }),
            all.clone(),
            json!({ "$pop": { "scores": -1 } }),
            json!({ "_id": 1, "scores": [9, 10] }),
        ),
        (
            "$pop last",
            json!({ "_id": 1, "scores": [8, 9, 10] }),
            all.clone(),
            json!({ "$pop": { "scores": 1 } }),
            json!({ "_id": 1, "scores": [8, 9] }),
        ),
        // The positional $ operator examples: the first element the query matched.
        (
            "positional $",
            json!({ "_id": 1, "grades": [85, 80, 80] }),
            json!({ "_id": 1, "grades": 80 }),
            json!({ "$set": { "grades.$": 82 } }),
            json!({ "_id": 1, "grades": [85, 82, 80] }),
        ),
        (
            "positional $ in documents",
            json!({ "_id": 4, "grades": [ { "grade": 80, "mean": 75, "std": 8 }, { "grade": 85, "mean": 90, "std": 5 }, { "grade": 85, "mean": 85, "std": 8 } ] }),
            json!({ "_id": 4, "grades.grade": 85 }),
            json!({ "$set": { "grades.$.std": 6 } }),
            json!({ "_id": 4, "grades": [ { "grade": 80, "mean": 75, "std": 8 }, { "grade": 85, "mean": 90, "std": 6 }, { "grade": 85, "mean": 85, "std": 8 } ] }),
        ),
        (
            "positional $ with $elemMatch",
            json!({ "_id": 5, "grades": [ { "grade": 80, "mean": 75, "std": 8 }, { "grade": 85, "mean": 90, "std": 5 }, { "grade": 90, "mean": 85, "std": 3 } ] }),
            json!({ "_id": 5, "grades": { "$elemMatch": { "grade": { "$lte": 90 }, "mean": { "$gt": 80 } } } }),
            json!({ "$set": { "grades.$.std": 6 } }),
            json!({ "_id": 5, "grades": [ { "grade": 80, "mean": 75, "std": 8 }, { "grade": 85, "mean": 90, "std": 6 }, { "grade": 90, "mean": 85, "std": 3 } ] }),
        ),
        (
            "positional $ with $inc",
            json!({ "_id": 1, "notes": [ { "author": "x", "votes": 1 }, { "author": "y", "votes": 4 } ] }),
            json!({ "notes.author": "y" }),
            json!({ "$inc": { "notes.$.votes": 1 } }),
            json!({ "_id": 1, "notes": [ { "author": "x", "votes": 1 }, { "author": "y", "votes": 5 } ] }),
        ),
    ]
}

#[test]
fn array_updates() {
    let count = run_update_cases(array_cases());
    assert!(count >= 25, "{count}");
}
