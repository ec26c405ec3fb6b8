//! `volley probe` against a mock on a free loopback port: what it prints, what it sends
//! compared with `volley run`, its exit codes, and that no credential reaches the output.

mod support;

use std::collections::BTreeMap;
use std::process::Output;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use support::*;
use volley::mock::{DEMO_CLIENT_SECRET, DEMO_SUB_ORG, MockServer, RecordedRequest};

const EXECUTE_PATH: &str = "/api/v2/integrations/actions/demo-action/execute";

/// A load table that makes `volley run` send exactly one request per variant.
const ONE_REQUEST: &str = "concurrency = 1\niterations = 1";

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Returns the part of the probe output under the heading of `variant`.
fn section<'a>(text: &'a str, variant: &str) -> &'a str {
    let heading = text.split("\n=== variant ").skip(1).find(|part| {
        part.lines()
            .next()
            .is_some_and(|line| line.ends_with(&format!(": {variant} ===")))
    });
    heading.unwrap_or_else(|| panic!("no section for variant {variant} in:\n{text}"))
}

/// Asserts that every `Bearer ` in `text` is followed by `[redacted]`.
fn assert_bearer_values_redacted(text: &str, stream: &str) {
    for (index, _) in text.match_indices("Bearer ") {
        let rest = &text[index + "Bearer ".len()..];
        assert!(
            rest.starts_with("[redacted]"),
            "{stream} shows a bearer value: {}",
            rest.lines().next().unwrap_or_default()
        );
    }
}

/// Returns the value printed for the JWT claim `name`.
fn claim<'a>(text: &'a str, name: &str) -> &'a str {
    let prefix = format!("{name}:");
    text.lines()
        .find_map(|line| line.trim_start().strip_prefix(prefix.as_str()))
        .map_or("", str::trim)
}

/// Writes the org scenario for `server` with its data file and returns its path.
fn write_org_scenario(dir: &std::path::Path, base_url: &str) -> std::path::PathBuf {
    write_file(dir, "rows.csv", ROWS);
    write_file(dir, "s.toml", &org_scenario(base_url, ONE_REQUEST))
}

async fn probe(args: &[&str]) -> Output {
    let mut all = vec!["probe".to_string()];
    all.extend(args.iter().map(|arg| arg.to_string()));
    volley(all).await
}

