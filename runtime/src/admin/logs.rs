//! The admin API's log endpoints: `GET /admin/logs` (JSON, or NDJSON/CSV downloads) and
//! `GET /admin/logs/<id>`.

use std::collections::HashMap;

use axum::extract::{Extension, Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde_json::json;

use super::{AdminContext, AdminError};
use crate::access::console::Scope;
use crate::invocation_log::StatusFilter;
use crate::invocation_log::{LogFilter, LogRecord};

/// Most records one query returns.
pub const MAX_LIMIT: usize = 100_000;

pub fn routes() -> Router<AdminContext> {
    Router::new().route("/admin/logs", get(list)).route("/admin/logs/{id}", get(show))
}

fn bad(message: String) -> AdminError {
    AdminError::new(StatusCode::BAD_REQUEST, "invalid_query", message)
}

fn time(name: &str, text: &str) -> Result<DateTime<Utc>, AdminError> {
    DateTime::parse_from_rfc3339(text).map(|t| t.to_utc()).map_err(|e| {
        bad(format!("{name} '{text}' is not an RFC 3339 time like 2026-11-23T08:00:00Z: {e}"))
    })
}

/// The filter a query string asks for.
pub fn filter(params: &HashMap<String, String>) -> Result<LogFilter, AdminError> {
    const KNOWN: [&str; 11] = [
        "space", "function", "version", "trigger", "since", "until", "status", "outcome", "text",
        "limit", "format",
    ];
    if let Some(unknown) = params.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return Err(bad(format!("unknown parameter '{unknown}' (known: {})", KNOWN.join(", "))));
    }
    let text = |name: &str| params.get(name).filter(|v| !v.is_empty()).cloned();
    let limit = match params.get("limit") {
        None => 100,
        Some(limit) => limit
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| bad(format!("limit '{limit}' must be 1 to {MAX_LIMIT}")))?,
    };
    Ok(LogFilter {
        space: text("space"),
        function: text("function"),
        trigger: text("trigger"),
        since: text("since").map(|t| time("since", &t)).transpose()?,
        until: text("until").map(|t| time("until", &t)).transpose()?,
        status: text("status").map(|s| s.parse::<StatusFilter>().map_err(bad)).transpose()?,
        outcome: text("outcome"),
        version: text("version"),
        spaces: None,
        text: text("text"),
        limit,
    })
}

async fn list(
    State(state): State<AdminContext>,
    scope: Option<Extension<Scope>>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, AdminError> {
    let mut filter = filter(&params)?;
    // A console session of a space key reads its own space only.
    match scope {
        Some(Extension(Scope::Space { space, .. })) => filter.space = Some(space),
        // An account reads the spaces it has a role in (asking for another finds nothing).
        Some(Extension(Scope::Account { roles, .. })) => {
            filter.spaces = Some(roles.into_keys().collect());
        }
        _ => {}
    }
    // A text search may read the whole log: off the request threads.
    let logs = state.logs.clone();
    let records = tokio::task::spawn_blocking(move || logs.query(&filter)).await.map_err(|_| {
        AdminError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "the log query failed")
    })?;
    match params.get("format").map(String::as_str).unwrap_or("json") {
        "json" => Ok(Json(json!({ "records": records })).into_response()),
        "ndjson" => {
            let mut body = String::new();
            for record in &records {
                body.push_str(&serde_json::to_string(record).expect("records serialise"));
                body.push('\n');
            }
            Ok(download(body, "application/x-ndjson", "ndjson"))
        }
        "csv" => Ok(download(to_csv(&records), "text/csv; charset=utf-8", "csv")),
        other => Err(bad(format!("format '{other}' is unknown: use json, ndjson or csv"))),
    }
}

fn download(body: String, content_type: &'static str, extension: &str) -> Response {
    let disposition = format!("attachment; filename=\"invocations.{extension}\"");
    (
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        body,
    )
        .into_response()
}

/// Columns of the CSV download, in order.
pub const CSV_COLUMNS: [&str; 16] = [
    "id",
    "started_at",
    "duration_ms",
    "space",
    "function",
    "version",
    "entry",
    "trigger",
    "status",
    "outcome",
    "error_type",
    "error_message",
    "traceback",
    "logs",
    "stdout",
    "stderr",
];

fn to_csv(records: &[LogRecord]) -> String {
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record(CSV_COLUMNS).expect("writing to memory");
    for r in records {
        let logs: Vec<String> =
            r.logs.iter().map(|line| format!("[{}] {}", line.level, line.message)).collect();
        let opt = |value: &Option<String>| value.clone().unwrap_or_default();
        writer
            .write_record([
                r.id.to_string(),
                r.started_at.clone(),
                r.duration_ms.to_string(),
                r.space.clone(),
                r.function.clone(),
                opt(&r.version),
                opt(&r.entry),
                r.trigger.clone(),
                r.status.to_string(),
                r.outcome.clone(),
                opt(&r.error_type),
                opt(&r.error_message),
                opt(&r.traceback),
                logs.join("\n"),
                r.stdout.clone(),
                r.stderr.clone(),
            ])
            .expect("writing to memory");
    }
    String::from_utf8(writer.into_inner().expect("flushing to memory"))
        .expect("CSV of UTF-8 is UTF-8")
}

async fn show(
    State(state): State<AdminContext>,
    scope: Option<Extension<Scope>>,
    Path(id): Path<String>,
) -> Result<Json<LogRecord>, AdminError> {
    let not_found =
        || AdminError::new(StatusCode::NOT_FOUND, "not_found", format!("no log record '{id}'"));
    let uuid = uuid::Uuid::parse_str(&id).map_err(|_| not_found())?;
    let record = state.logs.get(uuid).ok_or_else(not_found)?;
    match scope {
        Some(Extension(Scope::Space { space, .. })) if space != record.space => Err(not_found()),
        Some(Extension(Scope::Account { roles, .. })) if !roles.contains_key(&record.space) => {
            Err(not_found())
        }
        _ => Ok(Json(record)),
    }
}
