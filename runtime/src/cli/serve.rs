//! `wasmfn serve`: load functions, start their triggers, serve HTTP until Ctrl-C or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use wasmfn_host_apis::docstore::SpaceQuota as DocumentQuota;
use wasmfn_host_apis::objects::SpaceQuota as ObjectQuota;

use super::dev::DevMode;
use super::{folder_dev_config, RunArgs};
use crate::access::admin_token::{AdminToken, TokenSource};
use crate::access::signature::IngressVerifier;
use crate::delivery::destination::{AllowedNet, DestinationPolicy};
use crate::delivery::DeliveryPolicy;
use crate::invocation_log::LogOptions;
use crate::node::CapabilityOptions;
use crate::node::{EventOptions, Node, NodeOptions, ServedBundle};
use crate::outbound::OutboundLimits;
use crate::runtime::Runtime;
use crate::sealed::KeyOptions;
use crate::server;
use crate::state::{self, StateDb};
use crate::triggers::async_invoke::AsyncOptions;
use crate::triggers::cron::SystemClock;
use crate::triggers::mqtt::RetryPolicy;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Function folders (built with componentize-py when their bundle is missing or stale) and
    /// `.wasm` bundles. Functions deployed through the admin API (`wasmfn deploy`) are served
    /// too, from the data directory.
    pub paths: Vec<PathBuf>,
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8080", env = "WASMFN_LISTEN")]
    pub listen: SocketAddr,
    /// Space the functions are served in: /spaces/<space>/functions/<name>/invoke.
    #[arg(long, default_value = "default")]
    pub space: String,
    /// Also answer the ixoncdkingress call format at `POST /` with this function, as the original ingress listens.
    #[arg(long, value_name = "FUNCTION")]
    pub ingress_root: Option<String>,
    /// Bearer token of the admin API (/admin/...). Default: the token in <data-dir>/admin-token,
    /// generated there on first use.
    #[arg(long, env = "WASMFN_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Longest wait between reconnection attempts of a Failed MQTT trigger, in milliseconds
    /// (the wait starts at 500 ms and doubles).
    #[arg(long, default_value_t = 30_000)]
    pub mqtt_retry_max_ms: u64,
    /// Who may invoke functions whose function.toml sets no `access`: `key` (an API key of
    /// the space) or `public`.
    #[arg(long, default_value = "key", value_parser = ["key", "public"])]
    pub default_access: String,
    /// A PEM file of an Ed25519 public key the IXON platform signs ingress calls with
    /// (repeatable). When given, ingress calls must carry a valid `Authorization: signature`
    /// and a fresh `created_on`, as ixoncdkingress checks in production mode, and each
    /// signature is accepted once. `<space>=<PEM_FILE>` limits the key to the functions of one
    /// space, `<space>/<function>=<PEM_FILE>` to one function.
    #[arg(long, value_name = "[SCOPE=]PEM_FILE")]
    pub ingress_public_key: Vec<String>,
    /// Asynchronous invocations run at once (apart from synchronous calls).
    #[arg(long, default_value_t = AsyncOptions::default().concurrency)]
    pub async_concurrency: usize,
    /// Asynchronous invocations waiting before new ones are refused with 429.
    #[arg(long, default_value_t = AsyncOptions::default().queue_limit)]
    pub async_queue_limit: usize,
    /// How long a finished asynchronous invocation's result is kept for
    /// `GET /invocations/<id>` (after its callback ended), e.g. `7d`, `12h`, `30m`.
    #[arg(long, value_name = "DURATION", default_value = "7d", value_parser = humantime::parse_duration)]
    pub async_retention: std::time::Duration,
    /// Asynchronous invocations one space may keep (waiting, running, or finished within the
    /// retention); beyond it new ones are refused with 429 `quota_exceeded`.
    #[arg(long, default_value_t = AsyncOptions::default().space_jobs)]
    pub async_space_jobs: usize,
    /// MiB of request and result bodies of asynchronous invocations one space may keep.
    #[arg(long, value_name = "MIB", default_value_t = AsyncOptions::default().space_bytes >> 20)]
    pub async_space_mib: u64,
    /// With --state: how long a server's hold on an asynchronous invocation lasts without being
    /// renewed (every third of it); an invocation of a server that stopped is run (or its
    /// callback delivered) by another server this long after. E.g. `30s`, `2m`.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_lease)]
    pub async_lease: std::time::Duration,
    /// Documents one space may keep in the document store (all its collections); a write that
    /// would pass it fails as a whole. Enforced by the embedded (sled) store only.
    #[arg(long, default_value_t = DocumentQuota::default().max_documents,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub space_documents: u64,
    /// MiB of documents (their stored JSON) one space may keep in the document store.
    #[arg(long, value_name = "MIB", default_value_t = DocumentQuota::default().max_bytes >> 20,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub space_document_mib: u64,
    /// Document collections (company databases x collection names) one space may create.
    #[arg(long, default_value_t = DocumentQuota::default().max_collections,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub space_collections: u64,
    /// MiB of objects one space may keep in object storage; a put that would pass it is
    /// refused with 507 `quota_exceeded`.
    #[arg(long, value_name = "MIB", default_value_t = ObjectQuota::default().max_bytes >> 20,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub space_object_mib: u64,
    /// A PEM file of CA certificates that functions' HTTPS requests trust besides Mozilla's
    /// roots (a private CA, or a test one).
    #[arg(long, value_name = "PEM")]
    pub outbound_ca_file: Option<std::path::PathBuf>,
    /// Outbound HTTP(S) requests and TCP connections one invocation may make (see
    /// function.toml's `[network] allow`).
    #[arg(long, value_name = "N", default_value_t = OutboundLimits::default().max_connections,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub outbound_max_requests: u32,
    /// MiB one outbound response body (or one TCP connection's reads) may have; past it the
    /// function's read fails.
    #[arg(long, value_name = "MIB", default_value_t = OutboundLimits::default().max_response_bytes >> 20,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub outbound_response_mib: u64,
    /// Objects one space may keep in object storage.
    #[arg(long, default_value_t = ObjectQuota::default().max_objects,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub space_objects: u64,
    /// How long invocation log records are kept, in hours (default 7 days).
    #[arg(long, default_value_t = 168)]
    pub log_retention_hours: u64,
    /// Most invocation log records kept; the oldest go first.
    #[arg(long, default_value_t = LogOptions::default().max_records)]
    pub log_max_records: usize,
    /// Versions kept per deployed function, for rollback (the active one always is).
    #[arg(long, default_value_t = crate::deploy::DEFAULT_KEEP_VERSIONS)]
    pub keep_versions: usize,
    /// Attempts to deliver an outcome to a callback URL, the first included.
    #[arg(long, default_value_t = DeliveryPolicy::default().attempts)]
    pub callback_attempts: u32,
    /// Lets callbacks and webhooks reach this IP address or CIDR range (repeatable; e.g.
    /// `127.0.0.1`, `10.0.0.0/8`, `::1`). Without it they may not reach loopback, private,
    /// link-local, unspecified, multicast or reserved addresses, nor this server's own.
    #[arg(long, value_name = "IP_OR_CIDR")]
    pub allow_callback_host: Vec<AllowedNet>,
    /// Document store: `sled` (embedded, in the data directory) or a `postgres://` URL
    /// (shared by several nodes; `?sslmode=require[&sslrootcert=<ca.pem>]` for verified TLS).
    #[arg(long, default_value = "sled", env = "WASMFN_DOCUMENT_STORE", hide_env_values = true)]
    pub document_store: String,
    /// Object storage: `file:<dir>` (default <data-dir>/objects), `memory:`, or
    /// `s3://<bucket>[/<prefix>]?region=..&endpoint=..` (credentials from AWS_* variables).
    #[arg(long, env = "WASMFN_OBJECT_STORE")]
    pub object_store: Option<String>,
    /// Base URL of the IXON API functions call through `context.api_client` (discovery).
    #[arg(long, default_value = wasmfn_host_apis::ixon_api::DEFAULT_BASE_URL, env = "WASMFN_IXON_API_URL")]
    pub ixon_api_url: String,
    /// A client must send a request's headers within this many milliseconds, or it is
    /// disconnected (slow or idle clients cannot hold connections).
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(100..))]
    pub header_read_timeout_ms: u64,
    /// A connection with no request in flight for this many milliseconds is closed (HTTP/1
    /// keep-alive and HTTP/2 connections alike).
    #[arg(long, default_value_t = 60_000, value_parser = clap::value_parser!(u64).range(100..))]
    pub idle_timeout_ms: u64,
    /// HTTP/2 connections are pinged this often (milliseconds); one whose peer does not answer
    /// within the same time is closed.
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(100..))]
    pub h2_keep_alive_ms: u64,
    /// Open client connections at most; more are answered 503 `too_many_connections` and
    /// closed. 0: the open files limit (raised to its hard limit at start) minus 256, at most
    /// 10,000.
    #[arg(long, default_value_t = 0)]
    pub max_connections: usize,
    /// A request's body must arrive within this many milliseconds (else 408).
    #[arg(long, default_value_t = 60_000, value_parser = clap::value_parser!(u64).range(100..))]
    pub body_read_timeout_ms: u64,
    /// Minutes a webhook's `_function_session` token stays valid (10-20).
    #[arg(long, default_value_t = crate::events::session::DEFAULT_MINUTES,
          value_parser = clap::value_parser!(u64).range(10..=20))]
    pub session_minutes: u64,
    /// How clients reach this server, for presigned object URLs (default: http://<listen
    /// address>). An https URL also marks the console's session cookie `Secure`.
    #[arg(long, env = "WASMFN_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// This server's id when several serve the same functions from one MQTT broker (1-32
    /// letters, digits, '-' or '_'; unique per server, the same across its restarts): MQTT
    /// triggers then connect as `<client id>-<node id>` and subscribe with shared
    /// subscriptions (`$share/...`), so each message is processed by one server. See
    /// docs/triggers.md.
    #[arg(long, env = "WASMFN_NODE_ID", value_parser = parse_node_id)]
    pub node_id: Option<String>,
    /// Where the server keeps its records (deployments and their bundles, API keys, function
    /// configuration and secrets, event subscriptions, MQTT triggers, console accounts, the
    /// invocation log, signing keys): default the data directory's own database; a
    /// postgres://user@host:port/db URL (`?sslmode=require` for TLS) shares them with every
    /// server given the same URL, which then follow each other's deploys and changes. Servers
    /// sharing state need the same --secrets-key-file (and --admin-token). See docs/cluster.md.
    #[arg(long, env = "WASMFN_STATE", value_name = "URL")]
    pub state: Option<String>,
    /// File holding the key that seals the secrets kept in the state database (webhook
    /// secrets, MQTT passwords, `[secrets]` set through the admin API, signing keys): base64 of
    /// 32 random bytes. Default: <data-dir>/secrets.key, generated on first start. The
    /// environment variable WASMFN_SECRETS_KEY can hold the key itself instead.
    #[arg(long, env = "WASMFN_SECRETS_KEY_FILE", value_name = "PATH")]
    pub secrets_key_file: Option<PathBuf>,
    /// When rotating the secrets key: the file of the key used until now (or the key itself in
    /// WASMFN_PREVIOUS_SECRETS_KEY). Secrets sealed with it are sealed again with the current
    /// key at start; afterwards it is no longer needed.
    #[arg(long, env = "WASMFN_PREVIOUS_SECRETS_KEY_FILE", value_name = "PATH")]
    pub previous_secrets_key_file: Option<PathBuf>,
    #[command(flatten)]
    pub run: RunArgs,
}