/// Reads the mock's request log, oldest first.
async fn logged_requests(server: &MockServer) -> Vec<RecordedRequest> {
    volley::init_crypto();
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    client
        .get(format!("{}/mock/requests", server.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn reset_log(server: &MockServer) {
    volley::init_crypto();
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let response = client
        .post(format!("{}/mock/reset", server.base_url()))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
}

/// Returns a TCP port on 127.0.0.1 that nothing listens on.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_prints_each_exchange() {
    let server = start_mock(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let scenario = write_org_scenario(dir.path(), &server.base_url());

    let output = probe(&[&scenario.display().to_string()]).await;
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let text = stdout(&output);
    let request_line = format!("> POST {}{EXECUTE_PATH}", server.base_url());

    let without = section(&text, "without-org-id");
    assert!(without.contains(&request_line), "{without}");
    assert!(
        without.contains(&format!("> x-genesys-org-id: {DEMO_SUB_ORG}")),
        "{without}"
    );
    assert!(
        without.contains(r#"{"customerId": "0042", "name": "Smith, J"}"#),
        "data row 1 is rendered into the body: {without}"
    );
    assert!(without.contains("< HTTP/1.1 403 Forbidden"), "{without}");
    assert!(without.contains(r#""code": "not.authorized""#), "{without}");

    let with = section(&text, "with-org-id");
    assert!(with.contains(&request_line), "{with}");
    assert!(
        with.contains(&format!(r#""org_id": "{DEMO_SUB_ORG}""#)),
        "{with}"
    );
    assert!(
        with.contains(&format!("> x-genesys-org-id: {DEMO_SUB_ORG}")),
        "{with}"
    );
    assert!(with.contains("< HTTP/1.1 200 OK"), "{with}");
    assert!(
        text.contains("access token: opaque"),
        "the mock's tokens are not JWTs: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_output_has_no_credentials() {
    let server = start_mock(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let scenario = write_org_scenario(dir.path(), &server.base_url());

    let output = probe(&[&scenario.display().to_string()]).await;
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let (out, err) = (stdout(&output), stderr(&output));
    assert!(out.contains("authorization: Bearer [redacted]"), "{out}");
    assert!(
        !out.contains(DEMO_CLIENT_SECRET),
        "stdout shows the client secret"
    );
    assert!(
        !err.contains(DEMO_CLIENT_SECRET),
        "stderr shows the client secret"
    );
    assert_bearer_values_redacted(&out, "stdout");
    assert_bearer_values_redacted(&err, "stderr");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_sends_what_run_sends() {
    let server = start_mock(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let scenario = write_org_scenario(dir.path(), &server.base_url());

    let run = volley(vec![
        "run".into(),
        scenario.display().to_string(),
        "--quiet".into(),
        "--out".into(),
        dir.path().join("report").display().to_string(),
    ])
    .await;
    assert_eq!(run.status.code(), Some(0), "{}", describe(&run));
    let from_run = logged_requests(&server).await;
    reset_log(&server).await;
    let probe = probe(&[&scenario.display().to_string()]).await;
    assert_eq!(probe.status.code(), Some(0), "{}", describe(&probe));
    let from_probe = logged_requests(&server).await;

    assert_eq!(from_run.len(), 2, "one request per variant: {from_run:?}");
    assert_eq!(
        from_probe.len(),
        2,
        "one request per variant: {from_probe:?}"
    );
    for (run, probe) in from_run.iter().zip(&from_probe) {
        assert_eq!(probe.method, run.method);
        assert_eq!(probe.path, run.path);
        assert_eq!(probe.body, run.body);
        assert_eq!(probe.status, run.status);
        // reqwest adds `accept: */*`, which the runner leaves out.
        let mut probe_headers: BTreeMap<String, String> = probe.headers.clone();
        assert_eq!(probe_headers.remove("accept").as_deref(), Some("*/*"));
        assert_eq!(probe_headers, run.headers);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_decodes_jwt_claims() {
    let server = start_mock(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let claims =
        format!(r#"{{"aud":"api://data-actions","org_id":"{DEMO_SUB_ORG}","exp":4102444800}}"#);
    let token = format!(
        "{}.{}.c2lnbmF0dXJl",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(claims)
    );
    let text = format!(
        r#"
name = "jwt"
[target]
url = "{}"
[auth]
type = "bearer"
token = "{token}"
[request]
path = "{EXECUTE_PATH}"
body = '{{"org_id": "{DEMO_SUB_ORG}"}}'
[load]
{ONE_REQUEST}
"#,
        server.base_url()
    );
    let scenario = write_file(dir.path(), "s.toml", &text);

    let output = probe(&[&scenario.display().to_string()]).await;
    // The mock did not issue this token, so it responds with 401. Any response exits 0.
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let out = stdout(&output);
    assert_eq!(claim(&out, "aud"), "api://data-actions", "{out}");
    assert_eq!(claim(&out, "org_id"), DEMO_SUB_ORG, "{out}");
    assert!(
        claim(&out, "exp").starts_with("2100-01-01T00:00:00Z (in "),
        "{out}"
    );
    assert!(out.contains("< HTTP/1.1 401 Unauthorized"), "{out}");
    assert!(!out.contains(&token), "stdout shows the token");
    assert!(!stderr(&output).contains(&token), "stderr shows the token");
    assert_bearer_values_redacted(&out, "stdout");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_target_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let base_url = format!("http://127.0.0.1:{}", closed_port());
    let text = format!(
        "name = \"down\"\n[target]\nurl = \"{base_url}\"\n[request]\npath = \"{EXECUTE_PATH}\"\n[load]\n{ONE_REQUEST}\n"
    );
    let scenario = write_file(dir.path(), "s.toml", &text);

    let output = probe(&[&scenario.display().to_string()]).await;
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let err = stderr(&output);
    assert!(
        err.contains(&format!("request to {base_url}{EXECUTE_PATH} failed")),
        "{err}"
    );
    assert!(err.contains("failed to connect"), "{err}");
    assert!(
        stdout(&output).contains(&format!("> POST {base_url}{EXECUTE_PATH}")),
        "the request is printed before it fails: {}",
        describe(&output)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_token_endpoint_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let base_url = format!("http://127.0.0.1:{}", closed_port());
    let scenario = write_org_scenario(dir.path(), &base_url);

    let output = probe(&[&scenario.display().to_string()]).await;
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let err = stderr(&output);
    assert!(err.contains(&format!("{base_url}/oauth/token")), "{err}");
    assert!(!err.contains(DEMO_CLIENT_SECRET), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn variant_option_selects_one() {
    let server = start_mock(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let scenario = write_org_scenario(dir.path(), &server.base_url());

    let output = probe(&[&scenario.display().to_string(), "--variant", "with-org-id"]).await;
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let out = stdout(&output);
    assert_eq!(out.matches("=== variant ").count(), 1, "{out}");
    assert!(out.contains("=== variant 1 of 1: with-org-id ==="), "{out}");
    assert_eq!(server.stats().execute_requests(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_variant_exits_2() {
    let server = start_mock(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let scenario = write_org_scenario(dir.path(), &server.base_url());

    let output = probe(&[&scenario.display().to_string(), "--variant", "with-org"]).await;
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    let err = stderr(&output);
    assert!(err.contains("unknown variant \"with-org\""), "{err}");
    assert!(err.contains("without-org-id, with-org-id"), "{err}");
    assert_eq!(server.stats().execute_requests(), 0, "nothing is sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_scenario_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = write_file(dir.path(), "s.toml", "name = \"broken\"\n[target]\n");

    let output = probe(&[&scenario.display().to_string()]).await;
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    assert!(
        stderr(&output).contains("invalid scenario"),
        "{}",
        describe(&output)
    );
}
