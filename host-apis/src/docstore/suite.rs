//! One behaviour suite run against every backend: the embedded sled store and PostgreSQL (at
//! `WASMFN_TEST_POSTGRES_URL`, default the machine's 127.0.0.1:5432 database `test`).

use std::sync::Arc;

use serde_json::{json, Value};

use super::events::recording::Recorder;
use super::postgres::PostgresDocuments;
use super::sled_store::SledDocuments;
use super::*;

pub fn postgres_url() -> String {
    std::env::var("WASMFN_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A new, empty database on the test server, `<prefix>_<random>`: its name, its URL and a
/// connection to the server's own database (to drop it with).
pub async fn fresh_database(prefix: &str) -> (String, url::Url, tokio_postgres::Client) {
    let url = postgres_url();
    let (admin, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|error| panic!("PostgreSQL must run for this test: {error}"));
    tokio::spawn(connection);
    let name = format!("{prefix}_{}", rand::random::<u32>());
    admin.batch_execute(&format!("CREATE DATABASE {name}")).await.unwrap();
    let mut fresh = url::Url::parse(&url).unwrap();
    fresh.set_path(&name);
    (name, fresh, admin)
}

/// The embedded store on `db` with the default quota.
pub fn sled_documents(db: sled::Db) -> SledDocuments {
    SledDocuments::open(db, SpaceQuota::default()).expect("opening the sled store")
}

fn at(space: &str) -> CollectionRef {
    CollectionRef { space: space.into(), database: "c1".into(), collection: "fn".into() }
}

fn values(documents: &[Document], field: &str) -> Vec<Value> {
    documents.iter().map(|d| d.get(field).cloned().unwrap_or(Value::Null)).collect()
}

async fn all(store: &Documents, at: &CollectionRef) -> Vec<Document> {
    store.find(at, &json!({}), None, None, 0, 0).await.unwrap()
}

/// Runs every case against `backend`, in spaces named after `run` so runs do not meet.
pub async fn run_suite(backend: Arc<dyn DocumentStore>, run: &str) {
    let limits =
        Limits { max_document_bytes: 4096, max_result_bytes: 64 << 10, ..Limits::default() };
    let recorder = Arc::new(Recorder::default());
    let store = Documents::new(backend.clone(), limits);
    store.subscribe(recorder.clone());
    let space = format!("{run}-a");
    let other = format!("{run}-b");
    let c = at(&space);

    // Insert: ids assigned in order, field order kept, documents read back equal.
    let ids = store
        .insert(&c, vec![json!({"z": 1, "a": "first"}), json!({"_id": 7, "b": [1, 2]})])
        .await
        .unwrap();
    assert_eq!(ids.len(), 2);
    assert_eq!(ids[0]["$oid"].as_str().unwrap().len(), 24, "new ObjectId: {ids:?}");
    assert_eq!(ids[1], json!(7));
    let docs = all(&store, &c).await;
    assert_eq!(docs.len(), 2);
    // Natural order is `_id` order (the JSON of the id: numbers before ObjectIds).
    assert_eq!(values(&docs, "_id"), [ids[1].clone(), ids[0].clone()]);
    assert_eq!(docs[1].keys().collect::<Vec<_>>(), ["_id", "z", "a"], "field order kept");

    // Duplicate ids: refused, and the batch is all or nothing.
    let duplicate = store.insert(&c, vec![json!({"_id": 8}), json!({"_id": 7})]).await;
    assert!(matches!(duplicate, Err(DocError::DuplicateKey(_))), "{duplicate:?}");
    assert_eq!(all(&store, &c).await.len(), 2, "no part of a failed batch stored");
    let same = store.insert(&c, vec![json!({"_id": 7.0})]).await;
    assert!(matches!(same, Err(DocError::DuplicateKey(_))), "7.0 is the _id 7: {same:?}");
    let by_float = store.find(&c, &json!({"_id": 7.0}), None, None, 0, 0).await.unwrap();
    assert_eq!(by_float.len(), 1, "a point lookup by 7.0 finds the _id 7");

    // Queries: filters, sort, skip, limit, projection, count.
    store
        .insert(
            &c,
            (1..=5)
                .map(|n| json!({"n": n, "kind": if n % 2 == 0 { "even" } else { "odd" }}))
                .collect(),
        )
        .await
        .unwrap();
    let sort = json!([["n", -1]]);
    let odd = store
        .find(&c, &json!({"kind": "odd"}), Some(&json!({"n": 1, "_id": 0})), Some(&sort), 1, 1)
        .await
        .unwrap();
    assert_eq!(odd, vec![json!({"n": 3}).as_object().unwrap().clone()]);
    assert_eq!(store.count(&c, &json!({"n": {"$gte": 2}})).await.unwrap(), 4);
    let point = store.find(&c, &json!({"_id": 7}), None, None, 0, 0).await.unwrap();
    assert_eq!(values(&point, "b"), [json!([1, 2])]);

    // Updates: counts, operators, positional, no-op, upsert.
    let result = store
        .update(
            &c,
            &json!({"kind": "odd"}),
            &json!({"$inc": {"n": 10}}),
            UpdateOptions { many: true, upsert: false },
        )
        .await
        .unwrap();
    assert_eq!((result.matched, result.modified), (3, 3));
    let (odd_filter, by_n) = (json!({"kind": "odd"}), json!([["n", 1]]));
    let odd = store.find(&c, &odd_filter, None, Some(&by_n), 0, 0).await.unwrap();
    assert_eq!(values(&odd, "n"), [json!(11), json!(13), json!(15)]);
    let same = store
        .update(&c, &json!({"n": 2}), &json!({"$set": {"kind": "even"}}), UpdateOptions::default())
        .await
        .unwrap();
    assert_eq!((same.matched, same.modified), (1, 0), "a no-op update modifies nothing");
    let positional = store
        .update(
            &c,
            &json!({"_id": 7, "b": 2}),
            &json!({"$set": {"b.$": 20}}),
            UpdateOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(positional.modified, 1);
    let seven = store.find(&c, &json!({"_id": 7}), None, None, 0, 0).await.unwrap();
    assert_eq!(seven[0]["b"], json!([1, 20]));
    let upsert = store
        .update(
            &c,
            &json!({"name": "new"}),
            &json!({"$set": {"v": 1}}),
            UpdateOptions { many: false, upsert: true },
        )
        .await
        .unwrap();
    assert_eq!((upsert.matched, upsert.modified), (0, 0));
    let upserted = upsert.upserted_id.expect("an upsert id");
    let found = store.find(&c, &json!({"_id": upserted}), None, None, 0, 0).await.unwrap();
    assert_eq!((found[0]["name"].clone(), found[0]["v"].clone()), (json!("new"), json!(1)));

    // Replace keeps the _id; bad updates are refused.
    let (seven_filter, fresh) = (json!({"_id": 7}), json!({"fresh": true}));
    let replaced = store.replace(&c, &seven_filter, &fresh, false).await.unwrap();
    assert_eq!(replaced.modified, 1);
    let seven = store.find(&c, &json!({"_id": 7}), None, None, 0, 0).await.unwrap();
    assert_eq!(seven[0], *json!({"_id": 7, "fresh": true}).as_object().unwrap());
    let bad = store.update(&c, &json!({}), &json!({"n": 1}), UpdateOptions::default()).await;
    assert!(matches!(bad, Err(DocError::Invalid(_))), "{bad:?}");
    let bad = store.find(&c, &json!({"n": {"$nope": 1}}), None, None, 0, 0).await;
    assert!(matches!(bad, Err(DocError::Invalid(_))), "{bad:?}");

    // Limits: document size, result size.
    let big = "x".repeat(5000);
    let too_big = store.insert(&c, vec![json!({ "big": big })]).await;
    assert!(matches!(too_big, Err(DocError::TooLarge(_))), "{too_big:?}");
    let grow = json!({"$set": {"big": big}});
    let grow = store.update(&c, &seven_filter, &grow, UpdateOptions::default()).await;
    assert!(matches!(grow, Err(DocError::TooLarge(_))), "{grow:?}");
    let chunk = "y".repeat(3000);
    store.insert(&c, (0..30).map(|i| json!({"chunk": chunk, "i": i})).collect()).await.unwrap();
    let huge = store.find(&c, &json!({"chunk": {"$exists": true}}), None, None, 0, 0).await;
    assert!(matches!(huge, Err(DocError::LimitExceeded(_))), "{huge:?}");
    let page = store.find(&c, &json!({"chunk": {"$exists": true}}), None, None, 0, 5).await;
    assert_eq!(page.unwrap().len(), 5, "a limit keeps the result under the bound");

    // Isolation: another space (or database) sees none of it.
    let elsewhere = at(&other);
    assert!(all(&store, &elsewhere).await.is_empty());
    assert_eq!(store.delete(&elsewhere, &json!({}), true).await.unwrap(), 0);
    let other_db = CollectionRef { database: "c2".into(), ..c.clone() };
    assert!(all(&store, &other_db).await.is_empty());

    // Deletes.
    assert_eq!(store.delete(&c, &json!({"chunk": {"$exists": true}}), false).await.unwrap(), 1);
    assert_eq!(store.delete(&c, &json!({"chunk": {"$exists": true}}), true).await.unwrap(), 29);
    assert_eq!(store.count(&c, &json!({})).await.unwrap(), 8);

    // The change hook saw every committed write, in order, and none of the refused ones.
    let events = recorder.0.lock().unwrap().clone();
    let kinds: Vec<ChangeKind> = events.iter().map(|e| e.kind).collect();
    let inserts = kinds.iter().filter(|k| **k == ChangeKind::Insert).count();
    let updates = kinds.iter().filter(|k| **k == ChangeKind::Update).count();
    let deletes = kinds.iter().filter(|k| **k == ChangeKind::Delete).count();
    // 2 + 5 + 30 inserts and 1 upsert; 3 incs, 1 positional, 1 replace; 30 deletes.
    assert_eq!((inserts, updates, deletes), (38, 5, 30));
    assert_eq!(events[0].id, ids[0]);
    assert!(events.iter().all(|e| e.collection == c));
    let last = events.last().unwrap();
    assert!(last.kind == ChangeKind::Delete && last.document.is_none() && last.previous.is_some());

    backend.drop_space(&space).await.unwrap();
    assert!(all(&store, &c).await.is_empty());
}

fn doc(value: Value) -> Document {
    value.as_object().cloned().expect("a JSON object")
}

/// The events recorded since the last call (and forgets them).
fn take(recorder: &Recorder) -> Vec<ChangeEvent> {
    std::mem::take(&mut *recorder.0.lock().unwrap())
}

/// Every write reports the document as it was before (what a "field changed" trigger compares):
/// the stored document for updates, replaces and deletes, none for inserts.
pub async fn run_previous_cases(backend: Arc<dyn DocumentStore>, run: &str) {
    let recorder = Arc::new(Recorder::default());
    let store = Documents::new(backend.clone(), Limits::default());
    store.subscribe(recorder.clone());
    let space = format!("{run}-previous");
    let c = at(&space);
    let one = json!({"_id": 1, "name": "a", "n": 1, "group": "g"});
    let two = json!({"_id": 2, "name": "b", "n": 2, "group": "g"});
    let three = json!({"_id": 3, "name": "c", "n": 3});

    // Insert: nothing was there before.
    store.insert(&c, vec![one.clone(), two.clone(), three.clone()]).await.unwrap();
    let events = take(&recorder);
    assert_eq!(events.len(), 3);
    assert!(events.iter().all(|e| e.kind == ChangeKind::Insert && e.previous.is_none()));

    // $set of one field: the previous document holds the old value, the document the new.
    let set = json!({"$set": {"name": "A"}});
    store.update(&c, &json!({"_id": 1}), &set, UpdateOptions::default()).await.unwrap();
    let events = take(&recorder);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, ChangeKind::Update);
    assert_eq!(events[0].previous, Some(doc(one.clone())));
    let one = json!({"_id": 1, "name": "A", "n": 1, "group": "g"});
    assert_eq!(events[0].document, Some(doc(one.clone())));

    // updateMany of two documents: each event carries its own document as stored just before
    // (the first one with the name the $set above gave it).
    let inc = json!({"$inc": {"n": 10}});
    let many = UpdateOptions { many: true, upsert: false };
    let result = store.update(&c, &json!({"group": "g"}), &inc, many).await.unwrap();
    assert_eq!(result.modified, 2);
    let events = take(&recorder);
    let ids: Vec<Value> = events.iter().map(|e| e.id.clone()).collect();
    assert_eq!(ids, [json!(1), json!(2)]);
    assert!(events.iter().all(|e| e.kind == ChangeKind::Update));
    assert_eq!(events[0].previous, Some(doc(one)));
    assert_eq!(events[1].previous, Some(doc(two)));
    let after: Vec<Value> = events
        .iter()
        .map(|e| e.document.as_ref().map_or(Value::Null, |d| d["n"].clone()))
        .collect();
    assert_eq!(after, [json!(11), json!(12)]);

    // Replace: the previous document is the whole one replaced.
    store.replace(&c, &json!({"_id": 3}), &json!({"fresh": true}), false).await.unwrap();
    let events = take(&recorder);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].previous, Some(doc(three)));
    assert_eq!(events[0].document, Some(doc(json!({"_id": 3, "fresh": true}))));

    // Upserts that insert (by update and by replace) had nothing before.
    let upsert = UpdateOptions { many: false, upsert: true };
    let set = json!({"$set": {"v": 1}});
    store.update(&c, &json!({"name": "new"}), &set, upsert).await.unwrap();
    store.replace(&c, &json!({"_id": 9}), &json!({"v": 2}), true).await.unwrap();
    let events = take(&recorder);
    assert_eq!(events.len(), 2);
    assert!(events.iter().all(|e| e.kind == ChangeKind::Insert && e.previous.is_none()));
    // An upsert that matched is an update and has its previous document.
    store.replace(&c, &json!({"_id": 9}), &json!({"v": 3}), true).await.unwrap();
    let events = take(&recorder);
    assert_eq!(events[0].kind, ChangeKind::Update);
    assert_eq!(events[0].previous, Some(doc(json!({"_id": 9, "v": 2}))));

    // Delete one: the deleted document, and no document after.
    assert_eq!(store.delete(&c, &json!({"_id": 3}), false).await.unwrap(), 1);
    let events = take(&recorder);
    assert_eq!(events.len(), 1);
    assert_eq!((events[0].kind, events[0].id.clone()), (ChangeKind::Delete, json!(3)));
    assert_eq!(events[0].previous, Some(doc(json!({"_id": 3, "fresh": true}))));
    assert!(events[0].document.is_none());

    // Delete many: each event its own deleted document.
    assert_eq!(store.delete(&c, &json!({"group": "g"}), true).await.unwrap(), 2);
    let events = take(&recorder);
    assert!(events.iter().all(|e| e.kind == ChangeKind::Delete && e.document.is_none()));
    let previous: Vec<Option<Document>> = events.iter().map(|e| e.previous.clone()).collect();
    assert_eq!(
        previous,
        [
            Some(doc(json!({"_id": 1, "name": "A", "n": 11, "group": "g"}))),
            Some(doc(json!({"_id": 2, "name": "b", "n": 12, "group": "g"}))),
        ]
    );

    backend.drop_space(&space).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sled_events_carry_the_previous_document() {
    let dir = tempfile::tempdir().unwrap();
    let db = sled::open(dir.path()).unwrap();
    run_previous_cases(Arc::new(sled_documents(db)), "sled").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_events_carry_the_previous_document() {
    let store = PostgresDocuments::connect(&postgres_url()).await.unwrap_or_else(|error| {
        panic!("PostgreSQL must run for this test (set WASMFN_TEST_POSTGRES_URL): {error}")
    });
    let run = format!("pg-{}", rand::random::<u32>());
    run_previous_cases(Arc::new(store), &run).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sled_backend_passes_the_suite() {
    let dir = tempfile::tempdir().unwrap();
    let db = sled::open(dir.path()).unwrap();
    run_suite(Arc::new(sled_documents(db)), "sled").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_backend_passes_the_suite() {
    let store = PostgresDocuments::connect(&postgres_url()).await.unwrap_or_else(|error| {
        panic!("PostgreSQL must run for this test (set WASMFN_TEST_POSTGRES_URL): {error}")
    });
    let run = format!("pg-{}", rand::random::<u32>());
    run_suite(Arc::new(store), &run).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sled_writes_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let c = at("s");
    {
        let store = Documents::new(
            Arc::new(sled_documents(sled::open(dir.path()).unwrap())),
            Limits::default(),
        );
        store.insert(&c, vec![json!({"_id": "k", "v": 1})]).await.unwrap();
    }
    let store =
        Documents::new(Arc::new(sled_documents(super::reopen_sled(dir.path()))), Limits::default());
    assert_eq!(
        all(&store, &c).await,
        vec![json!({"_id": "k", "v": 1}).as_object().unwrap().clone()]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_postgres_is_a_clear_error_without_the_url() {
    let result = PostgresDocuments::connect("postgres://wasmfn:hunter2@127.0.0.1:1/none").await;
    let Err(error) = result else { panic!("connected to nothing") };
    assert!(matches!(error, DocError::Unavailable(_)));
    assert!(!error.to_string().contains("hunter2"), "{error}");
}

/// Several nodes starting at once on a database without the table all connect (PostgreSQL's
/// `CREATE TABLE IF NOT EXISTS` run concurrently fails in its catalog unless serialised).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_nodes_starting_at_once_on_an_empty_database_all_connect() {
    let (name, fresh, admin) = fresh_database("wasmfn_race").await;
    let starts: Vec<_> = (0..8)
        .map(|_| {
            let fresh = fresh.to_string();
            tokio::spawn(async move { PostgresDocuments::connect(&fresh).await.map(|_| ()) })
        })
        .collect();
    let mut failures = Vec::new();
    for start in starts {
        if let Err(error) = start.await.unwrap() {
            failures.push(error.to_string());
        }
    }
    // FORCE ends the connections the pools may still hold.
    let _ = admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
    assert!(failures.is_empty(), "{failures:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_reads_are_bounded_by_the_operation_budget() {
    let store = PostgresDocuments::connect(&postgres_url()).await.unwrap_or_else(|error| {
        panic!("PostgreSQL must run for this test (set WASMFN_TEST_POSTGRES_URL): {error}")
    });
    store.check().await.expect("a live PostgreSQL answers the readiness check");
    let c = at(&format!("pg-bound-{}", rand::random::<u32>()));
    let roomy = Limits { max_query_time: std::time::Duration::from_secs(120), ..Limits::default() };
    let documents = (0..10_000)
        .map(|id| json!({"_id": id, "note": "x".repeat(200)}).as_object().unwrap().clone())
        .collect();
    store.insert(&c, documents, &Budget::new(&roomy, None)).await.unwrap();
    // One millisecond for reading 10,000 documents (a filter that cannot be pushed down, so
    // every row is read): either PostgreSQL cancels a page's statement (its statement_timeout)
    // or the engine's check between rows stops the walk; both say the operation ran out of time.
    let tight = Limits { max_query_time: std::time::Duration::from_millis(1), ..Limits::default() };
    let filter = Filter::parse(&json!({"note": {"$ne": "absent"}})).unwrap();
    let query = FindQuery { filter, projection: None, sort: None, skip: 0, limit: 0 };
    let found = store.find(&c, &query, &Limits::default(), &Budget::new(&tight, None)).await;
    assert!(matches!(found, Err(DocError::LimitExceeded(_))), "{found:?}");
    let counted = store.count(&c, &query.filter, &Budget::new(&tight, None)).await;
    assert!(matches!(counted, Err(DocError::LimitExceeded(_))), "{counted:?}");
    // With time enough, the same read answers.
    let all = store.count(&c, &query.filter, &Budget::new(&roomy, None)).await;
    assert_eq!(all.unwrap(), 10_000);
    store.drop_space(&c.space).await.unwrap();
}
