//! `volley run --shard I/N` and `volley merge` end to end: shards run as separate processes
//! against one mock, and the merge must match what the mock counted, the sum of the shards'
//! histograms and a single-process run of the same load.

mod support;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Output;

use hdrhistogram::Histogram;
use support::*;
use volley::mock::{DEMO_HOME_ORG, MockServer};
use volley::report::hlog;

/// Number of data rows; every shard test sends each row once.
const ROWS_COUNT: usize = 60;

/// Builds a scenario whose body carries the row's `id` and `org`, with `load` as the body of
/// the `[load]` table and `variants` as extra `[[variant]]` tables.
fn scenario(base_url: &str, load: &str, variants: &str) -> String {
    format!(
        r#"
name = "sharded"
[target]
url = "{base_url}"
[auth]
type = "oauth2-client-credentials"
token_url = "{{target}}/oauth/token"
client_id = "demo-client"
client_secret = "demo-secret"
[request]
path = "/api/v2/integrations/actions/demo-action/execute"
body = '{{"org_id": "{{{{row.org}}}}", "id": "{{{{row.id}}}}"}}'
[data]
file = "rows.csv"
{variants}
[load]
{load}
"#
    )
}

/// Returns data rows with unique ids. Rows whose index is a multiple of `foreign_every` name
/// an organization the demo client may not act for, so the mock responds with 403.
fn rows(foreign_every: Option<usize>) -> String {
    let mut text = "id,org\n".to_string();
    for row in 0..ROWS_COUNT {
        let org = match foreign_every {
            Some(every) if row % every == 0 => "not-the-home-org",
            _ => DEMO_HOME_ORG,
        };
        text.push_str(&format!("row-{row:03},{org}\n"));
    }
    text
}

async fn start() -> MockServer {
    start_mock(|config| {
        config.rate_limit = "100000/1s".parse().unwrap();
        config.latency.base = "20ms".parse().unwrap();
        config.latency.jitter = "2ms".parse().unwrap();
    })
    .await
}

/// Runs shard `index` of `count` of `scenario` into `out`, with extra arguments.
fn shard_args(scenario: &Path, out: &Path, index: u32, count: u32, extra: &[&str]) -> Vec<String> {
    let mut args = run_args(scenario, out);
    args.extend([
        "--quiet".to_string(),
        "--shard".to_string(),
        format!("{index}/{count}"),
    ]);
    args.extend(extra.iter().map(|arg| arg.to_string()));
    args
}

/// Runs every shard of `count` at the same time as separate processes and returns the
/// report folders, checking that each exited 0.
async fn run_shards(dir: &Path, scenario: &Path, count: u32, prefix: &str) -> Vec<PathBuf> {
    let mut tasks = Vec::new();
    let mut folders = Vec::new();
    for index in 0..count {
        let out = dir.join(format!("{prefix}-{index}"));
        folders.push(out.clone());
        tasks.push(tokio::spawn(volley(shard_args(
            scenario,
            &out,
            index,
            count,
            &[],
        ))));
    }
    for task in tasks {
        let output = task.await.unwrap();
        assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    }
    folders
}

async fn merge(folders: &[PathBuf], out: &Path) -> Output {
    let mut args = vec!["merge".to_string()];
    args.extend(folders.iter().map(|folder| folder.display().to_string()));
    args.extend(["--out".to_string(), out.display().to_string()]);
    volley(args).await
}

