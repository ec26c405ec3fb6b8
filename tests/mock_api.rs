//! End-to-end tests of the mock's token and execute rules, over real HTTP on 127.0.0.1.

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;
use volley::mock::{DEMO_CLIENT_SECRET, DEMO_HOME_ORG, DEMO_SUB_ORG};

#[tokio::test]
async fn token_issues_bearer_token() {
    let server = start(|_| {}).await;
    let client = client();
    let response = request_token(&client, &server, DEMO_CLIENT_SECRET, "client_credentials").await;
    assert_eq!(response.status(), 200);
    let correlation = correlation_id(&response);
    let parsed = uuid::Uuid::parse_str(&correlation).expect("correlation id is a UUID");
    assert_eq!(parsed.get_version_num(), 4);
    for name in [
        "inin-ratelimit-count",
        "inin-ratelimit-allowed",
        "inin-ratelimit-reset",
    ] {
        assert!(response.headers().contains_key(name), "missing {name}");
    }
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], 86400);
    assert!(
        body["access_token"].as_str().is_some_and(|t| t.len() >= 32),
        "{body}"
    );
}

#[tokio::test]
async fn token_rejects_bad_credentials() {
    let server = start(|_| {}).await;
    let client = client();
    let expected = serde_json::json!({
        "error": "invalid_client",
        "description": "authentication failed",
        "error_description": "authentication failed",
    });

    let wrong_secret = request_token(&client, &server, "wrong", "client_credentials").await;
    assert_eq!(wrong_secret.status(), 401);
    assert_eq!(wrong_secret.json::<Value>().await.unwrap(), expected);

    let unknown_client = client
        .post(format!("{}/oauth/token", server.base_url()))
        .basic_auth("nobody", Some(DEMO_CLIENT_SECRET))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(unknown_client.status(), 401);
    assert_eq!(unknown_client.json::<Value>().await.unwrap(), expected);

    let no_basic = client
        .post(format!("{}/oauth/token", server.base_url()))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(no_basic.status(), 401);
    assert_eq!(no_basic.json::<Value>().await.unwrap(), expected);
}

#[tokio::test]
async fn token_rejects_other_grant_type() {
    let server = start(|_| {}).await;
    let response = request_token(&client(), &server, DEMO_CLIENT_SECRET, "password").await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "unsupported_grant_type", "{body}");
    assert!(body["error_description"].is_string(), "{body}");
}

#[tokio::test]
async fn execute_rejects_missing_and_unknown_tokens() {
    let server = start(|_| {}).await;
    let client = client();
    let body = serde_json::to_vec(&body_for(DEMO_HOME_ORG)).unwrap();

    let missing = execute_raw(&client, &server, EXECUTE_PATH, None, None, body.clone()).await;
    assert_api_error(missing, 401, "authentication.required").await;

    let unknown = execute_raw(&client, &server, EXECUTE_PATH, Some("nope"), None, body).await;
    assert_api_error(unknown, 401, "bad.credentials").await;
}

#[tokio::test]
async fn execute_rejects_expired_token() {
    let server = start(|config| config.token_lifetime = "1s".parse().unwrap()).await;
    let client = client();
    let token = fetch_token(&client, &server).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let response = execute(&client, &server, &token, None, &body_for(DEMO_HOME_ORG)).await;
    assert_api_error(response, 401, "credentials.expired").await;
}

#[tokio::test]
async fn execute_rejects_unknown_action() {
    let server = start(|_| {}).await;
    let client = client();
    let token = fetch_token(&client, &server).await;
    let path = "/api/v2/integrations/actions/no-such-action/execute";
    let body = serde_json::to_vec(&body_for(DEMO_HOME_ORG)).unwrap();
    let response = execute_raw(&client, &server, path, Some(&token), None, body).await;
    let error = assert_api_error(response, 404, "not.found").await;
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("no-such-action"),
        "{error}"
    );
}

