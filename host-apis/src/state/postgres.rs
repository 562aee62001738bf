//! The shared backend: every tree of every node in one PostgreSQL table,
//! `wasmfn_state (tree, key bytea, value bytea)`, in byte order of the keys (PostgreSQL compares
//! `bytea` byte by byte, as sled does).
//!
//! Writes to a *watched* tree also send `NOTIFY wasmfn_state` with the tree and key, in the same
//! statement (so the notice goes out exactly when the write commits). Each node listens on a
//! connection of its own and passes on what *other* nodes changed as [`StateChange`]s; when that
//! connection is lost it reconnects and sends [`StateChange::Resync`], since notices sent
//! meanwhile are lost.
//!
//! *Time-partitioned* trees (the invocation log's) live in a table of their own,
//! `wasmfn_state_timed (tree, key, value, ms)`, partitioned by range of `ms` into one table per
//! day (`wasmfn_state_timed_20261205`), made when the first entry of the day is written:
//! retention drops whole days ([`KvTree::drop_days_before`]) instead of deleting rows one by one,
//! and reads bounded in time touch only their days' tables. An entry's `ms` comes from the first
//! 8 bytes (big-endian milliseconds) of its key or, for an index tree, of its value
//! ([`TimeIn`]).
//!
//! The schema is versioned (`wasmfn_schema`, component `state`) and brought up to date at start
//! under the advisory lock the document store's tables take too.
//!
//! The trait is synchronous; the statements run on a small runtime of this backend's own, and a
//! caller waits for the answer at most [`STATEMENT_TIMEOUT`] (PostgreSQL's `statement_timeout`
//! is set to the same on every connection, so nothing runs on after the caller gave up).

use std::collections::VecDeque;
use std::future::Future;
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;
use futures::StreamExt;
use tokio::sync::broadcast;
use tokio_postgres::types::ToSql;
use tokio_postgres::{AsyncMessage, NoTls};

use super::{Entries, Entry, KvTree, LeaseTable, StateBackend, StateChange, StateError, StateTree};

/// How long one statement may take, from the caller's view and PostgreSQL's.
pub const STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);

/// Entries read per page of a scan.
const PAGE: i64 = 256;

/// The notice channel.
const CHANNEL: &str = "wasmfn_state";

/// This build's version of the `state` component of `wasmfn_schema`: 1 the one table, 2 the
/// time-partitioned trees in a table of their own, 3 the queues' leases in a table of their own
/// (`wasmfn_leases`, see [`LeaseTable`]).
const VERSION: i32 = 3;

/// The table of the time-partitioned trees; its day tables are named `<TIMED>_<yyyymmdd>`.
const TIMED: &str = "wasmfn_state_timed";

const DAY_MS: i64 = 86_400_000;

/// Where an entry of a time-partitioned tree finds the time it is filed under: the big-endian
/// milliseconds its key starts with (entries kept by time), or those its value starts with (an
/// index of such entries by another key, whose value is the entry's key). Entries with fewer
/// than 8 bytes there are filed under 0 (1970-01-01).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeIn {
    Key,
    Value,
}

/// The milliseconds an entry is filed under.
fn time_of(time: TimeIn, key: &[u8], value: &[u8]) -> i64 {
    let bytes = match time {
        TimeIn::Key => key,
        TimeIn::Value => value,
    };
    match bytes.get(..8) {
        Some(first) => {
            i64::try_from(u64::from_be_bytes(first.try_into().expect("8 bytes"))).unwrap_or(0)
        }
        None => 0,
    }
}

/// The day table of `day` (days since 1970-01-01).
fn day_table(day: i64) -> String {
    let date = chrono::DateTime::from_timestamp_millis(day * DAY_MS).unwrap_or_default();
    format!("{TIMED}_{}", date.format("%Y%m%d"))
}

/// The day of a day table's name, if it is one.
fn table_day(name: &str) -> Option<i64> {
    let date = name.strip_prefix(TIMED)?.strip_prefix('_')?;
    let date = chrono::NaiveDate::parse_from_str(date, "%Y%m%d").ok()?;
    Some((date - chrono::NaiveDate::from_ymd_opt(1970, 1, 1)?).num_days())
}

/// A notice's payload is at most 8,000 bytes; longer keys are announced as "reread all".
const MAX_NOTICE_KEY: usize = 3000;

/// Connections per node.
const POOL_SIZE: usize = 8;

fn unavailable() -> StateError {
    StateError("the state store (PostgreSQL) cannot be reached or failed; try again".into())
}

fn failed(error: tokio_postgres::Error) -> StateError {
    tracing::error!(%error, "state store (PostgreSQL) statement failed");
    unavailable()
}

