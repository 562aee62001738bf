//! The HTTP server: the router every trigger endpoint hangs on (`app`, used by `main` and the
//! tests alike) and graceful shutdown.

use std::future::Future;
use std::sync::Arc;

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
    axum::serve(listener, app(state)).with_graceful_shutdown(shutdown).await
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
