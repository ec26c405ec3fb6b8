//! End-to-end tests of the mock's /mock/* endpoints and of its exact counting, over real HTTP
//! on 127.0.0.1.

mod common;

use std::collections::BTreeMap;

use common::*;
use serde_json::Value;
use volley::mock::{DEMO_HOME_ORG, DEMO_SUB_ORG, EndpointStats, RecordedRequest, StatsSnapshot};

#[tokio::test]
async fn stats_count_exactly_what_was_sent() {
    let server = start(|_| {}).await;
    let client = client();
    let token = fetch_token(&client, &server).await;
    let wrong = request_token(&client, &server, "wrong", "client_credentials").await;
    assert_eq!(wrong.status(), 401);

    let good = serde_json::to_vec(&body_for(DEMO_HOME_ORG)).unwrap();
    let mut body_bytes = 0;
    for _ in 0..3 {
        let response = execute_raw(
            &client,
            &server,
            EXECUTE_PATH,
            Some(&token),
            None,
            good.clone(),
        )
        .await;
        assert_eq!(response.status(), 200);
        body_bytes += good.len() as u64;
    }
    let response = execute_raw(&client, &server, EXECUTE_PATH, None, None, good.clone()).await;
    assert_eq!(response.status(), 401);
    let response = client.get(format!("{}/nowhere", server.base_url())).send();
    assert_eq!(response.await.unwrap().status(), 404);

    let form_bytes = "grant_type=client_credentials".len() as u64;
    let expected = StatsSnapshot {
        token: EndpointStats {
            requests: 2,
            responses: BTreeMap::from([(200, 1), (401, 1)]),
            resets: 0,
            bytes_received: 2 * form_bytes,
        },
        execute: EndpointStats {
            requests: 4,
            responses: BTreeMap::from([(200, 3), (401, 1)]),
            resets: 0,
            bytes_received: body_bytes,
        },
        other: EndpointStats {
            requests: 1,
            responses: BTreeMap::from([(404, 1)]),
            resets: 0,
            bytes_received: 0,
        },
    };
    let over_http: StatsSnapshot = client
        .get(format!("{}/mock/stats", server.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(over_http, expected);
    assert_eq!(server.stats(), expected);
    assert_eq!(expected.execute_requests(), 4);
}

#[tokio::test]
async fn stats_exact_under_concurrency() {
    let server = start(|config| config.rate_limit = "100000/1s".parse().unwrap()).await;
    let client = client();
    let token = fetch_token(&client, &server).await;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (client, token) = (client.clone(), token.clone());
        let url = format!("{}{EXECUTE_PATH}", server.base_url());
        tasks.push(tokio::spawn(async move {
            for _ in 0..50 {
                let response = client
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&body_for(DEMO_HOME_ORG))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 200);
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let stats = server.stats();
    assert_eq!(stats.execute_requests(), 400);
    assert_eq!(stats.execute_status(200), 400);
    assert_eq!(stats.execute.total_responses(), 400);
}

#[tokio::test]
async fn requests_log_redacts_authorization() {
    let server = start(|_| {}).await;
    let client = client();
    let token = fetch_token(&client, &server).await;
    let body = body_for(DEMO_SUB_ORG);
    let response = execute(&client, &server, &token, Some(DEMO_SUB_ORG), &body).await;
    assert_eq!(response.status(), 200);

    let url = format!("{}/mock/requests?limit=5", server.base_url());
    let logged: Vec<RecordedRequest> = client.get(url).send().await.unwrap().json().await.unwrap();
    assert_eq!(logged.len(), 1);
    let entry = &logged[0];
    assert_eq!(entry.method, "POST");
    assert_eq!(entry.path, EXECUTE_PATH);
    assert_eq!(entry.headers["authorization"], "[redacted]");
    assert_eq!(entry.headers["x-genesys-org-id"], DEMO_SUB_ORG);
    assert_eq!(entry.status, Some(200));
    let logged_body: Value = serde_json::from_str(entry.body.as_deref().unwrap()).unwrap();
    assert_eq!(logged_body, body);
    let raw = serde_json::to_string(&logged).unwrap();
    assert!(
        !raw.contains(&token),
        "the token leaked into /mock/requests"
    );
}

#[tokio::test]
async fn requests_log_honours_limit() {
    let server = start(|_| {}).await;
    let client = client();
    let token = fetch_token(&client, &server).await;
    for index in 0..3 {
        let body = serde_json::json!({ "org_id": DEMO_HOME_ORG, "index": index });
        execute(&client, &server, &token, None, &body).await;
    }
    let url = format!("{}/mock/requests?limit=2", server.base_url());
    let logged: Vec<RecordedRequest> = client.get(url).send().await.unwrap().json().await.unwrap();
    assert_eq!(logged.len(), 2);
    assert!(logged[0].body.as_deref().unwrap().contains("\"index\":1"));
    assert!(logged[1].body.as_deref().unwrap().contains("\"index\":2"));

    let url = format!("{}/mock/requests?limit=many", server.base_url());
    let response = client.get(url).send().await.unwrap();
    assert_eq!(response.status(), 400);
}

#[tokio::test]
async fn reset_clears_stats_and_log() {
    let server = start(|_| {}).await;
    let client = client();
    let token = fetch_token(&client, &server).await;
    execute(&client, &server, &token, None, &body_for(DEMO_HOME_ORG)).await;
    assert_eq!(server.stats().execute_requests(), 1);

    let response = client
        .post(format!("{}/mock/reset", server.base_url()))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
    assert_eq!(server.stats(), StatsSnapshot::default());
    let url = format!("{}/mock/requests", server.base_url());
    let logged: Vec<RecordedRequest> = client.get(url).send().await.unwrap().json().await.unwrap();
    assert!(logged.is_empty());

    // Tokens survive a reset.
    let response = execute(&client, &server, &token, None, &body_for(DEMO_HOME_ORG)).await;
    assert_eq!(response.status(), 200);
}