#[tokio::test]
async fn execute_rejects_body_over_limit() {
    let server = start(|config| config.body_limit = 1024).await;
    let client = client();
    let token = fetch_token(&client, &server).await;
    let padding = "x".repeat(1024 - 2);
    let at_limit = format!("\"{padding}\"").into_bytes();
    assert_eq!(at_limit.len(), 1024);
    let over_limit = format!("\"{padding}x\"").into_bytes();

    // A body of exactly the limit passes the size check and then fails the org rule.
    let response = execute_raw(&client, &server, EXECUTE_PATH, Some(&token), None, at_limit).await;
    assert_api_error(response, 403, "not.authorized").await;

    let response = execute_raw(
        &client,
        &server,
        EXECUTE_PATH,
        Some(&token),
        None,
        over_limit,
    )
    .await;
    assert_api_error(response, 413, "request.entity.too.large").await;
}

#[tokio::test]
async fn execute_rejects_body_over_default_limit() {
    let server = start(|_| {}).await;
    let client = client();
    let token = fetch_token(&client, &server).await;
    let limit = volley::mock::MockConfig::default().body_limit as usize;
    let over_limit = vec![b' '; limit + 1];
    let response = execute_raw(
        &client,
        &server,
        EXECUTE_PATH,
        Some(&token),
        None,
        over_limit,
    )
    .await;
    assert_api_error(response, 413, "request.entity.too.large").await;
    assert_eq!(server.stats().execute.bytes_received, 0);
}

#[tokio::test]
async fn execute_rejects_chunked_body_over_limit() {
    let server = start(|config| config.body_limit = 1024).await;
    let token = fetch_token(&client(), &server).await;
    let mut request = format!(
        "POST {EXECUTE_PATH} HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer {token}\r\n\
         transfer-encoding: chunked\r\ncontent-type: application/json\r\n\r\n"
    )
    .into_bytes();
    let chunk = "y".repeat(512);
    for _ in 0..8 {
        request.extend_from_slice(format!("{:x}\r\n{chunk}\r\n", chunk.len()).as_bytes());
    }
    request.extend_from_slice(b"0\r\n\r\n");
    let received = raw_exchange(server.addr(), &request).await.unwrap();
    let text = String::from_utf8_lossy(&received);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert_eq!(server.stats().execute_status(413), 1);
}

#[tokio::test]
async fn execute_rejects_invalid_json() {
    let server = start(|_| {}).await;
    let client = client();
    let token = fetch_token(&client, &server).await;
    let body = b"{\"org_id\": ".to_vec();
    let response = execute_raw(&client, &server, EXECUTE_PATH, Some(&token), None, body).await;
    assert_api_error(response, 400, "bad.request").await;
}

#[tokio::test]
async fn rate_limit_allows_burst_then_429() {
    let server = start(|config| config.rate_limit = "5/3600s".parse().unwrap()).await;
    let client = client();
    let token = fetch_token(&client, &server).await;
    let body = body_for(DEMO_HOME_ORG);
    for expected_count in 1..=5 {
        let response = execute(&client, &server, &token, None, &body).await;
        assert_eq!(response.status(), 200, "request {expected_count}");
        let count = response.headers()["inin-ratelimit-count"].to_str().unwrap();
        assert_eq!(count, expected_count.to_string());
        assert_eq!(response.headers()["inin-ratelimit-allowed"], "5");
    }

    let response = execute(&client, &server, &token, None, &body).await;
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after >= 1, "{retry_after}");
    assert!(retry_after <= 720, "one request per 720 s: {retry_after}");
    let error = assert_api_error(response, 429, "too.many.requests").await;
    assert!(
        error["message"].as_str().unwrap().contains("retry in"),
        "{error}"
    );

    // The limit is per token, so a new token starts with a full burst.
    let fresh = fetch_token(&client, &server).await;
    let response = execute(&client, &server, &fresh, None, &body).await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn org_rule_rejects_missing_org_id() {
    let server = start(|_| {}).await;
    let client = client();
    let token = fetch_token(&client, &server).await;
    let body = serde_json::json!({ "phone": "+15551234567" });
    let response = execute(&client, &server, &token, Some(DEMO_SUB_ORG), &body).await;
    let error = assert_api_error(response, 403, "not.authorized").await;
    let message = error["message"].as_str().unwrap();
    assert!(message.contains("org_id"), "{message}");
    let fields: Vec<&String> = error.as_object().unwrap().keys().collect();
    assert_eq!(fields, ["code", "contextId", "message", "status"]);
}

