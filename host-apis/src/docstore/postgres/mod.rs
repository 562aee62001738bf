//! The scale-out document store: one PostgreSQL table shared by every node. Documents are stored
//! as `json` (not `jsonb`, which reorders fields: MongoDB and Python keep them in insertion
//! order) under `(space, database, collection, id)`, in `_id` order like sled (byte order of the
//! `_id`'s JSON, so ObjectIds come in creation order), with a `jsonb` copy (`body`) that filters
//! are pushed down to ([`pushdown`]) and declared indexes cover. The shared
//! [`engine`](super::engine) re-checks every candidate row, so PostgreSQL answers exactly like
//! sled. Reads go a page at a time in one snapshot and stop when the answer is complete; every
//! statement runs under `statement_timeout`. Writers to one collection take a
//! transaction-scoped advisory lock, which serialises them across nodes; a write is committed
//! before the call returns.

#[cfg(test)]
mod differential_tests;
mod pushdown;
pub(crate) mod schema;

use async_trait::async_trait;
use deadpool_postgres::{GenericClient, Pool};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{Json, ToSql};

use super::budget::Budget;
use super::engine::{self, id_key};
use super::query::Filter;
use super::{
    Change, CollectionRef, DocError, Document, DocumentStore, FindQuery, Limits, UpdateOptions,
    WriteOutcome,
};
use pushdown::Param;

pub struct PostgresDocuments {
    pool: Pool,
}

/// Rows read per page: a first small page (`find_one`, `limit=1`), then larger ones.
const FIRST_PAGE: i64 = 64;
const PAGE: i64 = 1000;

/// Rows one insert statement carries at most, and their JSON at most this many bytes.
const INSERT_ROWS: usize = 1000;
const INSERT_BYTES: usize = 8 << 20;

impl PostgresDocuments {
    /// Connects to `url` (`postgres://user@host:port/db`, with `?sslmode=require` for TLS; see
    /// [`crate::postgres::pool`]) and brings the tables to this build's schema version (see [`schema`]).
    pub async fn connect(url: &str) -> Result<Self, DocError> {
        let pool = crate::postgres::pool(url, 16, None).map_err(DocError::Unavailable)?;
        let store = Self { pool };
        let mut client = store.client().await?;
        schema::migrate(&mut client).await.map_err(|error| {
            tracing::error!(%error, "setting up the document tables in PostgreSQL failed");
            DocError::Unavailable("the document store (PostgreSQL) could not be set up".into())
        })?;
        Ok(store)
    }

    /// Whether this store's connections are encrypted (PostgreSQL's own view, `pg_stat_ssl`).
    #[cfg(test)]
    async fn encrypted(&self) -> bool {
        let client = self.client().await.expect("a connection");
        let row = client
            .query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[])
            .await
            .expect("pg_stat_ssl");
        row.get(0)
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, DocError> {
        self.pool.get().await.map_err(|error| {
            tracing::error!(%error, "document store (PostgreSQL) unreachable");
            DocError::Unavailable("the document store (PostgreSQL) cannot be reached".into())
        })
    }
}

fn failed(error: tokio_postgres::Error) -> DocError {
    if error.code() == Some(&SqlState::UNIQUE_VIOLATION) {
        return DocError::DuplicateKey("E11000 duplicate key error: _id already exists".into());
    }
    if error.code() == Some(&SqlState::QUERY_CANCELED) {
        return DocError::LimitExceeded("operation exceeded its time limit".into());
    }
    tracing::error!(%error, "document store (PostgreSQL) failed");
    DocError::Unavailable("the document store (PostgreSQL) failed; try again".into())
}

type SqlParam = Box<dyn ToSql + Sync + Send>;

/// The rows of one collection, its space, database and name being `$1`, `$2`, `$3`.
const IN_COLLECTION: &str =
    "FROM wasmfn_documents WHERE space = $1 AND database = $2 AND collection = $3";

/// The rows of a collection a filter can match, as a query in `_id` order: its SQL up to
/// (without) the page's key bound, and its parameters.
struct Candidates {
    sql: String,
    params: Vec<SqlParam>,
}

