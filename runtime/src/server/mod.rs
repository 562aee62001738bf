//! The HTTP server: the router every endpoint hangs on (`app`, used by `main` and the tests
//! alike), graceful shutdown, and the endpoints themselves, one module each: synchronous
//! invocation (`invoke`), IXON's ingress format (`ingress`), asynchronous invocation and its
//! status (`async_invoke`), presigned objects (`objects`) and the session API webhooks call
//! back with (`sessions`), and the console's Try it (`try_it`, an admin route). The admin API
//! is `crate::admin`, the console's pages `crate::console`.

pub mod async_invoke;
pub mod ingress;
pub mod invoke;
pub mod objects;
pub mod sessions;
pub mod try_it;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::http::Uri;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;
use serde_json::json;
use tokio::net::TcpListener;

use crate::access::Access;
use crate::admin::{self, AdminContext};
use crate::connections::{Activity, ThrottledWarning, Tracked};
use crate::invoker::Invoker;
use crate::runtime::Runtime;
use crate::triggers::async_invoke::AsyncJobs;

/// Shared state of every request handler.
#[derive(Clone, Debug)]
pub struct ServerContext {
    pub invoker: Invoker,
    /// `(space, function)` answered at `POST /` in the ixoncdkingress format, if any.
    pub ingress_root: Option<(String, String)>,
    pub runtime: Arc<Runtime>,
    /// API keys, function access and the ingress signature check.
    pub access: Arc<Access>,
    /// Accepted asynchronous invocations.
    pub async_jobs: Arc<AsyncJobs>,
    /// Whether the node is ready for traffic (`/readyz`).
    pub ready: Arc<std::sync::atomic::AtomicBool>,
    /// Triggers and deliveries, for the admin API.
    pub admin: AdminContext,
    /// Checks the function sessions webhooks call back with.
    pub sessions: Arc<crate::events::Sessions>,
    /// Where the node's records are (checked by `/readyz` when shared with other nodes).
    pub state: Arc<dyn wasmfn_host_apis::state::StateBackend>,
    /// The last check of the backends for `/readyz`, and when it was made.
    pub readiness: Arc<tokio::sync::Mutex<Option<(std::time::Instant, serde_json::Value)>>>,
}

/// How long a check of the backends answers `/readyz` before it is made again: a load balancer
/// polling every node often costs the backends one check per node per period.
const READINESS_CACHE: Duration = Duration::from_secs(2);
/// How long each backend may take to answer the readiness check.
const READINESS_TIMEOUT: Duration = Duration::from_secs(2);

/// `ok`, or why a backend is not usable now.
async fn check_backends(state: &ServerContext) -> serde_json::Value {
    let Some(capabilities) = state.invoker.capabilities().cloned() else {
        return json!({});
    };
    let shared_state = state.state.clone();
    let records = tokio::time::timeout(READINESS_TIMEOUT, async move {
        match tokio::task::spawn_blocking(move || shared_state.healthy()).await {
            Ok(true) => Ok(()),
            _ => Err("the state store does not answer".to_string()),
        }
    });
    let verdict = |result: Result<Result<(), String>, tokio::time::error::Elapsed>| match result {
        Ok(Ok(())) => "ok".to_string(),
        Ok(Err(why)) => why,
        Err(_) => format!("no answer within {} s", READINESS_TIMEOUT.as_secs()),
    };
    let documents = tokio::time::timeout(READINESS_TIMEOUT, async {
        capabilities.documents.check().await.map_err(|e| e.to_string())
    });
    let objects = tokio::time::timeout(READINESS_TIMEOUT, async {
        capabilities.objects.check().await.map_err(|e| e.to_string())
    });
    let (documents, objects, records) = tokio::join!(documents, objects, records);
    json!({
        "documents": verdict(documents),
        "objects": verdict(objects),
        "state": verdict(records),
    })
}

