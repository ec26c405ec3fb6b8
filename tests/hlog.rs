//! latency.hlog against summary.csv: volley's own reader and the independent Python
//! `hdrhistogram` package must both find each cell's counts and percentiles in the log.

mod support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use hdrhistogram::Histogram;
use support::*;
use volley::report::hlog;

/// The report folders of one closed and one open run, made once for every test here.
struct Runs {
    _dir: tempfile::TempDir,
    closed: PathBuf,
    open: PathBuf,
}

fn runs() -> &'static Runs {
    static RUNS: OnceLock<Runs> = OnceLock::new();
    RUNS.get_or_init(|| {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let server = runtime.block_on(start_mock(|config| {
            config.rate_limit = "100000/1s".parse().unwrap();
            config.latency.base = "5ms".parse().unwrap();
            config.latency.jitter = "3ms".parse().unwrap();
        }));
        let dir = tempfile::tempdir().unwrap();
        write_file(dir.path(), "rows.csv", ROWS);
        let run = |name: &str, load: &str| {
            let scenario = write_file(
                dir.path(),
                &format!("{name}.toml"),
                &org_scenario(&server.base_url(), load),
            );
            let out = dir.path().join(name);
            let mut args = run_args(&scenario, &out);
            args.push("--quiet".into());
            let output = volley_blocking(&args);
            assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
            out
        };
        let closed = run(
            "closed",
            "concurrency = [2]\nduration = \"2s\"\npause = \"0s\"",
        );
        let open = run(
            "open",
            "model = \"open\"\nrate = 100\nmax_in_flight = 1\nduration = \"2s\"\npause = \"0s\"",
        );
        runtime.block_on(server.shutdown());
        Runs {
            _dir: dir,
            closed,
            open,
        }
    })
}

/// Returns the value at `rank` (from 1) as HdrHistogram reports it: the highest value
/// equivalent to the recorded one.
fn value_at_rank(histogram: &Histogram<u64>, rank: u64) -> u64 {
    let mut seen = 0;
    for value in histogram.iter_recorded() {
        seen += value.count_at_value();
        if seen >= rank {
            return histogram.highest_equivalent(value.value_iterated_to());
        }
    }
    histogram.highest_equivalent(histogram.max())
}

/// Converts microseconds to milliseconds rounded as summary.csv rounds them.
fn ms(value_us: u64) -> f64 {
    volley::report::round3(value_us as f64 / 1000.0)
}

/// The columns of summary.csv that a tag's histogram must reproduce.
fn columns(tag: &str) -> [&'static str; 3] {
    if tag.ends_with("-uncorrected") {
        [
            "p50_uncorrected_ms",
            "p99_uncorrected_ms",
            "max_uncorrected_ms",
        ]
    } else {
        ["p50_ms", "p99_ms", "max_ms"]
    }
}

/// Returns each tag of a report folder's summary.csv with its row.
fn tags_of(folder: &Path) -> Vec<(String, HashMap<String, String>)> {
    let mut tags = Vec::new();
    for row in read_csv(&folder.join("summary.csv")) {
        let cell: usize = row["cell"].parse().unwrap();
        tags.push((hlog::cell_tag(cell), row.clone()));
        if row["model"] == "open" {
            tags.push((hlog::uncorrected_tag(cell), row.clone()));
        }
    }
    tags
}

#[test]
fn rust_reader_sums_equal_summary() {
    let runs = runs();
    for folder in [&runs.closed, &runs.open] {
        let intervals = hlog::read(&folder.join(hlog::FILE_NAME)).unwrap();
        let sums = hlog::sum_by_tag(&intervals);
        let series = read_csv(&folder.join("timeseries.csv"));
        let tags = tags_of(folder);
        assert_eq!(sums.len(), tags.len(), "tags in {}", folder.display());
        for (tag, row) in &tags {
            let sum = &sums[tag];
            let counted = number(row, "requests") - number(row, "cancelled");
            assert!(counted > 100.0, "{tag}: too few requests to compare");
            assert_eq!(sum.len() as f64, counted, "{tag}: count");
            let [p50, p99, max] = columns(tag);
            assert_eq!(
                ms(sum.value_at_quantile(0.5)),
                number(row, p50),
                "{tag}: {p50}"
            );
            assert_eq!(
                ms(sum.value_at_quantile(0.99)),
                number(row, p99),
                "{tag}: {p99}"
            );
            assert_eq!(ms(sum.max()), number(row, max), "{tag}: {max}");
            let lines = intervals.iter().filter(|i| &i.tag == tag).count();
            let seconds = series.iter().filter(|s| s["cell"] == row["cell"]).count();
            assert_eq!(lines, seconds, "{tag}: one line per timeseries.csv row");
        }
    }
}