impl Candidates {
    fn new(at: &CollectionRef, filter: &Filter) -> Self {
        let mut sql = format!("SELECT id, doc {IN_COLLECTION}");
        let mut params: Vec<SqlParam> = vec![
            Box::new(at.space.clone()),
            Box::new(at.database.clone()),
            Box::new(at.collection.clone()),
        ];
        if let Some(condition) = pushdown::condition(filter, params.len() + 1) {
            sql.push_str(" AND ");
            sql.push_str(&condition.sql);
            for param in condition.params {
                params.push(match param {
                    Param::Text(text) => Box::new(text),
                    Param::Keys(keys) => Box::new(keys),
                });
            }
        }
        Self { sql, params }
    }

    /// What a write plans over: every candidate (`many`), or only the first that `filter`
    /// matches, read a page at a time (an `update_one`/`delete_one` reads no further).
    async fn for_write(
        &self,
        client: &impl GenericClient,
        filter: &Filter,
        many: bool,
        budget: &Budget,
    ) -> Result<Vec<Document>, DocError> {
        if many {
            let sql = format!("{} ORDER BY id COLLATE \"C\"", self.sql);
            let rows = client.query(&sql, &self.refs(&[])).await.map_err(failed)?;
            return rows.iter().map(document).collect();
        }
        let mut first = Vec::new();
        walk(client, self, |page| {
            let meter = budget.meter();
            for document in page {
                budget.check()?;
                if engine::hit(filter, &document, &meter, budget)?.is_some() {
                    first.push(document);
                    return Ok(false);
                }
            }
            Ok(true)
        })
        .await?;
        Ok(first)
    }

    /// The next page: up to `size` candidates after the key `after` (from the start if none),
    /// with the key of the last one.
    async fn page(
        &self,
        client: &impl GenericClient,
        after: Option<&String>,
        size: i64,
    ) -> Result<(Vec<Document>, Option<String>), DocError> {
        let next = self.params.len() + 1;
        let rows = match after {
            Some(key) => {
                let sql = format!(
                    "{} AND id COLLATE \"C\" > ${next} ORDER BY id COLLATE \"C\" LIMIT ${}",
                    self.sql,
                    next + 1
                );
                client.query(&sql, &self.refs(&[key, &size])).await
            }
            None => {
                let sql = format!("{} ORDER BY id COLLATE \"C\" LIMIT ${next}", self.sql);
                client.query(&sql, &self.refs(&[&size])).await
            }
        }
        .map_err(failed)?;
        let last = rows.last().map(|row| row.get::<_, String>(0));
        let documents = rows.iter().map(document).collect::<Result<_, _>>()?;
        Ok((documents, last))
    }

    fn refs<'a>(&'a self, more: &[&'a (dyn ToSql + Sync)]) -> Vec<&'a (dyn ToSql + Sync)> {
        let own = self.params.iter().map(|param| param.as_ref() as &(dyn ToSql + Sync));
        own.chain(more.iter().copied()).collect()
    }
}

fn document(row: &tokio_postgres::Row) -> Result<Document, DocError> {
    row.try_get::<_, Json<Document>>(1).map(|json| json.0).map_err(failed)
}

/// Walks the candidates a page at a time, handing each page to `take` (which says whether it
/// wants more), within one snapshot and the budget.
async fn walk(
    client: &impl GenericClient,
    candidates: &Candidates,
    mut take: impl FnMut(Vec<Document>) -> Result<bool, DocError>,
) -> Result<(), DocError> {
    let mut after = None;
    let mut size = FIRST_PAGE;
    loop {
        let (documents, last) = candidates.page(client, after.as_ref(), size).await?;
        let complete = (documents.len() as i64) < size;
        if !engine::scan(|| take(documents))? || complete {
            return Ok(());
        }
        after = last;
        size = PAGE;
    }
}

/// Starts a read-only transaction on one snapshot (pages read later see what the first saw),
/// its statements limited to the time left in the budget, so no query (a read of a large
/// collection included) outlives the operation that asked for it.
async fn reading<'a>(
    client: &'a mut deadpool_postgres::Object,
    budget: &Budget,
) -> Result<deadpool_postgres::Transaction<'a>, DocError> {
    let transaction = client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .map_err(failed)?;
    limit_statements(&transaction, budget).await?;
    Ok(transaction)
}

