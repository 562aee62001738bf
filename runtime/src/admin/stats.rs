//! Statistics for the console's charts, computed from the invocation log (so they need no
//! Prometheus and cover what the log keeps, 7 days by default): `GET /admin/stats` (every
//! space) and `GET /admin/spaces/<space>/stats`, per time step (calls, errors, p50/p99
//! duration, mean queue wait and instantiation) and per function and version; and
//! `GET /admin/node`, what the node is doing now.

use std::collections::{BTreeMap, HashMap};

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use serde_json::{json, Value};

use super::{AdminContext, AdminError};
use crate::invocation_log::RecordSummary;

/// Records one statistics query reads at most (the log's own default bound).
pub const MAX_RECORDS: usize = 1_000_000;

pub fn routes() -> Router<AdminContext> {
    Router::new()
        .route("/admin/stats", get(all_spaces))
        .route("/admin/spaces/{space}/stats", get(one_space))
        .route("/admin/node", get(node))
}

/// A window the charts show: its length and the step of its points.
fn window(name: &str) -> Option<(i64, i64)> {
    const MINUTE: i64 = 60_000;
    match name {
        "1h" => Some((60 * MINUTE, MINUTE)),
        "24h" => Some((24 * 60 * MINUTE, 15 * MINUTE)),
        "7d" => Some((7 * 24 * 60 * MINUTE, 60 * MINUTE)),
        _ => None,
    }
}

/// Calls, failures and durations of one step or one function.
#[derive(Default)]
struct Tally {
    calls: u64,
    errors: u64,
    durations: Vec<u64>,
    queued: f64,
    instantiate: f64,
}

impl Tally {
    fn add(&mut self, record: &RecordSummary) {
        self.calls += 1;
        self.errors += u64::from(record.failed());
        self.durations.push(record.duration_ms);
        self.queued += record.queued_ms.unwrap_or(0.0);
        self.instantiate += record.instantiate_ms.unwrap_or(0.0);
    }

    fn summary(mut self) -> Summary {
        self.durations.sort_unstable();
        let percentile = |p: usize| {
            (!self.durations.is_empty()).then(|| {
                self.durations[(self.durations.len() * p / 100).min(self.durations.len() - 1)]
            })
        };
        let mean = |total: f64| (self.calls > 0).then(|| total / self.calls as f64);
        Summary {
            calls: self.calls,
            errors: self.errors,
            p50_ms: percentile(50),
            p99_ms: percentile(99),
            queued_ms: mean(self.queued),
            instantiate_ms: mean(self.instantiate),
        }
    }
}

#[derive(Serialize)]
struct Summary {
    calls: u64,
    errors: u64,
    p50_ms: Option<u64>,
    p99_ms: Option<u64>,
    queued_ms: Option<f64>,
    instantiate_ms: Option<f64>,
}

async fn all_spaces(
    State(state): State<AdminContext>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, AdminError> {
    stats(state, None, params).await
}

async fn one_space(
    State(state): State<AdminContext>,
    Path(space): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, AdminError> {
    stats(state, Some(space), params).await
}

/// `?window=1h|24h|7d&function=<name>&version=<v>`: the window's points and the functions in it.
async fn stats(
    state: AdminContext,
    space: Option<String>,
    params: HashMap<String, String>,
) -> Result<Json<Value>, AdminError> {
    let bad = |message: String| AdminError::new(StatusCode::BAD_REQUEST, "invalid_query", message);
    if let Some(unknown) =
        params.keys().find(|k| !["window", "function", "version"].contains(&k.as_str()))
    {
        return Err(bad(format!(
            "unknown parameter '{unknown}' (known: window, function, version)"
        )));
    }
    let window_name = params.get("window").map_or("1h", String::as_str).to_string();
    let (length, step) = window(&window_name)
        .ok_or_else(|| bad(format!("window '{window_name}' must be 1h, 24h or 7d")))?;
    let function = params.get("function").filter(|f| !f.is_empty()).cloned();
    let version = params.get("version").filter(|v| !v.is_empty()).cloned();
    // Whole steps, so a point's value does not change as time goes on within it.
    let until = (chrono::Utc::now().timestamp_millis() / step + 1) * step;
    let since = until - length;
    let logs = state.logs.clone();
    let computed = tokio::task::spawn_blocking(move || {
        let points = (length / step) as usize;
        let mut steps: Vec<Tally> = (0..points).map(|_| Tally::default()).collect();
        let mut functions: BTreeMap<(String, String, Option<String>), Tally> = BTreeMap::new();
        let mut matched = 0u64;
        logs.summaries(since, until, MAX_RECORDS, |record| {
            let wanted = space.as_ref().is_none_or(|s| *s == record.space)
                && function.as_ref().is_none_or(|f| *f == record.function)
                && version.as_ref().is_none_or(|v| record.version.as_ref() == Some(v));
            if !wanted {
                return;
            }
            matched += 1;
            let index = ((record.started_ms - since) / step) as usize;
            if let Some(tally) = steps.get_mut(index) {
                tally.add(&record);
            }
            let key = (record.space.clone(), record.function.clone(), record.version.clone());
            functions.entry(key).or_default().add(&record);
        });
        let times: Vec<i64> = (0..points as i64).map(|i| (since + i * step) / 1000).collect();
        let steps: Vec<Summary> = steps.into_iter().map(Tally::summary).collect();
        let functions: Vec<Value> = functions
            .into_iter()
            .map(|((space, function, version), tally)| {
                let mut value = json!(tally.summary());
                value["space"] = json!(space);
                value["function"] = json!(function);
                value["version"] = json!(version);
                value
            })
            .collect();
        json!({
            "window": window_name,
            "step_seconds": step / 1000,
            "since": since / 1000,
            "until": until / 1000,
            "records": matched,
            "series": {
                "time": times,
                "calls": steps.iter().map(|s| s.calls).collect::<Vec<_>>(),
                "errors": steps.iter().map(|s| s.errors).collect::<Vec<_>>(),
                "p50_ms": steps.iter().map(|s| s.p50_ms).collect::<Vec<_>>(),
                "p99_ms": steps.iter().map(|s| s.p99_ms).collect::<Vec<_>>(),
                "queued_ms": steps.iter().map(|s| s.queued_ms).collect::<Vec<_>>(),
                "instantiate_ms": steps.iter().map(|s| s.instantiate_ms).collect::<Vec<_>>(),
            },
            "functions": functions,
        })
    })
    .await
    .map_err(|_| {
        AdminError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "computing the statistics failed",
        )
    })?;
    Ok(Json(computed))
}

/// `GET /admin/node`: running invocations against the run slots, loaded functions, the
/// instance pool (instances made ahead and ready, slots no instance holds), the process's
/// resident memory, log records dropped.
async fn node(State(state): State<AdminContext>) -> Json<Value> {
    Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "running_invocations": state.run_slots.running(),
        "max_running": state.run_slots.size(),
        "functions": state.registry.versions().len(),
        "pooled_instances": state.invoker.pooled_instances(),
        "free_instance_slots": state.invoker.free_instance_slots(),
        "resident_memory_bytes": resident_memory_bytes(),
        "log_records_dropped": state.logs.dropped(),
    }))
}

/// The process's resident set size, from /proc (Linux); `None` elsewhere.
fn resident_memory_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
