//! `wasmfn keys`: the API keys callers invoke a space's functions with.

use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{json, Map, Value};

use super::admin_client::{AdminArgs, AdminClient};

#[derive(Debug, Args)]
pub struct KeysArgs {
    #[command(subcommand)]
    pub command: KeysCommand,
    #[command(flatten)]
    pub admin: AdminArgs,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key for the space; it is printed once and cannot be shown again.
    Create {
        /// What the key is for, e.g. "dashboard".
        name: String,
        /// The user calls with this key act as: PUBLIC_ID or PUBLIC_ID:NAME.
        #[arg(long, value_name = "ID[:NAME]")]
        user: Option<String>,
        /// The company calls with this key act for (scopes its data): PUBLIC_ID[:NAME].
        #[arg(long, value_name = "ID[:NAME]")]
        company: Option<String>,
        /// The agent (device) calls with this key concern: PUBLIC_ID[:NAME].
        #[arg(long, value_name = "ID[:NAME]")]
        agent: Option<String>,
        /// The asset calls with this key concern: PUBLIC_ID[:NAME].
        #[arg(long, value_name = "ID[:NAME]")]
        asset: Option<String>,
    },
    /// The keys of the space (never the keys themselves).
    List,
    /// Revoke a key: calls with it are refused (403) from now on.
    Revoke { id: String },
    /// Let a key invoke the functions of another space too.
    Share { id: String, space: String },
    /// Stop sharing a key with a space.
    Unshare { id: String, space: String },
}

fn resource(text: &Option<String>) -> Option<Value> {
    text.as_ref().map(|text| match text.split_once(':') {
        Some((id, name)) => json!({"public_id": id, "name": name}),
        None => json!({"public_id": text}),
    })
}

pub async fn run(args: KeysArgs) -> Result<std::process::ExitCode> {
    let admin = AdminClient::new(&args.admin)?;
    let space = &args.admin.space;
    let keys = format!("/admin/spaces/{space}/keys");
    match &args.command {
        KeysCommand::Create { name, user, company, agent, asset } => {
            let mut caller = Map::new();
            for (part, value) in
                [("user", user), ("company", company), ("agent", agent), ("asset", asset)]
            {
                if let Some(resource) = resource(value) {
                    caller.insert(part.into(), resource);
                }
            }
            let request =
                admin.request(Method::POST, &keys).json(&json!({"name": name, "caller": caller}));
            let body = admin.send(request).await?;
            let Some(key) = body["key"].as_str() else { bail!("the server returned no key") };
            eprintln!(
                "key {} created for space {space}; store it now, it is not shown again:",
                body["id"].as_str().unwrap_or("?")
            );
            println!("{key}");
        }
        KeysCommand::List => {
            let body = admin.send(admin.request(Method::GET, &keys)).await?;
            let empty = Vec::new();
            let listed = body["keys"].as_array().unwrap_or(&empty);
            if listed.is_empty() {
                println!("no keys in space {space}");
            } else {
                println!("{:<14} {:<24} {:<22} SHARED WITH", "ID", "NAME", "CREATED");
                for key in listed {
                    let shared: Vec<&str> = key["shared_with"]
                        .as_array()
                        .map(|s| s.iter().filter_map(Value::as_str).collect())
                        .unwrap_or_default();
                    println!(
                        "{:<14} {:<24} {:<22} {}",
                        key["id"].as_str().unwrap_or(""),
                        key["name"].as_str().unwrap_or(""),
                        key["created_at"].as_str().unwrap_or(""),
                        shared.join(", ")
                    );
                }
            }
        }
        KeysCommand::Revoke { id } => {
            admin.send(admin.request(Method::DELETE, &format!("{keys}/{id}"))).await?;
            println!("revoked key {id}");
        }
        KeysCommand::Share { id, space: other } => {
            let path = format!("{keys}/{id}/shares/{other}");
            admin.send(admin.request(Method::PUT, &path)).await?;
            println!("key {id} of {space} may now invoke functions of {other}");
        }
        KeysCommand::Unshare { id, space: other } => {
            let path = format!("{keys}/{id}/shares/{other}");
            admin.send(admin.request(Method::DELETE, &path)).await?;
            println!("key {id} of {space} no longer invokes functions of {other}");
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}