pub async fn serve(args: ServeArgs) -> Result<std::process::ExitCode> {
    run(args, None).await
}

/// Serves `args`; with `dev`, as `wasmfn dev`: folders that fail to build are reported and
/// watched instead of stopping the start, every folder is rebuilt and swapped in when it
/// changes, and every invocation is shown on the terminal with its output.
pub(super) async fn run(args: ServeArgs, dev: Option<DevMode>) -> Result<std::process::ExitCode> {
    // Before anything is written: every file and directory the server makes is its owner's
    // only (the state database, bundles, key and token files, stored objects).
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    crate::names::validate_name(&args.space).map_err(|e| anyhow::anyhow!("--space: {e}"))?;
    if args.callback_attempts == 0 {
        bail!("--callback-attempts must be at least 1");
    }
    // Every connection is a descriptor: take what the system allows before accepting any.
    let (soft, hard) = crate::connections::raise_open_files_limit();
    let max_connections = match args.max_connections {
        0 => crate::connections::automatic_cap(soft),
        given => given,
    };
    tracing::info!(open_files_soft = ?soft, open_files_hard = ?hard, max_connections,
        "open files limit");
    let data_dir = args.run.data_dir();
    let runtime = Arc::new(Runtime::new(args.run.runtime_config())?);
    let key_options = KeyOptions {
        key_file: args.secrets_key_file.clone(),
        previous_key_file: args.previous_secrets_key_file.clone(),
        ..KeyOptions::from_env()
    };
    let sealer = crate::sealed::load(&data_dir, &key_options)?;
    tracing::info!(secrets_key_id = %sealer.key_id(), "secrets key loaded");
    let mut state_db = StateDb::open_sealed(&data_dir, Arc::new(sealer))?;
    if let Some(url) = args.state.clone() {
        state_db = state_db.with_backend(shared_state(url).await?);
    }
    let (admin_token, token_source) = {
        let (state_db, given) = (state_db.clone(), args.admin_token.clone());
        tokio::task::spawn_blocking(move || AdminToken::resolve(&state_db, given)).await??
    };
    let options = NodeOptions {
        state: Some(state_db),
        keep_versions: args.keep_versions,
        admin_token,
        mqtt_retry: RetryPolicy {
            max: Duration::from_millis(args.mqtt_retry_max_ms.max(500)),
            ..RetryPolicy::default()
        },
        delivery: DeliveryPolicy {
            attempts: args.callback_attempts,
            destinations: DestinationPolicy { allow: args.allow_callback_host.clone() },
            ..DeliveryPolicy::default()
        },
        default_access: args.default_access.parse().map_err(anyhow::Error::msg)?,
        ingress: IngressVerifier::from_specs(&args.ingress_public_key)?,
        log_options: LogOptions {
            retention: chrono::Duration::hours(args.log_retention_hours.max(1) as i64),
            max_records: args.log_max_records.max(1),
        },
        async_options: AsyncOptions {
            concurrency: args.async_concurrency.max(1),
            queue_limit: args.async_queue_limit.max(1),
            retention: args.async_retention,
            space_jobs: args.async_space_jobs.max(1),
            space_bytes: args.async_space_mib.saturating_mul(1 << 20),
            lease: args.async_lease,
        },
        events: EventOptions { session_minutes: args.session_minutes },
        clock: Arc::new(SystemClock),
        secure_cookies: args.public_url.as_deref().is_some_and(|url| url.starts_with("https://")),
        node_id: args.node_id.clone(),
    };
    let mut node = Node::new(runtime, options)?;
    let capabilities = CapabilityOptions {
        document_store: args.document_store.clone(),
        object_store: args.object_store.clone(),
        ixon_api_url: args.ixon_api_url.clone(),
        public_url: args.public_url.clone().unwrap_or_else(|| format!("http://{}", args.listen)),
        document_quota: DocumentQuota {
            max_documents: args.space_documents,
            max_bytes: args.space_document_mib.saturating_mul(1 << 20),
            max_collections: args.space_collections,
        },
        object_quota: ObjectQuota {
            max_bytes: args.space_object_mib.saturating_mul(1 << 20),
            max_objects: args.space_objects,
        },
        outbound_ca_file: args.outbound_ca_file.clone(),
        outbound_limits: OutboundLimits {
            max_connections: args.outbound_max_requests,
            max_response_bytes: args.outbound_response_mib.saturating_mul(1 << 20),
        },
    };
    // Before any build: a port in use is told at once, not after minutes of compiling.
    let listener = tokio::net::TcpListener::bind(args.listen).await.with_context(|| {
        format!("listening on {} (is another server using it? pass --listen)", args.listen)
    })?;
    let mut served = Vec::new();
    // One count of seconds over every compile of the start (they run in `node.start`).
    let mut compiling = None;
    // `wasmfn dev` loads its folders itself, after the start: a broken one must not stop it.
    for path in args.paths.iter().filter(|_| dev.is_none()) {
        let bundle = super::hashed_bundle(path).await?;
        let elapsed = super::announce_compile(&node.runtime, &bundle, &path.display().to_string());
        if compiling.is_none() {
            compiling = elapsed;
        }
        served.push(ServedBundle {
            space: args.space.clone(),
            bytes: bundle.into(),
            config: folder_dev_config(path)?,
            source: path.display().to_string(),
        });
    }
    let mut started = node.start(&capabilities, served).await?;
    drop(compiling);
    if dev.is_some() {
        for path in &args.paths {
            match super::dev::load_folder(&node.runtime, &args.space, path).await {
                Ok(version) => started.served.push(version),
                Err(error) => eprintln!(
                    "wasmfn dev: {} is not served until it is fixed (watching it):\n{error:#}",
                    path.display()
                ),
            }
        }
    }
    let mut names = Vec::new();
    for version in &started.served {
        names.push(version.name.clone());
        tracing::info!(
            space = %version.space,
            function = %version.name,
            version = %version.version,
            entries = %version.entries.join(","),
            loaded_from = ?version.loaded_from,
            load_ms = version.load_time.as_millis() as u64,
            "function loaded"
        );
    }
    if let Some(root) = &args.ingress_root {
        if !names.contains(root) {
            bail!(
                "--ingress-root {root}: no such function is served (serving: {})",
                names.join(", ")
            );
        }
    }
    if started.deployed > 0 {
        tracing::info!(deployed = started.deployed, "deployed functions restored");
    }
    if started.requeued + started.redelivered > 0 {
        tracing::info!(
            requeued = started.requeued,
            redelivered = started.redelivered,
            "async invocations resumed after a restart"
        );
    }
    if started.mqtt_restored > 0 {
        tracing::info!(restored = started.mqtt_restored, "admin-created mqtt triggers restored");
    }
    let capabilities = started.capabilities;
    let address = listener.local_addr()?;
    if args.public_url.is_none() {
        capabilities.presigner.set_base_url(&format!("http://{address}"));
    }
    node.announce(match &args.public_url {
        Some(url) if args.state.is_none() => url.clone(),
        _ => format!("http://{address}"),
    });
    // Before the first line a script waits for: from here on, SIGINT and SIGTERM stop the
    // server gracefully (see `server::shutdown_signal`).
    let signalled = server::shutdown_signal();
    println!("wasmfn: listening on http://{address}");
    for name in &names {
        println!("  http://{address}/spaces/{}/functions/{name}/invoke", args.space);
    }
    // A deployed version of the same name takes over from a folder or bundle given here: say so,
    // rather than serve something else than the command line names without a word.
    for version in &started.served {
        let Ok(active) = node.runtime.registry().get(&version.space, &version.name) else {
            continue;
        };
        if active.sha256 != version.sha256 {
            println!(
                "  note: {name} answers with its deployed version {deployed}, not with the \
                 {given} given here; `wasmfn functions delete {name}` serves the one given here \
                 (docs/deploying.md#served-and-deployed-functions)",
                name = version.name,
                deployed = active.version,
                given = version.version,
            );
        }
    }
    let token_path = state::admin_token_path(&data_dir);
    println!("  console: http://{address}/console (sign in with the admin token or an API key)");
    match token_source {
        TokenSource::Given => {
            println!("  admin API: http://{address}/admin (token: --admin-token)")
        }
        TokenSource::Saved => {
            println!("  admin API: http://{address}/admin (token in {})", token_path.display())
        }
        // Shown this once, on the terminal only (never in the log); kept in the file.
        TokenSource::Generated(token) => println!(
            "  admin API: http://{address}/admin\n  admin token (generated now, shown once, \
             saved in {}): {token}",
            token_path.display()
        ),
        TokenSource::Cluster { stale } => {
            println!(
                "  admin API: http://{address}/admin (token: the cluster's, set by the server \
                 that started first or was given --admin-token last)"
            );
            if stale {
                println!(
                    "  note: the admin token in {} is not the cluster's: another server was \
                     given a new one",
                    token_path.display()
                );
            }
        }
    }
    let state = node.app_state(args.ingress_root.map(|f| (args.space.clone(), f)));
    let watching = dev.map(|dev| {
        let runtime = node.runtime.clone();
        runtime.invoker().observe(Arc::new(super::dev::Console));
        tokio::spawn(super::dev::watch(runtime, args.space.clone(), args.paths.clone(), dev))
    });
    node.mark_ready();
    let ready = node.ready.clone();
    let shutdown = async move {
        signalled.await;
        // Load balancers stop sending while requests in flight finish.
        ready.store(false, std::sync::atomic::Ordering::SeqCst);
    };
    let timeouts = server::ServerTimeouts {
        header_read: Duration::from_millis(args.header_read_timeout_ms),
        body_read: Duration::from_millis(args.body_read_timeout_ms),
        idle: Duration::from_millis(args.idle_timeout_ms),
        h2_keep_alive: Duration::from_millis(args.h2_keep_alive_ms),
        max_connections,
    };
    let served = server::serve_with(listener, server::app(state), timeouts, shutdown).await;
    if let Some(watching) = watching {
        watching.abort();
    }
    node.shutdown().await;
    served?;
    Ok(std::process::ExitCode::SUCCESS)
}

