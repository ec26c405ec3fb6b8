//! The runner against a mock on a free loopback port: every outcome in summary.csv must equal
//! what the mock itself counted, for both load models.

mod support;

use support::*;
use volley::mock::StatsSnapshot;

fn assert_counts_match(rows: &[std::collections::HashMap<String, String>], stats: &StatsSnapshot) {
    assert_eq!(
        column_sum(rows, "ok"),
        stats.execute_status(200),
        "ok vs mock 200s"
    );
    assert_eq!(
        column_sum(rows, "forbidden"),
        stats.execute_status(403),
        "forbidden vs mock 403s"
    );
    assert_eq!(
        column_sum(rows, "throttled"),
        stats.execute_status(429),
        "throttled vs mock 429s"
    );
    assert_eq!(
        column_sum(rows, "server_error"),
        stats.execute_status(500),
        "server_error vs 500s"
    );
    assert_eq!(
        column_sum(rows, "requests"),
        stats.execute_requests(),
        "requests vs mock requests"
    );
    for row in rows {
        let outcomes: u64 = [
            "ok",
            "forbidden",
            "throttled",
            "client_error",
            "server_error",
            "timeout",
            "connect_error",
            "other_error",
            "cancelled",
        ]
        .iter()
        .map(|column| number(row, column) as u64)
        .sum();
        assert_eq!(
            outcomes,
            number(row, "requests") as u64,
            "cell {}",
            row["cell"]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_run_counts_match_mock() {
    let server = start_mock(|config| {
        config.rate_limit = "60/1s".parse().unwrap();
        config.latency.base = "2ms".parse().unwrap();
        // 200s and 403s wait 100 ms per KiB of body (5 to 10 ms here) and 429s do not, which
        // the per-outcome columns must show.
        config.latency.per_kib = "100ms".parse().unwrap();
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    write_file(dir.path(), "rows.csv", ROWS);
    let load = "concurrency = [2, 6]\nduration = \"2s\"\npause = \"200ms\"";
    let scenario = write_file(
        dir.path(),
        "s.toml",
        &org_scenario(&server.base_url(), load),
    );
    let out = dir.path().join("report");
    let output = volley(vec![
        "run".into(),
        scenario.display().to_string(),
        "--out".into(),
        out.display().to_string(),
    ])
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));

    let rows = read_csv(&out.join("summary.csv"));
    assert_eq!(rows.len(), 4);
    let stats = server.stats();
    assert_counts_match(&rows, &stats);
    assert!(
        column_sum(&rows, "throttled") > 0,
        "the 60/1s limit should throttle some calls"
    );
    let without: Vec<_> = rows
        .iter()
        .filter(|row| row["variant"] == "without-org-id")
        .collect();
    assert!(
        without.iter().all(|row| row["ok"] == "0"),
        "without org_id nothing succeeds"
    );
    assert!(without.iter().all(|row| number(row, "forbidden") > 0.0));
    assert_outcome_latencies(&rows);
}

/// Checks the per-outcome latency columns against the counts and the mock's delays.
fn assert_outcome_latencies(rows: &[std::collections::HashMap<String, String>]) {
    for (count, columns) in [
        ("ok", ["ok_p50_ms", "ok_p99_ms"]),
        ("forbidden", ["forbidden_p50_ms", "forbidden_p99_ms"]),
        ("throttled", ["throttled_p50_ms", "throttled_p99_ms"]),
    ] {
        for row in rows {
            for column in columns {
                assert_eq!(
                    row[count] == "0",
                    row[column].is_empty(),
                    "cell {}: {column} is \"{}\" with {count} = {}",
                    row["cell"],
                    row[column],
                    row[count]
                );
            }
        }
    }
    for row in rows.iter().filter(|row| row["throttled"] != "0") {
        let slow = if row["ok"] != "0" {
            "ok_p50_ms"
        } else {
            "forbidden_p50_ms"
        };
        assert!(
            number(row, slow) > number(row, "throttled_p50_ms") + 2.0,
            "cell {}: {slow} {} should exceed throttled_p50_ms {} by the body delay",
            row["cell"],
            row[slow],
            row["throttled_p50_ms"]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_run_counts_match_mock() {
    let server = start_mock(|config| {
        config.rate_limit = "100000/1s".parse().unwrap();
        config.latency.base = "1ms".parse().unwrap();
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    write_file(dir.path(), "rows.csv", ROWS);
    let load =
        "model = \"open\"\nrate = 200\nmax_in_flight = 20\nduration = \"3s\"\npause = \"200ms\"";
    let scenario = write_file(
        dir.path(),
        "s.toml",
        &org_scenario(&server.base_url(), load),
    );
    let out = dir.path().join("report");
    let output = volley(vec![
        "run".into(),
        scenario.display().to_string(),
        "--quiet".into(),
        "--out".into(),
        out.display().to_string(),
    ])
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));

    let rows = read_csv(&out.join("summary.csv"));
    assert_eq!(rows.len(), 2);
    assert_counts_match(&rows, &server.stats());
    for row in &rows {
        let requests = number(row, "requests");
        assert!(
            (requests - 600.0).abs() <= 6.0,
            "cell {}: {requests} requests, expected 600 +- 1%",
            row["cell"]
        );
        assert_eq!(row["model"], "open");
        assert_eq!(row["dropped"], "0");
        assert!(
            !row["p99_uncorrected_ms"].is_empty(),
            "open rows carry uncorrected percentiles"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_carry_data_rows_verbatim() {
    let server = start_mock(|config| config.rate_limit = "100000/1s".parse().unwrap()).await;
    let dir = tempfile::tempdir().unwrap();
    write_file(dir.path(), "rows.csv", ROWS);
    let load = "concurrency = 1\niterations = 6";
    let scenario = write_file(
        dir.path(),
        "s.toml",
        &org_scenario(&server.base_url(), load),
    );
    let out = dir.path().join("report");
    let output = volley(vec![
        "run".into(),
        scenario.display().to_string(),
        "--set".into(),
        "load.pause=0s".into(),
        "--out".into(),
        out.display().to_string(),
    ])
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));

    let recorded: serde_json::Value =
        reqwest_get(&format!("{}/mock/requests?limit=100", server.base_url())).await;
    let bodies: Vec<serde_json::Value> = recorded
        .as_array()
        .or_else(|| recorded["requests"].as_array())
        .expect("a list of requests")
        .iter()
        .map(|request| {
            serde_json::from_str(request["body"].as_str().expect("body text")).expect("JSON body")
        })
        .collect();
    assert_eq!(bodies.len(), 12);
    let ids: Vec<&str> = bodies
        .iter()
        .map(|body| body["customerId"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&"0042"), "{ids:?}");
    assert!(ids.contains(&"0007"), "{ids:?}");
    let names: Vec<&str> = bodies
        .iter()
        .map(|body| body["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"Smith, J"), "{names:?}");
    assert!(names.contains(&"O\"Brien"), "{names:?}");
    let with_org = bodies
        .iter()
        .filter(|body| body.get("org_id").is_some())
        .count();
    assert_eq!(with_org, 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_refresh_under_load_has_no_401() {
    let server = start_mock(|config| {
        config.rate_limit = "100000/1s".parse().unwrap();
        config.token_lifetime = "2s".parse().unwrap();
        config.latency.base = "5ms".parse().unwrap();
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        r#"
name = "refresh"
[target]
url = "{url}"
[auth]
type = "oauth2-client-credentials"
token_url = "{{target}}/oauth/token"
client_id = "demo-client"
client_secret = "demo-secret"
[request]
path = "/api/v2/data/actions/demo-action/execute"
body = '{{"org_id": "{org}"}}'
[load]
concurrency = 4
duration = "10s"
"#,
        url = server.base_url(),
        org = volley::mock::DEMO_HOME_ORG
    );
    let scenario = write_file(dir.path(), "s.toml", &text);
    let out = dir.path().join("report");
    let output = volley(vec![
        "run".into(),
        scenario.display().to_string(),
        "--out".into(),
        out.display().to_string(),
    ])
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));

    let stats = server.stats();
    assert_eq!(
        stats.execute_status(401),
        0,
        "no request may carry an expired token"
    );
    let rows = read_csv(&out.join("summary.csv"));
    assert_eq!(column_sum(&rows, "client_error"), 0);
    assert!(column_sum(&rows, "ok") > 100);
    let run: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("run.json")).unwrap()).unwrap();
    let tokens = run["token_requests"]["requests"].as_u64().unwrap();
    // 10 s of load with a 2 s lifetime, refreshed every 1.5 s, needs at least 7 tokens.
    assert!(tokens >= 7, "only {tokens} token requests");
    assert_eq!(stats.token.status(200), tokens);
}

async fn reqwest_get(url: &str) -> serde_json::Value {
    volley::init_crypto();
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}
