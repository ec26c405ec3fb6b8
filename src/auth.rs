//! Authentication providers: none, a fixed bearer token, an arbitrary header, and OAuth2
//! client credentials with a shared token that is refreshed before it expires.
//!
//! Workers never fetch tokens. They hold a [`watch`] receiver and copy the header value only
//! when the refresher publishes a new one, so the hot path reads one version number.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use http::header::{AUTHORIZATION, HeaderName, HeaderValue};
use serde::Deserialize;
use serde::Serialize;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::metrics::new_histogram;
use crate::scenario::Auth;

/// The share of a token's lifetime after which it is refreshed.
const REFRESH_AT: f64 = 0.75;

/// The timeout of one token request.
const TOKEN_TIMEOUT: Duration = Duration::from_secs(30);

/// A token request that failed. The message never contains the secret or a token.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The token endpoint could not be reached or timed out.
    #[error(
        "token request to {url} failed: {reason}; check auth.token_url and that the server is up"
    )]
    Unreachable {
        /// The token endpoint.
        url: String,
        /// The transport error, without credentials.
        reason: String,
    },
    /// The endpoint answered with an error status.
    #[error("token request to {url} was rejected with HTTP {status} {code}; {hint}")]
    Rejected {
        /// The token endpoint.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The body's `error` field.
        code: String,
        /// What to check.
        hint: &'static str,
    },
    /// The endpoint answered 2xx without a usable token.
    #[error("token response from {url} is invalid: {reason}")]
    InvalidResponse {
        /// The token endpoint.
        url: String,
        /// What was wrong.
        reason: String,
    },
    /// A scenario value that cannot be used in a header.
    #[error("invalid {what}: it contains characters an HTTP header cannot carry")]
    InvalidHeader {
        /// Which value.
        what: &'static str,
    },
}

/// Timing of the token requests, reported apart from the action's figures.
#[derive(Debug, Clone)]
pub struct TokenStats {
    /// Token requests sent.
    pub requests: u64,
    /// Token requests that failed.
    pub failures: u64,
    /// Latency of the token requests, in microseconds.
    pub latency: Histogram<u64>,
    /// The lifetime the server announced in the last token, in seconds.
    pub expires_in_s: u64,
}

/// A summary of [`TokenStats`] for `run.json`.
#[derive(Debug, Clone, Serialize)]
pub struct TokenSummary {
    /// Token requests sent.
    pub requests: u64,
    /// Token requests that failed.
    pub failures: u64,
    /// Median latency in milliseconds.
    pub p50_ms: f64,
    /// Highest latency in milliseconds.
    pub max_ms: f64,
    /// The lifetime the server announced, in seconds.
    pub expires_in_s: u64,
}

impl TokenStats {
    /// Summarises the figures.
    pub fn summary(&self) -> TokenSummary {
        let quantile = |q: f64| {
            if self.latency.is_empty() {
                0.0
            } else {
                self.latency.value_at_quantile(q) as f64 / 1000.0
            }
        };
        TokenSummary {
            requests: self.requests,
            failures: self.failures,
            p50_ms: quantile(0.5),
            max_ms: if self.latency.is_empty() {
                0.0
            } else {
                self.latency.max() as f64 / 1000.0
            },
            expires_in_s: self.expires_in_s,
        }
    }
}

/// The authentication header that workers add, kept current by the provider.
pub struct AuthProvider {
    header: Option<(HeaderName, watch::Receiver<HeaderValue>)>,
    stats: Option<Arc<Mutex<TokenStats>>>,
    stop: CancellationToken,
}

impl AuthProvider {
    /// Starts the provider; for OAuth2 this fetches the first token before returning.
    ///
    /// `target` replaces `{target}` in the token URL.
    pub async fn start(auth: &Auth, target: &str) -> Result<AuthProvider, AuthError> {
        let fixed = |name: HeaderName, value: &str, what| {
            let mut value =
                HeaderValue::from_str(value).map_err(|_| AuthError::InvalidHeader { what })?;
            value.set_sensitive(true);
            let (_, receiver) = watch::channel(value);
            Ok::<_, AuthError>(AuthProvider {
                header: Some((name, receiver)),
                stats: None,
                stop: CancellationToken::new(),
            })
        };
        match auth {
            Auth::None => Ok(AuthProvider {
                header: None,
                stats: None,
                stop: CancellationToken::new(),
            }),
            Auth::Bearer { token } => {
                fixed(AUTHORIZATION, &format!("Bearer {token}"), "auth.token")
            }
            Auth::Header { name, value } => {
                let name = HeaderName::from_bytes(name.as_bytes())
                    .map_err(|_| AuthError::InvalidHeader { what: "auth.name" })?;
                fixed(name, value, "auth.value")
            }
            Auth::OAuth2ClientCredentials {
                token_url,
                client_id,
                client_secret,
                scope,
            } => {
                let client = OAuthClient::new(
                    token_url.replace("{target}", target.trim_end_matches('/')),
                    client_id.clone(),
                    client_secret.clone(),
                    scope.clone(),
                );
                start_oauth(client).await
            }
        }
    }

    /// Returns the header name and a receiver of its current value, or `None` without auth.
    pub fn header(&self) -> Option<(HeaderName, watch::Receiver<HeaderValue>)> {
        self.header.clone()
    }

    /// Returns a copy of the token figures, for OAuth2 only.
    pub fn token_stats(&self) -> Option<TokenStats> {
        self.stats
            .as_ref()
            .map(|stats| stats.lock().expect("token stats lock").clone())
    }
}