/// The state store `--state` names: PostgreSQL, shared by the servers given the same URL.
async fn shared_state(url: String) -> Result<Arc<dyn wasmfn_host_apis::state::StateBackend>> {
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        bail!(
            "--state: give a postgres:// URL (without --state the data directory keeps the state)"
        );
    }
    let connected = tokio::task::spawn_blocking(move || {
        wasmfn_host_apis::state::postgres::PostgresState::connect(
            &url,
            &state::WATCHED_TREES,
            &state::TIMED_TREES,
        )
    })
    .await?
    .map_err(|error| anyhow::anyhow!("--state: {error}"))?;
    tracing::info!("state kept in PostgreSQL, shared with the servers given the same --state");
    Ok(Arc::new(connected))
}

/// `--async-lease`: 1 s to 1 h.
fn parse_lease(text: &str) -> Result<std::time::Duration, String> {
    let lease = humantime::parse_duration(text).map_err(|e| e.to_string())?;
    if (std::time::Duration::from_secs(1)..=std::time::Duration::from_secs(3600)).contains(&lease) {
        Ok(lease)
    } else {
        Err("give 1s to 1h".into())
    }
}

/// `--node-id`: 1-32 letters, digits, '-' or '_' (it becomes part of MQTT client ids).
fn parse_node_id(id: &str) -> Result<String, String> {
    let valid = !id.is_empty()
        && id.len() <= 32
        && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if valid {
        Ok(id.to_string())
    } else {
        Err("use 1-32 letters, digits, '-' or '_'".into())
    }
}
