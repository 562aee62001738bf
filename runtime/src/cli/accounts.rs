//! `wasmfn accounts`: the console's operator accounts and invitations (admin API, token only).

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{json, Value};

use super::admin_client::{AdminArgs, AdminClient};

#[derive(Debug, Args)]
pub struct AccountsArgs {
    #[command(subcommand)]
    pub command: AccountsCommand,
    #[command(flatten)]
    pub admin: AdminArgs,
}

#[derive(Debug, Subcommand)]
pub enum AccountsCommand {
    /// Every account: email, roles per space, language.
    List,
    /// Invite someone: prints the one-time code they register with on the console's sign-in
    /// page (valid 7 days).
    Invite {
        email: String,
        /// A role in a space, SPACE:ROLE (viewer, developer or owner); repeat for more spaces.
        #[arg(long = "role", value_name = "SPACE:ROLE", required = true)]
        roles: Vec<String>,
    },
    /// Create an account with a password read from standard input (one line).
    Create {
        email: String,
        /// A role in a space, SPACE:ROLE (viewer, developer or owner); repeat for more spaces.
        #[arg(long = "role", value_name = "SPACE:ROLE", required = true)]
        roles: Vec<String>,
        /// The account's language (en, nl, ...).
        #[arg(long, default_value = "en")]
        lang: String,
    },
    /// Replace an account's roles (by email or id); its sessions follow at once.
    Roles {
        account: String,
        #[arg(long = "role", value_name = "SPACE:ROLE")]
        roles: Vec<String>,
    },
    /// Delete an account (by email or id); its sessions end.
    Delete { account: String },
}

/// `space:role` pairs as the admin API's `roles` object.
fn roles(pairs: &[String]) -> Result<BTreeMap<String, String>> {
    let mut roles = BTreeMap::new();
    for pair in pairs {
        let Some((space, role)) = pair.split_once(':') else {
            bail!("--role {pair}: give SPACE:ROLE, e.g. default:developer");
        };
        if !["viewer", "developer", "owner"].contains(&role) {
            bail!("--role {pair}: the role is viewer, developer or owner");
        }
        roles.insert(space.to_string(), role.to_string());
    }
    Ok(roles)
}

fn roles_text(account: &Value) -> String {
    account["roles"]
        .as_object()
        .map(|r| r.iter().map(|(s, role)| format!("{s}:{}", role.as_str().unwrap_or(""))))
        .map(|pairs| pairs.collect::<Vec<_>>().join(", "))
        .unwrap_or_default()
}

/// The id of the account named by email or id.
async fn account_id(admin: &AdminClient, account: &str) -> Result<String> {
    let listed = admin.send(admin.request(Method::GET, "/admin/accounts")).await?;
    let wanted = account.trim().to_lowercase();
    listed["accounts"]
        .as_array()
        .and_then(|all| all.iter().find(|a| a["email"] == wanted.as_str() || a["id"] == account))
        .and_then(|a| a["id"].as_str().map(String::from))
        .with_context(|| format!("no account '{account}'"))
}

pub async fn run(args: AccountsArgs) -> Result<std::process::ExitCode> {
    let admin = AdminClient::new(&args.admin)?;
    match &args.command {
        AccountsCommand::List => {
            let body = admin.send(admin.request(Method::GET, "/admin/accounts")).await?;
            let empty = Vec::new();
            let listed = body["accounts"].as_array().unwrap_or(&empty);
            if listed.is_empty() {
                println!("no accounts");
            } else {
                println!("{:<36} {:<32} {:<5} ROLES", "ID", "EMAIL", "LANG");
                for account in listed {
                    println!(
                        "{:<36} {:<32} {:<5} {}",
                        account["id"].as_str().unwrap_or(""),
                        account["email"].as_str().unwrap_or(""),
                        account["lang"].as_str().unwrap_or(""),
                        roles_text(account)
                    );
                }
            }
        }
        AccountsCommand::Invite { email, roles: pairs } => {
            let body = json!({"email": email, "roles": roles(pairs)?});
            let answer =
                admin.send(admin.request(Method::POST, "/admin/invitations").json(&body)).await?;
            let Some(code) = answer["invitation"].as_str() else {
                bail!("the server returned no invitation code")
            };
            eprintln!(
                "invitation for {} (valid until {}); send them this code, it is not shown again:",
                answer["email"].as_str().unwrap_or(email),
                answer["expires_at"].as_str().unwrap_or("?")
            );
            println!("{code}");
        }
        AccountsCommand::Create { email, roles: pairs, lang } => {
            let mut password = String::new();
            std::io::stdin().read_line(&mut password).context("reading the password")?;
            let password = password.trim_end_matches(['\n', '\r']);
            let body =
                json!({"email": email, "password": password, "roles": roles(pairs)?, "lang": lang});
            let made =
                admin.send(admin.request(Method::POST, "/admin/accounts").json(&body)).await?;
            println!(
                "created account {} ({}): {}",
                made["email"].as_str().unwrap_or(email),
                made["id"].as_str().unwrap_or("?"),
                roles_text(&made)
            );
        }
        AccountsCommand::Roles { account, roles: pairs } => {
            let id = account_id(&admin, account).await?;
            let body = json!({"roles": roles(pairs)?});
            let path = format!("/admin/accounts/{id}");
            let changed = admin.send(admin.request(Method::PATCH, &path).json(&body)).await?;
            println!("{}: {}", changed["email"].as_str().unwrap_or(account), roles_text(&changed));
        }
        AccountsCommand::Delete { account } => {
            let id = account_id(&admin, account).await?;
            admin.send(admin.request(Method::DELETE, &format!("/admin/accounts/{id}"))).await?;
            println!("deleted account {account}");
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}
