//! `wasmfn triggers`: the admin API's trigger endpoints from the command line.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::Value;

use super::admin_client::{AdminArgs, AdminClient};

#[derive(Debug, Args)]
pub struct TriggersArgs {
    #[command(subcommand)]
    pub command: TriggersCommand,
    #[command(flatten)]
    pub admin: AdminArgs,
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
    let admin = AdminClient::new(&args.admin)?;
    let space = &args.admin.space;
    let triggers = format!("/admin/spaces/{space}/triggers");
    let request = match &args.command {
        TriggersCommand::List { all_spaces: true, .. } => {
            admin.request(Method::GET, "/admin/triggers")
        }
        TriggersCommand::List { .. } => admin.request(Method::GET, &triggers),
        TriggersCommand::Show { name } => admin.request(Method::GET, &format!("{triggers}/{name}")),
        TriggersCommand::Create { file } => {
            admin.request(Method::POST, &triggers).json(&read_trigger(file)?)
        }
        TriggersCommand::Delete { name } => {
            admin.request(Method::DELETE, &format!("{triggers}/{name}"))
        }
    };
    let body = admin.send(request).await?;
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
        "{:<12} {:<20} {:<5} {:<24} {:<10} {:>8} {:>8} {:>6} {:>7}  REASON",
        "SPACE", "NAME", "TYPE", "ORIGIN", "STATE", "RECEIVED", "INVOKED", "FAILED", "DROPPED"
    );
    for trigger in triggers {
        let status = &trigger["status"];
        let count = |key: &str| status[key].as_u64().map_or("-".to_string(), |n| n.to_string());
        let invoked = if trigger["type"] == "cron" { count("fired") } else { count("invocations") };
        // `admin`, or the function version that declares it: `store@1.2.0`.
        let origin = match (trigger["function"].as_str(), trigger["version"].as_str()) {
            (Some(function), Some(version)) => format!("{function}@{version}"),
            _ => trigger["origin"].as_str().unwrap_or("").to_string(),
        };
        println!(
            "{:<12} {:<20} {:<5} {:<24} {:<10} {:>8} {:>8} {:>6} {:>7}  {}",
            trigger["space"].as_str().unwrap_or(""),
            trigger["name"].as_str().unwrap_or(""),
            trigger["type"].as_str().unwrap_or(""),
            origin,
            status["state"].as_str().unwrap_or(""),
            count("received"),
            invoked,
            count("failed_invocations"),
            count("dropped"),
            status["reason"].as_str().unwrap_or(""),
        );
    }
}
