//! `wasmfn logs`: the invocation log of a running server.

use std::collections::HashSet;
use std::time::Duration;

use anyhow::Result;
use clap::Args;
use reqwest::Method;
use serde_json::Value;

use super::admin_client::{AdminArgs, AdminClient};

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Only this function.
    #[arg(long)]
    pub function: Option<String>,
    /// Only this trigger (http, async, ixon, cron, mqtt, cli).
    #[arg(long)]
    pub trigger: Option<String>,
    /// From this time on (RFC 3339, e.g. 2026-11-23T08:00:00Z).
    #[arg(long)]
    pub since: Option<String>,
    /// Before this time (RFC 3339).
    #[arg(long)]
    pub until: Option<String>,
    /// Only this status (500) or class (5xx).
    #[arg(long)]
    pub status: Option<String>,
    /// Only this outcome (ok, function_exception, timeout, memory_limit_exceeded, …).
    #[arg(long)]
    pub outcome: Option<String>,
    /// Most records to show (newest first; printed oldest first).
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
    /// table, json, ndjson or csv (the last two as the server's download).
    #[arg(long, default_value = "table", value_parser = ["table", "json", "ndjson", "csv"])]
    pub format: String,
    /// Keep printing new records as they come, until Ctrl-C.
    #[arg(long, short)]
    pub follow: bool,
    /// Records of every space, not only --space.
    #[arg(long)]
    pub all_spaces: bool,
    #[command(flatten)]
    pub admin: AdminArgs,
}

fn query(args: &LogsArgs, since: Option<&str>) -> Vec<(&'static str, String)> {
    let mut query = vec![("limit", args.limit.to_string())];
    if !args.all_spaces {
        query.push(("space", args.admin.space.clone()));
    }
    let optional = [
        ("function", &args.function),
        ("trigger", &args.trigger),
        ("until", &args.until),
        ("status", &args.status),
        ("outcome", &args.outcome),
    ];
    for (name, value) in optional {
        if let Some(value) = value {
            query.push((name, value.clone()));
        }
    }
    if let Some(since) = since.map(str::to_string).or_else(|| args.since.clone()) {
        query.push(("since", since));
    }
    query
}

pub async fn run(args: LogsArgs) -> Result<std::process::ExitCode> {
    let admin = AdminClient::new(&args.admin)?;
    if matches!(args.format.as_str(), "ndjson" | "csv") && !args.follow {
        let mut params = query(&args, None);
        params.push(("format", args.format.clone()));
        let response = admin.request(Method::GET, "/admin/logs").query(&params).send().await?;
        let status = response.status();
        let text = response.text().await?;
        if !status.is_success() {
            anyhow::bail!("{status}: {text}");
        }
        print!("{text}");
        return Ok(std::process::ExitCode::SUCCESS);
    }
    let mut seen = HashSet::new();
    let mut since: Option<String> = None;
    loop {
        let request =
            admin.request(Method::GET, "/admin/logs").query(&query(&args, since.as_deref()));
        let body = admin.send(request).await?;
        let mut records: Vec<Value> = body["records"].as_array().cloned().unwrap_or_default();
        records.reverse();
        for record in records {
            let id = record["id"].as_str().unwrap_or("").to_string();
            if !seen.insert(id) {
                continue;
            }
            match args.format.as_str() {
                "table" => print_line(&record),
                _ => println!("{}", serde_json::to_string(&record)?),
            }
            // A long call that started earlier can finish (and be recorded) later: look back
            // ten minutes, longer than any timeout; `seen` drops the repeats.
            let started = record["started_at"]
                .as_str()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
            if let Some(started) = started {
                let look_back = started.to_utc() - chrono::Duration::minutes(10);
                since = Some(look_back.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
            }
        }
        if !args.follow {
            return Ok(std::process::ExitCode::SUCCESS);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

fn print_line(record: &Value) {
    let text = |key: &str| record[key].as_str().unwrap_or("-").to_string();
    let detail = match (record["error_type"].as_str(), record["error_message"].as_str()) {
        (Some(kind), Some(message)) => format!("{kind}: {message}"),
        (None, Some(message)) => message.to_string(),
        _ => String::new(),
    };
    println!(
        "{} {} {}/{} {} {} {} {}ms {} {}",
        text("started_at"),
        text("id"),
        text("space"),
        text("function"),
        text("entry"),
        text("trigger"),
        record["status"],
        record["duration_ms"],
        text("outcome"),
        detail
    );
}
