//! Helpers for the runner's end-to-end tests: the real binary, a mock on a free loopback
//! port, scenario files in a temporary folder, and the reports read back with the csv crate.

#![allow(dead_code)] // Each test file uses a different subset.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Output;

use volley::mock::{self, MockConfig, MockServer};

/// Starts a mock on 127.0.0.1 with a free port and the defaults changed by `change`.
pub async fn start_mock(change: impl FnOnce(&mut MockConfig)) -> MockServer {
    let mut config = MockConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        ..MockConfig::default()
    };
    change(&mut config);
    mock::spawn(config).await.expect("mock server starts")
}

/// Runs the volley binary with `args` off the async runtime and returns its output.
pub async fn volley(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || volley_blocking(&args))
        .await
        .expect("volley runs")
}

/// Runs the volley binary with `args` and returns its output.
pub fn volley_blocking(args: &[String]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_volley"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("the volley binary starts")
}

/// Writes `text` as `name` in `dir` and returns its path.
pub fn write_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write test file");
    path
}

/// Reads a CSV report into one map per row, keyed by column name.
pub fn read_csv(path: &Path) -> Vec<HashMap<String, String>> {
    let mut reader =
        csv::Reader::from_path(path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    let headers = reader.headers().expect("CSV header").clone();
    reader
        .records()
        .map(|record| {
            let record = record.expect("CSV row");
            headers
                .iter()
                .zip(record.iter())
                .map(|(name, value)| (name.to_string(), value.to_string()))
                .collect()
        })
        .collect()
}

/// Returns a column of a row as a number.
pub fn number(row: &HashMap<String, String>, column: &str) -> f64 {
    row.get(column)
        .unwrap_or_else(|| panic!("no column {column}"))
        .parse()
        .unwrap_or_else(|_| panic!("column {column} is not a number: {:?}", row[column]))
}

/// Sums a column over all rows.
pub fn column_sum(rows: &[HashMap<String, String>], column: &str) -> u64 {
    rows.iter().map(|row| number(row, column) as u64).sum()
}

/// Returns stdout and stderr as one string, for assertion messages.
pub fn describe(output: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A scenario against `base_url` with the demo client, an org header, two variants (with and
/// without `org_id`), a data file, and `load` as the `[load]` table body.
pub fn org_scenario(base_url: &str, load: &str) -> String {
    format!(
        r#"
name = "e2e"

[vars]
sub_org = "{sub}"

[target]
url = "{base_url}"

[auth]
type = "oauth2-client-credentials"
token_url = "{{target}}/oauth/token"
client_id = "demo-client"
client_secret = "${{E2E_SECRET:-demo-secret}}"

[request]
path = "/api/v2/integrations/actions/demo-action/execute"
headers = {{ "content-type" = "application/json", "x-genesys-org-id" = "{{{{sub_org}}}}" }}
body = '{{"customerId": "{{{{row.customer_id}}}}", "name": "{{{{row.name | json}}}}"}}'

[data]
file = "rows.csv"

[[variant]]
name = "without-org-id"

[[variant]]
name = "with-org-id"
body = '{{"customerId": "{{{{row.customer_id}}}}", "name": "{{{{row.name | json}}}}", "org_id": "{{{{sub_org}}}}"}}'

[load]
{load}
"#,
        sub = mock::DEMO_SUB_ORG
    )
}

/// Data rows with leading zeros, a quoted comma and an escaped quote.
pub const ROWS: &str = "customer_id,name\n0042,\"Smith, J\"\n0007,\"O\"\"Brien\"\n1000,Plain\n";

/// A scenario against `base_url` with the demo client sending bodies with the demo client's
/// home organization, and `load` as the `[load]` table body.
pub fn home_org_scenario(name: &str, base_url: &str, load: &str) -> String {
    format!(
        r#"
name = "{name}"
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
{load}
"#,
        home = mock::DEMO_HOME_ORG
    )
}

/// Returns the arguments of `volley run SCENARIO --out OUT`.
pub fn run_args(scenario: &Path, out: &Path) -> Vec<String> {
    vec![
        "run".to_string(),
        scenario.display().to_string(),
        "--out".to_string(),
        out.display().to_string(),
    ]
}
