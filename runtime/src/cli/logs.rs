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
    /// One invocation, whole: its output, log lines, traceback and outbound calls (the id is
    /// in the table, and in each answer's `X-Invocation-Id` header).
    pub id: Option<String>,
    /// Only this function.
    #[arg(long)]
    pub function: Option<String>,
    /// Only this trigger (http, async, ixon, cron, mqtt, cli).
    #[arg(long)]
    pub trigger: Option<String>,
    /// From this time on: RFC 3339 (2026-11-23T08:00:00Z) or a time ago (`10m`, `2h`, `7d`).
    #[arg(long)]
    pub since: Option<String>,
    /// Before this time: RFC 3339 or a time ago (`10m`).
    #[arg(long)]
    pub until: Option<String>,
    /// Only this status (500) or class (5xx).
    #[arg(long)]
    pub status: Option<String>,
    /// Only this outcome (ok, function_exception, timeout, memory_limit_exceeded, …).
    #[arg(long)]
    pub outcome: Option<String>,
    /// Only records of this version of the function.
    #[arg(long = "function-version", value_name = "VERSION")]
    pub function_version: Option<String>,
    /// Only records with this text (any case) in their id, entry, error, traceback, arguments,
    /// output or log lines.
    #[arg(long)]
    pub text: Option<String>,
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

