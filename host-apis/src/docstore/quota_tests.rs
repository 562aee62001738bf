//! The embedded store's per-space quotas: documents, bytes and collections; all-or-nothing
//! refusals, room given back by deletes and smaller writes, usage recounted at reopen.

use std::sync::Arc;

use serde_json::{json, Value};

use super::sled_store::SledDocuments;
use super::*;

fn at(space: &str, collection: &str) -> CollectionRef {
    CollectionRef { space: space.into(), database: "c1".into(), collection: collection.into() }
}

fn store(db: &sled::Db, quota: SpaceQuota) -> Documents {
    let backend = SledDocuments::open(db.clone(), quota).expect("opening the sled store");
    Documents::new(Arc::new(backend), Limits::default())
}

fn numbered(from: usize, count: usize) -> Vec<Value> {
    (from..from + count).map(|i| json!({"_id": format!("d{i}"), "n": i})).collect()
}

fn usage_of(store: &Documents, space: &str) -> Option<SpaceUsage> {
    store.usage().into_iter().find(|(s, _)| s == space).map(|(_, usage)| usage)
}

fn bytes_of(documents: &[Value]) -> u64 {
    documents.iter().map(|d| serde_json::to_vec(d).unwrap().len() as u64).sum()
}

fn quota_error(result: Result<impl std::fmt::Debug, DocError>) -> String {
    match result {
        Err(DocError::QuotaExceeded(message)) => message,
        other => panic!("expected a quota error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_count_is_limited_per_space_and_deletes_give_room_back() {
    let dir = tempfile::tempdir().unwrap();
    let db = sled::open(dir.path()).unwrap();
    let store = store(&db, SpaceQuota { max_documents: 5, ..SpaceQuota::default() });
    let c = at("a", "fn");

    // One batch over the limit: refused whole, and not even its collection is created.
    let message = quota_error(store.insert(&c, numbered(0, 6)).await);
    assert_eq!(
        message,
        "quota exceeded: the space holds 0 documents and this write adds 6, over its limit of \
         5; nothing was written"
    );
    assert_eq!(store.count(&c, &json!({})).await.unwrap(), 0);
    assert_eq!(usage_of(&store, "a"), None, "a refused space has no usage entry");

    store.insert(&c, numbered(0, 3)).await.unwrap();
    store.insert(&at("a", "other"), numbered(3, 2)).await.unwrap();
    let message = quota_error(store.insert(&c, numbered(5, 1)).await);
    assert!(message.contains("holds 5 documents"), "{message}");
    let upsert = UpdateOptions { many: false, upsert: true };
    let message = quota_error(
        store.update(&c, &json!({"_id": "new"}), &json!({"$set": {"n": 1}}), upsert).await,
    );
    assert!(message.starts_with("quota exceeded: "), "{message}");
    assert_eq!(store.count(&c, &json!({})).await.unwrap(), 3, "nothing of a refused write");
    // Another space has its own quota.
    store.insert(&at("b", "fn"), numbered(0, 5)).await.unwrap();

    assert_eq!(store.delete(&c, &json!({"_id": "d0"}), false).await.unwrap(), 1);
    store.insert(&c, numbered(5, 1)).await.unwrap();
    let stored = bytes_of(&[numbered(1, 2), numbered(3, 3)].concat());
    let expected = SpaceUsage { documents: 5, bytes: stored, collections: 2 };
    assert_eq!(usage_of(&store, "a"), Some(expected));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_count_the_stored_json_and_updates_count_the_difference() {
    let dir = tempfile::tempdir().unwrap();
    let db = sled::open(dir.path()).unwrap();
    let store = store(&db, SpaceQuota { max_bytes: 100, ..SpaceQuota::default() });
    let c = at("a", "fn");
    let small = json!({"_id": 1, "text": "x".repeat(40)});
    store.insert(&c, vec![small.clone()]).await.unwrap();
    let used = bytes_of(std::slice::from_ref(&small));
    assert_eq!(usage_of(&store, "a").unwrap().bytes, used);

    // Growing the one document past 100 bytes is refused and leaves it as it was.
    let grow = json!({"$set": {"text": "y".repeat(90)}});
    let message =
        quota_error(store.update(&c, &json!({"_id": 1}), &grow, UpdateOptions::default()).await);
    assert!(message.contains("bytes of documents"), "{message}");
    let found = store.find(&c, &json!({}), None, None, 0, 0).await.unwrap();
    assert_eq!(Value::Object(found[0].clone()), small);

    // A smaller replacement frees the difference; a second document then fits.
    let replacement = json!({"text": "z"});
    store.replace(&c, &json!({"_id": 1}), &replacement, false).await.unwrap();
    let replaced = json!({"_id": 1, "text": "z"});
    assert_eq!(usage_of(&store, "a").unwrap().bytes, bytes_of(std::slice::from_ref(&replaced)));
    let second = json!({"_id": 2, "text": "w".repeat(40)});
    store.insert(&c, vec![second.clone()]).await.unwrap();
    assert_eq!(usage_of(&store, "a").unwrap().bytes, bytes_of(&[replaced, second]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collections_are_limited_and_usage_is_recounted_at_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let quota = SpaceQuota { max_collections: 2, ..SpaceQuota::default() };
    let before = {
        let db = sled::open(dir.path()).unwrap();
        let store = store(&db, quota);
        store.insert(&at("a", "one"), numbered(0, 2)).await.unwrap();
        store.insert(&at("a", "two"), numbered(0, 1)).await.unwrap();
        let message = quota_error(store.insert(&at("a", "three"), numbered(0, 1)).await);
        assert!(message.contains("holds 2 collections"), "{message}");
        let upsert = UpdateOptions { many: false, upsert: true };
        let three = at("a", "three");
        quota_error(
            store.update(&three, &json!({"k": 1}), &json!({"$set": {"v": 1}}), upsert).await,
        );
        // A write into an existing collection still works, and emptying one keeps it.
        store.insert(&at("a", "two"), numbered(1, 1)).await.unwrap();
        store.delete(&at("a", "one"), &json!({}), true).await.unwrap();
        store.insert(&at("b", "x"), numbered(0, 4)).await.unwrap();
        store.usage()
    };
    assert_eq!(
        before[0],
        (
            "a".to_string(),
            SpaceUsage { documents: 2, bytes: bytes_of(&numbered(0, 2)), collections: 2 }
        )
    );

    let db = super::reopen_sled(dir.path());
    let store = store(&db, quota);
    assert_eq!(store.usage(), before, "the same usage after reopening");
    quota_error(store.insert(&at("a", "three"), numbered(0, 1)).await);
}
