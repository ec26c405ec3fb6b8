//! Thresholds decide the exit code: 0 when every cell passes, 99 when one fails, with the
//! failed threshold named in summary.csv, run.json and the terminal table.

mod support;

use support::*;

fn scenario(base_url: &str, thresholds: &str) -> String {
    format!(
        r#"
name = "verdicts"
[target]
url = "{base_url}"
[auth]
type = "oauth2-client-credentials"
token_url = "{{target}}/oauth/token"
client_id = "demo-client"
client_secret = "demo-secret"
[request]
path = "/api/v2/integrations/actions/demo-action/execute"
body = '{{"org_id": "{home}"}}'

[[variant]]
name = "with-org-id"

[[variant]]
name = "without-org-id"
body = '{{}}'
thresholds = {{ rate_403 = "== 1" }}

[load]
concurrency = 2
iterations = 20
pause = "0s"

{thresholds}
"#,
        home = volley::mock::DEMO_HOME_ORG
    )
}

async fn run(thresholds: &str) -> (std::process::Output, tempfile::TempDir) {
    let server = start_mock(|config| config.rate_limit = "100000/1s".parse().unwrap()).await;
    let dir = tempfile::tempdir().unwrap();
    let path = write_file(
        dir.path(),
        "s.toml",
        &scenario(&server.base_url(), thresholds),
    );
    let out = dir.path().join("report");
    let output = volley(vec![
        "run".into(),
        path.display().to_string(),
        "--out".into(),
        out.display().to_string(),
    ])
    .await;
    (output, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passing_thresholds_exit_zero() {
    let (output, dir) = run("[thresholds]\nrate_403 = \"< 0.01\"\np99_ms = \"< 5000\"").await;
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let rows = read_csv(&dir.path().join("report/summary.csv"));
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|row| row["verdict"] == "pass"), "{rows:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_threshold_exits_99_and_is_named() {
    let (output, dir) = run("[thresholds]\np99_ms = \"< 0.001\"").await;
    assert_eq!(output.status.code(), Some(99), "{}", describe(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("FAIL p99_ms < 0.001"), "{stdout}");
    let rows = read_csv(&dir.path().join("report/summary.csv"));
    assert!(
        rows[0]["verdict"].starts_with("fail: p99_ms < 0.001 (was "),
        "{:?}",
        rows[0]
    );
    // The variant's own threshold replaces nothing here, so both cells fail on p99.
    assert!(
        rows[1]["verdict"].starts_with("fail: p99_ms < 0.001"),
        "{:?}",
        rows[1]
    );
    let run: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("report/run.json")).unwrap())
            .unwrap();
    assert_eq!(run["exit_code"], 99);
    assert_eq!(run["cells"][0]["verdict"], "fail");
    let failed = run["cells"][0]["failed_thresholds"][0].as_str().unwrap();
    assert!(failed.starts_with("p99_ms < 0.001"), "{failed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn variant_threshold_overrides_scenario() {
    let (output, dir) = run("[thresholds]\nrate_403 = \"< 0.01\"").await;
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let rows = read_csv(&dir.path().join("report/summary.csv"));
    let without = rows
        .iter()
        .find(|row| row["variant"] == "without-org-id")
        .unwrap();
    assert_eq!(number(without, "rate_403"), 1.0);
    assert_eq!(without["verdict"], "pass");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_on_fail_skips_remaining_cells() {
    let (output, dir) =
        run("[thresholds]\nrate_403 = { condition = \"== 1\", abort_on_fail = true }").await;
    assert_eq!(output.status.code(), Some(99), "{}", describe(&output));
    let rows = read_csv(&dir.path().join("report/summary.csv"));
    assert_eq!(rows.len(), 1, "the second cell must not run");
    let run: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("report/run.json")).unwrap())
            .unwrap();
    assert_eq!(run["aborted"], true);
}
