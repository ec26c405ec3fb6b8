//! The router, the state that handlers share, and the error response shape.

use std::collections::HashSet;
use std::sync::Arc;

use axum::Router;
use axum::extract::Extension;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use rand::RngCore;
use uuid::Uuid;

use super::admin::{self, RequestLog};
use super::auth::{self, TokenStore};
use super::config::MockConfig;
use super::execute;
use super::faults::Faults;
use super::ratelimit::RateLimit;
use super::server::ConnectionControl;
use super::stats::Stats;

/// Header that carries the id of each response, echoed as `contextId` in error bodies.
pub(crate) const CORRELATION_HEADER: HeaderName = HeaderName::from_static("inin-correlation-id");

/// State shared by all handlers of one server.
pub(crate) struct Shared {
    pub(crate) config: MockConfig,
    pub(crate) actions: HashSet<String>,
    pub(crate) tokens: TokenStore,
    pub(crate) rate_limit: RateLimit,
    pub(crate) stats: Stats,
    pub(crate) requests: RequestLog,
    pub(crate) faults: Faults,
}

impl Shared {
    /// Builds the state from a configuration that `MockConfig::validate` accepted.
    pub(crate) fn new(config: MockConfig) -> anyhow::Result<Self> {
        Ok(Shared {
            actions: config.actions.iter().cloned().collect(),
            tokens: TokenStore::new(config.token_lifetime.0),
            rate_limit: RateLimit::new(config.rate_limit)?,
            stats: Stats::new(),
            requests: RequestLog::new(),
            faults: Faults::new(&config),
            config,
        })
    }
}

/// Id of one request and its response, a random UUID v4.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CorrelationId(pub(crate) Uuid);

impl CorrelationId {
    pub(crate) fn random() -> Self {
        // The thread-local generator avoids a getrandom system call per request.
        let mut bytes = [0u8; 16];
        rand::rng().fill_bytes(&mut bytes);
        CorrelationId(uuid::Builder::from_random_bytes(bytes).into_uuid())
    }
}

/// An error response in the API's shape: `{"message","code","status","contextId"}`.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) code: &'static str,
    pub(crate) message: String,
    /// Whether to close the connection after the response, because unread request bytes make
    /// it unusable.
    pub(crate) close_connection: bool,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            close_connection: false,
        }
    }

    /// Builds the response, echoing the request's correlation id as `contextId`.
    pub(crate) fn into_response(self, correlation: CorrelationId) -> Response {
        let body = serde_json::json!({
            "message": self.message,
            "code": self.code,
            "status": self.status.as_u16(),
            "contextId": correlation.0.to_string(),
        });
        let mut response = (self.status, axum::Json(body)).into_response();
        if self.close_connection {
            let close = HeaderValue::from_static("close");
            response.headers_mut().insert(header::CONNECTION, close);
        }
        response
    }
}

/// Builds the router with every route. `observe::serve_request` wraps it.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/oauth/token", post(auth::token))
        .route(
            "/api/v2/integrations/actions/{action_id}/execute",
            post(execute::execute),
        )
        .route(
            "/api/v2/data/actions/{action_id}/execute",
            post(execute::execute),
        )
        .route("/mock/stats", get(admin::stats))
        .route("/mock/requests", get(admin::requests))
        .route("/mock/reset", post(admin::reset))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(shared)
}

/// Per-request context from `observe::serve_request`, passed to the execute handler directly
/// and to the router's handlers as a request extension.
#[derive(Debug, Clone)]
pub(crate) struct RequestContext {
    pub(crate) correlation: CorrelationId,
    /// Control of the connection that carried the request.
    pub(crate) connection: Arc<ConnectionControl>,
}

async fn not_found(Extension(context): Extension<RequestContext>) -> Response {
    let error = ApiError::new(StatusCode::NOT_FOUND, "not.found", "no such resource");
    error.into_response(context.correlation)
}

async fn method_not_allowed(Extension(context): Extension<RequestContext>) -> Response {
    let message = "method not allowed on this resource";
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method.not.allowed",
        message,
    )
    .into_response(context.correlation)
}
