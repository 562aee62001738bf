//! PostgreSQL against the engine alone: random documents and filters (the query language's own
//! generators), each answered by PostgreSQL with its filter pushed down and paged, and by the
//! engine over the same documents in memory. Any filter whose SQL condition is not a superset
//! of the engine's matches shows up as a missing document.

use std::sync::Arc;

use proptest::prelude::*;
use proptest::test_runner::TestRunner;
use serde_json::{json, Value};

use super::super::query::proptests::{clause, config, document};
use super::super::suite::{fresh_database, postgres_url};
use super::super::{engine, Budget, CollectionRef, Document, FindQuery, Limits};
use super::{Filter, PostgresDocuments};
use crate::docstore::{DocumentStore, Documents, Sort};

async fn connect() -> Arc<PostgresDocuments> {
    let store = PostgresDocuments::connect(&postgres_url()).await.unwrap_or_else(|error| {
        panic!("PostgreSQL must run for this test (set WASMFN_TEST_POSTGRES_URL): {error}")
    });
    Arc::new(store)
}

/// `documents` numbered by `_id`, in the order the stores keep them (their key's bytes).
fn numbered(documents: Vec<Document>) -> Vec<Document> {
    let mut numbered: Vec<Document> = documents
        .into_iter()
        .enumerate()
        .map(|(i, mut document)| {
            document.shift_insert(0, "_id".into(), json!(i));
            document
        })
        .collect();
    numbered.sort_by_key(|d| engine::id_key(&d["_id"]));
    numbered
}

fn query(filter: Filter, sort: Option<&Value>, skip: u64, limit: u64) -> FindQuery {
    let sort = sort.map(|s| Sort::parse(s).unwrap());
    FindQuery { filter, projection: None, sort, skip, limit }
}

/// A filter: a field clause or two in an `$or` (both pushed down as one condition).
fn filter() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => clause(),
        1 => (clause(), clause()).prop_map(|(a, b)| json!({"$or": [a, b]})),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushed_down_filters_answer_like_the_engine() {
    let store = connect().await;
    let limits = Limits::default();
    let run = rand::random::<u32>();
    let mut runner = TestRunner::new(config(96));
    let case = std::sync::atomic::AtomicU32::new(0);
    let strategy =
        (prop::collection::vec(document(), 0..24), prop::collection::vec(filter(), 1..6));
    let result = runner.run(&strategy, |(documents, filters)| {
        let case = case.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let at = CollectionRef {
            space: format!("pg-diff-{run}"),
            database: "c1".into(),
            collection: format!("case{case}"),
        };
        let documents = numbered(documents);
        let budget = || Budget::new(&limits, None);
        tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current().block_on(async {
                store.insert(&at, documents.clone(), &budget()).await.unwrap();
                for filter in &filters {
                    let Ok(parsed) = Filter::parse(filter) else { continue };
                    let expected = engine::select(
                        documents.iter().cloned().map(Ok),
                        &query(parsed.clone(), None, 0, 0),
                        &limits,
                        &budget(),
                    )
                    .unwrap();
                    let all = query(parsed.clone(), None, 0, 0);
                    let found = store.find(&at, &all, &limits, &budget()).await.unwrap();
                    prop_assert_eq!(&found, &expected, "filter {}", filter);
                    let counted = store.count(&at, &parsed, &budget()).await.unwrap();
                    prop_assert_eq!(counted, expected.len() as u64, "count of {}", filter);
                }
                Ok(())
            })
        })
    });
    let _ = store.drop_space(&format!("pg-diff-{run}")).await;
    if let Err(error) = result {
        panic!("{error}");
    }
}

