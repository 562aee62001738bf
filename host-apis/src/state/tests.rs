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
    assert!(!tree.is_empty().unwrap());
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
        let a = PostgresState::connect(&url, &["watched"], &[]).unwrap();
        let b = PostgresState::connect(&url, &["watched"], &[]).unwrap();
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

/// A key starting with `ms` (big-endian), as the invocation log's are.
fn timed_key(ms: u64, id: &str) -> Vec<u8> {
    let mut key = ms.to_be_bytes().to_vec();
    key.extend_from_slice(id.as_bytes());
    key
}

const DAY: u64 = 86_400_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_partitioned_trees_keep_a_table_per_day_and_drop_whole_days() {
    use super::postgres::TimeIn;
    let (name, url, admin) = fresh_database("wasmfn_state").await;
    let url = url.to_string();
    // A version 1 database: one table, a log record and its id entry in it (2026-12-01).
    let (old, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    let first = 20_788 * DAY + 5;
    old.batch_execute(
        "CREATE TABLE wasmfn_schema (component text PRIMARY KEY, version integer NOT NULL);
         INSERT INTO wasmfn_schema VALUES ('state', 1);
         CREATE TABLE wasmfn_state (tree text NOT NULL, key bytea NOT NULL,
             value bytea NOT NULL, PRIMARY KEY (tree, key));",
    )
    .await
    .unwrap();
    let old_key = timed_key(first, "old");
    let insert = "INSERT INTO wasmfn_state VALUES ($1, $2, $3)";
    old.execute(insert, &[&"log", &old_key, &b"record".to_vec()]).await.unwrap();
    old.execute(insert, &[&"ids", &b"old".to_vec(), &old_key]).await.unwrap();
    old.execute(insert, &[&"other", &b"k".to_vec(), &b"v".to_vec()]).await.unwrap();
    // And a lease of the async queue, kept as JSON in a tree up to version 2.
    let lease = br#"{"node":"gone","until_ms":1000}"#.to_vec();
    old.execute(insert, &[&"async_leases", &b"job-1".to_vec(), &lease]).await.unwrap();

    let connect = url.clone();
    let state = tokio::task::spawn_blocking(move || {
        PostgresState::connect(&connect, &[], &[("log", TimeIn::Key), ("ids", TimeIn::Value)])
            .unwrap()
    })
    .await
    .unwrap();
    let (log, ids, other) =
        (state.tree("log").unwrap(), state.tree("ids").unwrap(), state.tree("other").unwrap());
    // Moved by the migration, readable as before; the other trees untouched.
    assert_eq!(log.get(&old_key).unwrap(), Some(b"record".to_vec()));
    assert_eq!(ids.get(b"old").unwrap(), Some(old_key.clone()));
    assert_eq!(other.get(b"k").unwrap(), Some(b"v".to_vec()));
    let version = old.query_one("SELECT version FROM wasmfn_schema WHERE component = 'state'", &[]);
    assert_eq!(version.await.unwrap().get::<_, i32>(0), 3);
    let left = old.query_one(
        "SELECT count(*) FROM wasmfn_state WHERE tree IN ('log', 'ids', 'async_leases')",
        &[],
    );
    assert_eq!(left.await.unwrap().get::<_, i64>(0), 0);
    // The lease moved to the lease table, as it was.
    let leases = state.leases("async").unwrap();
    assert_eq!(leases.claim_expired("me", 999, 5000, 10).unwrap(), vec![]);
    let claimed = leases.claim_expired("me", 1001, 5000, 10).unwrap();
    assert_eq!(claimed, vec![(b"job-1".to_vec(), "gone".to_string())]);

    // Records of three more days, written one by one and in a batch.
    let written: Vec<Vec<u8>> =
        (1..=3).map(|day| timed_key(first + day * DAY, &format!("r{day}"))).collect();
    log.insert(&written[0], b"1").unwrap();
    ids.insert(b"r1", &written[0]).unwrap();
    log.apply(vec![
        (written[1].clone(), Some(b"2".to_vec())),
        (written[2].clone(), Some(b"3".to_vec())),
    ])
    .unwrap();
    ids.apply(vec![
        (b"r2".to_vec(), Some(written[1].clone())),
        (b"r3".to_vec(), Some(written[2].clone())),
    ])
    .unwrap();
    assert_eq!(log.insert_new(&written[2], b"again").unwrap(), b"3".to_vec());
    let tables = old
        .query(
            "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
             WHERE i.inhparent = 'wasmfn_state_timed'::regclass ORDER BY 1",
            &[],
        )
        .await
        .unwrap();
    let tables: Vec<String> = tables.iter().map(|row| row.get(0)).collect();
    assert_eq!(
        tables,
        ["20261201", "20261202", "20261203", "20261204"].map(|d| format!("wasmfn_state_timed_{d}"))
    );
    // One order across the day tables, both ways; a bounded scan.
    assert_eq!(keys(log.iter()), [vec![old_key.clone()], written.clone()].concat());
    let newest_first = keys(log.scan((Bound::Unbounded, Bound::Unbounded), true));
    assert_eq!(newest_first.first(), Some(&written[2]));
    assert_eq!(keys(log.below(&written[1], true)), vec![written[0].clone(), old_key.clone()]);
    assert_eq!(log.len().unwrap(), 4);

    // Retention: the days that ended by the cutoff go, in both trees, at once.
    let cutoff = first - 5 + 2 * DAY + 1000; // within 2026-12-03
    assert_eq!(log.drop_days_before(cutoff).unwrap(), Some(2));
    assert_eq!(keys(log.iter()), vec![written[1].clone(), written[2].clone()]);
    assert_eq!(ids.get(b"old").unwrap(), None);
    assert_eq!(ids.get(b"r1").unwrap(), None);
    assert_eq!(ids.get(b"r2").unwrap(), Some(written[1].clone()));
    assert_eq!(log.drop_days_before(cutoff).unwrap(), Some(0));
    // A day dropped and written again gets its table back.
    log.insert(&written[0], b"back").unwrap();
    assert_eq!(log.get(&written[0]).unwrap(), Some(b"back".to_vec()));
    // Trees not partitioned say so: their callers delete entries one by one.
    assert_eq!(other.drop_days_before(cutoff).unwrap(), None);

    // A database of a newer wasmfn is refused, saying why.
    old.execute("UPDATE wasmfn_schema SET version = 99 WHERE component = 'state'", &[])
        .await
        .unwrap();
    let error = tokio::task::spawn_blocking(move || {
        PostgresState::connect(&url, &[], &[("log", TimeIn::Key)]).unwrap_err()
    })
    .await
    .unwrap();
    assert!(error.0.contains("newer wasmfn"), "{error}");
    drop((log, ids, other, state, old));
    admin.batch_execute(&format!("DROP DATABASE {name} WITH (FORCE)")).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_are_renewed_by_their_node_and_claimed_once_when_they_expire() {
    let (name, url, admin) = fresh_database("wasmfn_state").await;
    let url = url.to_string();
    let (a, b) = tokio::task::spawn_blocking(move || {
        let a = PostgresState::connect(&url, &[], &[]).unwrap().leases("q").unwrap();
        let b = PostgresState::connect(&url, &[], &[]).unwrap().leases("q").unwrap();
        (a, b)
    })
    .await
    .unwrap();
    let id = |n: usize| format!("job-{n:03}").into_bytes();
    // Times are given, not read from a clock: a lease taken until 1000 is expired at 1001.
    assert!(a.take(&id(1), "a", 1000).unwrap());
    assert!(!b.take(&id(1), "b", 1000).unwrap(), "one lease per job");
    assert!(a.take(&id(2), "a", 1000).unwrap());
    assert_eq!(b.claim_expired("b", 1000, 3000, 10).unwrap(), vec![], "not expired yet");
    // A renews both (its heartbeat); B finds nothing to claim before the new end.
    assert_eq!(a.renew("a", &[id(1), id(2)], 2000).unwrap().len(), 2);
    assert_eq!(b.claim_expired("b", 1500, 3000, 10).unwrap(), vec![]);
    // A stops renewing: B claims both once expired, the longest-expired first, and A hears at
    // its next renewal that it lost them.
    a.renew("a", &[id(2)], 1800).unwrap();
    let first = b.claim_expired("b", 2001, 3000, 1).unwrap();
    assert_eq!(first, vec![(id(2), "a".to_string())]);
    let second = b.claim_expired("b", 2001, 3000, 10).unwrap();
    assert_eq!(second, vec![(id(1), "a".to_string())]);
    assert_eq!(a.renew("a", &[id(1), id(2)], 4000).unwrap(), Vec::<Vec<u8>>::new());
    // Released by another node: nothing; by its holder: gone.
    a.release(&id(1), "a").unwrap();
    assert!(!a.take(&id(1), "a", 9000).unwrap());
    b.release(&id(1), "b").unwrap();
    assert!(a.take(&id(1), "a", 9000).unwrap());
    // Expired by its holder (given back, or after a restart): claimable at once.
    assert_eq!(a.expire("a", Some(&[id(1)])).unwrap(), 1);
    assert_eq!(b.claim_expired("b", 10, 20, 10).unwrap(), vec![(id(1), "a".to_string())]);
    assert_eq!(b.expire("b", None).unwrap(), 2);

    // 300 expired leases claimed by both nodes at once, 25 at a time: each claimed once.
    for n in 100..400 {
        assert!(a.take(&id(n), "gone", 5).unwrap());
    }
    let claim_all = |leases: Arc<dyn LeaseTable>, node: &'static str| {
        std::thread::spawn(move || {
            let mut mine = Vec::new();
            loop {
                let batch = leases.claim_expired(node, 100, 1_000_000, 25).unwrap();
                if batch.is_empty() {
                    return mine;
                }
                mine.extend(batch.into_iter().map(|(id, _)| id));
            }
        })
    };
    let (by_a, by_b) = (claim_all(a.clone(), "a"), claim_all(b.clone(), "b"));
    let (by_a, by_b) = (by_a.join().unwrap(), by_b.join().unwrap());
    let mut all: Vec<Vec<u8>> = by_a.iter().chain(&by_b).cloned().collect();
    all.sort();
    let expected: Vec<Vec<u8>> =
        (0..400).filter(|n| *n == 1 || *n == 2 || *n >= 100).map(id).collect();
    assert_eq!(all, expected, "every expired lease claimed exactly once ({} by a)", by_a.len());
    drop((a, b));
    admin.batch_execute(&format!("DROP DATABASE {name} WITH (FORCE)")).await.unwrap();
}

#[tokio::test]
async fn an_unreachable_postgres_is_a_clear_error() {
    let error = tokio::task::spawn_blocking(|| {
        PostgresState::connect("postgres://nobody:secret@127.0.0.1:1/none", &[], &[]).unwrap_err()
    })
    .await
    .unwrap();
    assert!(error.0.contains("cannot be reached"), "{error}");
    assert!(!error.0.contains("secret"), "no password in errors: {error}");
    let error = PostgresState::connect("not a url", &[], &[]).unwrap_err();
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
