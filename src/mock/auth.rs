//! OAuth client-credentials tokens: the `POST /oauth/token` endpoint, the token store, and the
//! bearer check of execute requests.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::Extension;
use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand::RngCore;
use serde::Deserialize;

use super::app::{ApiError, RequestContext, Shared};
use super::body::read_body;
use super::client::ClientConfig;
use super::stats::Endpoint;

/// Expired tokens stay known this long, so that they get `credentials.expired` rather than
/// `bad.credentials`, before a sweep removes them.
const EXPIRED_GRACE: Duration = Duration::from_secs(3600);
/// A sweep of expired tokens runs after this many tokens were issued.
const SWEEP_EVERY: u64 = 4096;

/// An issued access token.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TokenEntry {
    /// Number of the token, the key of its rate-limit state.
    pub(crate) id: u64,
    /// Index of the client in `MockConfig::clients`.
    pub(crate) client: usize,
    /// End of the token's lifetime, or `None` when that lies beyond what `Instant` can hold.
    pub(crate) expires_at: Option<Instant>,
}

/// Access tokens issued by this server, with their clients and expiry.
pub(crate) struct TokenStore {
    tokens: RwLock<HashMap<String, TokenEntry>>,
    issued: AtomicU64,
    lifetime: Duration,
}

impl TokenStore {
    pub(crate) fn new(lifetime: Duration) -> Self {
        TokenStore {
            tokens: RwLock::new(HashMap::new()),
            issued: AtomicU64::new(0),
            lifetime,
        }
    }

    /// Issues a new random token for `client` and returns it with its entry.
    fn issue(&self, client: usize) -> (String, TokenEntry) {
        let mut bytes = [0u8; 16];
        rand::rng().fill_bytes(&mut bytes);
        let token = uuid::Builder::from_random_bytes(bytes)
            .into_uuid()
            .simple()
            .to_string();
        let entry = TokenEntry {
            id: self.issued.fetch_add(1, Ordering::Relaxed),
            client,
            expires_at: Instant::now().checked_add(self.lifetime),
        };
        let mut tokens = self
            .tokens
            .write()
            .unwrap_or_else(|poison| poison.into_inner());
        tokens.insert(token.clone(), entry);
        (token, entry)
    }

    /// Returns the entry of `token`, expired or not.
    pub(crate) fn lookup(&self, token: &str) -> Option<TokenEntry> {
        let tokens = self
            .tokens
            .read()
            .unwrap_or_else(|poison| poison.into_inner());
        tokens.get(token).copied()
    }

    /// Removes tokens that expired more than `EXPIRED_GRACE` ago and returns how many.
    fn sweep(&self) -> usize {
        let now = Instant::now();
        let mut tokens = self
            .tokens
            .write()
            .unwrap_or_else(|poison| poison.into_inner());
        let before = tokens.len();
        tokens.retain(|_, entry| {
            entry
                .expires_at
                .and_then(|expiry| expiry.checked_add(EXPIRED_GRACE))
                .is_none_or(|end| end > now)
        });
        before - tokens.len()
    }
}

/// Form fields of a token request.
#[derive(Debug, Deserialize)]
struct TokenForm {
    grant_type: Option<String>,
}

/// Issues a token to a client that authenticates with HTTP Basic and requests the
/// `client_credentials` grant.
pub(crate) async fn token(
    State(shared): State<Arc<Shared>>,
    Extension(context): Extension<RequestContext>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let limit = shared.config.body_limit;
    let timeout = shared.config.header_read_timeout.0;
    let bytes = match read_body(&parts.headers, body, limit, timeout).await {
        Ok(bytes) => bytes,
        Err(error) => return ApiError::from(error).into_response(context.correlation),
    };
    let counters = shared.stats.endpoint(Endpoint::Token);
    counters.count_bytes(bytes.len());

    let Some(client) = authenticate_client(&shared.config.clients, &parts.headers) else {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "authentication failed",
        );
    };
    let request = Request::from_parts(parts, axum::body::Body::from(bytes));
    let grant_type = match axum::Form::<TokenForm>::from_request(request, &()).await {
        Ok(axum::Form(form)) => form.grant_type,
        Err(rejection) => {
            let message = format!("invalid token request body: {}", rejection.body_text());
            return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", &message);
        }
    };
    match grant_type.as_deref() {
        Some("client_credentials") => {}
        Some(other) => {
            let message =
                format!("grant type \"{other}\" is not supported: use client_credentials");
            return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type", &message);
        }
        None => {
            let message = "missing grant_type: send grant_type=client_credentials";
            return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", message);
        }
    }

    let (token, entry) = shared.tokens.issue(client);
    if entry.id % SWEEP_EVERY == SWEEP_EVERY - 1 {
        let removed = shared.tokens.sweep();
        shared.rate_limit.retain_recent();
        tracing::debug!(removed, "swept expired access tokens");
    }
    let body = serde_json::json!({
        "access_token": token,
        "token_type": "bearer",
        "expires_in": shared.config.token_lifetime.0.as_secs(),
    });
    let mut response = axum::Json(body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Returns the index of the client named by valid HTTP Basic credentials.
fn authenticate_client(clients: &[ClientConfig], headers: &HeaderMap) -> Option<usize> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = STANDARD.decode(encoded.trim()).ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    clients
        .iter()
        .position(|client| client.id == id && client.secret == secret)
}

/// Builds an OAuth error response (RFC 6749 section 5.2 names the `error` codes).
fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    let body = serde_json::json!({
        "error": error,
        "description": description,
        "error_description": description,
    });
    let mut response = (status, axum::Json(body)).into_response();
    if status == StatusCode::UNAUTHORIZED {
        let challenge = HeaderValue::from_static("Basic realm=\"volley-mock\"");
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, challenge);
    }
    response
}

/// Checks the bearer token of an execute request and returns its entry.
pub(crate) fn authenticate_bearer(
    shared: &Shared,
    headers: &HeaderMap,
) -> Result<TokenEntry, ApiError> {
    let missing = || {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "authentication.required",
            "missing bearer token: send Authorization: Bearer ACCESS_TOKEN",
        )
    };
    let value = headers.get(header::AUTHORIZATION).ok_or_else(missing)?;
    let value = value.to_str().map_err(|_| missing())?;
    let (scheme, token) = value.trim().split_once(' ').ok_or_else(missing)?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(missing());
    }
    let entry = shared.tokens.lookup(token.trim()).ok_or_else(|| {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "bad.credentials",
            "invalid access token: get a new one from /oauth/token",
        )
    })?;
    if entry
        .expires_at
        .is_some_and(|expiry| expiry <= Instant::now())
    {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "credentials.expired",
            "the access token has expired: get a new one from /oauth/token",
        ));
    }
    Ok(entry)
}