/// The trees of a cluster, in PostgreSQL.
#[derive(Debug, Clone)]
pub struct PostgresState {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    /// Runs the statements; shut down in the background when the last handle goes.
    runtime: Option<tokio::runtime::Runtime>,
    handle: tokio::runtime::Handle,
    /// Told apart from other nodes' notices by this (random, per process).
    origin: String,
    watched: Vec<String>,
    /// The time-partitioned trees.
    timed: Vec<(String, TimeIn)>,
    /// Day tables known to exist.
    days: std::sync::Mutex<std::collections::BTreeSet<i64>>,
    changes: broadcast::Sender<StateChange>,
    healthy: AtomicBool,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresState").field("watched", &self.watched).finish_non_exhaustive()
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl PostgresState {
    /// Connects to `url` (see [`crate::postgres::pool`]), creates or updates the tables (under
    /// the schema lock the document store takes too) and starts listening for changes to the
    /// `watched` trees; the `timed` trees are partitioned by day. Fails when PostgreSQL cannot
    /// be reached, or holds a schema of a newer wasmfn.
    pub fn connect(
        url: &str,
        watched: &[&str],
        timed: &[(&str, TimeIn)],
    ) -> Result<Self, StateError> {
        let pool =
            crate::postgres::pool(url, POOL_SIZE, Some(STATEMENT_TIMEOUT)).map_err(StateError)?;
        let listen_settings = crate::postgres::settings(url).map_err(StateError)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .max_blocking_threads(1)
            .thread_name("wasmfn-state")
            .enable_all()
            .build()
            .map_err(|e| StateError(format!("starting the state store's runtime: {e}")))?;
        let (changes, _) = broadcast::channel(1024);
        let inner = Arc::new(Inner {
            pool,
            handle: runtime.handle().clone(),
            runtime: Some(runtime),
            origin: hex::encode(rand::random::<[u8; 8]>()),
            watched: watched.iter().map(|t| t.to_string()).collect(),
            timed: timed.iter().map(|(tree, time)| (tree.to_string(), *time)).collect(),
            days: Default::default(),
            changes,
            healthy: AtomicBool::new(true),
        });
        let state = Self { inner };
        let (pool, timed) = (state.inner.pool.clone(), state.inner.timed.clone());
        state.run(async move {
            let mut client = pool.get().await.map_err(|error| {
                tracing::error!(%error, "state store (PostgreSQL) unreachable");
                StateError("the state store (PostgreSQL) cannot be reached".into())
            })?;
            match migrate(&mut client, &timed).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(newer)) => Err(newer),
                Err(error) => {
                    tracing::error!(%error, "setting up the state tables in PostgreSQL failed");
                    Err(StateError("the state store (PostgreSQL) could not be set up".into()))
                }
            }
        })?;
        let weak = Arc::downgrade(&state.inner);
        state.inner.handle.spawn(listen(listen_settings, weak));
        Ok(state)
    }

    /// Runs `work` on the backend's runtime and waits for it, at most [`STATEMENT_TIMEOUT`].
    fn run<T, F>(&self, work: F) -> Result<T, StateError>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, StateError>> + Send + 'static,
    {
        let (sender, receiver) = std::sync::mpsc::sync_channel(1);
        self.inner.handle.spawn(async move {
            let done = tokio::time::timeout(STATEMENT_TIMEOUT, work).await.unwrap_or_else(|_| {
                Err(StateError("the state store (PostgreSQL) timed out".into()))
            });
            let _ = sender.send(done);
        });
        let done = receiver
            .recv_timeout(STATEMENT_TIMEOUT + Duration::from_secs(1))
            .unwrap_or_else(|_| Err(unavailable()));
        self.inner.healthy.store(done.is_ok(), Ordering::Relaxed);
        done
    }

    /// Makes the day tables of `days` that are not known to exist yet.
    fn ensure_days(&self, days: std::collections::BTreeSet<i64>) -> Result<(), StateError> {
        let missing: Vec<i64> = {
            let known = self.inner.days.lock().expect("days");
            days.into_iter().filter(|day| !known.contains(day)).collect()
        };
        if missing.is_empty() {
            return Ok(());
        }
        let pool = self.inner.pool.clone();
        let made = missing.clone();
        self.run(async move {
            let mut client = pool.get().await.map_err(|_| unavailable())?;
            make_days(&mut client, &made).await.map_err(failed)
        })?;
        self.inner.days.lock().expect("days").extend(missing);
        Ok(())
    }

    /// Runs one statement with `params` and returns its rows.
    fn query(&self, sql: String, params: Params) -> Result<Vec<tokio_postgres::Row>, StateError> {
        let pool = self.inner.pool.clone();
        self.run(async move {
            let client = pool.get().await.map_err(|error| {
                tracing::error!(%error, "state store (PostgreSQL) unreachable");
                unavailable()
            })?;
            let refs: Vec<&(dyn ToSql + Sync)> =
                params.iter().map(|p| p.as_ref() as &(dyn ToSql + Sync)).collect();
            client.query(&sql, &refs).await.map_err(failed)
        })
    }

    fn notice(&self, tree: &str, key: &[u8]) -> Option<String> {
        if !self.inner.watched.iter().any(|t| t == tree) {
            return None;
        }
        let key = if key.len() > MAX_NOTICE_KEY { "*".to_string() } else { hex::encode(key) };
        Some(format!("{}\t{tree}\t{key}", self.inner.origin))
    }
}