async fn limit_statements(
    transaction: &deadpool_postgres::Transaction<'_>,
    budget: &Budget,
) -> Result<(), DocError> {
    let left = budget.deadline().saturating_duration_since(std::time::Instant::now());
    // 0 would mean "no limit" to PostgreSQL.
    let timeout = format!("SET LOCAL statement_timeout = {}", left.as_millis().max(1));
    transaction.batch_execute(&timeout).await.map_err(failed)
}

/// Starts a write transaction holding the collection's lock, its statements limited to the time
/// left in the budget.
async fn begin<'a>(
    client: &'a mut deadpool_postgres::Object,
    at: &CollectionRef,
    budget: &Budget,
) -> Result<deadpool_postgres::Transaction<'a>, DocError> {
    let transaction = client.transaction().await.map_err(failed)?;
    limit_statements(&transaction, budget).await?;
    let lock_key = serde_json::json!([at.space, at.database, at.collection]).to_string();
    transaction
        .execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", &[&lock_key])
        .await
        .map_err(failed)?;
    Ok(transaction)
}

/// Inserts `documents`, many rows per statement.
async fn insert_rows(
    client: &impl GenericClient,
    at: &CollectionRef,
    documents: &[Document],
) -> Result<(), DocError> {
    let sql = "INSERT INTO wasmfn_documents (space, database, collection, id, doc, body) \
               SELECT $1, $2, $3, u.id, u.doc, u.body \
               FROM unnest($4::text[], $5::json[], $6::jsonb[]) AS u(id, doc, body)";
    let mut rest = documents;
    while !rest.is_empty() {
        let mut bytes = 0;
        let mut count = 0;
        for document in rest.iter().take(INSERT_ROWS) {
            bytes += serde_json::to_vec(document).map_or(0, |json| json.len());
            if count > 0 && bytes > INSERT_BYTES {
                break;
            }
            count += 1;
        }
        let (chunk, later) = rest.split_at(count);
        let ids: Vec<String> = chunk.iter().map(|d| id_key(&d["_id"])).collect();
        let docs: Vec<Json<&Document>> = chunk.iter().map(Json).collect();
        let bodies: Vec<Json<serde_json::Value>> =
            chunk.iter().map(|d| Json(pushdown::encoded(d))).collect();
        client
            .execute(sql, &[&at.space, &at.database, &at.collection, &ids, &docs, &bodies])
            .await
            .map_err(failed)?;
        rest = later;
    }
    Ok(())
}

#[async_trait]
impl DocumentStore for PostgresDocuments {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn find(
        &self,
        at: &CollectionRef,
        query: &FindQuery,
        limits: &Limits,
        budget: &Budget,
    ) -> Result<Vec<Document>, DocError> {
        let mut client = self.client().await?;
        let transaction = reading(&mut client, budget).await?;
        let candidates = Candidates::new(at, &query.filter);
        let mut selection = engine::Selection::new(query, limits, budget);
        walk(&transaction, &candidates, |page| {
            for document in page {
                if !selection.offer(document)? {
                    return Ok(false);
                }
            }
            Ok(true)
        })
        .await?;
        drop(transaction);
        engine::scan(|| selection.finish())
    }

    async fn count(
        &self,
        at: &CollectionRef,
        filter: &Filter,
        budget: &Budget,
    ) -> Result<u64, DocError> {
        let mut client = self.client().await?;
        let transaction = reading(&mut client, budget).await?;
        if filter.matches_everything() {
            let row = transaction
                .query_one(
                    &format!("SELECT count(*) {IN_COLLECTION}"),
                    &[&at.space, &at.database, &at.collection],
                )
                .await
                .map_err(failed)?;
            return Ok(row.get::<_, i64>(0).max(0) as u64);
        }
        let candidates = Candidates::new(at, filter);
        let mut count = 0;
        walk(&transaction, &candidates, |page| {
            count += engine::count(page.into_iter().map(Ok), filter, budget)?;
            Ok(true)
        })
        .await?;
        Ok(count)
    }

