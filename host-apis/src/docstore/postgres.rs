//! The scale-out document store: one PostgreSQL table shared by every node. Documents are stored
//! as `json` (not `jsonb`, which reorders fields: MongoDB and Python keep them in insertion
//! order) under `(space, database, collection, id)`, in `_id` order like sled (byte order of the
//! `_id`'s JSON, so ObjectIds come in creation order). Queries are
//! evaluated by the shared [`engine`](super::engine) over the collection's rows, so PostgreSQL
//! answers exactly like sled. Writers to one collection take a transaction-scoped advisory lock,
//! which serialises them across nodes; a write is committed before the call returns.

use async_trait::async_trait;
use deadpool_postgres::{GenericClient, Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::Json;
use tokio_postgres::NoTls;

use super::budget::Budget;
use super::engine::{self, id_key};
use super::query::Filter;
use super::{
    Change, CollectionRef, DocError, Document, DocumentStore, FindQuery, Limits, UpdateOptions,
    WriteOutcome,
};

/// The table, made under a transaction-scoped advisory lock: PostgreSQL's `CREATE TABLE IF NOT
/// EXISTS` is not safe against itself, and two nodes (or tests) starting on an empty database at
/// once would otherwise see a unique violation in its catalog.
const SCHEMA: &str = "BEGIN;
SELECT pg_advisory_xact_lock(2026120401);
CREATE TABLE IF NOT EXISTS wasmfn_documents (
    space text NOT NULL,
    database text NOT NULL,
    collection text NOT NULL,
    id text NOT NULL,
    doc json NOT NULL,
    PRIMARY KEY (space, database, collection, id)
);
COMMIT;";

pub struct PostgresDocuments {
    pool: Pool,
}

impl PostgresDocuments {
    /// Connects to `url` (`postgres://user@host:port/db`) and creates the table if needed.
    pub async fn connect(url: &str) -> Result<Self, DocError> {
        let config: tokio_postgres::Config = url
            .parse()
            .map_err(|_| DocError::Unavailable("the PostgreSQL URL is not valid".into()))?;
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig { recycling_method: RecyclingMethod::Fast },
        );
        let pool = Pool::builder(manager)
            .max_size(16)
            .build()
            .map_err(|_| DocError::Unavailable("could not set up the PostgreSQL pool".into()))?;
        let store = Self { pool };
        let client = store.client().await?;
        client.batch_execute(SCHEMA).await.map_err(|error| {
            tracing::error!(%error, "creating the document table in PostgreSQL failed");
            DocError::Unavailable("the document store (PostgreSQL) could not be set up".into())
        })?;
        Ok(store)
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

/// The collection's documents a filter can match, in `_id` order.
async fn candidates(
    client: &impl GenericClient,
    at: &CollectionRef,
    filter: &Filter,
) -> Result<Vec<Document>, DocError> {
    let base = "SELECT doc FROM wasmfn_documents WHERE space = $1 AND database = $2 \
                AND collection = $3";
    let rows = match filter.id_equality() {
        Some(id) => {
            let sql = format!("{base} AND id = $4");
            let key = id_key(id);
            client.query(&sql, &[&at.space, &at.database, &at.collection, &key]).await
        }
        None => {
            let sql = format!("{base} ORDER BY id COLLATE \"C\"");
            client.query(&sql, &[&at.space, &at.database, &at.collection]).await
        }
    }
    .map_err(failed)?;
    rows.iter()
        .map(|row| row.try_get::<_, Json<Document>>(0).map(|json| json.0).map_err(failed))
        .collect()
}

/// Starts a transaction whose statements are limited to the time left in the budget, so no
/// query (a read of a large collection included) outlives the operation that asked for it.
async fn bounded<'a>(
    client: &'a mut deadpool_postgres::Object,
    budget: &Budget,
) -> Result<deadpool_postgres::Transaction<'a>, DocError> {
    let transaction = client.transaction().await.map_err(failed)?;
    let left = budget.deadline().saturating_duration_since(std::time::Instant::now());
    // 0 would mean "no limit" to PostgreSQL.
    let timeout = format!("SET LOCAL statement_timeout = {}", left.as_millis().max(1));
    transaction.batch_execute(&timeout).await.map_err(failed)?;
    Ok(transaction)
}

/// Starts a write transaction holding the collection's lock, its statements limited to the time
/// left in the budget.
async fn begin<'a>(
    client: &'a mut deadpool_postgres::Object,
    at: &CollectionRef,
    budget: &Budget,
) -> Result<deadpool_postgres::Transaction<'a>, DocError> {
    let transaction = bounded(client, budget).await?;
    let lock_key = serde_json::json!([at.space, at.database, at.collection]).to_string();
    transaction
        .execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", &[&lock_key])
        .await
        .map_err(failed)?;
    Ok(transaction)
}

async fn insert_rows(
    client: &impl GenericClient,
    at: &CollectionRef,
    documents: &[Document],
) -> Result<(), DocError> {
    let sql = "INSERT INTO wasmfn_documents (space, database, collection, id, doc) \
               VALUES ($1, $2, $3, $4, $5)";
    for document in documents {
        let key = id_key(&document["_id"]);
        let doc = Json(document);
        client
            .execute(sql, &[&at.space, &at.database, &at.collection, &key, &doc])
            .await
            .map_err(failed)?;
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
        let transaction = bounded(&mut client, budget).await?;
        let documents = candidates(&transaction, at, &query.filter).await?;
        drop(transaction);
        engine::scan(|| engine::select(documents.into_iter().map(Ok), query, limits, budget))
    }

    async fn count(
        &self,
        at: &CollectionRef,
        filter: &Filter,
        budget: &Budget,
    ) -> Result<u64, DocError> {
        let mut client = self.client().await?;
        let transaction = bounded(&mut client, budget).await?;
        let documents = candidates(&transaction, at, filter).await?;
        drop(transaction);
        engine::scan(|| engine::count(documents.into_iter().map(Ok), filter, budget))
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
        let documents = candidates(&transaction, at, filter).await?;
        let plan = engine::scan(|| {
            let documents = documents.into_iter().map(Ok);
            engine::plan_update(documents, filter, change, options, limits, budget)
        })?;
        let sql = "UPDATE wasmfn_documents SET doc = $5 WHERE space = $1 AND database = $2 \
                   AND collection = $3 AND id = $4";
        for changed in &plan.changed {
            let key = id_key(&engine::id_of(&changed.after));
            let doc = Json(&changed.after);
            transaction
                .execute(sql, &[&at.space, &at.database, &at.collection, &key, &doc])
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
        let documents = candidates(&transaction, at, filter).await?;
        let doomed = engine::scan(|| {
            engine::plan_delete(documents.into_iter().map(Ok), filter, many, budget)
        })?;
        let sql = "DELETE FROM wasmfn_documents WHERE space = $1 AND database = $2 \
                   AND collection = $3 AND id = $4";
        for document in &doomed {
            let key = id_key(&engine::id_of(document));
            transaction
                .execute(sql, &[&at.space, &at.database, &at.collection, &key])
                .await
                .map_err(failed)?;
        }
        budget.commit()?;
        transaction.commit().await.map_err(failed)?;
        Ok(doomed)
    }

    async fn check(&self) -> Result<(), DocError> {
        let client = self.client().await?;
        client.simple_query("SELECT 1").await.map_err(failed)?;
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
