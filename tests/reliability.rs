//! Nothing lost, nothing invented: a mixed run of 200,000 requests against the mock with
//! faults on must report exactly what the mock counted, per outcome and per second.

mod support;

use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_faults_match_mock_counts() {
    let server = start_mock(|config| {
        config.rate_limit = "1500/1s".parse().unwrap();
        config.error_rate = 0.03;
        config.reset_rate = 0.01;
        config.stall_every = "2s".parse().unwrap();
        config.stall_for = "200ms".parse().unwrap();
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    write_file(dir.path(), "rows.csv", ROWS);
    let load = "concurrency = 32\niterations = 100000\npause = \"0s\"\ntimeout = \"10s\"";
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
    let stats = server.stats();
    assert_eq!(column_sum(&rows, "requests"), 200_000);
    assert_eq!(column_sum(&rows, "requests"), stats.execute_requests());
    assert_eq!(column_sum(&rows, "ok"), stats.execute_status(200));
    assert_eq!(column_sum(&rows, "forbidden"), stats.execute_status(403));
    assert_eq!(column_sum(&rows, "throttled"), stats.execute_status(429));
    assert_eq!(column_sum(&rows, "server_error"), stats.execute_status(500));
    assert_eq!(column_sum(&rows, "connect_error"), stats.execute_resets());
    assert_eq!(column_sum(&rows, "client_error"), 0);
    assert_eq!(column_sum(&rows, "timeout"), 0);
    assert_eq!(column_sum(&rows, "other_error"), 0);
    for (name, count) in [
        ("403", stats.execute_status(403)),
        ("429", stats.execute_status(429)),
        ("500", stats.execute_status(500)),
        ("reset", stats.execute_resets()),
    ] {
        assert!(count > 0, "the fault mix must produce {name}s");
    }

    let series = read_csv(&out.join("timeseries.csv"));
    for row in &rows {
        let cell = &row["cell"];
        let seconds: Vec<_> = series
            .iter()
            .filter(|second| &second["cell"] == cell)
            .cloned()
            .collect();
        for column in [
            "requests",
            "ok",
            "forbidden",
            "throttled",
            "server_error",
            "connect_error",
        ] {
            assert_eq!(
                column_sum(&seconds, column),
                number(row, column) as u64,
                "cell {cell} {column}: seconds vs summary"
            );
        }
        assert!(
            number(row, "p99_ms") <= number(row, "max_ms"),
            "a percentile never exceeds the maximum"
        );
    }
}
