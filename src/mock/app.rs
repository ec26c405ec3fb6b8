//! The router, the state that handlers share, and the layer that every request passes through:
//! it assigns the correlation id, counts requests and responses, and applies stalls.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use governor::clock::DefaultClock;
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use http_body_util::{BodyExt, Limited};
use rand::RngCore;
use uuid::Uuid;

use super::admin::{self, RequestLog};
use super::auth::{self, TokenStore};
use super::config::MockConfig;
use super::execute;
use super::faults::Faults;
use super::stats::{Endpoint, Stats};

/// Header that carries the id of each response, echoed as `contextId` in error bodies.
pub(crate) const CORRELATION_HEADER: HeaderName = HeaderName::from_static("inin-correlation-id");
pub(crate) const RATELIMIT_COUNT: HeaderName = HeaderName::from_static("inin-ratelimit-count");
pub(crate) const RATELIMIT_ALLOWED: HeaderName = HeaderName::from_static("inin-ratelimit-allowed");
pub(crate) const RATELIMIT_RESET: HeaderName = HeaderName::from_static("inin-ratelimit-reset");

/// Per-token rate limiter that reports the remaining burst on success.
pub(crate) type TokenLimiter =
    RateLimiter<u64, DefaultKeyedStateStore<u64>, DefaultClock, StateInformationMiddleware>;

/// State shared by all handlers of one server.
pub(crate) struct Shared {
    pub(crate) config: MockConfig,
    pub(crate) actions: HashSet<String>,
    pub(crate) tokens: TokenStore,
    pub(crate) limiter: TokenLimiter,
    pub(crate) stats: Stats,
    pub(crate) requests: RequestLog,
    pub(crate) faults: Faults,
}

impl Shared {
    /// Builds the state from a configuration that `MockConfig::validate` accepted.
    pub(crate) fn new(config: MockConfig) -> anyhow::Result<Self> {
        let rate = config.rate_limit;
        let quota = Quota::with_period(rate.interval())
            .ok_or_else(|| anyhow::anyhow!("rate_limit {rate} has a zero interval"))?
            .allow_burst(rate.count);
        Ok(Shared {
            actions: config.actions.iter().cloned().collect(),
            tokens: TokenStore::new(config.token_lifetime.0),
            limiter: RateLimiter::keyed(quota).with_middleware::<StateInformationMiddleware>(),
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
    fn random() -> Self {
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

impl From<BodyError> for ApiError {
    fn from(error: BodyError) -> Self {
        let mut api_error = match error {
            BodyError::TooLarge => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "request.entity.too.large",
                "the request body is larger than the server's body limit",
            ),
            BodyError::TimedOut => ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "request.timeout",
                "the request body did not arrive in time",
            ),
            BodyError::Failed(reason) => ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad.request",
                format!("failed to read the request body: {reason}"),
            ),
        };
        api_error.close_connection = true;
        api_error
    }
}

/// Builds the router with every route and the observing layer.
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
        .layer(middleware::from_fn_with_state(shared.clone(), observe))
        .with_state(shared)
}

/// Returns the counted endpoint group of `path`, or `None` for the uncounted `/mock/*`.
fn classify(path: &str) -> Option<Endpoint> {
    if path == "/mock" || path.starts_with("/mock/") {
        return None;
    }
    if path == "/oauth/token" {
        return Some(Endpoint::Token);
    }
    let is_execute = path
        .strip_prefix("/api/v2/integrations/actions/")
        .or_else(|| path.strip_prefix("/api/v2/data/actions/"))
        .and_then(|rest| rest.strip_suffix("/execute"))
        .is_some_and(|action| !action.is_empty() && !action.contains('/'));
    Some(if is_execute {
        Endpoint::Execute
    } else {
        Endpoint::Other
    })
}

/// Assigns the correlation id, counts the request and its response, delays responses during
/// stalls, and adds the headers that every response carries.
async fn observe(State(shared): State<Arc<Shared>>, mut request: Request, next: Next) -> Response {
    let correlation = CorrelationId::random();
    request.extensions_mut().insert(correlation);
    let endpoint = classify(request.uri().path());
    if let Some(endpoint) = endpoint {
        shared.stats.endpoint(endpoint).count_request();
    }

    let mut response = next.run(request).await;

    if let Some(endpoint) = endpoint {
        if let Some(until) = shared.faults.stall_until(tokio::time::Instant::now()) {
            tokio::time::sleep_until(until).await;
        }
        shared
            .stats
            .endpoint(endpoint)
            .count_response(response.status().as_u16());
    }
    add_common_headers(response.headers_mut(), correlation, &shared);
    response
}

fn add_common_headers(headers: &mut HeaderMap, correlation: CorrelationId, shared: &Shared) {
    let mut buffer = Uuid::encode_buffer();
    let id = correlation.0.hyphenated().encode_lower(&mut buffer);
    if let Ok(value) = HeaderValue::from_str(id) {
        headers.insert(CORRELATION_HEADER, value);
    }
    // Responses to requests that never reached the rate limiter report an unused window.
    if !headers.contains_key(RATELIMIT_ALLOWED) {
        let allowed = shared.config.rate_limit.count.get();
        set_ratelimit_headers(headers, 0, allowed, 0);
    }
}

/// Sets the three `inin-ratelimit-*` headers.
pub(crate) fn set_ratelimit_headers(headers: &mut HeaderMap, count: u32, allowed: u32, reset: u64) {
    headers.insert(RATELIMIT_COUNT, HeaderValue::from(count));
    headers.insert(RATELIMIT_ALLOWED, HeaderValue::from(allowed));
    headers.insert(RATELIMIT_RESET, HeaderValue::from(reset));
}

async fn not_found(axum::Extension(correlation): axum::Extension<CorrelationId>) -> Response {
    ApiError::new(StatusCode::NOT_FOUND, "not.found", "no such resource").into_response(correlation)
}

async fn method_not_allowed(
    axum::Extension(correlation): axum::Extension<CorrelationId>,
) -> Response {
    let message = "method not allowed on this resource";
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method.not.allowed",
        message,
    )
    .into_response(correlation)
}

