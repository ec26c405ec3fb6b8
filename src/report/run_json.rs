//! `run.json`: what ran, where, when, and with which verdicts; secrets redacted.

use serde::Serialize;
use serde_json::Value;

use crate::auth::TokenSummary;
use crate::scenario::{Auth, Scenario};

/// Replaces secret values in reports and logs.
pub const REDACTED: &str = "[redacted]";

/// The whole of `run.json`.
#[derive(Debug, Serialize)]
pub struct RunRecord {
    /// volley's version.
    pub volley_version: &'static str,
    /// The scenario's name.
    pub scenario_name: String,
    /// The scenario file.
    pub scenario_file: String,
    /// The `--set` overrides given.
    pub overrides: Vec<String>,
    /// The scenario after overrides, with secrets redacted.
    pub scenario: Value,
    /// The machine's host name.
    pub host: String,
    /// The base URL requests went to.
    pub target: String,
    /// Start time, RFC 3339 UTC.
    pub started: String,
    /// End time, RFC 3339 UTC; null while the run is going on, so a folder left by a killed
    /// run does not claim to have finished.
    pub finished: Option<String>,
    /// Whether an interrupt ended the run early.
    pub interrupted: bool,
    /// Whether a failed `abort_on_fail` threshold skipped the remaining cells.
    pub aborted: bool,
    /// The process exit code the run ends with; null until the run has finished.
    pub exit_code: Option<u8>,
    /// Token request figures, kept apart from the action's.
    pub token_requests: Option<TokenSummary>,
    /// One entry per cell that ran.
    pub cells: Vec<CellRecord>,
    /// With `url = "embedded"`: what the mock itself counted, to compare with `summary.csv`.
    pub mock_stats: Option<crate::mock::StatsSnapshot>,
}

/// A cell's entry in `run.json`.
#[derive(Debug, Serialize)]
pub struct CellRecord {
    /// The cell's number.
    pub cell: usize,
    /// The variant's name.
    pub variant: String,
    /// `closed` or `open`.
    pub model: &'static str,
    /// Workers or the most requests in flight.
    pub concurrency: u32,
    /// Target rate, when there is one.
    pub target_rps: Option<f64>,
    /// Requests with an outcome.
    pub requests: u64,
    /// `pass`, `fail`, or empty without thresholds.
    pub verdict: String,
    /// The thresholds that failed.
    pub failed_thresholds: Vec<String>,
    /// Whether an interrupt cut the cell short.
    pub interrupted: bool,
}

/// Returns the secret values an auth method carries, for scrubbing output.
pub fn secrets(auth: &Auth) -> Vec<String> {
    let values = match auth {
        Auth::None => vec![],
        Auth::Bearer { token } => vec![token.clone()],
        Auth::Header { value, .. } => vec![value.clone()],
        Auth::OAuth2ClientCredentials { client_secret, .. } => vec![client_secret.clone()],
    };
    values
        .into_iter()
        .filter(|value| !value.is_empty())
        .collect()
}

/// Serialises the scenario with secrets replaced: the auth method's secret fields, header
/// values that look like credentials, and any other text containing a secret value.
pub fn redacted_scenario(scenario: &Scenario) -> Value {
    let mut value = serde_json::to_value(scenario).unwrap_or(Value::Null);
    if let Some(auth) = value.get_mut("auth").and_then(Value::as_object_mut) {
        for key in ["client_secret", "token", "value"] {
            if let Some(field) = auth.get_mut(key) {
                *field = Value::String(REDACTED.to_string());
            }
        }
    }
    redact_credential_headers(&mut value);
    let secrets = secrets(&scenario.auth);
    scrub(&mut value, &secrets);
    value
}

fn redact_credential_headers(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                if key == "headers" {
                    if let Some(headers) = child.as_object_mut() {
                        for (name, header) in headers.iter_mut() {
                            if looks_secret(name) {
                                *header = Value::String(REDACTED.to_string());
                            }
                        }
                    }
                } else {
                    redact_credential_headers(child);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact_credential_headers),
        _ => {}
    }
}

/// Returns whether a header name usually carries a credential.
pub fn looks_secret(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    ["auth", "token", "secret", "key", "cookie", "password"]
        .iter()
        .any(|word| name.contains(word))
}

fn scrub(value: &mut Value, secrets: &[String]) {
    match value {
        Value::String(text) => {
            for secret in secrets {
                if text.contains(secret.as_str()) {
                    *text = text.replace(secret.as_str(), REDACTED);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|item| scrub(item, secrets)),
        Value::Object(map) => map.values_mut().for_each(|item| scrub(item, secrets)),
        _ => {}
    }
}

/// Returns the machine's host name, or `unknown`.
pub fn host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "unknown".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn secrets_never_reach_the_record() {
        let text = r#"
name = "s"
vars = { note = "uses s3cr3t-value inside" }
[target]
url = "embedded"
[auth]
type = "oauth2-client-credentials"
token_url = "{target}/oauth/token"
client_id = "demo-client"
client_secret = "s3cr3t-value"
[request]
path = "/x"
headers = { "x-api-key" = "k3y", "content-type" = "application/json" }
[load]
concurrency = 1
duration = "1s"
"#;
        let loaded = crate::scenario::load_text(text, Path::new("s.toml"), &[]).unwrap();
        let json = redacted_scenario(&loaded.scenario).to_string();
        assert!(!json.contains("s3cr3t-value"), "{json}");
        assert!(!json.contains("k3y"), "{json}");
        assert!(json.contains("demo-client"), "{json}");
        assert!(json.contains("application/json"), "{json}");
    }
}
