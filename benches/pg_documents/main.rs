//! The PostgreSQL document store at 100,000 documents: operations per second of the logbook's
//! queries, each measured three ways in one run on one database:
//!
//! - **scan**: the filter written so that it cannot be pushed down (`$not` of `$ne`, which
//!   matches the same documents), so every row of the collection is read and checked by the
//!   engine, which is what every query did before filters were pushed down;
//! - **pushed down**: the plain filter, which PostgreSQL evaluates (a sequential pass over the
//!   collection's rows, no index);
//! - **indexed**: the same after `[[documents.index]]` on `device.id` and `state` (GIN indexes).
//!
//! ```sh
//! cargo bench -p wasmfn-host-apis --bench pg_documents -- [--documents 100000]
//!     [--seconds 3] [--concurrency 8] [--postgres postgres://postgres@127.0.0.1:5432/test]
//! ```
//!
//! Makes a database of its own (dropped at the end) and prints a Markdown table.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use wasmfn_host_apis::docstore::postgres::PostgresDocuments;
use wasmfn_host_apis::docstore::{CollectionRef, Documents, Limits, UpdateOptions};

struct Options {
    documents: u64,
    seconds: f64,
    concurrency: usize,
    postgres: String,
}

fn options() -> Options {
    let mut options = Options {
        documents: 100_000,
        seconds: 3.0,
        concurrency: 8,
        postgres: "postgres://postgres@127.0.0.1:5432/test".into(),
    };
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = || args.next().cloned().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "--documents" => options.documents = value().parse().expect("--documents N"),
            "--seconds" => options.seconds = value().parse().expect("--seconds S"),
            "--concurrency" => options.concurrency = value().parse().expect("--concurrency N"),
            "--postgres" => options.postgres = value(),
            "--help" | "-h" => {
                println!(
                    "pg_documents [--documents N] [--seconds S] [--concurrency N] [--postgres URL]"
                );
                std::process::exit(0);
            }
            other => panic!("unknown argument {other}; try --help"),
        }
    }
    options
}

const DEVICES: u64 = 1000;

/// One of the logbook's operations, given a call number (which picks the devices).
#[derive(Clone, Copy)]
enum Op {
    FindIn,
    FindOne,
    CountState,
    PushNote,
}

impl Op {
    const ALL: [Op; 4] = [Op::FindIn, Op::FindOne, Op::CountState, Op::PushNote];

    fn name(self) -> &'static str {
        match self {
            Op::FindIn => "find `device.id` `$in` 3 devices (300 documents)",
            Op::FindOne => "find_one by `device.id` and `n`",
            Op::CountState => "count_documents `state` (1 % match)",
            Op::PushNote => "update_one `$push` a note by `device.id` and `n`",
        }
    }

    /// The filter, plain or (`scan`) in a form that matches the same documents but is not
    /// pushed down.
    fn filter(self, call: u64, per_device: u64, scan: bool) -> Value {
        let device = |k: u64| Value::String(format!("d{}", (call * 7919 + k * 131) % DEVICES));
        let same = |value: Value| if scan { json!({"$not": {"$ne": value}}) } else { value };
        match self {
            Op::FindIn => {
                let devices: Vec<Value> = (0..3).map(device).collect();
                if scan {
                    json!({"device.id": {"$not": {"$nin": devices}}})
                } else {
                    json!({"device.id": {"$in": devices}})
                }
            }
            Op::FindOne | Op::PushNote => {
                json!({"device.id": same(device(0)), "n": same(json!(call % per_device))})
            }
            Op::CountState => json!({"state": same(json!("closed"))}),
        }
    }

    async fn run(
        self,
        store: &Documents,
        at: &CollectionRef,
        call: u64,
        per_device: u64,
        scan: bool,
    ) {
        let filter = self.filter(call, per_device, scan);
        let outcome = match self {
            Op::FindIn => store.find(at, &filter, None, None, 0, 0).await.map(|found| {
                assert_eq!(found.len() as u64, 3 * per_device, "{filter}");
            }),
            Op::FindOne => store.find(at, &filter, None, None, 0, 1).await.map(|found| {
                assert_eq!(found.len(), 1, "{filter}");
            }),
            Op::CountState => store.count(at, &filter).await.map(|n| assert!(n > 0, "{filter}")),
            Op::PushNote => {
                let update =
                    json!({"$push": {"notes": {"$each": [{"text": "checked"}], "$slice": -5}}});
                store.update(at, &filter, &update, UpdateOptions::default()).await.map(|result| {
                    assert_eq!(result.matched, 1, "{filter}");
                })
            }
        };
        outcome.unwrap_or_else(|error| panic!("{}: {error}", self.name()));
    }
}

