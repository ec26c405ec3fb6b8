//! SIGINT and SIGTERM stop sending, let requests in flight finish for the grace period,
//! write complete reports and exit 130 or 143; a second SIGINT exits at once.

mod support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::*;

fn scenario(base_url: &str, load: &str) -> String {
    home_org_scenario("interrupts", base_url, load)
}

fn spawn(path: &Path, out: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_volley"))
        .args([
            "run",
            &path.display().to_string(),
            "--out",
            &out.display().to_string(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("volley starts")
}

/// Waits until the run has written `rows` rows of timeseries.csv.
fn wait_for_seconds(out: &Path, rows: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let written = std::fs::read_to_string(out.join("timeseries.csv"))
            .map(|text| text.lines().count().saturating_sub(1))
            .unwrap_or(0);
        if written >= rows {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the run wrote {written} seconds in 30 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Waits for the child to exit within `limit` and returns its output.
fn finish(child: Child, limit: Duration) -> (std::process::Output, Duration) {
    let started = Instant::now();
    let output = std::thread::scope(|scope| {
        let waiter = scope.spawn(move || child.wait_with_output().unwrap());
        while !waiter.is_finished() {
            assert!(
                started.elapsed() < limit + Duration::from_secs(30),
                "volley did not exit"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        waiter.join().unwrap()
    });
    (output, started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_writes_complete_reports_and_exits_130() {
    let server = start_mock(|config| {
        config.rate_limit = "100000/1s".parse().unwrap();
        config.latency.base = "100ms".parse().unwrap();
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let load = "concurrency = [4, 8]\nduration = \"60s\"";
    let path = write_file(dir.path(), "s.toml", &scenario(&server.base_url(), load));
    let out = dir.path().join("report");
    let child = spawn(&path, &out);
    let out_clone = out.clone();
    tokio::task::spawn_blocking(move || wait_for_seconds(&out_clone, 2))
        .await
        .unwrap();
    signal(&child, "INT");
    let (output, took) =
        tokio::task::spawn_blocking(move || finish(child, Duration::from_secs(10)))
            .await
            .unwrap();
    assert_eq!(output.status.code(), Some(130), "{}", describe(&output));
    assert!(took < Duration::from_secs(10), "stopping took {took:?}");

    let rows = read_csv(&out.join("summary.csv"));
    assert_eq!(rows.len(), 1, "the second cell never starts");
    assert_eq!(rows[0]["interrupted"], "true");
    assert_eq!(
        rows[0]["cancelled"], "0",
        "100 ms answers finish within the grace period"
    );
    let stats = server.stats();
    assert_eq!(number(&rows[0], "ok") as u64, stats.execute_status(200));
    assert_eq!(
        number(&rows[0], "requests") as u64,
        stats.execute_requests()
    );
    let series = read_csv(&out.join("timeseries.csv"));
    assert_eq!(
        column_sum(&series, "requests"),
        number(&rows[0], "requests") as u64
    );
    let run: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("run.json")).unwrap()).unwrap();
    assert_eq!(run["interrupted"], true);
    assert_eq!(run["exit_code"], 130);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("interrupted before the cell's end"),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_cancels_requests_after_grace_and_exits_143() {
    let server = start_mock(|config| {
        config.rate_limit = "100000/1s".parse().unwrap();
        config.latency.base = "20s".parse().unwrap();
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let load = "concurrency = 3\nduration = \"60s\"\ngrace = \"1s\"\ntimeout = \"60s\"";
    let path = write_file(dir.path(), "s.toml", &scenario(&server.base_url(), load));
    let out = dir.path().join("report");
    let child = spawn(&path, &out);
    let out_clone = out.clone();
    tokio::task::spawn_blocking(move || wait_for_seconds(&out_clone, 1))
        .await
        .unwrap();
    signal(&child, "TERM");
    let (output, took) =
        tokio::task::spawn_blocking(move || finish(child, Duration::from_secs(10)))
            .await
            .unwrap();
    assert_eq!(output.status.code(), Some(143), "{}", describe(&output));
    assert!(took < Duration::from_secs(10), "stopping took {took:?}");
    let row = &read_csv(&out.join("summary.csv"))[0];
    assert_eq!(row["cancelled"], "3", "{row:?}");
    let run: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("run.json")).unwrap()).unwrap();
    assert_eq!(
        run["exit_code"], 143,
        "run.json records the SIGTERM exit code"
    );
    assert_eq!(row["requests"], "3");
    assert_eq!(row["interrupted"], "true");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_sigint_exits_at_once() {
    let server = start_mock(|config| {
        config.rate_limit = "100000/1s".parse().unwrap();
        config.latency.base = "20s".parse().unwrap();
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let load = "concurrency = 2\nduration = \"60s\"\ngrace = \"30s\"\ntimeout = \"60s\"";
    let path = write_file(dir.path(), "s.toml", &scenario(&server.base_url(), load));
    let out = dir.path().join("report");
    let child = spawn(&path, &out);
    let out_clone = out.clone();
    tokio::task::spawn_blocking(move || wait_for_seconds(&out_clone, 2))
        .await
        .unwrap();
    signal(&child, "INT");
    std::thread::sleep(Duration::from_millis(300));
    signal(&child, "INT");
    let (output, took) = tokio::task::spawn_blocking(move || finish(child, Duration::from_secs(5)))
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(130), "{}", describe(&output));
    assert!(
        took < Duration::from_secs(5),
        "a second SIGINT must not wait for the 30 s grace: {took:?}"
    );
    let series = read_csv(&out.join("timeseries.csv"));
    assert!(series.len() >= 2, "timeseries.csv keeps every full second");
    assert!(series.iter().all(|row| row["cell"] == "1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_keeps_every_flushed_second() {
    let server = start_mock(|config| {
        config.rate_limit = "100000/1s".parse().unwrap();
        config.latency.base = "10ms".parse().unwrap();
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let load = "concurrency = 4\nduration = \"60s\"";
    let path = write_file(dir.path(), "s.toml", &scenario(&server.base_url(), load));
    let out = dir.path().join("report");
    let mut child = spawn(&path, &out);
    let out_clone = out.clone();
    tokio::task::spawn_blocking(move || wait_for_seconds(&out_clone, 3))
        .await
        .unwrap();
    signal(&child, "KILL");
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert_eq!(
        status.code(),
        None,
        "SIGKILL ends the process without an exit code"
    );

    let series = read_csv(&out.join("timeseries.csv"));
    assert!(series.len() >= 3, "{} seconds survived", series.len());
    for (index, row) in series.iter().enumerate() {
        assert_eq!(
            number(row, "second") as usize,
            index + 1,
            "seconds are contiguous"
        );
        assert!(
            number(row, "requests") > 0.0,
            "second {} has requests",
            index + 1
        );
    }
    let intervals = volley::report::hlog::read(&out.join("latency.hlog")).unwrap();
    assert!(
        intervals.len() >= series.len(),
        "latency.hlog keeps a line per flushed second: {} lines, {} seconds",
        intervals.len(),
        series.len()
    );
    let run: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("run.json")).unwrap()).unwrap();
    assert!(
        run["exit_code"].is_null(),
        "a killed run must not claim an exit code: {}",
        run["exit_code"]
    );
    assert!(run["finished"].is_null(), "{}", run["finished"]);
}
