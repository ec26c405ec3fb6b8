//! `volley run --jtl` against a mock on a free loopback port: results.jtl must hold one row per
//! request with an outcome, in JMeter's default CSV columns, and agree with the mock's own
//! counts and with summary.csv.

mod support;

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use support::*;

const HEADER: &str = "timeStamp,elapsed,label,responseCode,responseMessage,threadName,dataType,success,failureMessage,bytes,sentBytes,grpThreads,allThreads,URL,Latency,IdleTime,Connect";

/// Reads the header line and the rows of results.jtl, checking that each row has 17 fields.
fn read_jtl(out: &Path) -> (String, Vec<HashMap<String, String>>) {
    let path = out.join("results.jtl");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    let header = text.lines().next().unwrap_or_default().to_string();
    let mut reader = csv::Reader::from_path(&path).unwrap();
    let names = reader.headers().unwrap().clone();
    let rows = reader
        .records()
        .enumerate()
        .map(|(index, record)| {
            let record = record.unwrap_or_else(|error| panic!("row {}: {error}", index + 1));
            assert_eq!(record.len(), 17, "row {} has 17 fields", index + 1);
            names
                .iter()
                .zip(record.iter())
                .map(|(name, value)| (name.to_string(), value.to_string()))
                .collect()
        })
        .collect();
    (header, rows)
}

fn count_code(rows: &[HashMap<String, String>], code: &str) -> u64 {
    rows.iter()
        .filter(|row| row["responseCode"] == code)
        .count() as u64
}