/// Creates the tables, or brings those of an older version up to [`VERSION`], in one
/// transaction under the schema lock. The inner error: the schema is of a newer wasmfn.
async fn migrate(
    client: &mut deadpool_postgres::Object,
    timed: &[(String, TimeIn)],
) -> Result<Result<(), StateError>, tokio_postgres::Error> {
    let transaction = client.transaction().await?;
    transaction
        .execute("SELECT pg_advisory_xact_lock($1)", &[&crate::docstore::postgres::schema::LOCK])
        .await?;
    transaction
        .batch_execute(&format!(
            "CREATE TABLE IF NOT EXISTS wasmfn_schema (
                component text PRIMARY KEY,
                version integer NOT NULL
            );
            CREATE TABLE IF NOT EXISTS wasmfn_state (
                tree text NOT NULL,
                key bytea NOT NULL,
                value bytea NOT NULL,
                PRIMARY KEY (tree, key)
            );
            CREATE TABLE IF NOT EXISTS {TIMED} (
                tree text NOT NULL,
                key bytea NOT NULL,
                value bytea NOT NULL,
                ms bigint NOT NULL,
                PRIMARY KEY (tree, key, ms)
            ) PARTITION BY RANGE (ms);
            CREATE TABLE IF NOT EXISTS wasmfn_leases (
                queue text NOT NULL,
                id bytea NOT NULL,
                node text NOT NULL,
                until_ms bigint NOT NULL,
                PRIMARY KEY (queue, id)
            );
            CREATE INDEX IF NOT EXISTS wasmfn_leases_until ON wasmfn_leases (queue, until_ms);
            -- Values are stored as they are: bundles (tens of MB, already dense) took PostgreSQL
            -- seconds of CPU each to compress. Applies to rows written from now on.
            ALTER TABLE wasmfn_state ALTER COLUMN value SET STORAGE EXTERNAL"
        ))
        .await?;
    let found = transaction
        .query("SELECT version FROM wasmfn_schema WHERE component = 'state'", &[])
        .await?;
    let found: Option<i32> = found.first().map(|row| row.get(0));
    match found {
        Some(version) if version > VERSION => {
            return Ok(Err(StateError(format!(
                "the state database was set up by a newer wasmfn (state schema version \
                 {version}; this one knows up to {VERSION}): upgrade this server"
            ))));
        }
        Some(version) if version < VERSION => {
            if version == 1 {
                // Version 1 kept the time-partitioned trees in wasmfn_state: move their entries.
                for (tree, time) in timed {
                    let column = match time {
                        TimeIn::Key => "key",
                        TimeIn::Value => "value",
                    };
                    let ms = format!(
                        "CASE WHEN length({column}) >= 8 THEN greatest(0, ('x' || \
                         encode(substring({column} from 1 for 8), 'hex'))::bit(64)::bigint) ELSE 0 END"
                    );
                    let days = transaction
                        .query(
                            &format!(
                                "SELECT DISTINCT ({ms}) / {DAY_MS} FROM wasmfn_state WHERE tree = $1"
                            ),
                            &[tree],
                        )
                        .await?;
                    let days: Vec<i64> = days.iter().map(|row| row.get(0)).collect();
                    make_days_in(&transaction, &days).await?;
                    transaction
                        .execute(
                            &format!(
                                "INSERT INTO {TIMED} (tree, key, value, ms)
                                 SELECT tree, key, value, {ms} FROM wasmfn_state WHERE tree = $1"
                            ),
                            &[tree],
                        )
                        .await?;
                    transaction
                        .execute("DELETE FROM wasmfn_state WHERE tree = $1", &[tree])
                        .await?;
                }
            }
            // Versions 1 and 2 kept the async queue's leases as JSON in tree `async_leases`.
            transaction
                .execute(
                    "INSERT INTO wasmfn_leases (queue, id, node, until_ms)
                     SELECT 'async', key, v->>'node', (v->>'until_ms')::bigint
                     FROM (SELECT key, convert_from(value, 'UTF8')::jsonb AS v FROM wasmfn_state
                           WHERE tree = 'async_leases') AS old
                     ON CONFLICT DO NOTHING",
                    &[],
                )
                .await?;
            transaction
                .execute("DELETE FROM wasmfn_state WHERE tree = 'async_leases'", &[])
                .await?;
            transaction
                .execute(
                    "UPDATE wasmfn_schema SET version = $1 WHERE component = 'state'",
                    &[&VERSION],
                )
                .await?;
        }
        Some(_) => {}
        None => {
            transaction
                .execute(
                    "INSERT INTO wasmfn_schema (component, version) VALUES ('state', $1)",
                    &[&VERSION],
                )
                .await?;
        }
    }
    transaction.commit().await?;
    Ok(Ok(()))
}

