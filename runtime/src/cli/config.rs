//! `wasmfn config` and `wasmfn secrets`: the configuration values and secrets a running server
//! gives a function on top of its function.toml (`/admin/.../config`, docs/configuration.md).
//! Secrets are write-only: listed by name, their values read from standard input or an
//! environment variable, never from the command line (shell history, `ps`).

use std::io::{BufRead, Read};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{json, Map, Value};

use super::admin_client::{AdminArgs, AdminClient};

#[derive(Debug, Args)]
pub struct ConfigArgs {
    #[command(subcommand)]
    pub command: ConfigCommand,
    #[command(flatten)]
    pub admin: AdminArgs,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// The values set for a function (and its secrets, by name).
    Show { function: String },
    /// Sets values, KEY=VALUE each; VALUE is read as JSON when it is valid JSON (`port=8080` is
    /// a number), otherwise as a string. Other keys stay.
    Set {
        function: String,
        #[arg(required = true, value_name = "KEY=VALUE")]
        pairs: Vec<String>,
    },
    /// Removes values; the function.toml's value (if any) applies again.
    Unset {
        function: String,
        #[arg(required = true, value_name = "KEY")]
        keys: Vec<String>,
    },
}

#[derive(Debug, Args)]
pub struct SecretsArgs {
    #[command(subcommand)]
    pub command: SecretsCommand,
    #[command(flatten)]
    pub admin: AdminArgs,
}

#[derive(Debug, Subcommand)]
pub enum SecretsCommand {
    /// The names of the secrets set for a function (values are never shown).
    List { function: String },
    /// Sets one secret. Its value is read from standard input (one line; pipe it, or type it
    /// and press Enter), or from the environment variable --from-env names.
    Set {
        function: String,
        key: String,
        /// Read the value from this environment variable instead of standard input.
        #[arg(long, value_name = "VARIABLE")]
        from_env: Option<String>,
    },
    /// Removes secrets.
    Unset {
        function: String,
        #[arg(required = true, value_name = "KEY")]
        keys: Vec<String>,
    },
}

fn path(admin: &AdminArgs, function: &str) -> String {
    format!("/admin/spaces/{}/functions/{function}/config", admin.space)
}

pub async fn config(args: ConfigArgs) -> Result<std::process::ExitCode> {
    let admin = AdminClient::new(&args.admin)?;
    let (function, changes) = match &args.command {
        ConfigCommand::Show { function } => (function, None),
        ConfigCommand::Set { function, pairs } => {
            let mut values = Map::new();
            for pair in pairs {
                let (key, value) =
                    pair.split_once('=').with_context(|| format!("{pair}: expected KEY=VALUE"))?;
                values.insert(key.to_string(), super::config_arg_value(value));
            }
            (function, Some(json!({ "values": values })))
        }
        ConfigCommand::Unset { function, keys } => {
            let values: Map<String, Value> =
                keys.iter().map(|k| (k.clone(), Value::Null)).collect();
            (function, Some(json!({ "values": values })))
        }
    };
    let body = send(&admin, &path(&args.admin, function), changes).await?;
    println!("{}", serde_json::to_string_pretty(&body)?);
    Ok(std::process::ExitCode::SUCCESS)
}

pub async fn secrets(args: SecretsArgs) -> Result<std::process::ExitCode> {
    let admin = AdminClient::new(&args.admin)?;
    let (function, changes) = match &args.command {
        SecretsCommand::List { function } => (function, None),
        SecretsCommand::Set { function, key, from_env } => {
            let value = match from_env {
                Some(variable) => std::env::var(variable)
                    .with_context(|| format!("--from-env {variable}: the variable is not set"))?,
                None => read_stdin_line()?,
            };
            if value.is_empty() {
                bail!("the secret's value is empty: give it on standard input or with --from-env");
            }
            (function, Some(json!({ "secrets": { key: value } })))
        }
        SecretsCommand::Unset { function, keys } => {
            let secrets: Map<String, Value> =
                keys.iter().map(|k| (k.clone(), Value::Null)).collect();
            (function, Some(json!({ "secrets": secrets })))
        }
    };
    let body = send(&admin, &path(&args.admin, function), changes).await?;
    let names: Vec<&String> =
        body["secrets"].as_object().map(|s| s.keys().collect()).unwrap_or_default();
    if names.is_empty() {
        println!("no secrets set for {}/{function}", args.admin.space);
    }
    for name in names {
        println!("{name}");
    }
    Ok(std::process::ExitCode::SUCCESS)
}

/// GETs the configuration, or PATCHes `changes` into it; the answer either way.
async fn send(admin: &AdminClient, path: &str, changes: Option<Value>) -> Result<Value> {
    let request = match changes {
        None => admin.request(Method::GET, path),
        Some(changes) => admin.request(Method::PATCH, path).json(&changes),
    };
    admin.send(request).await
}

/// One line of standard input, without its line ending; at most 64 KiB.
fn read_stdin_line() -> Result<String> {
    let mut text = String::new();
    std::io::stdin()
        .lock()
        .take(64 * 1024 + 1)
        .read_line(&mut text)
        .context("reading the secret from standard input")?;
    if text.len() > 64 * 1024 {
        bail!("the secret on standard input is longer than 64 KiB");
    }
    Ok(text.trim_end_matches(['\n', '\r']).to_string())
}
