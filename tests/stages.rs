//! `load.stages` ramps concurrency or rate linearly in both load models.

mod support;

use support::*;

fn scenario(base_url: &str, load: &str) -> String {
    home_org_scenario("stages", base_url, load)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_stages_send_the_planned_requests() {
    let server = start_mock(|config| config.rate_limit = "100000/1s".parse().unwrap()).await;
    let dir = tempfile::tempdir().unwrap();
    // Ramp from 0 to 100 req/s over 2 s (100 requests), hold 100 req/s for 1 s (100 more).
    let load = "model = \"open\"\nmax_in_flight = 20\nstages = [{ duration = \"2s\", target = 100 }, { duration = \"1s\", target = 100 }]";
    let path = write_file(dir.path(), "s.toml", &scenario(&server.base_url(), load));
    let out = dir.path().join("report");
    let output = volley(vec![
        "run".into(),
        path.display().to_string(),
        "--out".into(),
        out.display().to_string(),
    ])
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let rows = read_csv(&out.join("summary.csv"));
    let row = &rows[0];
    assert_eq!(row["requests"], "200", "{row:?}");
    assert_eq!(server.stats().execute_status(200), 200);
    let series = read_csv(&out.join("timeseries.csv"));
    let first = number(&series[0], "requests");
    let third = number(&series[2], "requests");
    // The first second of the ramp plans 25 requests, the held third second 100.
    assert!((20.0..=30.0).contains(&first), "first second sent {first}");
    assert!((95.0..=105.0).contains(&third), "third second sent {third}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_stages_add_workers_over_time() {
    let server = start_mock(|config| {
        config.rate_limit = "100000/1s".parse().unwrap();
        config.latency.base = "50ms".parse().unwrap();
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let load = "stages = [{ duration = \"2s\", target = 8 }, { duration = \"1s\", target = 8 }]";
    let path = write_file(dir.path(), "s.toml", &scenario(&server.base_url(), load));
    let out = dir.path().join("report");
    let output = volley(vec![
        "run".into(),
        path.display().to_string(),
        "--out".into(),
        out.display().to_string(),
    ])
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let row = &read_csv(&out.join("summary.csv"))[0];
    assert_eq!(row["concurrency"], "8");
    let series = read_csv(&out.join("timeseries.csv"));
    let first = number(&series[0], "requests");
    let third = number(&series[2], "requests");
    // About 2 workers on average in the first second, 8 in the third, at 20 requests each.
    assert!(third > first * 2.0, "first {first}, third {third}");
    assert_eq!(
        column_sum(&series, "requests"),
        number(row, "requests") as u64
    );
}

#[test]
fn stages_conflict_with_fixed_load() {
    let dir = tempfile::tempdir().unwrap();
    let load = "concurrency = 4\nduration = \"5s\"\nstages = [{ duration = \"2s\", target = 8 }]";
    let path = write_file(dir.path(), "s.toml", &scenario("http://127.0.0.1:9", load));
    let output = volley_blocking(&["validate".into(), path.display().to_string()]);
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("load.duration"), "{stderr}");
    assert!(stderr.contains("load.concurrency"), "{stderr}");
    assert!(stderr.contains("stages set the load"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_rate_ends_on_time() {
    let server = start_mock(|config| config.rate_limit = "100000/1s".parse().unwrap()).await;
    for on_saturation in ["drop", "queue"] {
        let dir = tempfile::tempdir().unwrap();
        let load = format!(
            "model = \"open\"\nrate = 1e12\nmax_in_flight = 4\nduration = \"1s\"\non_saturation = \"{on_saturation}\""
        );
        let path = write_file(dir.path(), "s.toml", &scenario(&server.base_url(), &load));
        let out = dir.path().join("report");
        let started = std::time::Instant::now();
        let output = volley(run_args(&path, &out)).await;
        assert_eq!(
            output.status.code(),
            Some(0),
            "{on_saturation}: {}",
            describe(&output)
        );
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "{on_saturation}: took {:?}",
            started.elapsed()
        );
        let row = &read_csv(&out.join("summary.csv"))[0];
        assert!(
            number(row, "dropped") > 1e9,
            "{on_saturation}: the unsent plan is dropped: {row:?}"
        );
        assert!(number(row, "duration_s") < 3.0, "{on_saturation}: {row:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("warning: cell 1 reached"),
            "{on_saturation}: {stderr}"
        );
    }
}