/// The router: invoke and ingress endpoints, the admin API, health, and JSON 404s for
/// everything else. Requests refused by an extractor are answered as JSON too
/// ([`crate::rejections`]).
pub fn app(state: ServerContext) -> Router {
    Router::new()
        .route("/spaces/{space}/functions/{function}/invoke", any(invoke::invoke_root))
        .route("/spaces/{space}/functions/{function}/invoke/", any(invoke::invoke_root))
        .route("/spaces/{space}/functions/{function}/invoke/{*rest}", any(invoke::invoke_with_path))
        .route("/spaces/{space}/functions/{function}/async-invoke", any(async_invoke::async_root))
        .route("/spaces/{space}/functions/{function}/async-invoke/", any(async_invoke::async_root))
        .route(
            "/spaces/{space}/functions/{function}/async-invoke/{*rest}",
            any(async_invoke::async_with_path),
        )
        .route("/invocations/{id}", get(async_invoke::status))
        .route("/objects/{space}/{*key}", any(objects::presigned))
        .merge(sessions::routes())
        .route("/spaces/{space}/functions/{function}/ingress", any(ingress::ingress))
        .route("/", any(ingress::ingress_root))
        .route("/healthz", get(|| async { axum::Json(json!({"status": "ok"})) }))
        .route("/readyz", get(readyz))
        .with_state(state.clone())
        .merge(crate::console::router(state.admin.clone()))
        .merge(admin::router(state.admin, try_it::routes()))
        .fallback(not_found)
        .layer(axum::middleware::from_fn(crate::rejections::json_rejections))
}

/// 200 once functions are loaded and triggers started and the document store and object
/// storage answer; 503 before that, while shutting down, or while a backend does not answer.
async fn readyz(axum::extract::State(state): axum::extract::State<ServerContext>) -> Response {
    let functions = state.invoker.registry().versions().len();
    let backends = {
        // One check at a time; callers meanwhile wait for it and share its answer.
        let mut cached = state.readiness.lock().await;
        match &*cached {
            Some((at, backends)) if at.elapsed() < READINESS_CACHE => backends.clone(),
            _ => {
                let backends = check_backends(&state).await;
                *cached = Some((std::time::Instant::now(), backends.clone()));
                backends
            }
        }
    };
    let backends_ok = backends.as_object().is_none_or(|all| all.values().all(|v| v == "ok"));
    let ready = state.ready.load(std::sync::atomic::Ordering::SeqCst) && backends_ok;
    let status = if ready { "ready" } else { "not_ready" };
    let body = json!({"status": status, "functions": functions, "backends": backends});
    if ready {
        axum::Json(body).into_response()
    } else {
        (axum::http::StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response()
    }
}

async fn not_found(uri: Uri) -> Response {
    (
        axum::http::StatusCode::NOT_FOUND,
        axum::Json(json!({"error": {"code": "not_found", "message": format!("no endpoint at {}", uri.path())}})),
    )
        .into_response()
}

/// Serves `app` on `listener` until `shutdown` resolves, then lets requests in flight finish.
pub async fn serve(
    listener: TcpListener,
    state: ServerContext,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, app(state), ServerTimeouts::default(), shutdown).await
}

/// How long the server waits on slow and idle clients, and how many it holds at once.
#[derive(Clone, Copy, Debug)]
pub struct ServerTimeouts {
    /// A request's headers must arrive within this (slowloris).
    pub header_read: Duration,
    /// A request's body must arrive within this, counted from when the handler starts.
    pub body_read: Duration,
    /// A connection with no request in flight for this long is closed (HTTP/1 keep-alive
    /// and HTTP/2 alike).
    pub idle: Duration,
    /// HTTP/2 connections are pinged this often; one that does not answer within the same
    /// time is closed (a peer that vanished without closing).
    pub h2_keep_alive: Duration,
    /// Open client connections at most; more are answered 503 and closed.
    pub max_connections: usize,
}

impl Default for ServerTimeouts {
    fn default() -> Self {
        Self {
            header_read: Duration::from_secs(10),
            body_read: Duration::from_secs(60),
            idle: Duration::from_secs(60),
            h2_keep_alive: Duration::from_secs(20),
            max_connections: 1024,
        }
    }
}

static REFUSED: ThrottledWarning =
    ThrottledWarning::new("connections refused: the server has --max-connections open");
static ACCEPT_FAILED: ThrottledWarning = ThrottledWarning::new("accepting a connection failed");

