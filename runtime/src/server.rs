//! The HTTP server: the router every trigger endpoint hangs on (`app`, used by `main` and the
//! tests alike) and graceful shutdown.

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
use crate::admin::{self, AdminState};
use crate::invoker::Invoker;
use crate::runtime::Runtime;
use crate::triggers::async_invoke::{self, AsyncJobs};
use crate::triggers::{http, ingress};

/// Shared state of every request handler.
#[derive(Clone, Debug)]
pub struct AppState {
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
    pub admin: AdminState,
    /// Checks the function sessions webhooks call back with.
    pub sessions: Arc<crate::events::Sessions>,
}

/// The router: invoke and ingress endpoints, the admin API, health, and JSON 404s for
/// everything else.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/spaces/{space}/functions/{function}/invoke", any(http::invoke_root))
        .route("/spaces/{space}/functions/{function}/invoke/", any(http::invoke_root))
        .route("/spaces/{space}/functions/{function}/invoke/{*rest}", any(http::invoke_with_path))
        .route("/spaces/{space}/functions/{function}/async-invoke", any(async_invoke::async_root))
        .route("/spaces/{space}/functions/{function}/async-invoke/", any(async_invoke::async_root))
        .route(
            "/spaces/{space}/functions/{function}/async-invoke/{*rest}",
            any(async_invoke::async_with_path),
        )
        .route("/invocations/{id}", get(async_invoke::status))
        .route("/objects/{space}/{*key}", any(crate::triggers::objects::presigned))
        .merge(crate::events::session_api::routes())
        .route("/spaces/{space}/functions/{function}/ingress", any(ingress::ingress))
        .route("/", any(ingress::ingress_root))
        .route("/healthz", get(|| async { axum::Json(json!({"status": "ok"})) }))
        .route("/readyz", get(readyz))
        .with_state(state.clone())
        .merge(admin::router(state.admin))
        .fallback(not_found)
}

/// 200 once functions are loaded and triggers started, 503 before that and while shutting down.
async fn readyz(axum::extract::State(state): axum::extract::State<AppState>) -> Response {
    let functions = state.invoker.registry().versions().len();
    if state.ready.load(std::sync::atomic::Ordering::SeqCst) {
        axum::Json(json!({"status": "ready", "functions": functions})).into_response()
    } else {
        (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({"status": "not_ready", "functions": functions})),
        )
            .into_response()
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
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, app(state), ServerTimeouts::default(), shutdown).await
}

/// How long the server waits on slow clients.
#[derive(Clone, Copy, Debug)]
pub struct ServerTimeouts {
    /// A request's headers must arrive within this (slowloris, idle keep-alive connections).
    pub header_read: Duration,
    /// A request's body must arrive within this, counted from when the handler starts.
    pub body_read: Duration,
}

impl Default for ServerTimeouts {
    fn default() -> Self {
        Self { header_read: Duration::from_secs(10), body_read: Duration::from_secs(60) }
    }
}

/// Serves `app` on `listener` until `shutdown` resolves, then lets requests in flight finish.
/// A client that does not send a complete request head within `timeouts.header_read` is
/// disconnected, so slow or idle clients cannot hold the server's connections.
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
    builder.http2().timer(TokioTimer::new());
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, _peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let (builder, watcher, app) = (builder.clone(), graceful.watcher(), app.clone());
        let header_read = timeouts.header_read;
        tokio::spawn(async move {
            // A client that connects and sends nothing is dropped after the header timeout
            // (hyper's own timeout starts only with the first byte).
            let mut first = [0u8; 1];
            match tokio::time::timeout(header_read, stream.peek(&mut first)).await {
                Ok(Ok(n)) if n > 0 => {}
                _ => return,
            }
            let service = TowerToHyperService::new(app);
            let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            // Errors here are the client's (reset, timeout, bad request line).
            let _ = watcher.watch(connection.into_owned()).await;
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}