#[test]
fn intervals_are_ordered_seconds() {
    let runs = runs();
    let intervals = hlog::read(&runs.closed.join(hlog::FILE_NAME)).unwrap();
    let run: serde_json::Value =
        serde_json::from_slice(&std::fs::read(runs.closed.join("run.json")).unwrap()).unwrap();
    let started = humantime::parse_rfc3339(run["started"].as_str().unwrap()).unwrap();
    let finished = humantime::parse_rfc3339(run["finished"].as_str().unwrap()).unwrap();
    for pair in intervals.windows(2) {
        assert!(pair[0].start <= pair[1].start, "starts in order");
    }
    for interval in &intervals {
        assert!(interval.duration.as_secs_f64() <= 1.1, "{interval:?}");
        let slack = std::time::Duration::from_millis(5);
        assert!(interval.start + slack >= started, "starts after the run");
        assert!(interval.start <= finished, "starts before the end");
    }
}

#[test]
fn python_reader_matches_summary() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tools/hlog_summary.py");
    let required = std::env::var("VOLLEY_REQUIRE_HDR_PY").as_deref() == Ok("1");
    let probe = std::process::Command::new("python3")
        .args(["-c", "import hdrh"])
        .output();
    if !probe.is_ok_and(|output| output.status.success()) {
        assert!(
            !required,
            "VOLLEY_REQUIRE_HDR_PY=1 but python3 cannot import hdrh: pip install hdrhistogram"
        );
        eprintln!(
            "\n*** SKIPPED python_reader_matches_summary: python3 with the hdrhistogram package \
             is missing (pip install hdrhistogram); set VOLLEY_REQUIRE_HDR_PY=1 to fail instead ***\n"
        );
        return;
    }
    let runs = runs();
    for folder in [&runs.closed, &runs.open] {
        let path = folder.join(hlog::FILE_NAME);
        let output = std::process::Command::new("python3")
            .arg(&script)
            .arg(&path)
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", describe(&output));
        let found: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        let sums = hlog::sum_by_tag(&hlog::read(&path).unwrap());
        let tags = tags_of(folder);
        assert_eq!(found.as_object().unwrap().len(), tags.len(), "{found}");
        for (tag, row) in &tags {
            let python = &found[tag];
            let sum = &sums[tag];
            let count = python["count"].as_u64().unwrap();
            let counted = number(row, "requests") - number(row, "cancelled");
            assert_eq!(count as f64, counted, "{tag}: Python count vs summary.csv");
            let [p50, p99, max] = columns(tag);
            assert_eq!(
                ms(python["max"].as_u64().unwrap()),
                number(row, max),
                "{tag}: Python max vs summary.csv {max}"
            );
            for (percentile, column) in [(50.0, p50), (99.0, p99)] {
                // The Python package rounds the rank to the nearest count, volley's Rust
                // crate rounds it up, so the two may pick neighbouring recorded values.
                let value = python[if percentile == 50.0 { "p50" } else { "p99" }]
                    .as_u64()
                    .unwrap();
                let rank = (percentile / 100.0 * count as f64).round() as u64;
                let allowed: Vec<f64> = (rank.saturating_sub(1).max(1)..=rank + 1)
                    .map(|rank| ms(value_at_rank(sum, rank)))
                    .collect();
                assert!(
                    allowed.contains(&ms(value)),
                    "{tag}: Python p{percentile} {value} us not at a neighbouring rank: {allowed:?}"
                );
                assert!(
                    allowed.contains(&number(row, column)),
                    "{tag}: summary.csv {column} {} not at a neighbouring rank: {allowed:?}",
                    number(row, column)
                );
            }
        }
    }
}