impl Drop for AuthProvider {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

struct OAuthClient {
    http: reqwest::Client,
    url: String,
    client_id: String,
    client_secret: String,
    scope: Option<String>,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

#[derive(Deserialize, Default)]
struct TokenError {
    #[serde(default)]
    error: String,
}

struct Token {
    header: HeaderValue,
    lifetime: Duration,
}

impl OAuthClient {
    fn new(
        url: String,
        client_id: String,
        client_secret: String,
        scope: Option<String>,
    ) -> OAuthClient {
        crate::init_crypto();
        let http = reqwest::Client::builder()
            .timeout(TOKEN_TIMEOUT)
            .build()
            .expect("a default reqwest client builds");
        OAuthClient {
            http,
            url,
            client_id,
            client_secret,
            scope,
        }
    }

    async fn fetch(&self) -> Result<Token, AuthError> {
        let mut form = vec![("grant_type", "client_credentials")];
        if let Some(scope) = &self.scope {
            form.push(("scope", scope));
        }
        let response = self
            .http
            .post(&self.url)
            .basic_auth(&self.client_id, Some(&self.client_secret))
            .form(&form)
            .send()
            .await
            .map_err(|error| AuthError::Unreachable {
                url: self.url.clone(),
                reason: transport_reason(&error),
            })?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|error| AuthError::Unreachable {
                url: self.url.clone(),
                reason: transport_reason(&error),
            })?;
        if !status.is_success() {
            let code = serde_json::from_slice::<TokenError>(&body)
                .unwrap_or_default()
                .error;
            let hint = match status.as_u16() {
                400 | 401 | 403 => {
                    "check auth.client_id and auth.client_secret (or the environment variables they name)"
                }
                404 | 405 => "check auth.token_url",
                _ => "the token server failed; try again later",
            };
            return Err(AuthError::Rejected {
                url: self.url.clone(),
                status: status.as_u16(),
                code,
                hint,
            });
        }
        let parsed: TokenResponse =
            serde_json::from_slice(&body).map_err(|_| AuthError::InvalidResponse {
                url: self.url.clone(),
                reason: "expected JSON with an access_token field".to_string(),
            })?;
        let mut header = HeaderValue::from_str(&format!("Bearer {}", parsed.access_token))
            .map_err(|_| AuthError::InvalidResponse {
                url: self.url.clone(),
                reason: "the access_token has characters an HTTP header cannot carry".to_string(),
            })?;
        header.set_sensitive(true);
        Ok(Token {
            header,
            lifetime: Duration::from_secs(parsed.expires_in.unwrap_or(3600).max(1)),
        })
    }
}

/// Describes a reqwest error without its URL's query or any header.
fn transport_reason(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        "timed out".to_string()
    } else if error.is_connect() {
        "connection failed".to_string()
    } else {
        "the connection broke".to_string()
    }
}

async fn fetch_timed(client: &OAuthClient, stats: &Mutex<TokenStats>) -> Result<Token, AuthError> {
    let started = Instant::now();
    let result = client.fetch().await;
    let elapsed = started.elapsed().as_micros() as u64;
    let mut stats = stats.lock().expect("token stats lock");
    stats.requests += 1;
    stats.latency.saturating_record(elapsed.max(1));
    match &result {
        Ok(token) => stats.expires_in_s = token.lifetime.as_secs(),
        Err(_) => stats.failures += 1,
    }
    result
}

async fn start_oauth(client: OAuthClient) -> Result<AuthProvider, AuthError> {
    let stats = Arc::new(Mutex::new(TokenStats {
        requests: 0,
        failures: 0,
        latency: new_histogram(),
        expires_in_s: 0,
    }));
    let issued = Instant::now();
    let token = fetch_timed(&client, &stats).await?;
    tracing::info!(url = %client.url, lifetime_s = token.lifetime.as_secs(), "fetched access token");
    let (sender, receiver) = watch::channel(token.header);
    let stop = CancellationToken::new();
    tokio::spawn(refresh_loop(
        client,
        sender,
        Arc::clone(&stats),
        issued,
        token.lifetime,
        stop.clone(),
    ));
    Ok(AuthProvider {
        header: Some((AUTHORIZATION, receiver)),
        stats: Some(stats),
        stop,
    })
}

/// Refreshes the token at three quarters of its lifetime, counted from when the request for
/// it was sent, and retries failures every second until the old token expires and after.
async fn refresh_loop(
    client: OAuthClient,
    sender: watch::Sender<HeaderValue>,
    stats: Arc<Mutex<TokenStats>>,
    mut issued: Instant,
    mut lifetime: Duration,
    stop: CancellationToken,
) {
    let mut refresh_at = issued + lifetime.mul_f64(REFRESH_AT);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep_until(refresh_at.into()) => {}
        }
        let started = Instant::now();
        match fetch_timed(&client, &stats).await {
            Ok(token) => {
                tracing::info!(
                    lifetime_s = token.lifetime.as_secs(),
                    "refreshed access token"
                );
                issued = started;
                lifetime = token.lifetime;
                refresh_at = issued + lifetime.mul_f64(REFRESH_AT);
                if sender.send(token.header).is_err() {
                    return;
                }
            }
            Err(error) => {
                let expired = Instant::now() >= issued + lifetime;
                tracing::warn!(%error, expired, "token refresh failed; retrying in 1s");
                refresh_at = Instant::now() + Duration::from_secs(1);
            }
        }
    }
}
