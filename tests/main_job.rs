//! The shipped scenario against the embedded mock, shortened: the story the project exists to
//! tell must show in summary.csv, and the counts must equal the mock's own.

mod support;

use std::path::Path;

use support::*;

#[test]
fn shipped_scenario_tells_the_org_id_story() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("report");
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/data-action-org-id.toml");
    let output = volley_blocking(&[
        "run".into(),
        scenario.display().to_string(),
        "--set".into(),
        "load.duration=2s".into(),
        "--set".into(),
        "load.concurrency=[1,64]".into(),
        "--set".into(),
        "load.ramp_up=0s".into(),
        "--set".into(),
        "load.pause=1s".into(),
        "--out".into(),
        out.display().to_string(),
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("with-master-org-id"), "{stdout}");
    assert!(
        stdout.contains(&format!("report: {}", out.display())),
        "{stdout}"
    );

    let rows = read_csv(&out.join("summary.csv"));
    assert_eq!(rows.len(), 6);
    let cell = |variant: &str, concurrency: &str| {
        rows.iter()
            .find(|row| row["variant"] == variant && row["concurrency"] == concurrency)
            .unwrap_or_else(|| panic!("no cell {variant} c={concurrency}"))
    };
    for variant in ["without-org-id", "with-master-org-id"] {
        let quiet = cell(variant, "1");
        assert_eq!(quiet["ok"], "0", "{variant} never succeeds");
        assert_eq!(
            number(quiet, "rate_403"),
            1.0,
            "{variant} at c=1 fails with 403 only"
        );
    }
    let with_quiet = cell("with-org-id", "1");
    assert_eq!(number(with_quiet, "rate_403"), 0.0);
    assert_eq!(
        number(with_quiet, "rate_429"),
        0.0,
        "one worker stays under the limit"
    );
    assert!(number(with_quiet, "ok") > 0.0);
    let with_busy = cell("with-org-id", "64");
    assert!(
        number(with_busy, "rate_429") > 0.2,
        "64 workers push past the limit: {with_busy:?}"
    );
    assert!(number(with_busy, "ok") > 0.0);

    let extra = number(with_quiet, "req_bytes_mean")
        - number(cell("without-org-id", "1"), "req_bytes_mean");
    // `, "org_id": "<36-character UUID>"` adds 50 bytes; rows differ a little in length.
    assert!((extra - 50.0).abs() < 3.0, "org_id adds {extra} bytes");

    let run: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("run.json")).unwrap()).unwrap();
    let execute = &run["mock_stats"]["execute"];
    let status = |code: &str| execute["responses"][code].as_u64().unwrap_or(0);
    assert_eq!(column_sum(&rows, "ok"), status("200"));
    assert_eq!(column_sum(&rows, "forbidden"), status("403"));
    assert_eq!(column_sum(&rows, "throttled"), status("429"));
    assert_eq!(
        column_sum(&rows, "requests"),
        execute["requests"].as_u64().unwrap()
    );
    assert_eq!(run["token_requests"]["requests"].as_u64(), Some(1));
    let text = std::fs::read_to_string(out.join("run.json")).unwrap();
    assert!(
        !text.contains("demo-secret"),
        "run.json must not carry the client secret"
    );

    let series = read_csv(&out.join("timeseries.csv"));
    assert_eq!(
        column_sum(&series, "requests"),
        column_sum(&rows, "requests")
    );
    let errors = read_csv(&out.join("errors.csv"));
    assert!(
        errors
            .iter()
            .any(|row| row["code"] == "not.authorized" && row["status"] == "403")
    );
    assert!(
        errors
            .iter()
            .any(|row| row["code"] == "too.many.requests" && !row["retry_after"].is_empty())
    );
}