/// Makes the day tables of `days` (if missing), in a transaction of its own under the schema
/// lock (two nodes making the same day at once would otherwise collide).
async fn make_days(
    client: &mut deadpool_postgres::Object,
    days: &[i64],
) -> Result<(), tokio_postgres::Error> {
    let transaction = client.transaction().await?;
    transaction
        .execute("SELECT pg_advisory_xact_lock($1)", &[&crate::docstore::postgres::schema::LOCK])
        .await?;
    make_days_in(&transaction, days).await?;
    transaction.commit().await
}

async fn make_days_in(
    transaction: &tokio_postgres::Transaction<'_>,
    days: &[i64],
) -> Result<(), tokio_postgres::Error> {
    for day in days {
        let (from, to) = (day * DAY_MS, (day + 1) * DAY_MS);
        transaction
            .batch_execute(&format!(
                "CREATE TABLE IF NOT EXISTS {} PARTITION OF {TIMED} FOR VALUES FROM ({from}) TO ({to})",
                day_table(*day)
            ))
            .await?;
    }
    Ok(())
}

/// Listens for notices as long as the backend lives, reconnecting after a failure.
async fn listen(
    settings: (tokio_postgres::Config, Option<rustls::ClientConfig>),
    inner: std::sync::Weak<Inner>,
) {
    let (config, tls) = settings;
    let mut first = true;
    loop {
        if inner.upgrade().is_none() {
            return;
        }
        let result = match &tls {
            Some(tls) => match config
                .connect(tokio_postgres_rustls::MakeRustlsConnect::new(tls.clone()))
                .await
            {
                Ok((client, connection)) => {
                    receive(client, connection, &inner, std::mem::take(&mut first)).await
                }
                Err(error) => Err(error),
            },
            None => match config.connect(NoTls).await {
                Ok((client, connection)) => {
                    receive(client, connection, &inner, std::mem::take(&mut first)).await
                }
                Err(error) => Err(error),
            },
        };
        if let Err(error) = result {
            tracing::warn!(%error, "listening for state changes (PostgreSQL) failed; retrying");
        }
        if let Some(inner) = inner.upgrade() {
            inner.healthy.store(false, Ordering::Relaxed);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Passes on the notices of one connection until it ends.
async fn receive<S, T>(
    client: tokio_postgres::Client,
    mut connection: tokio_postgres::Connection<S, T>,
    inner: &std::sync::Weak<Inner>,
    first: bool,
) -> Result<(), tokio_postgres::Error>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, mut notices) = tokio::sync::mpsc::unbounded_channel();
    let pump = tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message? {
                AsyncMessage::Notification(notice) => {
                    if sender.send(notice.payload().to_string()).is_err() {
                        break;
                    }
                }
                _ => continue,
            }
        }
        Ok::<(), tokio_postgres::Error>(())
    });
    client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
    if let Some(inner) = inner.upgrade() {
        inner.healthy.store(true, Ordering::Relaxed);
        if !first {
            let _ = inner.changes.send(StateChange::Resync);
        }
    }
    while let Some(payload) = notices.recv().await {
        let Some(inner) = inner.upgrade() else { return Ok(()) };
        if let Some(change) = parse_notice(&payload, &inner.origin) {
            let _ = inner.changes.send(change);
        }
    }
    drop(client);
    match pump.await {
        Ok(result) => result,
        Err(_) => Ok(()),
    }
}

/// The change a notice announces, unless this node sent it.
fn parse_notice(payload: &str, own_origin: &str) -> Option<StateChange> {
    let mut parts = payload.splitn(3, '\t');
    let (origin, tree, key) = (parts.next()?, parts.next()?, parts.next()?);
    if origin == own_origin {
        return None;
    }
    if key == "*" {
        return Some(StateChange::Resync);
    }
    Some(StateChange::Key { tree: tree.to_string(), key: hex::decode(key).ok()? })
}

