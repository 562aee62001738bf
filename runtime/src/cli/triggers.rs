//! `wasmfn triggers`: the admin API's trigger endpoints from the command line.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use serde_json::Value;

use crate::state::admin_token_path;
use crate::toolchain::wasmfn_home;

#[derive(Debug, Args)]
pub struct TriggersArgs {
    #[command(subcommand)]
    pub command: TriggersCommand,
    /// The server's base URL.
    #[arg(long, global = true, default_value = "http://127.0.0.1:8080", env = "WASMFN_SERVER")]
    pub server: String,
    /// Admin token (default: the token file in the data directory the server uses).
    #[arg(long, global = true, env = "WASMFN_ADMIN_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// The server's data directory, to read its admin token from (default: $WASMFN_HOME,
    /// ~/.cache/wasmfn).
    #[arg(long, global = true, env = "WASMFN_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// The space of the triggers.
    #[arg(long, global = true, default_value = "default")]
    pub space: String,
}

#[derive(Debug, Subcommand)]
pub enum TriggersCommand {
    /// Every trigger of the space with its status (all spaces with --all-spaces).
    List {
        #[arg(long)]
        all_spaces: bool,
        /// Print the admin API's JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// One trigger, configuration and status, as JSON.
    Show { name: String },
    /// Create an MQTT trigger from a JSON or TOML file (`-` reads standard input), e.g.
    /// name = "sensors", broker = "mqtt://127.0.0.1:1883", topics = ["plant/+/temp"],
    /// functions = [{ function = "store" }].
    Create { file: PathBuf },
    /// Delete a trigger created through the admin API.
    Delete { name: String },
}

pub async fn run(args: TriggersArgs) -> Result<std::process::ExitCode> {
    let token = match &args.token {
        Some(token) => token.clone(),
        None => {
            let path = admin_token_path(&args.data_dir.clone().unwrap_or_else(wasmfn_home));
            std::fs::read_to_string(&path)
                .with_context(|| {
                    format!(
                        "no admin token: pass --token or WASMFN_ADMIN_TOKEN, or run where {} \
                         (written by `wasmfn serve`) is readable",
                        path.display()
                    )
                })?
                .trim()
                .to_string()
        }
    };
    let base = args.server.trim_end_matches('/');
    let space = &args.space;
    let client = reqwest::Client::new();
    let request = match &args.command {
        TriggersCommand::List { all_spaces: true, .. } => {
            client.get(format!("{base}/admin/triggers"))
        }
        TriggersCommand::List { .. } => client.get(format!("{base}/admin/spaces/{space}/triggers")),
        TriggersCommand::Show { name } => {
            client.get(format!("{base}/admin/spaces/{space}/triggers/{name}"))
        }
        TriggersCommand::Create { file } => {
            let body = read_trigger(file)?;
            client.post(format!("{base}/admin/spaces/{space}/triggers")).json(&body)
        }
        TriggersCommand::Delete { name } => {
            client.delete(format!("{base}/admin/spaces/{space}/triggers/{name}"))
        }
    };
    let response = request
        .bearer_auth(token)
        .send()
        .await
        .with_context(|| format!("cannot reach the wasmfn server at {base}"))?;
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    if !status.is_success() {
        let message = body["error"]["message"].as_str().unwrap_or(text.trim());
        bail!("{status}: {message}");
    }
    match &args.command {
        TriggersCommand::List { json: false, .. } => print_table(&body),
        TriggersCommand::Delete { name } => println!("deleted trigger {space}/{name}"),
        _ => println!("{}", serde_json::to_string_pretty(&body)?),
    }
    Ok(std::process::ExitCode::SUCCESS)
}

/// A trigger definition from a JSON or TOML file; `type` defaults to `mqtt`.
fn read_trigger(file: &PathBuf) -> Result<Value> {
    let text = if file.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin()).context("reading standard input")?
    } else {
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?
    };
    let mut value: Value = match serde_json::from_str(&text) {
        Ok(value) => value,
        Err(json_error) => {
            let table: toml::Table = toml::from_str(&text).map_err(|toml_error| {
                anyhow::anyhow!(
                    "{} is neither JSON ({json_error}) nor TOML ({toml_error})",
                    file.display()
                )
            })?;
            serde_json::to_value(table)?
        }
    };
    if let Some(fields) = value.as_object_mut() {
        fields.entry("type").or_insert_with(|| "mqtt".into());
    }
    Ok(value)
}

fn print_table(body: &Value) {
    let empty = Vec::new();
    let triggers = body["triggers"].as_array().unwrap_or(&empty);
    if triggers.is_empty() {
        println!("no triggers");
        return;
    }
    println!(
        "{:<12} {:<20} {:<5} {:<10} {:>8} {:>8} {:>6} {:>7}  REASON",
        "SPACE", "NAME", "TYPE", "STATE", "RECEIVED", "INVOKED", "FAILED", "DROPPED"
    );
    for trigger in triggers {
        let status = &trigger["status"];
        let count = |key: &str| status[key].as_u64().map_or("-".to_string(), |n| n.to_string());
        let invoked = if trigger["type"] == "cron" { count("fired") } else { count("invocations") };
        println!(
            "{:<12} {:<20} {:<5} {:<10} {:>8} {:>8} {:>6} {:>7}  {}",
            trigger["space"].as_str().unwrap_or(""),
            trigger["name"].as_str().unwrap_or(""),
            trigger["type"].as_str().unwrap_or(""),
            status["state"].as_str().unwrap_or(""),
            count("received"),
            invoked,
            count("failed_invocations"),
            count("dropped"),
            status["reason"].as_str().unwrap_or(""),
        );
    }
}