/// A `--since`/`--until` value as the RFC 3339 time the server takes: itself, or now minus a
/// duration such as `10m`.
fn point_in_time(flag: &str, text: &str) -> Result<String> {
    if chrono::DateTime::parse_from_rfc3339(text).is_ok() {
        return Ok(text.to_string());
    }
    let ago = humantime::parse_duration(text).map_err(|error| {
        anyhow::anyhow!(
            "--{flag} '{text}': give an RFC 3339 time (2026-11-23T08:00:00Z) or a time ago \
             (10m, 2h, 7d): {error}"
        )
    })?;
    let ago = chrono::Duration::from_std(ago)
        .map_err(|_| anyhow::anyhow!("--{flag} '{text}' is too long ago"))?;
    Ok((chrono::Utc::now() - ago).to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

fn query(args: &LogsArgs, since: Option<&str>) -> Result<Vec<(&'static str, String)>> {
    let mut query = vec![("limit", args.limit.to_string())];
    if !args.all_spaces {
        query.push(("space", args.admin.space.clone()));
    }
    let optional = [
        ("function", &args.function),
        ("trigger", &args.trigger),
        ("status", &args.status),
        ("outcome", &args.outcome),
        ("version", &args.function_version),
        ("text", &args.text),
    ];
    for (name, value) in optional {
        if let Some(value) = value {
            query.push((name, value.clone()));
        }
    }
    if let Some(until) = &args.until {
        query.push(("until", point_in_time("until", until)?));
    }
    match (since, &args.since) {
        (Some(since), _) => query.push(("since", since.to_string())),
        (None, Some(since)) => query.push(("since", point_in_time("since", since)?)),
        (None, None) => {}
    }
    Ok(query)
}

pub async fn run(args: LogsArgs) -> Result<std::process::ExitCode> {
    let admin = AdminClient::new(&args.admin)?;
    if let Some(id) = &args.id {
        let record = admin.send(admin.request(Method::GET, &format!("/admin/logs/{id}"))).await?;
        match args.format.as_str() {
            "table" => print_record(&record),
            _ => println!("{}", serde_json::to_string_pretty(&record)?),
        }
        return Ok(std::process::ExitCode::SUCCESS);
    }
    if matches!(args.format.as_str(), "ndjson" | "csv") && !args.follow {
        let mut params = query(&args, None)?;
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
    if args.format == "table" {
        print_header();
    }
    loop {
        let request =
            admin.request(Method::GET, "/admin/logs").query(&query(&args, since.as_deref())?);
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

const TABLE: [(&str, usize); 9] = [
    ("STARTED", 24),
    ("ID", 36),
    ("FUNCTION", 24),
    ("VERSION", 9),
    ("ENTRY", 24),
    ("TRIGGER", 7),
    ("STATUS", 6),
    ("MS", 6),
    ("OUTCOME", 0),
];

fn print_header() {
    let cells: Vec<String> = TABLE.iter().map(|(name, _)| name.to_string()).collect();
    println!("{}", row(&cells));
}

fn row(cells: &[String]) -> String {
    let padded: Vec<String> =
        cells.iter().zip(TABLE).map(|(cell, (_, width))| format!("{cell:<width$}")).collect();
    padded.join(" ").trim_end().to_string()
}

fn print_line(record: &Value) {
    let text = |key: &str| record[key].as_str().unwrap_or("-").to_string();
    let detail = match (record["error_type"].as_str(), record["error_message"].as_str()) {
        (Some(kind), Some(message)) => format!(" {kind}: {message}"),
        (None, Some(message)) => format!(" {message}"),
        _ => String::new(),
    };
    let cells = [
        text("started_at"),
        text("id"),
        format!("{}/{}", text("space"), text("function")),
        text("version"),
        text("entry"),
        text("trigger"),
        record["status"].to_string(),
        record["duration_ms"].to_string(),
        format!("{}{detail}", text("outcome")),
    ];
    println!("{}", row(&cells));
}

/// JSON text indented for reading, or as it is when it does not parse.
fn pretty_json(text: &str) -> String {
    serde_json::from_str::<Value>(text)
        .ok()
        .and_then(|value| serde_json::to_string_pretty(&value).ok())
        .unwrap_or_else(|| text.to_string())
}

/// One record, whole, for a person to read.
fn print_record(record: &Value) {
    let text = |key: &str| record[key].as_str().unwrap_or("-").to_string();
    println!("invocation  {}", text("id"));
    println!("function    {}/{} {}", text("space"), text("function"), text("version"));
    println!("entry       {}", text("entry"));
    println!("trigger     {}", text("trigger"));
    println!("started     {}, {} ms", text("started_at"), record["duration_ms"]);
    println!("status      {} {}", record["status"], text("outcome"));
    if let Some(message) = record["error_message"].as_str() {
        let kind = record["error_type"].as_str().map(|k| format!("{k}: ")).unwrap_or_default();
        println!("error       {kind}{message}");
    }
    let section = |title: &str, body: &str| {
        if !body.trim().is_empty() {
            println!("--- {title} ---\n{}", body.trim_end());
        }
    };
    let arguments = match (record["arguments"].as_str(), record["arguments_bytes"].as_u64()) {
        (Some(text), Some(total)) => format!("{text}… (cut: {total} bytes in all)"),
        (Some(text), None) => pretty_json(text),
        (None, _) => String::new(),
    };
    section("arguments", &arguments);
    section("stdout", record["stdout"].as_str().unwrap_or(""));
    section("stderr", record["stderr"].as_str().unwrap_or(""));
    let lines: Vec<String> = record["logs"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|l| {
            format!(
                "[{}] {}",
                l["level"].as_str().unwrap_or("?"),
                l["message"].as_str().unwrap_or("")
            )
        })
        .collect();
    section("log", &lines.join("\n"));
    section("traceback", record["traceback"].as_str().unwrap_or(""));
    let calls: Vec<String> =
        record["outbound"].as_array().into_iter().flatten().map(|call| call.to_string()).collect();
    section("outbound calls", &calls.join("\n"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_a_time_or_a_time_ago() {
        assert_eq!(point_in_time("since", "2026-11-23T08:00:00Z").unwrap(), "2026-11-23T08:00:00Z");
        let ago = point_in_time("since", "10m").unwrap();
        let ago = chrono::DateTime::parse_from_rfc3339(&ago).unwrap().to_utc();
        let minutes = (chrono::Utc::now() - ago).num_seconds();
        assert!((595..=605).contains(&minutes), "{minutes}");
        let error = point_in_time("since", "yesterday").unwrap_err().to_string();
        assert!(error.contains("--since 'yesterday'") && error.contains("10m"), "{error}");
    }
}