async fn get_json(url: &str) -> serde_json::Value {
    volley::init_crypto();
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Returns the sum of each tag's histograms in a folder's latency.hlog.
fn hlog_sums(folder: &Path) -> BTreeMap<String, Histogram<u64>> {
    let intervals = hlog::read(&folder.join(hlog::FILE_NAME)).expect("latency.hlog reads");
    hlog::sum_by_tag(&intervals)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merged_shards_match_mock_and_single_run() {
    let server = start().await;
    let dir = tempfile::tempdir().unwrap();
    write_file(dir.path(), "rows.csv", &rows(None));
    // One worker per shard and 20 iterations each over its 20 rows: every row once.
    let load = "concurrency = 3\niterations = 60";
    let path = write_file(
        dir.path(),
        "s.toml",
        &scenario(&server.base_url(), load, ""),
    );
    let folders = run_shards(dir.path(), &path, 3, "shard").await;

    let stats = get_json(&format!("{}/mock/stats", server.base_url())).await;
    let recorded = get_json(&format!("{}/mock/requests", server.base_url())).await;
    let merged = dir.path().join("merged");
    let output = merge(&folders, &merged).await;
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));

    // Counts: the merge equals the mock's count of requests received and of 200 responses.
    let summary = read_csv(&merged.join("summary.csv"));
    assert_eq!(summary.len(), 1);
    let mock_requests = stats["execute"]["requests"].as_u64().unwrap();
    let mock_ok = stats["execute"]["responses"]["200"].as_u64().unwrap();
    assert_eq!(number(&summary[0], "requests") as u64, mock_requests);
    assert_eq!(number(&summary[0], "ok") as u64, mock_ok);
    assert_eq!(mock_requests, ROWS_COUNT as u64);
    assert_eq!(number(&summary[0], "concurrency"), 3.0);

    // Rows: every id sent exactly once, so no two shards shared a row.
    let ids: Vec<String> = recorded
        .as_array()
        .expect("a list of requests")
        .iter()
        .map(|request| {
            let body: serde_json::Value =
                serde_json::from_str(request["body"].as_str().unwrap()).unwrap();
            body["id"].as_str().unwrap().to_string()
        })
        .collect();
    let unique: HashSet<&String> = ids.iter().collect();
    assert_eq!(ids.len(), ROWS_COUNT, "{ids:?}");
    assert_eq!(unique.len(), ROWS_COUNT, "a row was sent twice: {ids:?}");

    // Histograms: the merged log's sum per tag is the sum of the shards' logs exactly.
    let mut expected: BTreeMap<String, Histogram<u64>> = BTreeMap::new();
    for folder in &folders {
        for (tag, histogram) in hlog_sums(folder) {
            let sum = expected
                .entry(tag)
                .or_insert_with(volley::metrics::new_histogram);
            sum.add(&histogram).unwrap();
        }
    }
    let actual = hlog_sums(&merged);
    assert_eq!(actual.keys().collect::<Vec<_>>(), ["cell1"]);
    assert_eq!(actual["cell1"], expected["cell1"]);
    assert_eq!(actual["cell1"].len(), ROWS_COUNT as u64);
    let p99 = expected["cell1"].value_at_quantile(0.99) as f64 / 1000.0;
    assert_eq!(
        number(&summary[0], "p99_ms"),
        (p99 * 1000.0).round() / 1000.0
    );
    // Every request got a 200, so the merged 2xx histogram is the whole one.
    assert_eq!(
        number(&summary[0], "ok_p99_ms"),
        (p99 * 1000.0).round() / 1000.0
    );
    let timeseries = read_csv(&merged.join("timeseries.csv"));
    assert_eq!(column_sum(&timeseries, "requests"), ROWS_COUNT as u64);
    for file in ["errors.csv", "run.json", "report.html"] {
        assert!(
            merged.join(file).is_file(),
            "no {file} in the merged report"
        );
    }

    // Percentiles: a single process sending the same load measures about the same latency. The
    // mock adds 20 ms plus up to 2 ms, so the median lies near 21 ms in both runs; 20% covers
    // the scheduling noise of a shared 2-core machine.
    let single = dir.path().join("single");
    let output = volley(run_args(&path, &single)).await;
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let single_summary = read_csv(&single.join("summary.csv"));
    let single_p50 = number(&single_summary[0], "p50_ms");
    let merged_p50 = number(&summary[0], "p50_ms");
    assert!(
        (merged_p50 - single_p50).abs() <= 0.2 * single_p50,
        "merged p50 {merged_p50} ms against single-process p50 {single_p50} ms"
    );
}

