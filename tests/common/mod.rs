//! Helpers shared by the mock's end-to-end tests: a plain-HTTP client, a server on a free
//! port, and request builders for the token and execute endpoints.

#![allow(dead_code)] // Each test file uses a different subset.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use volley::mock::{self, MockConfig, MockServer};

/// Path of the integrations execute endpoint for the demo action.
pub const EXECUTE_PATH: &str = "/api/v2/integrations/actions/demo-action/execute";

/// Builds a client for plain HTTP on loopback that ignores proxy settings.
pub fn client() -> reqwest::Client {
    // reqwest with rustls-no-provider needs a process-wide provider even for plain HTTP.
    // An error means another test installed it first.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("HTTP client")
}

/// Starts a mock on 127.0.0.1 with a free port and the defaults changed by `change`.
pub async fn start(change: impl FnOnce(&mut MockConfig)) -> MockServer {
    let mut config = MockConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        ..MockConfig::default()
    };
    change(&mut config);
    mock::spawn(config).await.expect("mock server starts")
}

/// Sends a token request for the demo client and returns the response.
pub async fn request_token(
    client: &reqwest::Client,
    server: &MockServer,
    secret: &str,
    grant_type: &str,
) -> reqwest::Response {
    client
        .post(format!("{}/oauth/token", server.base_url()))
        .basic_auth(mock::DEMO_CLIENT_ID, Some(secret))
        .form(&[("grant_type", grant_type)])
        .send()
        .await
        .expect("token request")
}

/// Returns a fresh access token of the demo client.
pub async fn fetch_token(client: &reqwest::Client, server: &MockServer) -> String {
    let response = request_token(
        client,
        server,
        mock::DEMO_CLIENT_SECRET,
        "client_credentials",
    )
    .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("token JSON");
    body["access_token"]
        .as_str()
        .expect("access_token is a string")
        .to_string()
}

/// Returns a JSON body that passes the organization rule for `org`.
pub fn body_for(org: &str) -> Value {
    serde_json::json!({ "org_id": org, "phone": "+15551234567", "customer": { "tier": "gold" } })
}

/// Sends an execute request to `path` with an optional token, org header and raw body.
pub async fn execute_raw(
    client: &reqwest::Client,
    server: &MockServer,
    path: &str,
    token: Option<&str>,
    org_header: Option<&str>,
    body: Vec<u8>,
) -> reqwest::Response {
    let mut request = client
        .post(format!("{}{path}", server.base_url()))
        .header("content-type", "application/json")
        .body(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(org) = org_header {
        request = request.header("x-genesys-org-id", org);
    }
    request.send().await.expect("execute request")
}

/// Sends an execute request for the demo action with a JSON body.
pub async fn execute(
    client: &reqwest::Client,
    server: &MockServer,
    token: &str,
    org_header: Option<&str>,
    body: &Value,
) -> reqwest::Response {
    let bytes = serde_json::to_vec(body).expect("JSON body");
    execute_raw(client, server, EXECUTE_PATH, Some(token), org_header, bytes).await
}

/// Returns the correlation id header of a response.
pub fn correlation_id(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("inin-correlation-id")
        .expect("ININ-Correlation-Id header")
        .to_str()
        .expect("header is text")
        .to_string()
}

/// Checks an API error response and returns its body.
pub async fn assert_api_error(response: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(response.status(), status);
    let correlation = correlation_id(&response);
    let body: Value = response.json().await.expect("error body is JSON");
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["status"], status, "{body}");
    assert_eq!(body["contextId"], correlation.as_str(), "{body}");
    assert!(
        !body["message"].as_str().unwrap_or_default().is_empty(),
        "{body}"
    );
    body
}

/// Sends raw bytes on a new connection and returns what the server sent until it closed the
/// connection or 10 s passed, or the read error.
pub async fn raw_exchange(addr: SocketAddr, request: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.write_all(request).await?;
    let mut received = Vec::new();
    let read = stream.read_to_end(&mut received);
    match tokio::time::timeout(Duration::from_secs(10), read).await {
        Ok(result) => result.map(|_| received),
        Err(_) => Ok(received),
    }
}