/// Pages: limits and skips that end inside the first page, on a page boundary and in a later
/// page, with and without a sort, answer like the engine over the same 2,500 documents.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paged_reads_answer_like_the_engine() {
    let store = connect().await;
    let limits = Limits::default();
    let at = CollectionRef {
        space: format!("pg-pages-{}", rand::random::<u32>()),
        database: "c1".into(),
        collection: "pages".into(),
    };
    let documents: Vec<Document> = (0..2500)
        .map(|i| {
            let doc = json!({"n": i, "even": i % 2 == 0, "tag": format!("t{}", i % 7)});
            doc.as_object().unwrap().clone()
        })
        .collect();
    let documents = numbered(documents);
    let wrapper = Documents::new(store.clone(), limits.clone());
    wrapper.insert(&at, documents.iter().cloned().map(Value::Object).collect()).await.unwrap();
    let budget = || Budget::new(&limits, None);
    let cases = [
        (json!({}), None, 0, 1),
        (json!({}), None, 63, 2),
        (json!({}), None, 0, 64),
        (json!({}), None, 1000, 100),
        (json!({"even": true}), None, 10, 700),
        (json!({"tag": "t3", "n": {"$gte": 1200}}), None, 0, 0),
        (json!({"tag": {"$in": ["t1", "t2"]}}), Some(json!({"n": -1})), 5, 20),
        (json!({"n": {"$ne": 3}}), None, 0, 2000),
        (json!({"_id": {"$in": [4, 2499, 77, 1.0e9]}}), None, 0, 0),
    ];
    for (filter, sort, skip, limit) in cases {
        let parsed = Filter::parse(&filter).unwrap();
        let expected = engine::select(
            documents.iter().cloned().map(Ok),
            &query(parsed.clone(), sort.as_ref(), skip, limit),
            &limits,
            &budget(),
        )
        .unwrap();
        let found = store
            .find(&at, &query(parsed.clone(), sort.as_ref(), skip, limit), &limits, &budget())
            .await
            .unwrap();
        assert_eq!(found.len(), expected.len(), "{filter} skip {skip} limit {limit}");
        assert!(found == expected, "{filter} {sort:?} skip {skip} limit {limit}");
        let counted = store.count(&at, &parsed, &budget()).await.unwrap();
        let all = engine::count(documents.iter().cloned().map(Ok), &parsed, &budget()).unwrap();
        assert_eq!(counted, all, "count {filter}");
    }
    // update_one and delete_one read pages until their first match: the one the engine picks
    // over all documents, found in a later page by a filter that is not pushed down.
    let late = json!({"n": {"$not": {"$lt": 1500}}, "even": false});
    let first = |filter: &Value| {
        let query = query(Filter::parse(filter).unwrap(), None, 0, 1);
        engine::select(documents.iter().cloned().map(Ok), &query, &limits, &budget()).unwrap()
    };
    let wanted = first(&late)[0]["_id"].clone();
    let set = json!({"$set": {"touched": true}});
    let updated = wrapper.update(&at, &late, &set, Default::default()).await.unwrap();
    assert_eq!((updated.matched, updated.modified), (1, 1));
    let touched = wrapper.find(&at, &json!({"touched": true}), None, None, 0, 0).await.unwrap();
    assert_eq!(touched.len(), 1);
    assert_eq!(touched[0]["_id"], wanted);
    let deleted = wrapper.delete(&at, &late, false).await.unwrap();
    assert_eq!(deleted, 1);
    let gone = wrapper.find(&at, &json!({"_id": wanted}), None, None, 0, 0).await.unwrap();
    assert!(gone.is_empty(), "{gone:?}");
    assert_eq!(
        store.count(&at, &Filter::parse(&json!({})).unwrap(), &budget()).await.unwrap(),
        2499
    );
    store.drop_space(&at.space).await.unwrap();
}