impl StateBackend for PostgresState {
    fn tree(&self, name: &str) -> Result<StateTree, StateError> {
        let time = self.inner.timed.iter().find(|(tree, _)| tree == name).map(|(_, time)| *time);
        Ok(StateTree::new(PostgresTree { state: self.clone(), name: name.to_string(), time }))
    }

    fn changes(&self) -> Option<broadcast::Receiver<StateChange>> {
        Some(self.inner.changes.subscribe())
    }

    fn healthy(&self) -> bool {
        if !self.inner.healthy.load(Ordering::Relaxed) {
            // Look again: the store may be back.
            let pool = self.inner.pool.clone();
            let _ = self.run(async move {
                let client = pool.get().await.map_err(|_| unavailable())?;
                client.simple_query("SELECT 1").await.map_err(failed)?;
                Ok(())
            });
        }
        self.inner.healthy.load(Ordering::Relaxed)
    }

    fn kind(&self) -> &'static str {
        "postgres"
    }

    fn leases(&self, queue: &str) -> Option<Arc<dyn LeaseTable>> {
        Some(Arc::new(PostgresLeases { state: self.clone(), queue: queue.to_string() }))
    }
}

/// The leases of one queue, rows of `wasmfn_leases (queue, id, node, until_ms)`.
#[derive(Debug)]
struct PostgresLeases {
    state: PostgresState,
    queue: String,
}

impl LeaseTable for PostgresLeases {
    fn take(&self, id: &[u8], node: &str, until_ms: i64) -> Result<bool, StateError> {
        let rows = self.state.query(
            "INSERT INTO wasmfn_leases (queue, id, node, until_ms) VALUES ($1, $2, $3, $4)
             ON CONFLICT (queue, id) DO NOTHING RETURNING true"
                .into(),
            vec![
                Box::new(self.queue.clone()),
                Box::new(id.to_vec()),
                Box::new(node.to_string()),
                Box::new(until_ms),
            ],
        )?;
        Ok(!rows.is_empty())
    }

    fn renew(
        &self,
        node: &str,
        ids: &[Vec<u8>],
        until_ms: i64,
    ) -> Result<Vec<Vec<u8>>, StateError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows = self.state.query(
            "UPDATE wasmfn_leases SET until_ms = $3
             WHERE queue = $1 AND node = $2 AND id = ANY($4) RETURNING id"
                .into(),
            vec![
                Box::new(self.queue.clone()),
                Box::new(node.to_string()),
                Box::new(until_ms),
                Box::new(ids.to_vec()),
            ],
        )?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }

    fn claim_expired(
        &self,
        node: &str,
        now_ms: i64,
        until_ms: i64,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, String)>, StateError> {
        // Rows another node is claiming at this moment are skipped, not waited for.
        let rows = self.state.query(
            "WITH expired AS (
                SELECT id, node FROM wasmfn_leases
                WHERE queue = $1 AND until_ms < $2
                ORDER BY until_ms LIMIT $5
                FOR UPDATE SKIP LOCKED
             )
             UPDATE wasmfn_leases AS l SET node = $3, until_ms = $4 FROM expired
             WHERE l.queue = $1 AND l.id = expired.id
             RETURNING l.id, expired.node"
                .into(),
            vec![
                Box::new(self.queue.clone()),
                Box::new(now_ms),
                Box::new(node.to_string()),
                Box::new(until_ms),
                Box::new(i64::try_from(limit).unwrap_or(i64::MAX)),
            ],
        )?;
        Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
    }

    fn release(&self, id: &[u8], node: &str) -> Result<(), StateError> {
        self.state.query(
            "DELETE FROM wasmfn_leases WHERE queue = $1 AND id = $2 AND node = $3".into(),
            vec![Box::new(self.queue.clone()), Box::new(id.to_vec()), Box::new(node.to_string())],
        )?;
        Ok(())
    }

    fn expire(&self, node: &str, ids: Option<&[Vec<u8>]>) -> Result<usize, StateError> {
        let mut params: Params = vec![Box::new(self.queue.clone()), Box::new(node.to_string())];
        let mut sql =
            "UPDATE wasmfn_leases SET until_ms = 0 WHERE queue = $1 AND node = $2".to_string();
        if let Some(ids) = ids {
            params.push(Box::new(ids.to_vec()));
            sql.push_str(" AND id = ANY($3)");
        }
        Ok(self.state.query(format!("{sql} RETURNING true"), params)?.len())
    }
}

