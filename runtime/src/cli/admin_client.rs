//! What every admin-API command shares: where the server is, the token, and turning an
//! answer into JSON or an error message.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use serde_json::Value;

use crate::state::admin_token_path;
use crate::toolchain::wasmfn_home;

/// How to reach a running server's admin API.
#[derive(Debug, Clone, Args)]
pub struct AdminArgs {
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
    /// The space to work in.
    #[arg(long, global = true, default_value = "default")]
    pub space: String,
}

/// An authenticated client of one server's admin API.
pub struct AdminClient {
    base: String,
    token: String,
    /// Where the token came from, named when the server refuses it.
    token_source: String,
    client: reqwest::Client,
}

impl AdminClient {
    pub fn new(args: &AdminArgs) -> Result<Self> {
        let (token, token_source) = match &args.token {
            Some(token) => (token.clone(), "--token or WASMFN_ADMIN_TOKEN".to_string()),
            None => {
                let path = admin_token_path(&args.data_dir.clone().unwrap_or_else(wasmfn_home));
                let token = std::fs::read_to_string(&path)
                    .with_context(|| {
                        format!(
                            "no admin token: pass --token or WASMFN_ADMIN_TOKEN, or run where \
                             {} (written by `wasmfn serve`) is readable",
                            path.display()
                        )
                    })?
                    .trim()
                    .to_string();
                let source = format!(
                    "the token file {} (if the server at {} runs with another --data-dir, pass \
                     that --data-dir or --token)",
                    path.display(),
                    args.server
                );
                (token, source)
            }
        };
        let base = args.server.trim_end_matches('/').to_string();
        Ok(Self { base, token, token_source, client: reqwest::Client::new() })
    }

    /// A request to `path` (starting with `/admin`).
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client.request(method, format!("{}{path}", self.base)).bearer_auth(&self.token)
    }

    /// Sends a request; a 2xx answer's JSON (null when empty), else the server's message.
    pub async fn send(&self, request: reqwest::RequestBuilder) -> Result<Value> {
        let response = self.dispatch(request).await?;
        self.answer(response).await
    }

    async fn dispatch(&self, request: reqwest::RequestBuilder) -> Result<reqwest::Response> {
        request
            .send()
            .await
            .with_context(|| format!("cannot reach the wasmfn server at {}", self.base))
    }

    /// A 2xx answer's JSON (null when empty), else the server's message as the error.
    async fn answer(&self, response: reqwest::Response) -> Result<Value> {
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if !status.is_success() {
            let message = body["error"]["message"].as_str().unwrap_or(text.trim());
            if matches!(status.as_u16(), 401 | 403) {
                bail!("{status}: {message}; the admin token used came from {}", self.token_source);
            }
            bail!("{status}: {message}");
        }
        Ok(body)
    }

    /// GETs `path`: its JSON, or `None` when the server answers 404.
    pub async fn get_optional(&self, path: &str) -> Result<Option<Value>> {
        let response = self.dispatch(self.request(reqwest::Method::GET, path)).await?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        self.answer(response).await.map(Some)
    }
}