/// A database at schema version 1 (no `body`) is brought to version 2 when a node starts on it:
/// its documents get their `body` and are found by pushed-down filters.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_1_database_is_migrated() {
    let (name, fresh, admin) = fresh_database("wasmfn_migrate").await;
    let (old, connection) =
        tokio_postgres::connect(fresh.as_str(), tokio_postgres::NoTls).await.unwrap();
    let task = tokio::spawn(connection);
    // What version 1 created, with two documents, one holding a NUL (jsonb refuses it).
    old.batch_execute(
        r#"CREATE TABLE wasmfn_documents (space text NOT NULL, database text NOT NULL,
               collection text NOT NULL, id text NOT NULL, doc json NOT NULL,
               PRIMARY KEY (space, database, collection, id));
           INSERT INTO wasmfn_documents VALUES
               ('s', 'c1', 'logs', '1', '{"_id": 1, "state": "open", "note": "a\u0000b"}'),
               ('s', 'c1', 'logs', '2', '{"_id": 2, "state": "closed"}');"#,
    )
    .await
    .unwrap();
    drop(old);
    let _ = task.await;
    let outcome = async {
        let store = PostgresDocuments::connect(fresh.as_str()).await?;
        let at =
            CollectionRef { space: "s".into(), database: "c1".into(), collection: "logs".into() };
        let limits = Limits::default();
        let budget = Budget::new(&limits, None);
        let open = Filter::parse(&json!({"state": "open"})).unwrap();
        let found = store.find(&at, &query(open, None, 0, 0), &limits, &budget).await?;
        let nul = Filter::parse(&json!({"note": {"$gte": "a\u{0}"}})).unwrap();
        let with_nul = store.count(&at, &nul, &budget).await?;
        Ok::<_, crate::docstore::DocError>((found, with_nul))
    }
    .await;
    let _ = admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
    let (found, with_nul) = outcome.unwrap();
    assert_eq!(
        found,
        vec![json!({"_id": 1, "state": "open", "note": "a\u{0}b"}).as_object().unwrap().clone()]
    );
    assert_eq!(with_nul, 1);
}

/// The machine's PostgreSQL with Debian's default TLS (the "snakeoil" certificate, for
/// `localhost`), reached at 127.0.0.1 under the name `localhost`.
const SNAKEOIL: &str = "/etc/ssl/certs/ssl-cert-snakeoil.pem";

fn tls_url(query: &str) -> String {
    let mut url = url::Url::parse(&postgres_url()).unwrap();
    url.set_host(Some("localhost")).unwrap();
    url.set_query(Some(query));
    url.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_when_the_url_asks_with_the_certificate_verified() {
    let plain = connect().await;
    assert!(!plain.encrypted().await, "no sslmode: not encrypted, as before");
    assert!(
        std::path::Path::new(SNAKEOIL).exists(),
        "this test needs PostgreSQL with Debian's TLS defaults (ssl = on, {SNAKEOIL})"
    );
    let url = tls_url(&format!("sslmode=require&sslrootcert={SNAKEOIL}"));
    let store = PostgresDocuments::connect(&url).await.unwrap_or_else(|error| {
        panic!("TLS with the server's CA given: {error} (is ssl on in PostgreSQL?)")
    });
    assert!(store.encrypted().await, "sslmode=require: encrypted");
    let at = CollectionRef {
        space: format!("pg-tls-{}", rand::random::<u32>()),
        database: "c1".into(),
        collection: "tls".into(),
    };
    let limits = Limits::default();
    let document = json!({"_id": 1, "over": "tls"}).as_object().unwrap().clone();
    store.insert(&at, vec![document.clone()], &Budget::new(&limits, None)).await.unwrap();
    let all = query(Filter::parse(&json!({"over": "tls"})).unwrap(), None, 0, 0);
    let found = store.find(&at, &all, &limits, &Budget::new(&limits, None)).await.unwrap();
    assert_eq!(found, vec![document]);
    store.drop_space(&at.space).await.unwrap();

    // Not trusted (a self-signed certificate, no sslrootcert): refused, without the URL.
    let untrusted = PostgresDocuments::connect(&tls_url("sslmode=require")).await;
    let Err(error) = untrusted else { panic!("connected to an untrusted server") };
    assert_eq!(error.to_string(), "the document store (PostgreSQL) cannot be reached");
    // A CA file that is not there, or a CA without TLS asked for: clear errors.
    let missing =
        PostgresDocuments::connect(&tls_url("sslmode=require&sslrootcert=/nonexistent/ca.pem"))
            .await;
    let Err(error) = missing else { panic!("connected without its CA file") };
    assert_eq!(error.to_string(), "the PostgreSQL URL's sslrootcert file cannot be read");
    let Err(error) = PostgresDocuments::connect(&tls_url(&format!("sslrootcert={SNAKEOIL}"))).await
    else {
        panic!("an sslrootcert without sslmode was accepted")
    };
    assert!(error.to_string().contains("without sslmode=require"), "{error}");
}