/// One tree of [`PostgresState`].
#[derive(Debug)]
struct PostgresTree {
    state: PostgresState,
    name: String,
    /// Set for a time-partitioned tree.
    time: Option<TimeIn>,
}

type Params = Vec<Box<dyn ToSql + Sync + Send>>;

impl PostgresTree {
    fn table(&self) -> &'static str {
        match self.time {
            Some(_) => TIMED,
            None => "wasmfn_state",
        }
    }

    /// `INSERT … ON CONFLICT (…)` of one entry (the caller says what a conflict does), with its
    /// parameters; a time-partitioned entry's day table is made first if it is new.
    fn insert_row(&self, key: &[u8], value: &[u8]) -> Result<(String, Params), StateError> {
        let mut params: Params =
            vec![Box::new(self.name.clone()), Box::new(key.to_vec()), Box::new(value.to_vec())];
        let sql = match self.time {
            None => "INSERT INTO wasmfn_state (tree, key, value) VALUES ($1, $2, $3)
                     ON CONFLICT (tree, key)"
                .to_string(),
            Some(time) => {
                let ms = time_of(time, key, value);
                self.state.ensure_days([ms.div_euclid(DAY_MS)].into())?;
                params.push(Box::new(ms));
                format!(
                    "INSERT INTO {TIMED} (tree, key, value, ms) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (tree, key, ms)"
                )
            }
        };
        Ok((sql, params))
    }

    /// Runs one statement with `params` and returns its rows.
    fn query(&self, sql: String, params: Params) -> Result<Vec<tokio_postgres::Row>, StateError> {
        self.state.query(sql, params)
    }

    /// `sql` (whose rows, if any, are the write's) followed by this write's notice, as one
    /// statement: `WITH w AS (<sql>) SELECT … FROM w`. Each row written answers one column:
    /// the value (`returning` is `value`: a removal's), or `true` (a large value is not sent
    /// back when only whether a row was written matters).
    fn write(
        &self,
        sql: &str,
        mut params: Params,
        key: &[u8],
        returning: Returning,
    ) -> Result<Vec<tokio_postgres::Row>, StateError> {
        let column = match returning {
            Returning::Value => "value",
            Returning::Written => "true",
        };
        match self.state.notice(&self.name, key) {
            Some(notice) => {
                params.push(Box::new(notice));
                let n = params.len();
                let sql = format!(
                    "WITH w AS ({sql} RETURNING {column}), n AS (SELECT pg_notify('{CHANNEL}', \
                     ${n}) WHERE EXISTS (SELECT 1 FROM w)) SELECT w.* FROM w CROSS JOIN n"
                );
                self.query(sql, params)
            }
            None => self.query(format!("{sql} RETURNING {column}"), params),
        }
    }
}

/// What [`PostgresTree::write`] answers for each row written.
#[derive(Clone, Copy)]
enum Returning {
    Value,
    Written,
}