/// Serves `app` on `listener` until `shutdown` resolves, then lets requests in flight finish.
/// A client that does not send a complete request head within `timeouts.header_read` is
/// disconnected, so slow or idle clients cannot hold the server's connections; connections
/// idle for `timeouts.idle` are closed, and beyond `timeouts.max_connections` new ones are
/// refused at once, so the server keeps accepting whatever clients hold.
pub async fn serve_with(
    listener: TcpListener,
    app: Router,
    timeouts: ServerTimeouts,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use hyper_util::server::conn::auto::Builder;
    use hyper_util::service::TowerToHyperService;

    let body_read = timeouts.body_read;
    let app = app.layer(axum::middleware::map_request(move |request: axum::extract::Request| {
        std::future::ready(crate::body_deadline::with_deadline(request, body_read))
    }));
    let mut builder = Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(timeouts.header_read);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(timeouts.h2_keep_alive))
        .keep_alive_timeout(timeouts.h2_keep_alive);
    // One permit per open connection; at shutdown, holding them all means every connection
    // has finished.
    let max = timeouts.max_connections.clamp(1, tokio::sync::Semaphore::MAX_PERMITS) as u32;
    let slots = Arc::new(tokio::sync::Semaphore::new(max as usize));
    let (stop, stopping) = tokio::sync::watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: back off instead of spinning;
                    // the connections waiting in the backlog are taken once some close.
                    ACCEPT_FAILED.occurred(&error);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            // Without waiting: the socket's send buffer is empty, and a client that reads
            // nothing must not hold the accept loop.
            let _ = stream.try_write(crate::connections::REFUSAL);
            REFUSED.occurred(&timeouts.max_connections);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (builder, app, mut stopping) = (builder.clone(), app.clone(), stopping.clone());
        let ServerTimeouts { header_read, idle, .. } = timeouts;
        tokio::spawn(async move {
            let _slot = slot;
            // A client that connects and sends nothing is dropped after the header timeout
            // (hyper's own timeout starts only with the first byte).
            let mut first = [0u8; 1];
            match tokio::time::timeout(header_read, stream.peek(&mut first)).await {
                Ok(Ok(n)) if n > 0 => {}
                _ => return,
            }
            let activity = Activity::new();
            let service =
                TowerToHyperService::new(Tracked { inner: app, activity: activity.clone(), peer });
            let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            tokio::pin!(connection);
            // `told`: asked to close (GOAWAY, or close after the response in progress);
            // `force_at`: when an idle connection whose client does not let go is dropped.
            // At shutdown nothing is forced: requests in flight finish.
            let (mut told, mut force_at) = (false, None);
            loop {
                tokio::select! {
                    // Errors here are the client's (reset, timeout, bad request line).
                    _ = connection.as_mut() => break,
                    _ = stopping.changed(), if !told => {
                        connection.as_mut().graceful_shutdown();
                        told = true;
                    }
                    () = activity.idle_for(idle), if !told => {
                        connection.as_mut().graceful_shutdown();
                        told = true;
                        force_at = Some(tokio::time::Instant::now() + header_read);
                    }
                    () = tokio::time::sleep_until(force_at.unwrap_or_else(tokio::time::Instant::now)),
                        if force_at.is_some() => break,
                }
            }
        });
    }
    drop(listener);
    let _ = stop.send(true);
    // Every connection has finished once all permits are back.
    let _ = slots.acquire_many(max).await;
    Ok(())
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM.
///
/// The handlers are installed by this call, not when the future is first polled: a server
/// started in the background of a script has SIGINT ignored until then, and a signal sent
/// after its first answer (the accept loop polls its shutdown future only once nothing waits
/// to be accepted, and a busy machine can hold that thread off for milliseconds) was lost.
/// Call it before the server says it is listening.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{signal, SignalKind};
    let interrupt = signal(SignalKind::interrupt());
    let terminate = signal(SignalKind::terminate());
    async move {
        // A handler that could not be installed leaves the other (and SIGKILL) to stop it.
        let received = |signal: std::io::Result<tokio::signal::unix::Signal>| async move {
            match signal {
                Ok(mut signal) => {
                    signal.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            () = received(interrupt) => {},
            () = received(terminate) => {},
        }
        tracing::info!("shutting down: finishing requests in flight");
    }
}
