//! A real function on the PostgreSQL document store, through `wasmfn serve`: the logbook
//! pattern (insert many, find by `$in` on a dotted path, `$push` a note, a positional `$set`,
//! counts) answers as it does on the embedded store, and the indexes its `function.toml`
//! declares (`[[documents.index]]`) are built in PostgreSQL, valid, and usable by the queries
//! wasmfn sends.

mod support;

use serde_json::{json, Value};

use support::postgres::{connect, Scratch};
use support::{fixture_bundle, json, spawn_serve};

async fn call(base: &str, entry: &str, arguments: Value) -> Value {
    let url = format!("{base}/spaces/default/functions/logbook:logbook.{entry}/invoke");
    let (status, body) =
        json(reqwest::Client::new().post(url).json(&arguments).send().await.unwrap()).await;
    assert_eq!(status, 200, "{entry}: {body}");
    body
}

/// The declared indexes of the logbook's collection, by definition, once both are valid
/// (they are built in the background after the deploy; bounded wait).
async fn valid_indexes(db: &tokio_postgres::Client) -> Vec<String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let rows = db
            .query(
                "SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i
                 JOIN pg_class c ON c.oid = i.indexrelid
                 WHERE c.relname LIKE 'wasmfn_docix_%' AND i.indisvalid",
                &[],
            )
            .await
            .unwrap();
        let definitions: Vec<String> = rows.iter().map(|row| row.get(0)).collect();
        if definitions.len() >= 2 || std::time::Instant::now() > deadline {
            return definitions;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_logbook_runs_on_postgresql_with_its_declared_indexes() {
    let bundle = tokio::task::spawn_blocking(|| fixture_bundle("logbook")).await.unwrap();
    // A database of its own: the indexes found are this test's.
    let scratch = Scratch::new("wasmfn_logbook").await;
    let url = scratch.url.clone();

    let data_dir = tempfile::tempdir().unwrap();
    let path = data_dir.path().join("logbook.wasm");
    std::fs::write(&path, bundle).unwrap();
    let (server, base) = {
        let (dir, path, url) = (data_dir.path().to_path_buf(), path.clone(), url.clone());
        tokio::task::spawn_blocking(move || {
            spawn_serve(&dir, &[path.to_str().unwrap(), "--document-store", &url])
        })
        .await
        .unwrap()
    };

    let outcome = async {
        let inserted = call(&base, "add_entries", json!({"devices": 40, "per_device": 25})).await;
        assert_eq!(inserted["inserted"], 1000);
        let found = call(&base, "entries_of", json!({"devices": ["d3", "d17", "nope"]})).await;
        let entries = found["entries"].as_array().unwrap();
        assert_eq!(entries.len(), 50, "{found}");
        assert_eq!(entries[0], json!(["d17", 0]));
        assert_eq!(entries[49], json!(["d3", 24]));

        let pushed =
            call(&base, "add_note", json!({"device": "d3", "n": 7, "text": "valve"})).await;
        assert_eq!(pushed, json!({"matched": 1, "modified": 1}));
        call(&base, "add_note", json!({"device": "d3", "n": 7, "text": "seal"})).await;
        let closed =
            call(&base, "close_note", json!({"device": "d3", "n": 7, "text": "seal"})).await;
        assert_eq!(closed, json!({"matched": 1, "modified": 1}));
        let entry = call(&base, "entry", json!({"device": "d3", "n": 7})).await;
        assert_eq!(
            entry["entry"],
            json!({
                "device": {"id": "d3", "name": "Pump 3"}, "n": 7, "state": "noted",
                "notes": [{"text": "valve", "state": "new"}, {"text": "seal", "state": "done"}]
            })
        );
        assert_eq!(call(&base, "count_state", json!({"state": "open"})).await["count"], 999);
        assert_eq!(call(&base, "count_state", json!({"state": "noted"})).await["count"], 1);

        let db = connect(&url).await;
        let indexes = valid_indexes(&db).await;
        assert_eq!(indexes.len(), 2, "{indexes:?}");
        for field in ["device", "state"] {
            let wanted = format!("((body -> '{field}'::text)) jsonb_path_ops");
            assert!(
                indexes.iter().any(|d| d.contains(&wanted) && d.contains("'logbook'::text")),
                "{field}: {indexes:?}"
            );
        }
        // The statement shape wasmfn sends for `{"device.id": {"$in": [...]}}` uses the index
        // once PostgreSQL knows the table (the collection is all of it, 2 of 40 devices match).
        db.batch_execute("ANALYZE wasmfn_documents").await.unwrap();
        let plan = db
            .query(
                "EXPLAIN SELECT id, doc FROM wasmfn_documents WHERE space = $1 \
                 AND collection = $2 AND (body -> E'device') @? ($3::text)::jsonpath",
                &[&"default", &"logbook", &r#"lax $."id"[*] ? (@ == "d3" || @ == "d17")"#],
            )
            .await
            .unwrap();
        let plan: Vec<String> = plan.iter().map(|row| row.get(0)).collect();
        assert!(plan.iter().any(|line| line.contains("wasmfn_docix_")), "{plan:#?}");
    }
    .await;
    // The server first: the database is dropped with its connections.
    drop(server);
    drop(scratch);
    outcome
}
