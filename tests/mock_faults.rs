//! End-to-end tests of the mock's injected faults, latency and stalls, and of its behaviour
//! with malformed or slow clients, over real HTTP on 127.0.0.1.

mod common;

use std::io::ErrorKind;
use std::time::{Duration, Instant};

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use volley::mock::{DEMO_HOME_ORG, MockServer};

/// Sends one well-formed execute request for the demo home organization.
async fn execute_ok_request(
    client: &reqwest::Client,
    server: &MockServer,
    token: &str,
) -> reqwest::Result<reqwest::Response> {
    client
        .post(format!("{}{EXECUTE_PATH}", server.base_url()))
        .bearer_auth(token)
        .json(&body_for(DEMO_HOME_ORG))
        .send()
        .await
}

#[tokio::test]
async fn error_rate_one_gives_500() {
    let server = start(|config| config.error_rate = 1.0).await;
    let client = client();
    let token = fetch_token(&client, &server).await;
    for _ in 0..3 {
        let response = execute_ok_request(&client, &server, &token).await.unwrap();
        assert_api_error(response, 500, "internal.error").await;
    }
    let stats = server.stats();
    assert_eq!(stats.execute_status(500), 3);
    assert_eq!(stats.execute_requests(), 3);
    assert_eq!(stats.execute.total_responses(), 3);
}

#[tokio::test]
async fn reset_rate_one_resets_connection() {
    let server = start(|config| config.reset_rate = 1.0).await;
    let client = client();
    let token = fetch_token(&client, &server).await;
    let error = execute_ok_request(&client, &server, &token)
        .await
        .expect_err("a reset connection gives no response");
    assert!(!error.is_timeout(), "{error:?}");
    let stats = server.stats();
    assert_eq!(stats.execute_resets(), 1);
    assert_eq!(stats.execute_requests(), 1);
    assert_eq!(stats.execute.total_responses(), 0);
    // The token endpoint is not subject to faults.
    assert_eq!(stats.token.status(200), 1);
}

#[tokio::test]
async fn reset_sends_tcp_rst() {
    let server = start(|config| config.reset_rate = 1.0).await;
    let token = fetch_token(&client(), &server).await;
    let body = serde_json::to_string(&body_for(DEMO_HOME_ORG)).unwrap();
    let request = format!(
        "POST {EXECUTE_PATH} HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer {token}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let outcome = raw_exchange(server.addr(), request.as_bytes()).await;
    match outcome {
        Err(error) => assert_eq!(error.kind(), ErrorKind::ConnectionReset, "{error}"),
        Ok(received) => panic!(
            "expected a reset, got {:?}",
            String::from_utf8_lossy(&received)
        ),
    }
}

#[tokio::test]
async fn latency_delays_success() {
    let server = start(|config| config.latency.base = "300ms".parse().unwrap()).await;
    let client = client();
    let token = fetch_token(&client, &server).await;
    let started = Instant::now();
    let response = execute_ok_request(&client, &server, &token).await.unwrap();
    assert_eq!(response.status(), 200);
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(250), "{elapsed:?}");
}

#[tokio::test]
async fn stall_delays_response() {
    // The first stall window starts when the server starts, so the token request and the
    // execute request right after it both fall inside it.
    let server = start(|config| {
        config.stall_every = "60s".parse().unwrap();
        config.stall_for = "2s".parse().unwrap();
    })
    .await;
    let started = Instant::now();
    let client = client();
    let token = fetch_token(&client, &server).await;
    let token_elapsed = started.elapsed();
    assert!(
        token_elapsed >= Duration::from_millis(1500),
        "{token_elapsed:?}"
    );

    // Past the window, responses are immediate again, but "immediate" is not asserted
    // because a loaded test machine can be slow.
    let response = execute_ok_request(&client, &server, &token).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(server.stats().execute_status(200), 1);
}

#[tokio::test]
async fn stall_spares_mock_endpoints() {
    let server = start(|config| {
        config.stall_every = "600s".parse().unwrap();
        config.stall_for = "300s".parse().unwrap();
    })
    .await;
    let response = client()
        .get(format!("{}/mock/stats", server.base_url()))
        .timeout(Duration::from_secs(20))
        .send()
        .await
        .expect("/mock/stats is not held by a stall");
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn malformed_http_gets_400_or_close() {
    let server = start(|_| {}).await;
    let cases: [&[u8]; 4] = [
        b"GARBAGE\r\n\r\n",
        b"POST /oauth/token HTTP/1.1\r\nhost: x\r\nbad header line\r\n\r\n",
        b"POST /oauth/token HTTP/1.1\r\ncontent-length: -5\r\n\r\n",
        b"\x00\xff\xfe\r\n\r\n",
    ];
    for request in cases {
        let received = raw_exchange(server.addr(), request)
            .await
            .unwrap_or_default();
        let text = String::from_utf8_lossy(&received);
        assert!(
            text.is_empty() || text.starts_with("HTTP/1.1 400"),
            "{request:?} got {text}"
        );
    }

    // The server keeps serving afterwards.
    let token = fetch_token(&client(), &server).await;
    assert!(!token.is_empty());
}

#[tokio::test]
async fn huge_headers_get_rejected() {
    let server = start(|_| {}).await;
    let mut request = b"GET /mock/stats HTTP/1.1\r\nhost: x\r\n".to_vec();
    for index in 0..2_000 {
        request.extend_from_slice(format!("x-filler-{index}: {}\r\n", "z".repeat(256)).as_bytes());
    }
    request.extend_from_slice(b"\r\n");
    let received = raw_exchange(server.addr(), &request)
        .await
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&received);
    assert!(!text.starts_with("HTTP/1.1 200"), "{text}");

    let token = fetch_token(&client(), &server).await;
    assert!(!token.is_empty());
}

#[tokio::test]
async fn invalid_json_shapes_never_crash() {
    let server = start(|_| {}).await;
    let client = client();
    let token = fetch_token(&client, &server).await;
    let bodies: [&[u8]; 6] = [
        b"",
        b"null",
        b"[1,2]",
        b"\"text\"",
        b"{\"org_id\": 5}",
        b"\xff\xfe",
    ];
    for body in bodies {
        let path = EXECUTE_PATH;
        let response = execute_raw(&client, &server, path, Some(&token), None, body.to_vec()).await;
        let status = response.status().as_u16();
        assert!(status == 400 || status == 403, "{body:?} got {status}");
    }
    let response = execute_ok_request(&client, &server, &token).await.unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn slow_headers_time_out() {
    let server = start(|config| config.header_read_timeout = "1s".parse().unwrap()).await;
    let mut stream = TcpStream::connect(server.addr()).await.unwrap();
    stream
        .write_all(b"POST /oauth/token HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    let mut received = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(15), stream.read_to_end(&mut received));
    let outcome = read
        .await
        .expect("the server closes a connection with slow headers");
    if outcome.is_ok() {
        let text = String::from_utf8_lossy(&received);
        assert!(
            text.is_empty() || text.starts_with("HTTP/1.1 408"),
            "{text}"
        );
    }
}

#[tokio::test]
async fn shutdown_stops_listening() {
    let server = start(|_| {}).await;
    let addr = server.addr();
    let token = fetch_token(&client(), &server).await;
    assert!(!token.is_empty());
    server.shutdown().await;
    assert!(TcpStream::connect(addr).await.is_err());
}