fn epoch_ms(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

fn jtl_args(scenario: &Path, out: &Path) -> Vec<String> {
    let mut args = run_args(scenario, out);
    args.push("--jtl".to_string());
    args.push("--quiet".to_string());
    args
}

/// Returns a scenario without authentication, for targets that are not the mock.
fn plain_scenario(base_url: &str, load: &str) -> String {
    format!(
        r#"
name = "jtl"
[target]
url = "{base_url}"
[request]
path = "/api/v2/integrations/actions/demo-action/execute"
body = '{{}}'
[load]
{load}
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_match_mock_and_summary() {
    let server = start_mock(|config| {
        config.rate_limit = "60/1s".parse().unwrap();
        config.latency.base = "2ms".parse().unwrap();
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
    let before = epoch_ms(SystemTime::now());
    let output = volley(jtl_args(&scenario, &out)).await;
    let after = epoch_ms(SystemTime::now());
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));

    let (header, rows) = read_jtl(&out);
    assert_eq!(header, HEADER);
    let stats = server.stats();
    let summary = read_csv(&out.join("summary.csv"));
    assert_eq!(rows.len() as u64, stats.execute_requests(), "rows vs mock");
    assert_eq!(
        rows.len() as u64,
        column_sum(&summary, "requests"),
        "rows vs summary.csv"
    );
    for (status, column) in [(200, "ok"), (403, "forbidden"), (429, "throttled")] {
        let jtl = count_code(&rows, &status.to_string());
        assert_eq!(jtl, stats.execute_status(status), "{status} rows vs mock");
        assert_eq!(
            jtl,
            column_sum(&summary, column),
            "{status} rows vs summary.csv {column}"
        );
    }
    assert!(count_code(&rows, "429") > 0, "the 60/1s limit throttles");

    for (cell, summary_row) in summary.iter().enumerate() {
        let cell = cell + 1;
        let in_cell = rows
            .iter()
            .filter(|row| row["threadName"].starts_with(&format!("cell {cell} ")))
            .count();
        assert_eq!(
            in_cell as f64,
            number(summary_row, "requests"),
            "cell {cell} rows"
        );
        assert!(
            rows.iter()
                .any(|row| row["label"] == summary_row["variant"])
        );
    }

    let mut last_by_thread: HashMap<&str, u64> = HashMap::new();
    for row in &rows {
        let start = number(row, "timeStamp") as u64;
        assert!(
            start >= before && start <= after,
            "timeStamp {start} outside the run {before}..{after}"
        );
        let thread = row["threadName"].as_str();
        if let Some(previous) = last_by_thread.insert(thread, start) {
            assert!(
                start >= previous,
                "{thread}: timeStamp {start} after {previous}"
            );
        }
        assert_eq!(
            row["success"] == "true",
            row["responseCode"] == "200",
            "{row:?}"
        );
        assert!(number(row, "Latency") <= number(row, "elapsed"), "{row:?}");
        assert!(number(row, "bytes") > 0.0, "{row:?}");
        assert_eq!(row["dataType"], "text");
        assert!(
            row["URL"].ends_with("/api/v2/integrations/actions/demo-action/execute"),
            "{row:?}"
        );
        assert!(number(row, "grpThreads") >= 1.0, "{row:?}");
        assert_eq!(row["grpThreads"], row["allThreads"]);
    }
    let text = std::fs::read_to_string(out.join("results.jtl")).unwrap();
    assert!(!text.contains("demo-secret"), "the client secret leaked");
    assert!(
        !text.to_ascii_lowercase().contains("bearer"),
        "a token leaked"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_variant_name_stays_one_line() {
    let server = start_mock(|config| config.rate_limit = "100000/1s".parse().unwrap()).await;
    let dir = tempfile::tempdir().unwrap();
    let scenario = format!(
        "{}\n[[variant]]\nname = \"a, \\\"b\\\"\\nc\"\n",
        home_org_scenario(
            "odd",
            &server.base_url(),
            "concurrency = 2\niterations = 40"
        )
    );
    let scenario = write_file(dir.path(), "s.toml", &scenario);
    let out = dir.path().join("report");
    let output = volley(jtl_args(&scenario, &out)).await;
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));

    let (_, rows) = read_jtl(&out);
    assert_eq!(rows.len(), 40);
    assert!(
        rows.iter().all(|row| row["label"] == "a, \"b\" c"),
        "{rows:?}"
    );
    let text = std::fs::read_to_string(out.join("results.jtl")).unwrap();
    assert_eq!(text.lines().count(), rows.len() + 1, "one line per row");
    assert!(text.contains(",\"a, \"\"b\"\" c\","), "the label is quoted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_connections_are_non_http_rows() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let scenario = write_file(
        dir.path(),
        "s.toml",
        &plain_scenario(
            &format!("http://127.0.0.1:{port}"),
            "concurrency = 2\niterations = 50",
        ),
    );
    let out = dir.path().join("report");
    let output = volley(jtl_args(&scenario, &out)).await;
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));

    let (_, rows) = read_jtl(&out);
    let summary = read_csv(&out.join("summary.csv"));
    assert_eq!(rows.len(), 50);
    assert_eq!(rows.len() as u64, column_sum(&summary, "connect_error"));
    for row in &rows {
        assert_eq!(
            row["responseCode"],
            "Non HTTP response code: org.apache.http.conn.HttpHostConnectException"
        );
        assert_eq!(
            row["responseMessage"],
            format!(
                "Non HTTP response message: Connect to 127.0.0.1:{port} failed: Connection refused"
            )
        );
        assert_eq!(row["success"], "false");
        assert_eq!(row["bytes"], "0");
        assert_eq!(row["Latency"], "0");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_are_socket_timeout_rows() {
    let server = start_mock(|config| {
        config.rate_limit = "100000/1s".parse().unwrap();
        config.latency.base = "2s".parse().unwrap();
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let load = "concurrency = 2\niterations = 4\ntimeout = \"100ms\"";
    let scenario = write_file(
        dir.path(),
        "s.toml",
        &home_org_scenario("timeouts", &server.base_url(), load),
    );
    let out = dir.path().join("report");
    let output = volley(jtl_args(&scenario, &out)).await;

    let (_, rows) = read_jtl(&out);
    assert_eq!(rows.len(), 4, "{}", describe(&output));
    let summary = read_csv(&out.join("summary.csv"));
    assert_eq!(column_sum(&summary, "timeout"), 4);
    for row in &rows {
        assert_eq!(
            row["responseCode"],
            "Non HTTP response code: java.net.SocketTimeoutException"
        );
        assert_eq!(
            row["responseMessage"],
            "Non HTTP response message: Read timed out"
        );
        let elapsed = number(row, "elapsed");
        assert!((100.0..1000.0).contains(&elapsed), "{row:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_requests_have_no_rows() {
    let server = start_mock(|config| {
        config.rate_limit = "100000/1s".parse().unwrap();
        config.latency.base = "50ms".parse().unwrap();
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let load = "model = \"open\"\nrate = 100\nmax_in_flight = 1\nduration = \"1s\"\non_saturation = \"drop\"";
    let scenario = write_file(
        dir.path(),
        "s.toml",
        &home_org_scenario("dropped", &server.base_url(), load),
    );
    let out = dir.path().join("report");
    let output = volley(jtl_args(&scenario, &out)).await;
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));

    let (_, rows) = read_jtl(&out);
    let summary = read_csv(&out.join("summary.csv"));
    assert!(column_sum(&summary, "dropped") > 0, "{summary:?}");
    assert_eq!(rows.len() as u64, column_sum(&summary, "requests"));
    assert_eq!(rows.len() as u64, server.stats().execute_requests());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capacity_steps_get_rows() {
    let server = start_mock(|config| config.rate_limit = "100000/1s".parse().unwrap()).await;
    let dir = tempfile::tempdir().unwrap();
    let scenario = write_file(
        dir.path(),
        "s.toml",
        &home_org_scenario(
            "capacity",
            &server.base_url(),
            "model = \"open\"\nrate = 10\nduration = \"1s\"",
        ),
    );
    let out = dir.path().join("report");
    let args: Vec<String> = [
        "capacity",
        &scenario.display().to_string(),
        "--step-duration",
        "1s",
        "--start",
        "10",
        "--max-rate",
        "40",
        "--quiet",
        "--jtl",
        "--out",
        &out.display().to_string(),
    ]
    .iter()
    .map(|arg| arg.to_string())
    .collect();
    let output = volley(args).await;
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));

    let (header, rows) = read_jtl(&out);
    assert_eq!(header, HEADER);
    let summary = read_csv(&out.join("summary.csv"));
    assert!(summary.len() >= 2, "{summary:?}");
    assert_eq!(rows.len() as u64, column_sum(&summary, "requests"));
    assert_eq!(rows.len() as u64, server.stats().execute_requests());
}

fn spawn(scenario: &Path, out: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_volley"))
        .args(jtl_args(scenario, out))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("volley starts")
}

/// Waits until the run has written `seconds` rows of timeseries.csv.
fn wait_for_seconds(out: &Path, seconds: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let written = std::fs::read_to_string(out.join("timeseries.csv"))
            .map(|text| text.lines().count().saturating_sub(1))
            .unwrap_or(0);
        if written >= seconds {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the run wrote {written} seconds in 30 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Sends signal `name` to `child`, waits at most 30 s for it to exit and returns its output.
fn interrupt(child: Child, name: &str) -> std::process::Output {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let started = Instant::now();
    std::thread::scope(|scope| {
        let waiter = scope.spawn(move || child.wait_with_output().unwrap());
        while !waiter.is_finished() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "volley did not exit"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        waiter.join().unwrap()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_is_complete_after_sigint() {
    let server = start_mock(|config| {
        config.rate_limit = "100000/1s".parse().unwrap();
        config.latency.base = "100ms".parse().unwrap();
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let load = "concurrency = 4\nduration = \"60s\"";
    let scenario = write_file(
        dir.path(),
        "s.toml",
        &home_org_scenario("sigint", &server.base_url(), load),
    );
    let out = dir.path().join("report");
    let child = spawn(&scenario, &out);
    let waited = out.clone();
    tokio::task::spawn_blocking(move || wait_for_seconds(&waited, 2))
        .await
        .unwrap();
    let output = tokio::task::spawn_blocking(move || interrupt(child, "INT"))
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(130), "{}", describe(&output));

    let (_, rows) = read_jtl(&out);
    let summary = read_csv(&out.join("summary.csv"));
    assert_eq!(rows.len() as u64, column_sum(&summary, "requests"));
    assert_eq!(rows.len() as u64, server.stats().execute_requests());
    assert!(rows.len() >= 40, "{} rows in 2 s", rows.len());
    assert!(rows.iter().all(|row| row["responseCode"] == "200"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_requests_get_rows_after_sigterm() {
    let server = start_mock(|config| {
        config.rate_limit = "100000/1s".parse().unwrap();
        config.latency.base = "20s".parse().unwrap();
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let load = "concurrency = 3\nduration = \"60s\"\ngrace = \"1s\"\ntimeout = \"60s\"";
    let scenario = write_file(
        dir.path(),
        "s.toml",
        &home_org_scenario("sigterm", &server.base_url(), load),
    );
    let out = dir.path().join("report");
    let child = spawn(&scenario, &out);
    let waited = out.clone();
    tokio::task::spawn_blocking(move || wait_for_seconds(&waited, 1))
        .await
        .unwrap();
    let output = tokio::task::spawn_blocking(move || interrupt(child, "TERM"))
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(143), "{}", describe(&output));

    let (_, rows) = read_jtl(&out);
    let summary = read_csv(&out.join("summary.csv"));
    assert_eq!(column_sum(&summary, "cancelled"), 3);
    assert_eq!(rows.len(), 3);
    for row in &rows {
        assert_eq!(
            row["responseCode"],
            "Non HTTP response code: java.io.InterruptedIOException"
        );
        assert_eq!(row["success"], "false");
        assert!(number(row, "elapsed") >= 1000.0, "{row:?}");
    }
}
