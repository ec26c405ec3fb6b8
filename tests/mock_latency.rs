//! The mock's configured latency applies to 200 and 403 responses alike, because the
//! organization check runs with the action, while a 429 from the rate limiter takes only the
//! base latency, without the per-KiB cost of running the action.

mod common;

use std::time::{Duration, Instant};

use common::*;
use volley::mock;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forbidden_takes_the_latency_throttled_does_not() {
    let server = start(|config| {
        config.rate_limit = "2/1h".parse().unwrap();
        config.latency.base = "300ms".parse().unwrap();
        config.latency.per_kib = "10s".parse().unwrap();
    })
    .await;
    let client = client();
    let token = fetch_token(&client, &server).await;

    let timed = |body: serde_json::Value| {
        let client = client.clone();
        let token = token.clone();
        let server = &server;
        async move {
            let started = Instant::now();
            let response = execute(&client, server, &token, Some(mock::DEMO_SUB_ORG), &body).await;
            (response.status().as_u16(), started.elapsed())
        }
    };
    let (ok, ok_time) = timed(body_for(mock::DEMO_SUB_ORG)).await;
    let (forbidden, forbidden_time) = timed(body_for(mock::DEMO_HOME_ORG)).await;
    let (throttled, throttled_time) = timed(body_for(mock::DEMO_SUB_ORG)).await;

    assert_eq!(ok, 200);
    assert_eq!(forbidden, 403);
    assert_eq!(throttled, 429);
    assert!(
        ok_time >= Duration::from_millis(400),
        "200 after {ok_time:?}"
    );
    assert!(
        forbidden_time >= Duration::from_millis(400),
        "403 after {forbidden_time:?}"
    );
    assert!(
        throttled_time < Duration::from_millis(350),
        "429 after {throttled_time:?}"
    );
}