impl KvTree for PostgresTree {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        let rows = self.query(
            format!("SELECT value FROM {} WHERE tree = $1 AND key = $2", self.table()),
            vec![Box::new(self.name.clone()), Box::new(key.to_vec())],
        )?;
        Ok(rows.first().map(|row| row.get(0)))
    }

    fn insert(&self, key: &[u8], value: &[u8]) -> Result<(), StateError> {
        let (sql, params) = self.insert_row(key, value)?;
        let sql = format!("{sql} DO UPDATE SET value = EXCLUDED.value");
        self.write(&sql, params, key, Returning::Written)?;
        Ok(())
    }

    fn insert_new(&self, key: &[u8], value: &[u8]) -> Result<Vec<u8>, StateError> {
        // A row another node inserts at the same time makes ours do nothing, and may be
        // invisible to the same statement's read: then read again.
        for _ in 0..3 {
            let (sql, params) = self.insert_row(key, value)?;
            let inserted =
                self.write(&format!("{sql} DO NOTHING"), params, key, Returning::Written)?;
            if !inserted.is_empty() {
                return Ok(value.to_vec());
            }
            if let Some(existing) = self.get(key)? {
                return Ok(existing);
            }
        }
        Err(StateError("the state store (PostgreSQL) could not settle a new key".into()))
    }

    fn remove(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        let rows = self.write(
            &format!("DELETE FROM {} WHERE tree = $1 AND key = $2", self.table()),
            vec![Box::new(self.name.clone()), Box::new(key.to_vec())],
            key,
            Returning::Value,
        )?;
        Ok(rows.first().map(|row| row.get(0)))
    }

    fn compare_and_swap(
        &self,
        key: &[u8],
        expected: Option<&[u8]>,
        new: Option<&[u8]>,
    ) -> Result<bool, StateError> {
        let (tree, key_bytes, table) = (self.name.clone(), key.to_vec(), self.table());
        let rows = match (expected, new) {
            (None, None) => return Ok(self.get(key)?.is_none()),
            (None, Some(new)) => {
                let (sql, params) = self.insert_row(key, new)?;
                self.write(&format!("{sql} DO NOTHING"), params, key, Returning::Written)?
            }
            (Some(expected), Some(new)) => self.write(
                &format!(
                    "UPDATE {table} SET value = $3 WHERE tree = $1 AND key = $2 AND value = $4"
                ),
                vec![
                    Box::new(tree),
                    Box::new(key_bytes),
                    Box::new(new.to_vec()),
                    Box::new(expected.to_vec()),
                ],
                key,
                Returning::Written,
            )?,
            (Some(expected), None) => self.write(
                &format!("DELETE FROM {table} WHERE tree = $1 AND key = $2 AND value = $3"),
                vec![Box::new(tree), Box::new(key_bytes), Box::new(expected.to_vec())],
                key,
                Returning::Written,
            )?,
        };
        Ok(!rows.is_empty())
    }

    fn apply(&self, batch: Vec<(Vec<u8>, Option<Vec<u8>>)>) -> Result<(), StateError> {
        if batch.is_empty() {
            return Ok(());
        }
        let notices: Vec<String> =
            batch.iter().filter_map(|(key, _)| self.state.notice(&self.name, key)).collect();
        let (mut set_keys, mut set_values, mut removed) = (Vec::new(), Vec::new(), Vec::new());
        let mut set_ms: Vec<i64> = Vec::new();
        for (key, value) in batch {
            match value {
                Some(value) => {
                    if let Some(time) = self.time {
                        set_ms.push(time_of(time, &key, &value));
                    }
                    set_keys.push(key);
                    set_values.push(value);
                }
                None => removed.push(key),
            }
        }
        self.state.ensure_days(set_ms.iter().map(|ms| ms.div_euclid(DAY_MS)).collect())?;
        let (pool, tree, table) = (self.state.inner.pool.clone(), self.name.clone(), self.table());
        let timed = self.time.is_some();
        self.state.run(async move {
            let mut client = pool.get().await.map_err(|_| unavailable())?;
            let transaction = client.transaction().await.map_err(failed)?;
            if !removed.is_empty() {
                transaction
                    .execute(
                        &format!("DELETE FROM {table} WHERE tree = $1 AND key = ANY($2)"),
                        &[&tree, &removed],
                    )
                    .await
                    .map_err(failed)?;
            }
            if !set_keys.is_empty() && timed {
                // Later entries for the same key win, as in a sled batch.
                transaction
                    .execute(
                        &format!(
                            "INSERT INTO {TIMED} (tree, key, value, ms)
                             SELECT DISTINCT ON (k) $1, k, v, m
                             FROM unnest($2::bytea[], $3::bytea[], $4::int8[])
                                 WITH ORDINALITY AS b(k, v, m, i)
                             ORDER BY k, i DESC
                             ON CONFLICT (tree, key, ms) DO UPDATE SET value = EXCLUDED.value"
                        ),
                        &[&tree, &set_keys, &set_values, &set_ms],
                    )
                    .await
                    .map_err(failed)?;
            } else if !set_keys.is_empty() {
                // Later entries for the same key win, as in a sled batch.
                transaction
                    .execute(
                        "INSERT INTO wasmfn_state (tree, key, value)
                         SELECT DISTINCT ON (k) $1, k, v
                         FROM unnest($2::bytea[], $3::bytea[]) WITH ORDINALITY AS b(k, v, i)
                         ORDER BY k, i DESC
                         ON CONFLICT (tree, key) DO UPDATE SET value = EXCLUDED.value",
                        &[&tree, &set_keys, &set_values],
                    )
                    .await
                    .map_err(failed)?;
            }
            for notice in notices {
                transaction
                    .execute(&format!("SELECT pg_notify('{CHANNEL}', $1)"), &[&notice])
                    .await
                    .map_err(failed)?;
            }
            transaction.commit().await.map_err(failed)
        })
    }

    fn scan(&self, range: (Bound<Vec<u8>>, Bound<Vec<u8>>), reverse: bool) -> Entries<'_> {
        Box::new(Scan {
            tree: self,
            lower: range.0,
            upper: range.1,
            reverse,
            page: VecDeque::new(),
            done: false,
        })
    }

    fn len(&self) -> Result<usize, StateError> {
        let rows = self.query(
            format!("SELECT count(*) FROM {} WHERE tree = $1", self.table()),
            vec![Box::new(self.name.clone())],
        )?;
        Ok(rows.first().map_or(0, |row| row.get::<_, i64>(0)) as usize)
    }

    fn shared(&self) -> bool {
        true
    }

    fn flush(&self) -> Result<(), StateError> {
        // Each write is committed before it returns.
        Ok(())
    }

    fn drop_days_before(&self, ms: u64) -> Result<Option<usize>, StateError> {
        if self.time.is_none() {
            return Ok(None);
        }
        // Days whose end is at or before `ms`.
        let before = i64::try_from(ms).unwrap_or(i64::MAX).div_euclid(DAY_MS);
        let pool = self.state.inner.pool.clone();
        let dropped = self.state.run(async move {
            let mut client = pool.get().await.map_err(|_| unavailable())?;
            let transaction = client.transaction().await.map_err(failed)?;
            let lock = crate::docstore::postgres::schema::LOCK;
            transaction
                .execute("SELECT pg_advisory_xact_lock($1)", &[&lock])
                .await
                .map_err(failed)?;
            let tables = transaction
                .query(
                    &format!(
                        "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = \
                         i.inhrelid WHERE i.inhparent = '{TIMED}'::regclass"
                    ),
                    &[],
                )
                .await
                .map_err(failed)?;
            let mut dropped = Vec::new();
            for row in tables {
                let name: String = row.get(0);
                let Some(day) = table_day(&name) else { continue };
                if day < before {
                    transaction
                        .batch_execute(&format!("DROP TABLE IF EXISTS {name}"))
                        .await
                        .map_err(failed)?;
                    dropped.push(day);
                }
            }
            transaction.commit().await.map_err(failed)?;
            Ok(dropped)
        })?;
        let mut known = self.state.inner.days.lock().expect("days");
        for day in &dropped {
            known.remove(day);
        }
        Ok(Some(dropped.len()))
    }
}

