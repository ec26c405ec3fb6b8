//! `on_429 = "retry-after"`: workers wait as the server asks and send again, counting each
//! retry, until the request succeeds.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::routing::post;
use support::*;

fn scenario(base_url: &str, load: &str) -> String {
    home_org_scenario("retry", base_url, load)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_until_every_request_is_ok() {
    let server = start_mock(|config| config.rate_limit = "4/1s".parse().unwrap()).await;
    let dir = tempfile::tempdir().unwrap();
    let load = "concurrency = 2\niterations = 12\non_429 = \"retry-after\"\nmax_retries = 10\nmax_retry_wait = \"2s\"";
    let path = write_file(dir.path(), "s.toml", &scenario(&server.base_url(), load));
    let out = dir.path().join("report");
    let output = volley(vec![
        "run".into(),
        path.display().to_string(),
        "--out".into(),
        out.display().to_string(),
    ])
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));

    let rows = read_csv(&out.join("summary.csv"));
    let row = &rows[0];
    assert_eq!(row["requests"], "12");
    assert_eq!(row["ok"], "12", "every request ends ok: {row:?}");
    assert_eq!(row["throttled"], "0");
    let retries = number(row, "retries") as u64;
    assert!(retries > 0, "a 4/1s limit must have caused retries");
    let stats = server.stats();
    assert_eq!(
        stats.execute_status(429),
        retries,
        "each retry follows one 429"
    );
    assert_eq!(stats.execute_requests(), 12 + retries);
    assert_eq!(row["ratelimit_limit"], "4");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains(&format!("{retries} retries after 429 responses")),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn count_policy_records_429_and_moves_on() {
    let server = start_mock(|config| config.rate_limit = "4/1h".parse().unwrap()).await;
    let dir = tempfile::tempdir().unwrap();
    let path = write_file(
        dir.path(),
        "s.toml",
        &scenario(&server.base_url(), "concurrency = 1\niterations = 10"),
    );
    let out = dir.path().join("report");
    let output = volley(vec![
        "run".into(),
        path.display().to_string(),
        "--out".into(),
        out.display().to_string(),
    ])
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let row = &read_csv(&out.join("summary.csv"))[0];
    assert_eq!(row["ok"], "4");
    assert_eq!(row["throttled"], "6");
    assert_eq!(row["retries"], "0");
    assert_eq!(row["ratelimit_min_remaining"], "0");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("the server allows 4 per"), "{stdout}");
}

/// A server that answers its first request with 429 and a `Retry-After` HTTP date 2 s ahead,
/// and every later one with 200.
async fn date_server(calls: Arc<AtomicU64>) -> String {
    let app = axum::Router::new().route(
        "/x",
        post(move || {
            let calls = Arc::clone(&calls);
            async move {
                let mut headers = HeaderMap::new();
                if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                    let when = SystemTime::now() + Duration::from_secs(2);
                    let date = HeaderValue::from_str(&httpdate::fmt_http_date(when)).unwrap();
                    headers.insert("retry-after", date);
                    return (StatusCode::TOO_MANY_REQUESTS, headers, "slow down");
                }
                (StatusCode::OK, headers, "ok")
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{address}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_http_date_is_honoured() {
    let calls = Arc::new(AtomicU64::new(0));
    let base_url = date_server(Arc::clone(&calls)).await;
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "name = \"date\"\n[target]\nurl = \"{base_url}\"\n[request]\npath = \"/x\"\n[load]\nconcurrency = 1\niterations = 1\non_429 = \"retry-after\"\n"
    );
    let path = write_file(dir.path(), "s.toml", &text);
    let out = dir.path().join("report");
    let output = volley(vec![
        "run".into(),
        path.display().to_string(),
        "--out".into(),
        out.display().to_string(),
    ])
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let row = &read_csv(&out.join("summary.csv"))[0];
    assert_eq!(row["ok"], "1");
    assert_eq!(row["retries"], "1");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    // HTTP dates have whole seconds, so a date 2 s ahead means a wait of more than 1 s.
    let latency = number(row, "max_ms");
    assert!(
        latency > 1000.0,
        "latency {latency} ms must include the wait"
    );
    assert!(
        latency < 10_000.0,
        "latency {latency} ms is far above the 2 s asked"
    );
}
