//! Tests of the `volley mock` command on the built binary.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

/// Kills the child process when the test ends, even when an assert fails first.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        // An error means the process has already exited.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn mock_prints_address_and_serves() {
    let mut child = Command::new(assert_cmd::cargo::cargo_bin!("volley"))
        .args(["mock", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("volley starts");
    let stdout = child.stdout.take().expect("piped stdout");
    let child = KillOnDrop(child);

    // Read the first line on a thread, so that a binary that never prints fails the test
    // after a timeout instead of hanging it.
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let result = BufReader::new(stdout).read_line(&mut line).map(|_| line);
        let _ = sender.send(result);
    });
    let line = receiver
        .recv_timeout(Duration::from_secs(60))
        .expect("volley mock prints a line within 60 s")
        .expect("stdout is readable");
    let base_url = line
        .trim_end()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
    let port: u16 = base_url
        .strip_prefix("http://127.0.0.1:")
        .and_then(|port| port.parse().ok())
        .unwrap_or_else(|| panic!("unexpected address {base_url:?}"));
    assert_ne!(port, 0);

    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let response = client
        .post(format!("{base_url}/oauth/token"))
        .basic_auth(
            volley::mock::DEMO_CLIENT_ID,
            Some(volley::mock::DEMO_CLIENT_SECRET),
        )
        .form(&[("grant_type", "client_credentials")])
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .expect("token request");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token_type"], "bearer");
    drop(child);
}

#[test]
fn mock_help_lists_every_flag() {
    let expected = [
        ("--listen", "[default: 127.0.0.1:8089]"),
        ("--rate-limit", "[default: 300/60s]"),
        ("--latency-base", "20ms"),
        ("--latency-jitter", "duration"),
        ("--latency-per-kib", "KiB"),
        ("--require-body-org-id", "[default: true]"),
        ("--token-lifetime", "[default: 86400s]"),
        ("--body-limit", "bytes"),
        ("--seed", "[default: 0]"),
        ("--error-rate", "from 0 to 1"),
        ("--reset-rate", "from 0 to 1"),
        ("--stall-every", "10s"),
        ("--stall-for", "duration"),
        ("--header-read-timeout", "[default: 10s]"),
        ("--client", "ID:SECRET:HOME_ORG"),
        ("--action", "[default: demo-action]"),
    ];
    let output = assert_cmd::cargo::cargo_bin_cmd!("volley")
        .args(["mock", "--help"])
        .assert()
        .success();
    let help = String::from_utf8(output.get_output().stdout.clone()).unwrap();
    for (flag, detail) in expected {
        // Flag entries start on their own line, indented by six spaces.
        let line_start = help
            .find(&format!("\n      {flag} "))
            .unwrap_or_else(|| panic!("{flag} missing from help:\n{help}"));
        let entry_end = help[line_start + 1..]
            .find("\n      --")
            .map_or(help.len(), |offset| line_start + 1 + offset);
        let entry = &help[line_start..entry_end];
        assert!(entry.contains(detail), "{flag} lacks {detail:?}: {entry}");
    }
}

#[test]
fn mock_rejects_invalid_share() {
    let output = assert_cmd::cargo::cargo_bin_cmd!("volley")
        .args(["mock", "--listen", "127.0.0.1:0", "--error-rate", "1.5"])
        .assert()
        .failure();
    let stderr = String::from_utf8_lossy(&output.get_output().stderr).into_owned();
    assert!(stderr.contains("error_rate 1.5"), "{stderr}");
    assert!(
        stderr.contains("0.05"),
        "the message shows an example value: {stderr}"
    );
}
