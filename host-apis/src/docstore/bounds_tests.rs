//! The bounds on one document-store operation (issue 20): a linear duplicate-id check, all or
//! nothing inserts, the time budget checked per document and per comparison, and reads that
//! create no storage. Against the real sled backend on a temporary directory.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::budget::Budget;
use super::query::{Filter, Meter, OutOfTime};
use super::suite::sled_documents;
use super::*;

fn at(collection: &str) -> CollectionRef {
    CollectionRef { space: "s".into(), database: "c1".into(), collection: collection.into() }
}

fn sled_store() -> (tempfile::TempDir, sled::Db, Documents) {
    let dir = tempfile::tempdir().unwrap();
    let db = sled::open(dir.path()).unwrap();
    let store = Documents::new(Arc::new(sled_documents(db.clone())), Limits::default());
    (dir, db, store)
}

fn numbered(count: usize) -> Vec<Value> {
    (0..count).map(|i| json!({"_id": format!("d{i}"), "n": i})).collect()
}

#[test]
fn a_repeated_id_is_found_by_position_in_a_full_batch() {
    let mut documents = numbered(10_000);
    documents[9_999] = json!({"_id": "d0"});
    let budget = Budget::new(&Limits::default(), None);
    let error = engine::prepare_insert(documents, &Limits::default(), &budget).unwrap_err();
    let DocError::DuplicateKey(message) = error else { panic!("{error:?}") };
    assert!(message.contains("documents 0 and 9999"), "{message}");
    // Ids the query language calls equal are one id: 1 and 1.0.
    let budget = Budget::new(&Limits::default(), None);
    let same = engine::prepare_insert(
        vec![json!({"_id": 1}), json!({"_id": 1.0})],
        &Limits::default(),
        &budget,
    );
    assert!(matches!(same, Err(DocError::DuplicateKey(_))), "{same:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_duplicate_commits_nothing_of_a_full_batch() {
    let (_dir, _db, store) = sled_store();
    let c = at("batch");
    store.insert(&c, vec![json!({"_id": "taken"})]).await.unwrap();
    // Against the collection: the last of 10 000 documents has an id already stored.
    let mut documents = numbered(10_000);
    documents[9_999] = json!({"_id": "taken"});
    let error = store.insert(&c, documents).await.unwrap_err();
    assert!(
        matches!(&error, DocError::DuplicateKey(m) if m.contains("nothing was inserted")),
        "{error:?}"
    );
    // Within the batch.
    let mut documents = numbered(10_000);
    documents[9_999] = json!({"_id": "d17"});
    assert!(matches!(store.insert(&c, documents).await, Err(DocError::DuplicateKey(_))));
    assert_eq!(store.count(&c, &json!({})).await.unwrap(), 1, "only the first insert stored");
    assert_eq!(store.insert(&c, numbered(10_000)).await.unwrap().len(), 10_000);
    assert_eq!(store.count(&c, &json!({})).await.unwrap(), 10_001);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_past_the_callers_deadline_is_refused_and_not_committed() {
    let (_dir, _db, store) = sled_store();
    let c = at("late");
    let late = store.within(CallDeadline { at: Instant::now(), caller: "the test" });
    let error = late.insert(&c, numbered(100)).await.unwrap_err();
    let expected = DocError::LimitExceeded("operation exceeded the time left to the test".into());
    assert_eq!(error, expected);
    store.insert(&c, numbered(3)).await.unwrap();
    let (all, set) = (json!({}), json!({"$set": {"x": 1}}));
    let options = UpdateOptions { many: true, upsert: false };
    assert!(matches!(late.update(&c, &all, &set, options).await, Err(DocError::LimitExceeded(_))));
    assert!(matches!(late.delete(&c, &json!({}), true).await, Err(DocError::LimitExceeded(_))));
    assert_eq!(store.count(&c, &json!({"x": 1})).await.unwrap(), 0, "no update committed");
    assert_eq!(store.count(&c, &json!({})).await.unwrap(), 3, "nothing deleted");
}

#[test]
fn the_budget_stops_a_huge_in_inside_one_document() {
    // 20 000 array elements against 100 000 values, none equal: 2·10⁹ comparisons.
    let document = json!({"items": (0..20_000).collect::<Vec<i64>>()});
    let Value::Object(document) = document else { unreachable!() };
    let wanted: Vec<i64> = (-100_000..0).collect();
    let filter = Filter::parse(&json!({"items": {"$in": wanted}})).unwrap();
    let meter = Meter::until(Instant::now() + Duration::from_millis(20));
    assert_eq!(filter.match_within(&document, &meter), Err(OutOfTime));
    // The same filter, unbounded, on a small document: an ordinary answer.
    let small = json!({"items": [1, -5]});
    let Value::Object(small) = small else { unreachable!() };
    assert_eq!(filter.match_within(&small, &Meter::unbounded()), Ok(Some(Some(1))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_in_query_answers_with_the_time_limit() {
    let dir = tempfile::tempdir().unwrap();
    let db = sled::open(dir.path()).unwrap();
    let limits = Limits { max_query_time: Duration::from_millis(200), ..Limits::default() };
    let store = Documents::new(Arc::new(sled_documents(db)), limits);
    let c = at("wide");
    store
        .insert(&c, vec![json!({"_id": "wide", "items": (0..20_000).collect::<Vec<i64>>()})])
        .await
        .unwrap();
    let wanted: Vec<i64> = (-100_000..0).collect();
    let error =
        store.find(&c, &json!({"items": {"$in": wanted}}), None, None, 0, 0).await.unwrap_err();
    assert_eq!(error, DocError::LimitExceeded("operation exceeded time limit of 200 ms".into()));
    let nin = json!({"items": {"$nin": (-100_000..0).collect::<Vec<i64>>()}});
    assert!(matches!(store.count(&c, &nin).await, Err(DocError::LimitExceeded(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_of_unknown_collections_create_no_storage() {
    let (_dir, db, store) = sled_store();
    let before = db.tree_names().len();
    for collection in ["never-written-a", "never-written-b"] {
        let c = at(collection);
        assert!(store.find(&c, &json!({}), None, None, 0, 0).await.unwrap().is_empty());
        assert_eq!(store.count(&c, &json!({})).await.unwrap(), 0);
        let options = UpdateOptions { many: true, upsert: false };
        let updated = store.update(&c, &json!({}), &json!({"$set": {"a": 1}}), options).await;
        assert_eq!(updated.unwrap().matched, 0);
        assert_eq!(store.delete(&c, &json!({}), true).await.unwrap(), 0);
    }
    assert_eq!(db.tree_names().len(), before, "no tree created by reads");
    // An upsert writes, so it creates the collection; reads find it afterwards.
    let c = at("upserted");
    let options = UpdateOptions { many: false, upsert: true };
    store.update(&c, &json!({"_id": 1}), &json!({"$set": {"a": 1}}), options).await.unwrap();
    assert_eq!(db.tree_names().len(), before + 1);
    assert_eq!(store.count(&c, &json!({"a": 1})).await.unwrap(), 1);
}

#[test]
fn the_budget_stops_an_expensive_update_operator() {
    // `$addToSet` of 50 000 new values into 20 000 elements, and `$pullAll` of 50 000 absent ones:
    // each compares every pair.
    let document = json!({"items": (0..20_000).collect::<Vec<i64>>()});
    let Value::Object(document) = document else { unreachable!() };
    for update in [
        json!({"$addToSet": {"items": {"$each": (-50_000..0).collect::<Vec<i64>>()}}}),
        json!({"$pullAll": {"items": (-50_000..0).collect::<Vec<i64>>()}}),
    ] {
        let update = super::query::Update::parse(&update).unwrap();
        let mut updated = document.clone();
        let meter = Meter::until(Instant::now() + Duration::from_millis(20));
        let changed = update.apply_within(&mut updated, None, &meter).unwrap();
        assert_eq!(meter.check(), Err(OutOfTime), "{update:?}");
        assert!(!changed && updated == document, "left as it was");
    }
}