    async fn insert(
        &self,
        at: &CollectionRef,
        documents: Vec<Document>,
        budget: &Budget,
    ) -> Result<(), DocError> {
        let mut client = self.client().await?;
        let transaction = begin(&mut client, at, budget).await?;
        insert_rows(&transaction, at, &documents).await?;
        budget.commit()?;
        transaction.commit().await.map_err(failed)
    }

    async fn update(
        &self,
        at: &CollectionRef,
        filter: &Filter,
        change: &Change,
        options: UpdateOptions,
        limits: &Limits,
        budget: &Budget,
    ) -> Result<WriteOutcome, DocError> {
        let mut client = self.client().await?;
        let transaction = begin(&mut client, at, budget).await?;
        let candidates = Candidates::new(at, filter);
        let documents = candidates.for_write(&transaction, filter, options.many, budget).await?;
        let plan = engine::scan(|| {
            let documents = documents.into_iter().map(Ok);
            engine::plan_update(documents, filter, change, options, limits, budget)
        })?;
        let sql = "UPDATE wasmfn_documents SET doc = $5, body = $6 WHERE space = $1 \
                   AND database = $2 AND collection = $3 AND id = $4";
        for changed in &plan.changed {
            let key = id_key(&engine::id_of(&changed.after));
            let doc = Json(&changed.after);
            let body = Json(pushdown::encoded(&changed.after));
            transaction
                .execute(sql, &[&at.space, &at.database, &at.collection, &key, &doc, &body])
                .await
                .map_err(failed)?;
        }
        if let Some(document) = &plan.upsert {
            insert_rows(&transaction, at, std::slice::from_ref(document)).await?;
        }
        budget.commit()?;
        transaction.commit().await.map_err(failed)?;
        Ok(plan.into_outcome())
    }

    async fn delete(
        &self,
        at: &CollectionRef,
        filter: &Filter,
        many: bool,
        budget: &Budget,
    ) -> Result<Vec<Document>, DocError> {
        let mut client = self.client().await?;
        let transaction = begin(&mut client, at, budget).await?;
        let candidates = Candidates::new(at, filter);
        let documents = candidates.for_write(&transaction, filter, many, budget).await?;
        let doomed = engine::scan(|| {
            engine::plan_delete(documents.into_iter().map(Ok), filter, many, budget)
        })?;
        let keys: Vec<String> = doomed.iter().map(|d| id_key(&engine::id_of(d))).collect();
        transaction
            .execute(
                &format!("DELETE {IN_COLLECTION} AND id = ANY($4)"),
                &[&at.space, &at.database, &at.collection, &keys],
            )
            .await
            .map_err(failed)?;
        budget.commit()?;
        transaction.commit().await.map_err(failed)?;
        Ok(doomed)
    }

    async fn check(&self) -> Result<(), DocError> {
        let client = self.client().await?;
        client.simple_query("SELECT 1").await.map_err(failed)?;
        Ok(())
    }

    async fn declare_indexes(
        &self,
        space: &str,
        collection: &str,
        paths: &[String],
    ) -> Result<(), DocError> {
        let mut statements: Vec<(String, String)> = paths
            .iter()
            .filter_map(|path| pushdown::index_statement(space, collection, path))
            .collect();
        statements.sort();
        statements.dedup();
        let client = self.client().await?;
        for (name, statement) in statements {
            // A build that failed half-way (CONCURRENTLY) leaves an invalid index that
            // `IF NOT EXISTS` would take for done: drop it and build again.
            let invalid = client
                .query_opt(
                    "SELECT 1 FROM pg_index WHERE indexrelid = to_regclass($1) AND NOT indisvalid",
                    &[&name],
                )
                .await
                .map_err(failed)?;
            if invalid.is_some() {
                client
                    .batch_execute(&format!("DROP INDEX CONCURRENTLY IF EXISTS {name}"))
                    .await
                    .map_err(failed)?;
            }
            client.batch_execute(&statement).await.map_err(failed)?;
        }
        Ok(())
    }

    async fn drop_space(&self, space: &str) -> Result<(), DocError> {
        let client = self.client().await?;
        client
            .execute("DELETE FROM wasmfn_documents WHERE space = $1", &[&space])
            .await
            .map_err(failed)?;
        Ok(())
    }
}