/// Runs tiny shards of the scenario and returns the mock and the shards' folders: shard
/// `index` of `count` with `extra` arguments.
async fn tiny_shards(dir: &Path, runs: &[(&str, u32, u32, &[&str])]) -> (MockServer, Vec<PathBuf>) {
    let server = start().await;
    write_file(dir, "rows.csv", &rows(None));
    let load = "concurrency = 3\niterations = 6";
    let path = write_file(dir, "s.toml", &scenario(&server.base_url(), load, ""));
    let mut folders = Vec::new();
    for (name, index, count, extra) in runs {
        let out = dir.join(name);
        let output = volley(shard_args(&path, &out, *index, *count, extra)).await;
        assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
        folders.push(out);
    }
    (server, folders)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merge_rejects_other_scenario() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, folders) = tiny_shards(
        dir.path(),
        &[
            ("a0", 0, 2, &[]),
            ("b1", 1, 2, &["--set", "load.iterations=8"]),
        ],
    )
    .await;
    let output = merge(&folders, &dir.path().join("merged")).await;
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("different scenario"), "{stderr}");
    assert!(stderr.contains("b1"), "{stderr}");
    assert!(!dir.path().join("merged").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merge_rejects_missing_shard() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, folders) = tiny_shards(dir.path(), &[("s0", 0, 3, &[]), ("s2", 2, 3, &[])]).await;
    let output = merge(&folders, &dir.path().join("merged")).await;
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("shard 1 of 3 missing"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merge_rejects_duplicate_index() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, folders) = tiny_shards(
        dir.path(),
        &[
            ("first", 0, 2, &[]),
            ("second", 0, 2, &[]),
            ("other", 1, 2, &[]),
        ],
    )
    .await;
    let output = merge(&folders, &dir.path().join("merged")).await;
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("both shard 0 of 2"), "{stderr}");
    assert!(stderr.contains("first"), "{stderr}");
    assert!(stderr.contains("second"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merged_error_rate_decides_verdicts() {
    let server = start().await;
    let dir = tempfile::tempdir().unwrap();
    // Rows 0, 3, 6, ... name a foreign organization, and shard 0 of 3 gets exactly those,
    // so shard 0 gets only 403s, shards 1 and 2 none, and all together one third.
    write_file(dir.path(), "rows.csv", &rows(Some(3)));
    let variants = r#"
[[variant]]
name = "lenient"
thresholds = { error_rate = "< 0.5" }
[[variant]]
name = "strict"
thresholds = { error_rate = "< 0.2" }
"#;
    let load = "concurrency = 3\niterations = 60\npause = \"0s\"";
    let path = write_file(
        dir.path(),
        "s.toml",
        &scenario(&server.base_url(), load, variants),
    );
    let folders = run_shards(dir.path(), &path, 3, "shard").await;

    let verdicts = |folder: &Path| -> Vec<String> {
        read_csv(&folder.join("summary.csv"))
            .iter()
            .map(|row| row["verdict"].split(':').next().unwrap().to_string())
            .collect()
    };
    // Judged alone, shard 0 fails both variants and shards 1 and 2 pass both.
    assert_eq!(verdicts(&folders[0]), ["fail", "fail"]);
    assert_eq!(verdicts(&folders[1]), ["pass", "pass"]);
    assert_eq!(verdicts(&folders[2]), ["pass", "pass"]);

    let merged = dir.path().join("merged");
    let output = merge(&folders, &merged).await;
    assert_eq!(output.status.code(), Some(99), "{}", describe(&output));
    let summary = read_csv(&merged.join("summary.csv"));
    for row in &summary {
        assert_eq!(number(row, "forbidden"), 20.0, "{row:?}");
        assert_eq!(number(row, "requests"), 60.0, "{row:?}");
    }
    // One third of the requests failed: under 0.5 passes, under 0.2 fails.
    assert_eq!(verdicts(&merged), ["pass", "fail"]);
    let run: serde_json::Value =
        serde_json::from_slice(&std::fs::read(merged.join("run.json")).unwrap()).unwrap();
    assert_eq!(run["exit_code"], 99);
    assert_eq!(run["shard_count"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merged_rate_fails_where_every_shard_passes() {
    let server = start().await;
    let dir = tempfile::tempdir().unwrap();
    write_file(dir.path(), "rows.csv", &rows(None));
    // One worker per shard against a 20 ms mock sends at most 50 requests per second, so
    // each shard stays under 90 while the three together, over the same 3 s, exceed it.
    let load = "concurrency = 3\nduration = \"3s\"";
    let variants = "[thresholds]\nachieved_rps = \"< 90\"\n";
    let text =
        scenario(&server.base_url(), load, "").replace("[load]", &format!("{variants}[load]"));
    let path = write_file(dir.path(), "s.toml", &text);
    let folders = run_shards(dir.path(), &path, 3, "shard").await;
    for folder in &folders {
        let summary = read_csv(&folder.join("summary.csv"));
        assert_eq!(summary[0]["verdict"], "pass", "{}", folder.display());
    }
    let merged = dir.path().join("merged");
    let output = merge(&folders, &merged).await;
    assert_eq!(output.status.code(), Some(99), "{}", describe(&output));
    let summary = read_csv(&merged.join("summary.csv"));
    let achieved = number(&summary[0], "achieved_rps");
    let requests = number(&summary[0], "requests");
    let window = number(&summary[0], "duration_s");
    assert!(achieved > 90.0, "{summary:?}");
    // The window spans the shards' cells, not more: about the 3 s each one sent.
    assert!((3.0..4.5).contains(&window), "window {window} s");
    assert!(
        (achieved - requests / window).abs() < 0.01 * achieved,
        "{summary:?}"
    );
}

/// Arguments, environment variables and the expected error of one invalid shard setting.
type ShardCase<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shard_settings_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    write_file(dir.path(), "rows.csv", &rows(None));
    let path = write_file(
        dir.path(),
        "s.toml",
        &scenario("http://127.0.0.1:9", "concurrency = 1\niterations = 1", ""),
    );
    let cases: [ShardCase; 5] = [
        (&["--shard", "3/3"], &[], "not below the count 3"),
        (&["--shard", "0/0"], &[], "count is 0"),
        (&["--shard", "one/3"], &[], "write INDEX/COUNT"),
        (
            &[],
            &[("JOB_COMPLETION_INDEX", "1")],
            "VOLLEY_SHARDS is not",
        ),
        (
            &[],
            &[("JOB_COMPLETION_INDEX", "4"), ("VOLLEY_SHARDS", "2")],
            "not below the count 2",
        ),
    ];
    for (args, env, expected) in cases {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_volley"));
        command
            .args(run_args(&path, &dir.path().join("out")))
            .args(args)
            .env_remove("JOB_COMPLETION_INDEX")
            .env_remove("VOLLEY_SHARDS");
        for (name, value) in env {
            command.env(name, value);
        }
        let output = command.output().unwrap();
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?} {env:?}: {}",
            describe(&output)
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected), "{args:?} {env:?}: {stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merge_rejects_unsharded_folder() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, mut folders) = tiny_shards(dir.path(), &[("s0", 0, 2, &[])]).await;
    let path = dir.path().join("s.toml");
    let plain = dir.path().join("plain");
    let output = volley(run_args(&path, &plain)).await;
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    folders.push(plain);
    let output = merge(&folders, &dir.path().join("merged")).await;
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("plain"), "{stderr}");
    assert!(stderr.contains("shard.json"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_shards_merge_both_histograms() {
    let server = start().await;
    let dir = tempfile::tempdir().unwrap();
    write_file(dir.path(), "rows.csv", &rows(None));
    let load = "model = \"open\"\nrate = 60\nmax_in_flight = 12\nduration = \"2s\"";
    let path = write_file(
        dir.path(),
        "s.toml",
        &scenario(&server.base_url(), load, ""),
    );
    let folders = run_shards(dir.path(), &path, 3, "shard").await;
    let merged = dir.path().join("merged");
    let output = merge(&folders, &merged).await;
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));

    let summary = read_csv(&merged.join("summary.csv"));
    let stats = get_json(&format!("{}/mock/stats", server.base_url())).await;
    assert_eq!(
        number(&summary[0], "requests") as u64,
        stats["execute"]["requests"].as_u64().unwrap()
    );
    assert_eq!(number(&summary[0], "target_rps"), 60.0);
    assert_eq!(number(&summary[0], "concurrency"), 12.0);
    for folder in &folders {
        let shard = read_csv(&folder.join("summary.csv"));
        let share = number(&shard[0], "target_rps");
        assert!(
            (share - 20.0).abs() < 0.001,
            "{}: {share}",
            folder.display()
        );
    }
    assert!(!summary[0]["p99_uncorrected_ms"].is_empty(), "{summary:?}");

    let actual = hlog_sums(&merged);
    for tag in ["cell1", "cell1-uncorrected"] {
        let mut expected = volley::metrics::new_histogram();
        for folder in &folders {
            expected.add(&hlog_sums(folder)[tag]).unwrap();
        }
        assert_eq!(actual[tag], expected, "{tag}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_shard_sends_nothing_in_its_cell() {
    let server = start().await;
    let dir = tempfile::tempdir().unwrap();
    write_file(dir.path(), "rows.csv", &rows(None));
    // Two workers over three shards: shard 2 has none in cell 1 and one in cell 2.
    let load = "concurrency = [2, 3]\nduration = \"1s\"\npause = \"0s\"";
    let path = write_file(
        dir.path(),
        "s.toml",
        &scenario(&server.base_url(), load, ""),
    );
    let folders = run_shards(dir.path(), &path, 3, "shard").await;
    let idle = read_csv(&folders[2].join("summary.csv"));
    assert_eq!(number(&idle[0], "requests"), 0.0);
    assert!(number(&idle[1], "requests") > 0.0, "{idle:?}");

    let merged = dir.path().join("merged");
    let output = merge(&folders, &merged).await;
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let summary = read_csv(&merged.join("summary.csv"));
    let stats = get_json(&format!("{}/mock/stats", server.base_url())).await;
    assert_eq!(
        column_sum(&summary, "requests"),
        stats["execute"]["requests"].as_u64().unwrap()
    );
    assert_eq!(number(&summary[0], "concurrency"), 2.0);
    assert_eq!(number(&summary[1], "concurrency"), 3.0);
    // The idle shard waited out cell 1, so every shard's cell 2 started within a fraction of
    // a second of the others and the merged window stays near the 1 s each one sent.
    let window = number(&summary[1], "duration_s");
    assert!((1.0..1.8).contains(&window), "window {window} s");
}

/// Shards whose latencies differ by an order of magnitude: each shard's per-outcome
/// histograms grew to a different range, and the merge must still add them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merge_adds_histograms_of_different_ranges() {
    let server = start_mock(|config| {
        config.rate_limit = "100000/1s".parse().unwrap();
        config.latency.base = "1ms".parse().unwrap();
        // A 3 KiB body waits about 60 ms more than an empty one.
        config.latency.per_kib = "20ms".parse().unwrap();
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    // Shard 0 of 2 takes the even rows (no padding), shard 1 the odd rows (3,000 bytes).
    let mut text = "id,pad\n".to_string();
    for row in 0..20 {
        let pad = if row % 2 == 1 {
            "x".repeat(3000)
        } else {
            String::new()
        };
        text.push_str(&format!("row-{row:03},{pad}\n"));
    }
    write_file(dir.path(), "rows.csv", &text);
    let path = write_file(
        dir.path(),
        "s.toml",
        &format!(
            r#"
name = "ranges"
[target]
url = "{}"
[auth]
type = "oauth2-client-credentials"
token_url = "{{target}}/oauth/token"
client_id = "demo-client"
client_secret = "demo-secret"
[request]
path = "/api/v2/integrations/actions/demo-action/execute"
body = '{{"org_id": "{DEMO_HOME_ORG}", "id": "{{{{row.id}}}}", "pad": "{{{{row.pad}}}}"}}'
[data]
file = "rows.csv"
[load]
concurrency = 2
iterations = 20
"#,
            server.base_url()
        ),
    );
    let folders = run_shards(dir.path(), &path, 2, "ranges").await;
    let merged = dir.path().join("merged");
    let output = merge(&folders, &merged).await;
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let summary = read_csv(&merged.join("summary.csv"));
    assert_eq!(number(&summary[0], "ok"), 20.0);
    assert!(
        number(&summary[0], "ok_p99_ms") > 40.0,
        "the padded rows' latency is missing: {:?}",
        summary[0]
    );
    assert!(
        number(&summary[0], "ok_p50_ms") < 40.0,
        "the empty rows' latency is missing: {:?}",
        summary[0]
    );
}

/// A shard with no share of any cell sends nothing and still exits 0, so an Indexed Job does
/// not count its pod as failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_shard_exits_zero() {
    let server = start().await;
    let dir = tempfile::tempdir().unwrap();
    write_file(dir.path(), "rows.csv", &rows(None));
    let path = write_file(
        dir.path(),
        "s.toml",
        &scenario(&server.base_url(), "concurrency = 2\nduration = \"1s\"", ""),
    );
    let out = dir.path().join("idle");
    let output = volley(shard_args(&path, &out, 2, 3, &[])).await;
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    assert_eq!(server.stats().execute_requests(), 0);
    assert!(out.join("shard.json").is_file());
}