/// Failure to read a request body.
#[derive(Debug)]
pub(crate) enum BodyError {
    /// The body is larger than the limit.
    TooLarge,
    /// The client sent the body too slowly.
    TimedOut,
    /// The connection failed while reading.
    Failed(String),
}

/// Reads a request body of at most `limit` bytes, never buffering more than that.
///
/// A Content-Length over the limit fails before anything is read, and a chunked body fails
/// as soon as it passes the limit.
pub(crate) async fn read_body(
    headers: &HeaderMap,
    body: axum::body::Body,
    limit: u64,
    timeout: Duration,
) -> Result<Bytes, BodyError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|text| text.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit) {
        return Err(BodyError::TooLarge);
    }
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let collect = Limited::new(body, limit).collect();
    match tokio::time::timeout(timeout, collect).await {
        Err(_) => Err(BodyError::TimedOut),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(error)) if error.is::<http_body_util::LengthLimitError>() => {
            Err(BodyError::TooLarge)
        }
        Ok(Err(error)) => Err(BodyError::Failed(error.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_groups_paths() {
        let cases = [
            ("/oauth/token", Some(Endpoint::Token)),
            (
                "/api/v2/integrations/actions/a/execute",
                Some(Endpoint::Execute),
            ),
            ("/api/v2/data/actions/a/execute", Some(Endpoint::Execute)),
            ("/api/v2/data/actions//execute", Some(Endpoint::Other)),
            ("/api/v2/data/actions/a/b/execute", Some(Endpoint::Other)),
            ("/nothing", Some(Endpoint::Other)),
            ("/mock/stats", None),
        ];
        for (path, expected) in cases {
            assert_eq!(classify(path), expected, "{path}");
        }
    }
}