/// Operations per second of `op` with `concurrency` callers for `seconds`.
async fn measure(
    store: &Documents,
    at: &CollectionRef,
    op: Op,
    scan: bool,
    options: &Options,
    per_device: u64,
) -> f64 {
    let calls = Arc::new(AtomicU64::new(0));
    let end = Instant::now() + Duration::from_secs_f64(options.seconds);
    let started = Instant::now();
    let workers: Vec<_> = (0..options.concurrency)
        .map(|_| {
            let (store, at, calls) = (store.clone(), at.clone(), calls.clone());
            tokio::spawn(async move {
                let mut done = 0u64;
                while Instant::now() < end {
                    let call = calls.fetch_add(1, Ordering::Relaxed);
                    op.run(&store, &at, call, per_device, scan).await;
                    done += 1;
                }
                done
            })
        })
        .collect();
    let mut done = 0;
    for worker in workers {
        done += worker.await.expect("a worker");
    }
    done as f64 / started.elapsed().as_secs_f64()
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let options = options();
    let per_device = (options.documents / DEVICES).max(1);
    let (admin, connection) = tokio_postgres::connect(&options.postgres, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|error| panic!("PostgreSQL must answer at {}: {error}", options.postgres));
    tokio::spawn(connection);
    let name = format!("wasmfn_bench_{}", std::process::id());
    admin.batch_execute(&format!("CREATE DATABASE {name}")).await.expect("creating the database");
    let mut url = url::Url::parse(&options.postgres).expect("a URL");
    url.set_path(&name);

    let backend = Arc::new(PostgresDocuments::connect(url.as_str()).await.expect("connecting"));
    let limits = Limits { max_query_time: Duration::from_secs(60), ..Limits::default() };
    let store = Documents::new(backend, limits);
    let at = CollectionRef {
        space: "bench".into(),
        database: "company".into(),
        collection: "logbook".into(),
    };
    let seeding = Instant::now();
    let total = per_device * DEVICES;
    let mut made = 0;
    while made < total {
        let batch: Vec<Value> = (made..(made + 5000).min(total))
            .map(|i| {
                json!({
                    "device": {"id": format!("d{}", i % DEVICES), "name": format!("Pump {}", i % DEVICES)},
                    "n": i / DEVICES,
                    "state": if i % 100 == 0 { "closed" } else { "open" },
                    "notes": [{"text": "installed"}],
                })
            })
            .collect();
        made += batch.len() as u64;
        store.insert(&at, batch).await.expect("seeding");
    }
    admin.batch_execute("SELECT 1").await.unwrap();
    let (analyze, connection) =
        tokio_postgres::connect(url.as_str(), tokio_postgres::NoTls).await.expect("connecting");
    tokio::spawn(connection);
    analyze.batch_execute("VACUUM ANALYZE wasmfn_documents").await.expect("analyze");
    eprintln!("seeded {total} documents in {:.1} s", seeding.elapsed().as_secs_f64());

    let mut rows = Vec::new();
    for op in Op::ALL {
        let scan = measure(&store, &at, op, true, &options, per_device).await;
        let pushed = measure(&store, &at, op, false, &options, per_device).await;
        eprintln!("{}: scan {scan:.1}/s, pushed down {pushed:.1}/s", op.name());
        rows.push((op, scan, pushed));
    }
    let indexing = Instant::now();
    store
        .declare_indexes(&at.space, &at.collection, &["device.id".into(), "state".into()])
        .await
        .expect("declaring the indexes");
    let built = indexing.elapsed();
    analyze.batch_execute("ANALYZE wasmfn_documents").await.expect("analyze");

    println!(
        "\n{total} documents, {} concurrent callers, {} s per measurement; indexes built in {:.1} s\n",
        options.concurrency,
        options.seconds,
        built.as_secs_f64()
    );
    println!("| operation | scan (ops/s) | pushed down, no index | indexed | indexed / scan |");
    println!("|---|---:|---:|---:|---:|");
    for (op, scan, pushed) in rows {
        let indexed = measure(&store, &at, op, false, &options, per_device).await;
        println!(
            "| {} | {scan:.1} | {pushed:.1} | {indexed:.1} | {:.0}x |",
            op.name(),
            indexed / scan
        );
    }
    drop(store);
    drop(analyze);
    let _ = admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
}
