//! One suite for both backends: what the node's stores rely on.

use std::ops::Bound;

use super::postgres::PostgresState;
use super::sled_tree::SledState;
use super::*;
use crate::docstore::suite::fresh_database;

fn keys(entries: Entries<'_>) -> Vec<Vec<u8>> {
    entries.map(|e| e.unwrap().0).collect()
}

fn suite(backend: &dyn StateBackend) {
    let tree = backend.tree("t").unwrap();
    let other = backend.tree("other").unwrap();
    assert!(tree.is_empty().unwrap());
    assert_eq!(tree.get(b"a").unwrap(), None);
    tree.insert(b"a", b"1").unwrap();
    tree.insert(b"a", b"2").unwrap();
    other.insert(b"a", b"other").unwrap();
    assert_eq!(tree.get(b"a").unwrap(), Some(b"2".to_vec()));
    assert!(tree.contains_key(b"a").unwrap());
    // insert_new keeps the first value.
    assert_eq!(tree.insert_new(b"n", b"first").unwrap(), b"first".to_vec());
    assert_eq!(tree.insert_new(b"n", b"second").unwrap(), b"first".to_vec());
    assert_eq!(tree.remove(b"n").unwrap(), Some(b"first".to_vec()));
    assert_eq!(tree.remove(b"n").unwrap(), None);
    // Compare and swap: absent → set, expected → new, expected → removed; a stale one fails.
    assert!(tree.compare_and_swap(b"c", None, Some(b"1")).unwrap());
    assert!(!tree.compare_and_swap(b"c", None, Some(b"2")).unwrap());
    assert!(!tree.compare_and_swap(b"c", Some(b"0"), Some(b"2")).unwrap());
    assert!(tree.compare_and_swap(b"c", Some(b"1"), Some(b"2")).unwrap());
    assert_eq!(tree.get(b"c").unwrap(), Some(b"2".to_vec()));
    assert!(!tree.compare_and_swap(b"c", Some(b"1"), None).unwrap());
    assert!(tree.compare_and_swap(b"c", Some(b"2"), None).unwrap());
    assert_eq!(tree.get(b"c").unwrap(), None);
    // Byte order, not text order: 0xff sorts after ASCII, a prefix before its extensions.
    let mut batch: Vec<(Vec<u8>, Option<Vec<u8>>)> = Vec::new();
    for i in 0..600u32 {
        batch.push((format!("k{i:04}").into_bytes(), Some(i.to_string().into_bytes())));
    }
    batch.push((vec![0xff, 0x00], Some(b"high".to_vec())));
    batch.push((b"k".to_vec(), Some(b"short".to_vec())));
    batch.push((b"a".to_vec(), None));
    // A later entry for the same key wins.
    batch.push((b"k0001".to_vec(), Some(b"again".to_vec())));
    tree.apply(batch).unwrap();
    assert_eq!(tree.get(b"a").unwrap(), None);
    assert_eq!(tree.get(b"k0001").unwrap(), Some(b"again".to_vec()));
    assert_eq!(tree.len().unwrap(), 602);
    assert_eq!(other.len().unwrap(), 1);
    let all = keys(tree.iter());
    assert_eq!(all.len(), 602);
    assert_eq!(all[0], b"k".to_vec());
    assert_eq!(all[1], b"k0000".to_vec());
    assert_eq!(all[601], vec![0xff, 0x00]);
    let mut sorted = all.clone();
    sorted.sort();
    assert_eq!(all, sorted, "scans go in byte order, across pages");
    let reversed = keys(tree.scan((Bound::Unbounded, Bound::Unbounded), true));
    assert_eq!(reversed, all.iter().rev().cloned().collect::<Vec<_>>());
    let below = keys(tree.scan((Bound::Unbounded, Bound::Excluded(b"k0300".to_vec())), true));
    assert_eq!(below.len(), 301);
    assert_eq!(below[0], b"k0299".to_vec());
    let prefixed = keys(tree.scan(prefix_range(b"k05"), false));
    assert_eq!(prefixed.len(), 100);
    assert_eq!(keys(tree.scan(prefix_range(&[0xff]), false)), vec![vec![0xff, 0x00]]);
    let inclusive = keys(
        tree.scan((Bound::Included(b"k0010".to_vec()), Bound::Included(b"k0012".to_vec())), false),
    );
    assert_eq!(inclusive, vec![b"k0010".to_vec(), b"k0011".to_vec(), b"k0012".to_vec()]);
    tree.flush().unwrap();
    assert!(backend.healthy());
}

