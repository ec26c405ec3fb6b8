//! No client secret, access token or Authorization value appears in any report file, log
//! line or message, even with RUST_LOG=trace.

mod support;

use std::path::Path;
use std::process::{Command, Output};

use support::*;

fn run_traced(args: &[String]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_volley"))
        .args(args)
        .env("RUST_LOG", "trace")
        .env("VOLLEY_TEST_SECRET", "s3cr3t-from-env")
        .output()
        .expect("volley starts")
}

/// Returns every output of a run: stdout, stderr and each report file.
fn everything(output: &Output, out: &Path) -> Vec<(String, String)> {
    let mut texts = vec![
        (
            "stdout".to_string(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
        ),
        (
            "stderr".to_string(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        ),
    ];
    for entry in std::fs::read_dir(out).unwrap() {
        let path = entry.unwrap().path();
        texts.push((
            path.display().to_string(),
            std::fs::read_to_string(&path).unwrap(),
        ));
    }
    texts
}

/// Finds a run of exactly 32 lower-case hex digits: the shape of the mock's access tokens.
fn token_like(text: &str) -> Option<&str> {
    let bytes = text.as_bytes();
    let mut start = 0;
    while start < bytes.len() {
        let length = bytes[start..]
            .iter()
            .take_while(|byte| byte.is_ascii_hexdigit() && !byte.is_ascii_uppercase())
            .count();
        if length == 32 {
            return Some(&text[start..start + 32]);
        }
        start += length.max(1);
    }
    None
}

#[test]
fn oauth_secret_and_tokens_stay_hidden() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        r#"
name = "secrets"
[target]
url = "embedded"
[target.mock]
rate_limit = "3/1h"
token_lifetime = "1s"
clients = [{{ id = "demo-client", secret = "s3cr3t-from-env", home_org = "{home}", allowed_orgs = [] }}]
[auth]
type = "oauth2-client-credentials"
token_url = "{{target}}/oauth/token"
client_id = "demo-client"
client_secret = "${{VOLLEY_TEST_SECRET}}"
[request]
path = "/api/v2/integrations/actions/demo-action/execute"
body = '{{"org_id": "{home}"}}'
[load]
concurrency = 2
duration = "3s"
"#,
        home = volley::mock::DEMO_HOME_ORG
    );
    let path = write_file(dir.path(), "s.toml", &text);
    let out = dir.path().join("report");
    let output = run_traced(&[
        "run".into(),
        path.display().to_string(),
        "--set".into(),
        "auth.scope=s3cr3t-from-env-too".into(),
        "--out".into(),
        out.display().to_string(),
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("TRACE"), "trace logging is on");
    let run: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("run.json")).unwrap()).unwrap();
    assert!(
        run["token_requests"]["requests"].as_u64().unwrap() >= 3,
        "tokens were refreshed"
    );
    for (name, text) in everything(&output, &out) {
        assert!(
            !text.contains("s3cr3t-from-env"),
            "{name} holds the client secret"
        );
        if let Some(token) = token_like(&text) {
            panic!("{name} holds something shaped like an access token: {token}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_and_header_values_stay_hidden() {
    let server = start_mock(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    for (index, (auth, secret)) in [
        (
            "type = \"bearer\"\ntoken = \"tok-bearer-7f3a9\"",
            "tok-bearer-7f3a9",
        ),
        (
            "type = \"header\"\nname = \"x-api-key\"\nvalue = \"key-header-51c2\"",
            "key-header-51c2",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let text = format!(
            "name = \"secrets\"\n[target]\nurl = \"{}\"\n[auth]\n{auth}\n[request]\npath = \"/api/v2/integrations/actions/demo-action/execute\"\nheaders = {{ \"authorization-extra\" = \"{secret}\" }}\nbody = '{{}}'\n[load]\nconcurrency = 1\niterations = 3\n",
            server.base_url()
        );
        let path = write_file(dir.path(), "s.toml", &text);
        let out = dir.path().join(format!("report-{index}"));
        let args = vec![
            "run".to_string(),
            path.display().to_string(),
            "--out".into(),
            out.display().to_string(),
        ];
        let output = tokio::task::spawn_blocking(move || run_traced(&args))
            .await
            .unwrap();
        assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
        for (name, text) in everything(&output, &out) {
            assert!(!text.contains(secret), "{name} holds {secret}:\n{text}");
        }
        let path_text = path.display().to_string();
        let probe = tokio::task::spawn_blocking(move || run_traced(&["probe".into(), path_text]))
            .await
            .unwrap();
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&probe.stdout),
            String::from_utf8_lossy(&probe.stderr)
        );
        assert!(!all.contains(secret), "probe output holds {secret}");
    }
}
