//! The document store's tables, versioned: `wasmfn_schema` records the version each component
//! of wasmfn's PostgreSQL schema is at, and [`migrate`] brings the documents' tables from
//! whatever version it finds to [`VERSION`], under one advisory lock, in one transaction, so
//! that nodes starting at once (PostgreSQL's `CREATE ... IF NOT EXISTS` is not safe against
//! itself) and nodes starting on an older database both end up at the same schema.
//!
//! - 1: `wasmfn_documents (space, database, collection, id, doc json)`.
//! - 2: `body jsonb` (the pushed-down copy, filled in for the rows already there) and an index
//!   giving rows in `_id` byte order, which paged reads walk.
//!
//! Every node of a cluster must run a wasmfn that knows the version the database is at: an
//! older node writes rows without `body`, which version 2 refuses.

use serde_json::Value;
use tokio_postgres::types::Json;
use tokio_postgres::{Error, Transaction};

use super::pushdown;
use super::Document;

/// The version this build brings the documents' tables to.
pub(crate) const VERSION: i32 = 2;

/// The advisory lock migrations hold (the same one version 1 took to create its table).
pub(crate) const LOCK: i64 = 2026120401;

/// Rows filled in per statement while adding `body`.
const BACKFILL_BATCH: i64 = 1000;

pub(crate) async fn migrate(client: &mut deadpool_postgres::Object) -> Result<(), Error> {
    let transaction = client.transaction().await?;
    transaction.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK]).await?;
    transaction
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS wasmfn_schema (
                component text PRIMARY KEY,
                version integer NOT NULL
            )",
        )
        .await?;
    let row = transaction
        .query_opt("SELECT version FROM wasmfn_schema WHERE component = 'documents'", &[])
        .await?;
    let mut version: i32 = row.map_or(0, |row| row.get(0));
    if version == 0 {
        transaction
            .batch_execute(
                "CREATE TABLE IF NOT EXISTS wasmfn_documents (
                    space text NOT NULL,
                    database text NOT NULL,
                    collection text NOT NULL,
                    id text NOT NULL,
                    doc json NOT NULL,
                    PRIMARY KEY (space, database, collection, id)
                )",
            )
            .await?;
        version = 1;
    }
    if version == 1 {
        transaction
            .batch_execute(
                "ALTER TABLE wasmfn_documents ADD COLUMN IF NOT EXISTS body jsonb;
                 CREATE INDEX IF NOT EXISTS wasmfn_documents_in_id_order ON wasmfn_documents
                     (space, database, collection, id COLLATE \"C\")",
            )
            .await?;
        backfill(&transaction).await?;
        transaction
            .batch_execute("ALTER TABLE wasmfn_documents ALTER COLUMN body SET NOT NULL")
            .await?;
        version = 2;
    }
    if version > VERSION {
        tracing::warn!(
            version,
            known = VERSION,
            "the document tables are at a newer schema version than this wasmfn knows"
        );
    } else {
        transaction
            .execute(
                "INSERT INTO wasmfn_schema (component, version) VALUES ('documents', $1)
                 ON CONFLICT (component) DO UPDATE SET version = EXCLUDED.version",
                &[&version],
            )
            .await?;
    }
    transaction.commit().await
}

/// Fills in `body` for the rows stored before it existed.
async fn backfill(transaction: &Transaction<'_>) -> Result<(), Error> {
    let mut filled = 0u64;
    loop {
        let rows = transaction
            .query(
                "SELECT space, database, collection, id, doc FROM wasmfn_documents
                 WHERE body IS NULL LIMIT $1",
                &[&BACKFILL_BATCH],
            )
            .await?;
        if rows.is_empty() {
            break;
        }
        let mut columns: [Vec<String>; 4] = Default::default();
        let mut bodies: Vec<Json<Value>> = Vec::with_capacity(rows.len());
        for row in &rows {
            for (i, column) in columns.iter_mut().enumerate() {
                column.push(row.get(i));
            }
            let Json(doc): Json<Document> = row.get(4);
            bodies.push(Json(pushdown::encoded(&doc)));
        }
        transaction
            .execute(
                "UPDATE wasmfn_documents AS d SET body = u.body
                 FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::jsonb[])
                     AS u(space, database, collection, id, body)
                 WHERE d.space = u.space AND d.database = u.database
                     AND d.collection = u.collection AND d.id = u.id",
                &[&columns[0], &columns[1], &columns[2], &columns[3], &bodies],
            )
            .await?;
        filled += rows.len() as u64;
    }
    if filled > 0 {
        tracing::info!(
            documents = filled,
            "document store: added the jsonb copy to stored documents"
        );
    }
    Ok(())
}