#[tokio::test]
async fn org_rule_rejects_master_org_for_sub_org() {
    let server = start(|_| {}).await;
    let client = client();
    let token = fetch_token(&client, &server).await;
    let body = body_for(DEMO_HOME_ORG);
    let response = execute(&client, &server, &token, Some(DEMO_SUB_ORG), &body).await;
    let error = assert_api_error(response, 403, "not.authorized").await;
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("does not match"),
        "{error}"
    );
}

#[tokio::test]
async fn org_rule_rejects_foreign_org() {
    let server = start(|_| {}).await;
    let client = client();
    let token = fetch_token(&client, &server).await;
    let foreign = "33333333-3333-4333-8333-333333333333";
    let response = execute(&client, &server, &token, Some(foreign), &body_for(foreign)).await;
    assert_api_error(response, 403, "not.authorized").await;
}

#[tokio::test]
async fn org_rule_accepts_matching_org_id() {
    let server = start(|_| {}).await;
    let client = client();
    let token = fetch_token(&client, &server).await;

    let sub_body = body_for(DEMO_SUB_ORG);
    let response = execute(&client, &server, &token, Some(DEMO_SUB_ORG), &sub_body).await;
    assert_eq!(response.status(), 200);
    let result: Value = response.json().await.unwrap();
    assert_eq!(result["actionId"], "demo-action");
    assert_eq!(result["orgId"], DEMO_SUB_ORG);
    assert_eq!(result["input"], sub_body);

    let home_body = body_for(DEMO_HOME_ORG);
    let response = execute(&client, &server, &token, None, &home_body).await;
    assert_eq!(response.status(), 200);
    let result: Value = response.json().await.unwrap();
    assert_eq!(result["orgId"], DEMO_HOME_ORG);
}

#[tokio::test]
async fn org_rule_off_skips_body_check() {
    let server = start(|config| config.require_body_org_id = false).await;
    let client = client();
    let token = fetch_token(&client, &server).await;
    let body = serde_json::json!({ "phone": "+15551234567" });
    let response = execute(&client, &server, &token, Some(DEMO_SUB_ORG), &body).await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn both_execute_paths_respond() {
    let server = start(|_| {}).await;
    let client = client();
    let token = fetch_token(&client, &server).await;
    let body = serde_json::to_vec(&body_for(DEMO_HOME_ORG)).unwrap();
    for path in [
        "/api/v2/integrations/actions/demo-action/execute",
        "/api/v2/data/actions/demo-action/execute",
    ] {
        let response = execute_raw(&client, &server, path, Some(&token), None, body.clone()).await;
        assert_eq!(response.status(), 200, "{path}");
    }
    assert_eq!(server.stats().execute_status(200), 2);
}

#[tokio::test]
async fn execute_decodes_percent_escaped_action() {
    let server = start(|config| config.actions = vec!["send sms".to_string()]).await;
    let client = client();
    let token = fetch_token(&client, &server).await;
    let body = serde_json::to_vec(&body_for(DEMO_HOME_ORG)).unwrap();
    let path = "/api/v2/data/actions/send%20sms/execute";
    let response = execute_raw(&client, &server, path, Some(&token), None, body).await;
    assert_eq!(response.status(), 200);
    let result: Value = response.json().await.unwrap();
    assert_eq!(result["actionId"], "send sms");
}

#[tokio::test]
async fn unknown_route_gets_404_with_headers() {
    let server = start(|_| {}).await;
    let client = client();
    let response = client
        .get(format!("{}/no/such/route", server.base_url()))
        .send()
        .await
        .unwrap();
    assert!(response.headers().contains_key("inin-ratelimit-allowed"));
    assert_api_error(response, 404, "not.found").await;

    let response = client
        .get(format!("{}{EXECUTE_PATH}", server.base_url()))
        .send()
        .await
        .unwrap();
    assert_api_error(response, 405, "method.not.allowed").await;
}