/// A scan, a page at a time (each page its own statement: a long scan sees writes made
/// meanwhile, as sled's iterators do).
struct Scan<'a> {
    tree: &'a PostgresTree,
    lower: Bound<Vec<u8>>,
    upper: Bound<Vec<u8>>,
    reverse: bool,
    page: VecDeque<Entry>,
    done: bool,
}

impl Scan<'_> {
    fn fetch(&mut self) -> Result<(), StateError> {
        let mut sql = format!("SELECT key, value FROM {} WHERE tree = $1", self.tree.table());
        let mut params: Params = vec![Box::new(self.tree.name.clone())];
        for (bound, inclusive, exclusive, same_ms) in
            [(&self.lower, ">=", ">", ">="), (&self.upper, "<=", "<", "<=")]
        {
            let (op, key) = match bound {
                Bound::Included(key) => (inclusive, key),
                Bound::Excluded(key) => (exclusive, key),
                Bound::Unbounded => continue,
            };
            params.push(Box::new(key.clone()));
            sql.push_str(&format!(" AND key {op} ${}", params.len()));
            // Entries filed by their key's time: the same bound on `ms` reads only the days
            // within it.
            if self.tree.time == Some(TimeIn::Key) && key.len() >= 8 {
                params.push(Box::new(time_of(TimeIn::Key, key, &[])));
                sql.push_str(&format!(" AND ms {same_ms} ${}", params.len()));
            }
        }
        let order = if self.reverse { "DESC" } else { "ASC" };
        sql.push_str(&format!(" ORDER BY key {order} LIMIT {PAGE}"));
        let rows = self.tree.query(sql, params)?;
        self.done = (rows.len() as i64) < PAGE;
        for row in rows {
            self.page.push_back((row.get(0), row.get(1)));
        }
        if let Some((last, _)) = self.page.back() {
            if self.reverse {
                self.upper = Bound::Excluded(last.clone());
            } else {
                self.lower = Bound::Excluded(last.clone());
            }
        }
        Ok(())
    }
}

impl Iterator for Scan<'_> {
    type Item = Result<Entry, StateError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.page.is_empty() && !self.done {
            if let Err(error) = self.fetch() {
                self.done = true;
                return Some(Err(error));
            }
        }
        self.page.pop_front().map(Ok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_of_other_nodes_are_passed_on_and_own_ones_dropped() {
        assert_eq!(
            parse_notice("b\tfunctions\t612f62", "a"),
            Some(StateChange::Key { tree: "functions".into(), key: b"a/b".to_vec() })
        );
        assert_eq!(parse_notice("a\tfunctions\t612f62", "a"), None);
        assert_eq!(parse_notice("b\tfunctions\t*", "a"), Some(StateChange::Resync));
        assert_eq!(parse_notice("garbage", "a"), None);
        assert_eq!(parse_notice("b\tfunctions\tzz", "a"), None);
    }
}
