//! The merged report's `timeseries.csv`, `latency.hlog` and `run.json`, built from the shards'
//! own files.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use serde_json::{Value, json};

use super::merge::ShardFolder;
use crate::engine::cell::{CellResult, Interval};
use crate::metrics::{OUTCOMES, Tally, new_histogram};
use crate::report::timeseries::{TimeseriesRow, TimeseriesWriter};
use crate::report::{self, hlog, rfc3339};

/// Merges the shards' `timeseries.csv` files: counts of the same cell and second of cell time
/// are added. The latency columns come from `intervals`, the merged histogram of each cell and
/// second; they read 0 when a shard had no `latency.hlog`.
pub(super) fn write_timeseries(
    shards: &[ShardFolder],
    out: &Path,
    intervals: &BTreeMap<(usize, u64), hdrhistogram::Histogram<u64>>,
) -> anyhow::Result<()> {
    struct Second {
        variant: String,
        elapsed_s: f64,
        time: String,
        tally: Tally,
    }
    let mut seconds: BTreeMap<(usize, u64), Second> = BTreeMap::new();
    for shard in shards {
        let path = shard.folder.join("timeseries.csv");
        let mut reader =
            csv::Reader::from_path(&path).with_context(|| format!("reading {}", path.display()))?;
        let headers = reader.headers()?.clone();
        for record in reader.records() {
            let record = record.with_context(|| format!("reading {}", path.display()))?;
            let field = |name: &str| {
                headers
                    .iter()
                    .position(|header| header == name)
                    .and_then(|position| record.get(position))
                    .unwrap_or_default()
                    .to_string()
            };
            let number = |name: &str| -> anyhow::Result<u64> {
                field(name).parse().with_context(|| {
                    format!("{}: column {name} is not a whole number", path.display())
                })
            };
            let key = (number("cell")? as usize, number("second")?);
            let entry = seconds.entry(key).or_insert_with(|| Second {
                variant: field("variant"),
                elapsed_s: 0.0,
                time: String::new(),
                tally: Tally::new(false),
            });
            entry.elapsed_s = entry
                .elapsed_s
                .max(field("elapsed_s").parse().unwrap_or(0.0));
            entry.time = entry.time.clone().max(field("time"));
            for outcome in OUTCOMES {
                entry.tally.counts[outcome.index()] += number(outcome.name())?;
            }
            entry.tally.dropped += number("dropped")?;
        }
    }

    let path = out.join("timeseries.csv");
    let mut writer =
        TimeseriesWriter::create(&path).with_context(|| format!("creating {}", path.display()))?;
    for ((cell, second), mut entry) in seconds {
        if let Some(histogram) = intervals.get(&(cell, second)) {
            entry.tally.latency = histogram.clone();
        }
        let at = humantime::parse_rfc3339(&entry.time).unwrap_or_else(|_| SystemTime::now());
        let interval = Interval {
            second,
            elapsed: Duration::from_secs_f64(entry.elapsed_s.max(0.0)),
            at,
            tally: &entry.tally,
            total: &entry.tally,
        };
        writer
            .write(&TimeseriesRow::new(cell, &entry.variant, &interval))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// The intervals of one tag, in the order a shard's log lists them.
type TagIntervals = BTreeMap<String, Vec<hlog::HlogInterval>>;

/// A merged interval's cell, second (from 1) and whether it is the uncorrected histogram.
type IntervalKey = (usize, u64, bool);

/// A merged interval's earliest start, latest end and summed histogram.
type MergedInterval = (SystemTime, SystemTime, hdrhistogram::Histogram<u64>);

/// Returns the cell number of a `cell<N>` or `cell<N>-uncorrected` tag, and whether it is the
/// uncorrected one.
fn parse_tag(tag: &str) -> Option<(usize, bool)> {
    let rest = tag.strip_prefix("cell")?;
    match rest.strip_suffix("-uncorrected") {
        Some(number) => Some((number.parse().ok()?, true)),
        None => Some((rest.parse().ok()?, false)),
    }
}

/// Merges the shards' `latency.hlog` files into `out`. The k-th interval of a tag in each
/// shard's log is the k-th second of that cell, as in `timeseries.csv`. The merged interval
/// adds their histograms and runs from the earliest start to the latest end. Returns the
/// merged latency histogram of each cell and second (from 1), for `timeseries.csv`.
pub(super) fn write_hlog(
    shards: &[ShardFolder],
    out: &Path,
) -> anyhow::Result<BTreeMap<(usize, u64), hdrhistogram::Histogram<u64>>> {
    let mut logs: Vec<TagIntervals> = Vec::new();
    for shard in shards {
        let path = shard.folder.join(hlog::FILE_NAME);
        if !path.exists() {
            eprintln!(
                "warning: {} has no {}; the merged report has no {} and its timeseries.csv has no latency columns",
                shard.folder.display(),
                hlog::FILE_NAME,
                hlog::FILE_NAME
            );
            return Ok(BTreeMap::new());
        }
        let mut tags = TagIntervals::new();
        for interval in hlog::read(&path)? {
            tags.entry(interval.tag.clone()).or_default().push(interval);
        }
        logs.push(tags);
    }

    let mut merged: BTreeMap<IntervalKey, MergedInterval> = BTreeMap::new();
    for tags in &logs {
        for (tag, intervals) in tags {
            let Some((cell, uncorrected)) = parse_tag(tag) else {
                tracing::warn!(tag, "skipping an hlog tag that names no cell");
                continue;
            };
            for (position, interval) in intervals.iter().enumerate() {
                let end = interval.start + interval.duration;
                let entry = merged
                    .entry((cell, position as u64 + 1, uncorrected))
                    .or_insert_with(|| (interval.start, end, new_histogram()));
                entry.0 = entry.0.min(interval.start);
                entry.1 = entry.1.max(end);
                entry.2.add(&interval.histogram).map_err(|error| {
                    anyhow::anyhow!("{tag}: adding a histogram failed: {error:?}")
                })?;
            }
        }
    }

    let base_time = merged
        .values()
        .map(|(start, _, _)| *start)
        .min()
        .unwrap_or_else(SystemTime::now);
    let path = out.join(hlog::FILE_NAME);
    let mut writer = hlog::HlogWriter::create(&path, base_time)
        .with_context(|| format!("creating {}", path.display()))?;
    let mut by_second = BTreeMap::new();
    for ((cell, second, uncorrected), (start, end, histogram)) in merged {
        let tag = if uncorrected {
            hlog::uncorrected_tag(cell)
        } else {
            hlog::cell_tag(cell)
        };
        let duration = end.duration_since(start).unwrap_or_default();
        writer
            .write_histogram(&tag, start, duration, &histogram)
            .with_context(|| format!("writing {}", path.display()))?;
        if !uncorrected {
            by_second.insert((cell, second), histogram);
        }
    }
    Ok(by_second)
}

/// Writes `run.json` of the merged report: the first shard's record with the merged cells,
/// times and exit code, and a list of the shards.
pub(super) fn write_run_json(
    shards: &[ShardFolder],
    results: &[CellResult],
    rows: &[report::summary::SummaryRow],
    out: &Path,
    exit_code: u8,
) -> anyhow::Result<()> {
    let mut record = shards[0].run_json.clone().unwrap_or_else(|| json!({}));
    let times = |key: &str| -> Vec<String> {
        shards
            .iter()
            .filter_map(|shard| {
                shard
                    .run_json
                    .as_ref()?
                    .get(key)?
                    .as_str()
                    .map(String::from)
            })
            .collect()
    };

    let started = results
        .iter()
        .map(|result| result.started_at)
        .min()
        .map(rfc3339)
        .or_else(|| times("started").into_iter().min());
    let finished = times("finished").into_iter().max();
    let token_requests = merged_token_requests(shards);
    let target = merged_target(shards);

    let cells: Vec<Value> = rows
        .iter()
        .map(|row| {
            let (verdict, failed) = match row.verdict.split_once(':') {
                Some((verdict, failed)) => (
                    verdict.to_string(),
                    failed
                        .split(';')
                        .map(|item| item.trim().to_string())
                        .collect(),
                ),
                None => (row.verdict.clone(), Vec::<String>::new()),
            };
            json!({
                "cell": row.cell,
                "variant": row.variant,
                "model": row.model,
                "concurrency": row.concurrency,
                "target_rps": row.target_rps,
                "requests": row.requests,
                "verdict": verdict,
                "failed_thresholds": failed,
                "interrupted": row.interrupted,
            })
        })
        .collect();

    let shard_list: Vec<Value> = shards
        .iter()
        .map(|shard| {
            let run = shard.run_json.as_ref();
            json!({
                "index": shard.record.shard_index,
                "folder": shard.folder.display().to_string(),
                "host": run.and_then(|run| run.get("host")).cloned(),
                "started": run.and_then(|run| run.get("started")).cloned(),
                "finished": run.and_then(|run| run.get("finished")).cloned(),
                "exit_code": run.and_then(|run| run.get("exit_code")).cloned(),
            })
        })
        .collect();

    let first = &shards[0].record;
    let fields = [
        ("volley_version", json!(env!("CARGO_PKG_VERSION"))),
        ("scenario_name", json!(first.scenario_name)),
        (
            "host",
            json!(format!("merged from {} shards", shards.len())),
        ),
        ("started", json!(started)),
        ("finished", json!(finished)),
        (
            "interrupted",
            json!(results.iter().any(|result| result.interrupted)),
        ),
        ("aborted", json!(false)),
        ("exit_code", json!(exit_code)),
        ("target", target),
        ("token_requests", token_requests),
        ("cells", json!(cells)),
        ("mock_stats", Value::Null),
        ("scenario_hash", json!(first.scenario_hash)),
        ("shard_count", json!(first.shard_count)),
        ("shards", json!(shard_list)),
    ];
    if let Some(map) = record.as_object_mut() {
        for (key, value) in fields {
            map.insert(key.to_string(), value);
        }
    }
    let bytes = serde_json::to_vec_pretty(&record).context("rendering run.json")?;
    report::write_atomically(&out.join("run.json"), &bytes).context("writing run.json")
}

/// Adds up the shards' token requests and failures and keeps the largest latency. The median
/// cannot be merged from the shards' medians, so it is null.
fn merged_token_requests(shards: &[ShardFolder]) -> Value {
    let summaries: Vec<&Value> = shards
        .iter()
        .filter_map(|shard| shard.run_json.as_ref()?.get("token_requests"))
        .filter(|summary| summary.is_object())
        .collect();
    if summaries.is_empty() {
        return Value::Null;
    }
    let sum = |key: &str| -> u64 {
        summaries
            .iter()
            .filter_map(|summary| summary[key].as_u64())
            .sum()
    };
    let max_ms = summaries
        .iter()
        .filter_map(|summary| summary["max_ms"].as_f64())
        .fold(0.0, f64::max);
    json!({
        "requests": sum("requests"),
        "failures": sum("failures"),
        "p50_ms": Value::Null,
        "max_ms": max_ms,
        "expires_in_s": summaries[0]["expires_in_s"],
    })
}

/// Returns the shards' common target, or, when they differ (each shard's embedded mock has
/// its own port), every distinct one joined by `, `.
fn merged_target(shards: &[ShardFolder]) -> Value {
    let mut targets: Vec<String> = Vec::new();
    for shard in shards {
        let target = shard
            .run_json
            .as_ref()
            .and_then(|run| run.get("target"))
            .and_then(Value::as_str);
        if let Some(target) = target
            && !targets.iter().any(|known| known == target)
        {
            targets.push(target.to_string());
        }
    }
    if targets.is_empty() {
        Value::Null
    } else {
        json!(targets.join(", "))
    }
}
