//! `volley capacity` finds the rate a rate limiter allows, within the search's precision.

mod support;

use support::*;

fn scenario(base_url: &str) -> String {
    format!(
        r#"
name = "capacity"
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
[load]
concurrency = 1
duration = "1s"
pause = "300ms"
"#,
        home = volley::mock::DEMO_HOME_ORG
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capacity_finds_the_rate_limit() {
    // A burst of 5 and then 50 per second: a 3 s step passes up to (5 + 150) / 3 = 51.7 req/s.
    let server = start_mock(|config| config.rate_limit = "5/100ms".parse().unwrap()).await;
    let dir = tempfile::tempdir().unwrap();
    let path = write_file(dir.path(), "s.toml", &scenario(&server.base_url()));
    let out = dir.path().join("report");
    let output = volley(vec![
        "capacity".into(),
        path.display().to_string(),
        "--until".into(),
        "rate_429 < 0.01".into(),
        "--start".into(),
        "10".into(),
        "--step-duration".into(),
        "3s".into(),
        "--require".into(),
        "1000".into(),
        "--quiet".into(),
        "--out".into(),
        out.display().to_string(),
    ])
    .await;
    assert_eq!(
        output.status.code(),
        Some(99),
        "--require 1000 is not met: {}",
        describe(&output)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last = stdout.lines().last().unwrap();
    let found: f64 = last
        .strip_prefix("capacity: ")
        .and_then(|rest| rest.strip_suffix(" req/s"))
        .unwrap_or_else(|| panic!("last line {last:?}"))
        .parse()
        .unwrap();
    assert!(
        (45.0..=55.0).contains(&found),
        "found {found} req/s, expected about 50\n{stdout}"
    );
    assert!(stdout.contains("step 1: 10.0 req/s"), "{stdout}");
    assert!(stdout.contains("highest passing rate"), "{stdout}");

    let text = std::fs::read_to_string(out.join("capacity.csv")).unwrap();
    assert!(
        text.starts_with("step,rate_rps,achieved_rps,requests,p99_ms,rate_429,error_rate,verdict"),
        "{text}"
    );
    let steps = read_csv(&out.join("capacity.csv"));
    assert!(steps.len() >= 5, "{text}");
    assert!(
        steps.iter().any(|step| step["verdict"].starts_with("fail")),
        "{text}"
    );
    let summary = read_csv(&out.join("summary.csv"));
    assert_eq!(
        summary.len(),
        steps.len(),
        "every step is a cell of the usual reports"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capacity_stops_when_the_start_rate_fails() {
    let server = start_mock(|config| config.rate_limit = "5/100ms".parse().unwrap()).await;
    let dir = tempfile::tempdir().unwrap();
    let path = write_file(dir.path(), "s.toml", &scenario(&server.base_url()));
    let out = dir.path().join("report");
    let output = volley(vec![
        "capacity".into(),
        path.display().to_string(),
        "--until".into(),
        "rate_429 < 0.01".into(),
        "--start".into(),
        "400".into(),
        "--step-duration".into(),
        "1s".into(),
        "--out".into(),
        out.display().to_string(),
    ])
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("fails the criteria at the start rate of 400"),
        "{stdout}"
    );
    assert!(stdout.trim_end().ends_with("capacity: 0 req/s"), "{stdout}");
    assert_eq!(read_csv(&out.join("capacity.csv")).len(), 1);
}

#[test]
fn capacity_rejects_unknown_variant_and_bad_criteria() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_file(dir.path(), "s.toml", &scenario("http://127.0.0.1:9"));
    let output = volley_blocking(&[
        "capacity".into(),
        path.display().to_string(),
        "--variant".into(),
        "nope".into(),
    ]);
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    assert!(
        String::from_utf8_lossy(&output.stderr)
            .contains("unknown variant \"nope\": use one of default")
    );
    let output = volley_blocking(&[
        "capacity".into(),
        path.display().to_string(),
        "--until".into(),
        "p99 < 5".into(),
    ]);
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    assert!(String::from_utf8_lossy(&output.stderr).contains("unknown metric \"p99\""));
}
