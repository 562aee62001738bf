//! `wasmfn deploy` and `wasmfn functions`: the admin API's function endpoints.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::Value;

use super::admin_client::{AdminArgs, AdminClient};
use super::bundle_bytes;

#[derive(Debug, Args)]
pub struct DeployArgs {
    /// A function folder (built first when stale) or a `.wasm` bundle.
    pub path: PathBuf,
    /// The function's name (default: the name in the bundle, from function.toml).
    #[arg(long)]
    pub name: Option<String>,
    /// The version (default: the bundle's, from function.toml); must be greater than the
    /// active one.
    #[arg(long)]
    pub version: Option<String>,
    /// Return as soon as the server accepted the bundle, without waiting for the compile.
    #[arg(long)]
    pub no_wait: bool,
    #[command(flatten)]
    pub admin: AdminArgs,
}

#[derive(Debug, Args)]
pub struct FunctionsArgs {
    #[command(subcommand)]
    pub command: FunctionsCommand,
    #[command(flatten)]
    pub admin: AdminArgs,
}

#[derive(Debug, Subcommand)]
pub enum FunctionsCommand {
    /// The functions of the space, with their active version (all spaces with --all-spaces).
    List {
        #[arg(long)]
        all_spaces: bool,
        /// Print the admin API's JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// One function with all its kept versions, as JSON.
    Show { name: String },
    /// Make a kept version active again.
    Rollback { name: String, version: String },
    /// Take a function out of service and forget its versions.
    Delete { name: String },
    /// Show or replace the outside hosts a function may reach (its `[network] allow`).
    ///
    /// Without options: the list in force and where it comes from. `--allow` (repeated)
    /// replaces the function.toml's list for every version; `--deny-all` allows nothing;
    /// `--clear` goes back to function.toml's. Entries: `[scheme://]host[:port]`, see
    /// docs/network.md.
    #[command(group(clap::ArgGroup::new("change").args(["allow", "deny_all", "clear"])))]
    Network {
        name: String,
        /// An entry of the new list, e.g. `https://api.example.com` or `10.0.0.0/8:5432`.
        #[arg(long, value_name = "ENTRY")]
        allow: Vec<String>,
        /// Replace the list with an empty one: no outbound connections at all.
        #[arg(long)]
        deny_all: bool,
        /// Drop the operator's list: function.toml's applies again.
        #[arg(long)]
        clear: bool,
    },
}

pub async fn deploy(args: DeployArgs) -> Result<std::process::ExitCode> {
    let admin = AdminClient::new(&args.admin)?;
    if args.path.is_dir() {
        // A build takes seconds; a version the server would refuse is told before it.
        check_version_first(&admin, &args).await?;
    }
    let bytes = bundle_bytes(&args.path).await?;
    let meta = crate::bundle::read_meta(&bytes).ok().flatten().unwrap_or_default();
    let name = args.name.clone().or(Some(meta.name).filter(|n| !n.is_empty())).context(
        "the bundle names no function (it was not built by `wasmfn build`): pass --name",
    )?;
    let mut query = vec![("wait", (!args.no_wait).to_string())];
    if let Some(version) = &args.version {
        query.push(("version", version.clone()));
    }
    let path = format!("/admin/spaces/{}/functions/{name}/versions", args.admin.space);
    eprintln!("deploying {name} ({} bytes) to {}…", bytes.len(), args.admin.space);
    let request = admin
        .request(Method::POST, &path)
        .query(&query)
        .header("content-type", "application/wasm")
        .body(bytes);
    let body = {
        let _elapsed = crate::progress::Elapsed::start(if args.no_wait {
            "  uploading"
        } else {
            "  uploading and compiling on the server"
        });
        admin.send(request).await?
    };
    let version = &body["version"];
    println!(
        "{}/{name} {}: {}",
        args.admin.space,
        version["version"].as_str().unwrap_or("?"),
        version["state"].as_str().unwrap_or("?")
    );
    Ok(std::process::ExitCode::SUCCESS)
}

/// Refuses a folder's version the server would refuse (not greater than the active one, or
/// already deployed), before building it. The server checks again when the bundle arrives.
async fn check_version_first(admin: &AdminClient, args: &DeployArgs) -> Result<()> {
    let manifest = crate::manifest::FunctionManifest::load(&args.path)?;
    let name = args.name.clone().unwrap_or(manifest.name);
    let version_text = args.version.clone().unwrap_or(manifest.version);
    let version = semver::Version::parse(&version_text).map_err(|error| {
        anyhow::anyhow!("version '{version_text}' is not a semantic version like 1.2.3: {error}")
    })?;
    let space = &args.admin.space;
    let path = format!("/admin/spaces/{space}/functions/{name}");
    let Some(function) = admin.get_optional(&path).await? else { return Ok(()) };
    if let Some(active) = function["active_version"].as_str() {
        if semver::Version::parse(active).is_ok_and(|active| active >= version) {
            bail!(
                "version {version_text} is not greater than the active version {active} of \
                 {space}/{name}: raise `version` in function.toml (or pass --version), or roll \
                 back with `wasmfn functions rollback {name} VERSION`"
            );
        }
    }
    let kept = function["versions"].as_array().into_iter().flatten();
    let taken = kept
        .filter(|v| v["state"] != "failed")
        .any(|v| v["version"].as_str() == Some(version_text.as_str()));
    if taken {
        bail!(
            "version {version_text} of {space}/{name} is already deployed: raise `version` in \
             function.toml, or roll back to it with `wasmfn functions rollback {name} \
             {version_text}`"
        );
    }
    Ok(())
}

pub async fn functions(args: FunctionsArgs) -> Result<std::process::ExitCode> {
    let admin = AdminClient::new(&args.admin)?;
    let space = &args.admin.space;
    let base = format!("/admin/spaces/{space}/functions");
    let request = match &args.command {
        FunctionsCommand::List { all_spaces: true, .. } => {
            admin.request(Method::GET, "/admin/functions")
        }
        FunctionsCommand::List { .. } => admin.request(Method::GET, &base),
        FunctionsCommand::Show { name } => admin.request(Method::GET, &format!("{base}/{name}")),
        FunctionsCommand::Rollback { name, version } => admin
            .request(Method::POST, &format!("{base}/{name}/rollback"))
            .json(&serde_json::json!({ "version": version })),
        FunctionsCommand::Delete { name } => {
            admin.request(Method::DELETE, &format!("{base}/{name}"))
        }
        FunctionsCommand::Network { name, clear: true, .. } => {
            admin.request(Method::DELETE, &format!("{base}/{name}/network"))
        }
        FunctionsCommand::Network { name, allow, deny_all, .. }
            if *deny_all || !allow.is_empty() =>
        {
            admin
                .request(Method::PUT, &format!("{base}/{name}/network"))
                .json(&serde_json::json!({ "allow": allow }))
        }
        FunctionsCommand::Network { name, .. } => {
            admin.request(Method::GET, &format!("{base}/{name}/network"))
        }
    };
    let body = admin.send(request).await?;
    match &args.command {
        FunctionsCommand::List { json: false, .. } => print_table(&body),
        FunctionsCommand::Rollback { name, version } => {
            println!("{space}/{name} {version}: active")
        }
        FunctionsCommand::Delete { name } => println!("deleted function {space}/{name}"),
        _ => println!("{}", serde_json::to_string_pretty(&body)?),
    }
    Ok(std::process::ExitCode::SUCCESS)
}

fn print_table(body: &Value) {
    let empty = Vec::new();
    let functions = body["functions"].as_array().unwrap_or(&empty);
    if functions.is_empty() {
        println!("no functions");
        return;
    }
    println!(
        "{:<12} {:<24} {:<10} {:<9} {:>8}  ENTRIES",
        "SPACE", "NAME", "ACTIVE", "SOURCE", "VERSIONS"
    );
    for function in functions {
        let entries: Vec<&str> = function["entries"]
            .as_array()
            .map(|e| e.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        println!(
            "{:<12} {:<24} {:<10} {:<9} {:>8}  {}",
            function["space"].as_str().unwrap_or(""),
            function["name"].as_str().unwrap_or(""),
            function["active_version"].as_str().unwrap_or("-"),
            function["source"].as_str().unwrap_or(""),
            function["versions"].as_array().map_or(0, Vec::len),
            entries.join(", "),
        );
    }
}