#[test]
fn sled_backend_keeps_records_in_byte_order() {
    let db = sled::Config::new().temporary(true).open().unwrap();
    suite(&SledState::new(db));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_backend_keeps_records_in_byte_order_and_tells_other_nodes() {
    let (name, url, admin) = fresh_database("wasmfn_state").await;
    let url = url.to_string();
    // Called from inside a runtime, as the server does: the backend runs its own.
    let (node_a, node_b) = tokio::task::spawn_blocking(move || {
        let a = PostgresState::connect(&url, &["watched"]).unwrap();
        let b = PostgresState::connect(&url, &["watched"]).unwrap();
        (a, b)
    })
    .await
    .unwrap();
    suite(&node_a);
    // B sees A's records: one store.
    assert_eq!(node_b.tree("t").unwrap().get(b"k0001").unwrap(), Some(b"again".to_vec()));

    let mut b_changes = node_b.changes().expect("PostgreSQL tells of changes");
    let mut a_changes = node_a.changes().unwrap();
    let watched_a = node_a.tree("watched").unwrap();
    // Writes to trees nobody watches send nothing; a watched write reaches B, not A itself.
    node_a.tree("t").unwrap().insert(b"quiet", b"1").unwrap();
    watched_a.insert(b"space/fn", b"v1").unwrap();
    let change = tokio::time::timeout(std::time::Duration::from_secs(10), b_changes.recv())
        .await
        .expect("a notice within 10 s")
        .unwrap();
    assert_eq!(change, StateChange::Key { tree: "watched".into(), key: b"space/fn".to_vec() });
    watched_a.remove(b"space/fn").unwrap();
    let change = tokio::time::timeout(std::time::Duration::from_secs(10), b_changes.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(change, StateChange::Key { tree: "watched".into(), key: b"space/fn".to_vec() });
    assert!(a_changes.try_recv().is_err(), "a node is not told of its own writes");
    // Removing nothing tells nobody; a batch tells of each key.
    watched_a.remove(b"absent").unwrap();
    watched_a.apply(vec![(b"x".to_vec(), Some(b"1".to_vec())), (b"y".to_vec(), None)]).unwrap();
    let mut told = Vec::new();
    for _ in 0..2 {
        match tokio::time::timeout(std::time::Duration::from_secs(10), b_changes.recv())
            .await
            .unwrap()
            .unwrap()
        {
            StateChange::Key { key, .. } => told.push(key),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(told, vec![b"x".to_vec(), b"y".to_vec()]);
    // Both nodes starting at once agree on one new key.
    let (a, b) = (node_a.tree("secrets").unwrap(), node_b.tree("secrets").unwrap());
    let (from_a, from_b) = std::thread::scope(|s| {
        let ta = s.spawn(|| a.insert_new(b"presign", b"from-a").unwrap());
        let tb = s.spawn(|| b.insert_new(b"presign", b"from-b").unwrap());
        (ta.join().unwrap(), tb.join().unwrap())
    });
    assert_eq!(from_a, from_b);
    drop((node_a, node_b));
    admin.batch_execute(&format!("DROP DATABASE {name} WITH (FORCE)")).await.unwrap();
}

#[tokio::test]
async fn an_unreachable_postgres_is_a_clear_error() {
    let error = tokio::task::spawn_blocking(|| {
        PostgresState::connect("postgres://nobody:secret@127.0.0.1:1/none", &[]).unwrap_err()
    })
    .await
    .unwrap();
    assert!(error.0.contains("cannot be reached"), "{error}");
    assert!(!error.0.contains("secret"), "no password in errors: {error}");
    let error = PostgresState::connect("not a url", &[]).unwrap_err();
    assert!(error.0.contains("not valid"), "{error}");
}

#[test]
fn prefix_ranges_end_after_the_last_key_with_the_prefix() {
    assert_eq!(
        prefix_range(b"ab"),
        (Bound::Included(b"ab".to_vec()), Bound::Excluded(b"ac".to_vec()))
    );
    assert_eq!(
        prefix_range(&[b'a', 0xff]),
        (Bound::Included(vec![b'a', 0xff]), Bound::Excluded(b"b".to_vec()))
    );
    assert_eq!(prefix_range(&[0xff]), (Bound::Included(vec![0xff]), Bound::Unbounded));
}
