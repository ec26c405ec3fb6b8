//! `volley merge`: combines the report folders of the shards of one run into one report.
//!
//! Counts, bytes and histograms are added, never averaged, so the merged percentiles are
//! those of all requests together. A cell's rate divides its requests by the cell's own time
//! window: from the earliest start of the cell on any shard to the latest end of its send
//! window on any shard. The gap between cells, or between runs started at different times,
//! never counts. Thresholds are judged once, on the merged figures.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use serde_json::{Value, json};

use super::record::{self, CellRecord, ShardRecord};
use crate::engine::cell::{CellResult, Interval};
use crate::metrics::{OUTCOMES, Tally, new_histogram};
use crate::report::timeseries::{TimeseriesRow, TimeseriesWriter};
use crate::report::{self, hlog, rfc3339};
use crate::scenario::CellSpec;
use crate::thresholds::{self, Threshold, ThresholdSpec};

/// Exit code of folders that cannot be merged.
const EXIT_INVALID: u8 = 2;

/// A merge that cannot go ahead: the exit code and a message naming the folder and the fix.
#[derive(Debug)]
pub struct MergeError {
    /// 2 for folders that do not form one complete set of shards, 1 for other failures.
    pub code: u8,
    /// What is wrong and what to do.
    pub message: String,
}

impl MergeError {
    fn invalid(message: String) -> MergeError {
        MergeError {
            code: EXIT_INVALID,
            message,
        }
    }
}

impl From<anyhow::Error> for MergeError {
    fn from(error: anyhow::Error) -> MergeError {
        MergeError {
            code: 1,
            message: format!("{error:#}"),
        }
    }
}

/// One shard's report folder as read.
pub struct ShardFolder {
    /// The folder.
    pub folder: PathBuf,
    /// Its `shard.json`.
    pub record: ShardRecord,
    /// Its `run.json`, when readable.
    pub run_json: Option<Value>,
}

/// The merged report.
pub struct Merged {
    /// One result per cell, as a single run would have produced it.
    pub results: Vec<CellResult>,
    /// The merged report folder.
    pub folder: PathBuf,
}

/// Reads the shard record of each folder.
pub fn read_folders(folders: &[PathBuf]) -> Result<Vec<ShardFolder>, MergeError> {
    folders.iter().map(|folder| read_folder(folder)).collect()
}

fn read_folder(folder: &Path) -> Result<ShardFolder, MergeError> {
    if !folder.is_dir() {
        return Err(MergeError::invalid(format!(
            "{}: not a folder; pass the report folder of each shard",
            folder.display()
        )));
    }
    let path = folder.join(record::FILE_NAME);
    let bytes = std::fs::read(&path).map_err(|error| {
        MergeError::invalid(format!(
            "{}: cannot read {} ({error}); merge only folders written by `volley run --shard I/N`",
            folder.display(),
            record::FILE_NAME
        ))
    })?;
    let record: ShardRecord = serde_json::from_slice(&bytes).map_err(|error| {
        MergeError::invalid(format!("{}: invalid JSON ({error})", path.display()))
    })?;
    if record.format != record::FORMAT {
        return Err(MergeError::invalid(format!(
            "{}: unknown format \"{}\" (expected \"{}\"); merge with the volley version that ran the shards",
            path.display(),
            record.format,
            record::FORMAT
        )));
    }
    let run_json = std::fs::read(folder.join("run.json"))
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok());
    Ok(ShardFolder {
        folder: folder.to_path_buf(),
        record,
        run_json,
    })
}

/// Checks that the folders are one complete set: the same scenario, the same volley version
/// and shard count, and every index from 0 to N - 1 exactly once. Returns them by index.
pub fn check_set(mut shards: Vec<ShardFolder>) -> Result<Vec<ShardFolder>, MergeError> {
    let Some(first) = shards.first() else {
        return Err(MergeError::invalid(
            "no folder given; pass the report folder of every shard".to_string(),
        ));
    };
    let (first_folder, first_record) = (first.folder.clone(), first.record.clone());
    for shard in &shards[1..] {
        let record = &shard.record;
        if record.scenario_hash != first_record.scenario_hash {
            return Err(MergeError::invalid(format!(
                "{} ran a different scenario than {} (scenario hash {} against {}); merge only shards of one scenario run with the same --set overrides and data file",
                shard.folder.display(),
                first_folder.display(),
                short_hash(&record.scenario_hash),
                short_hash(&first_record.scenario_hash)
            )));
        }
        if record.shard_count != first_record.shard_count {
            return Err(MergeError::invalid(format!(
                "{} is shard {} of {} but {} is shard {} of {}; merge only shards of one run",
                shard.folder.display(),
                record.shard_index,
                record.shard_count,
                first_folder.display(),
                first_record.shard_index,
                first_record.shard_count
            )));
        }
        if record.volley_version != first_record.volley_version {
            return Err(MergeError::invalid(format!(
                "{} was written by volley {} but {} by volley {}; run every shard with the same version",
                shard.folder.display(),
                record.volley_version,
                first_folder.display(),
                first_record.volley_version
            )));
        }
    }
    let count = first_record.shard_count;
    shards.sort_by_key(|shard| shard.record.shard_index);
    for pair in shards.windows(2) {
        if pair[0].record.shard_index == pair[1].record.shard_index {
            return Err(MergeError::invalid(format!(
                "{} and {} are both shard {} of {count}; pass each shard's folder once",
                pair[0].folder.display(),
                pair[1].folder.display(),
                pair[0].record.shard_index
            )));
        }
    }
    if let Some(shard) = shards
        .iter()
        .find(|shard| shard.record.shard_index >= count)
    {
        return Err(MergeError::invalid(format!(
            "{}: shard index {} is not below its count {count}",
            shard.folder.display(),
            shard.record.shard_index
        )));
    }
    let present: Vec<u32> = shards
        .iter()
        .map(|shard| shard.record.shard_index)
        .collect();
    let missing: Vec<String> = (0..count)
        .filter(|index| !present.contains(index))
        .map(|index| index.to_string())
        .collect();
    if !missing.is_empty() {
        let given: Vec<String> = present.iter().map(u32::to_string).collect();
        return Err(MergeError::invalid(format!(
            "incomplete set: shard {} of {count} missing (given {}); pass the report folder of every shard",
            missing.join(", "),
            given.join(", ")
        )));
    }
    Ok(shards)
}

fn short_hash(hash: &str) -> &str {
    let end = hash.len().min("sha256:".len() + 12);
    &hash[..end]
}

/// Combines one cell's records from every shard that ran it. `missing` is true when some
/// shard did not record the cell (an interrupted or aborted shard).
fn merge_cell(cells: &[(&Path, &CellRecord)], missing: bool) -> Result<CellResult, MergeError> {
    let (first_folder, first) = cells[0];
    for (folder, cell) in &cells[1..] {
        if cell.variant != first.variant || cell.total != first.total {
            return Err(MergeError::invalid(format!(
                "{}: cell {} is {} with {:?}, but {} has {} with {:?}; merge only shards of one run",
                folder.display(),
                cell.cell,
                cell.variant,
                cell.total,
                first_folder.display(),
                first.variant,
                first.total
            )));
        }
    }
    if !missing {
        check_shares(cells)?;
    }
    let mut total = Tally::new(first.open());
    let mut start: Option<SystemTime> = None;
    let mut send_end: Option<SystemTime> = None;
    let mut end: Option<SystemTime> = None;
    let mut interrupted = missing;
    for (folder, cell) in cells {
        let tally = cell.tally().map_err(|problem| {
            MergeError::invalid(format!(
                "{}: cell {}: {problem}",
                folder.join(record::FILE_NAME).display(),
                cell.cell
            ))
        })?;
        total.merge(&tally);
        interrupted |= cell.interrupted;
        if cell.idle {
            continue;
        }
        let started = record::parse_time(&cell.started_at).map_err(|problem| {
            MergeError::invalid(format!(
                "{}: cell {}: {problem}",
                folder.join(record::FILE_NAME).display(),
                cell.cell
            ))
        })?;
        start = Some(start.map_or(started, |start| start.min(started)));
        let sent = started + Duration::from_nanos(cell.send_window_ns);
        send_end = Some(send_end.map_or(sent, |end| end.max(sent)));
        let ended = started + Duration::from_nanos(cell.elapsed_ns);
        end = Some(end.map_or(ended, |end| end.max(ended)));
    }
    let started_at = start.unwrap_or_else(SystemTime::now);
    let since_start = |time: Option<SystemTime>| {
        time.and_then(|time| time.duration_since(started_at).ok())
            .unwrap_or_default()
    };
    let mut result = CellResult {
        spec: CellSpec {
            index: first.cell,
            variant: first.variant_index,
            load: first.total.point(),
            stages: None,
        },
        variant: first.variant.clone(),
        open: first.open(),
        started_at,
        send_window: since_start(send_end),
        elapsed: since_start(end),
        total,
        interrupted,
        throttle_rps: first.total.throttle_rps,
        verdict: String::new(),
    };
    let thresholds = parse_thresholds(first).map_err(|problem| {
        MergeError::invalid(format!(
            "{}: cell {}: {problem}",
            first_folder.join(record::FILE_NAME).display(),
            first.cell
        ))
    })?;
    result.verdict = thresholds::verdict(&thresholds, &report::summary::row(&result)).text;
    Ok(result)
}

/// Checks that the shards' shares of `iterations` add up to the cell's, which the split
/// guarantees; a set that fails it was not split by one volley run.
fn check_shares(cells: &[(&Path, &CellRecord)]) -> Result<(), MergeError> {
    let first = cells[0].1;
    let iterations: Option<u64> = cells.iter().map(|(_, cell)| cell.share.iterations).sum();
    if iterations != first.total.iterations {
        return Err(MergeError::invalid(format!(
            "cell {}: the shards' iterations ({iterations:?}) do not add up to the cell's ({:?}); merge only shards of one run",
            first.cell, first.total.iterations
        )));
    }
    Ok(())
}

fn parse_thresholds(cell: &CellRecord) -> Result<Vec<Threshold>, String> {
    cell.thresholds
        .iter()
        .map(|threshold| {
            let spec = ThresholdSpec::Full(thresholds::FullThreshold {
                condition: threshold.condition.clone(),
                abort_on_fail: threshold.abort_on_fail,
            });
            Threshold::parse(&threshold.metric, &spec)
        })
        .collect()
}

/// Combines the cells of a checked set of shards, in the order shard 0 ran them.
pub fn merge_cells(shards: &[ShardFolder]) -> Result<Vec<CellResult>, MergeError> {
    let mut order: Vec<usize> = Vec::new();
    for shard in shards {
        for cell in &shard.record.cells {
            if !order.contains(&cell.cell) {
                order.push(cell.cell);
            }
        }
    }
    let mut results = Vec::with_capacity(order.len());
    for index in order {
        let cells: Vec<(&Path, &CellRecord)> = shards
            .iter()
            .filter_map(|shard| {
                shard
                    .record
                    .cells
                    .iter()
                    .find(|cell| cell.cell == index)
                    .map(|cell| (shard.folder.as_path(), cell))
            })
            .collect();
        let missing = cells.len() < shards.len();
        if missing {
            let absent: Vec<String> = shards
                .iter()
                .filter(|shard| !shard.record.cells.iter().any(|cell| cell.cell == index))
                .map(|shard| shard.folder.display().to_string())
                .collect();
            eprintln!(
                "warning: cell {index} is missing from {} (interrupted?); its merged figures cover only the other shards and it is marked interrupted",
                absent.join(", ")
            );
        }
        results.push(merge_cell(&cells, missing)?);
    }
    Ok(results)
}

/// Merges the shards' `timeseries.csv` files: counts of the same cell and second of cell time
/// are added. The latency columns come from `intervals`, the merged histogram of each cell and
/// second; they read 0 when a shard had no `latency.hlog`.
fn write_timeseries(
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

/// Returns the cell number of a `cell<N>` or `cell<N>-uncorrected` tag, and whether it is the
/// uncorrected one.
fn parse_tag(tag: &str) -> Option<(usize, bool)> {
    let rest = tag.strip_prefix("cell")?;
    match rest.strip_suffix("-uncorrected") {
        Some(number) => Some((number.parse().ok()?, true)),
        None => Some((rest.parse().ok()?, false)),
    }
}

/// Merges the shards' `latency.hlog` files into `out`: the k-th interval of a tag in each
/// shard's log is the k-th second of that cell, as in `timeseries.csv`, and the merged
/// interval adds their histograms, from the earliest start to the latest end. Returns the
/// merged latency histogram of each cell and second (from 1), for `timeseries.csv`.
fn write_hlog(
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
    // (cell, second, uncorrected) -> (start, end, histogram)
    let mut merged: BTreeMap<
        (usize, u64, bool),
        (SystemTime, SystemTime, hdrhistogram::Histogram<u64>),
    > = BTreeMap::new();
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
fn write_run_json(
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
    let token_requests: u64 = shards
        .iter()
        .filter_map(|shard| shard.run_json.as_ref()?["token_requests"]["requests"].as_u64())
        .sum();
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
        // Token latencies cannot be merged from the shards' percentiles, so only the count
        // of token requests is kept.
        ("token_requests", json!({ "requests": token_requests })),
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

/// Merges checked shards into `out` (a new folder) or `reports/<scenario>-<UTC time>`.
pub fn write(shards: &[ShardFolder], out: Option<&Path>) -> Result<Merged, MergeError> {
    let results = merge_cells(shards)?;
    let folder = report::create_folder(out, Path::new("reports"), &shards[0].record.scenario_name)
        .map_err(|error| MergeError::invalid(error.to_string()))?;
    let rows: Vec<report::summary::SummaryRow> = results.iter().map(report::summary::row).collect();
    let summary = report::summary::to_csv(&results).context("rendering summary.csv")?;
    report::write_atomically(&folder.join("summary.csv"), &summary)
        .context("writing summary.csv")?;
    let errors = report::errors::to_csv(&results).context("rendering errors.csv")?;
    report::write_atomically(&folder.join("errors.csv"), &errors).context("writing errors.csv")?;
    let intervals = write_hlog(shards, &folder)?;
    write_timeseries(shards, &folder, &intervals)?;
    let exit_code = if rows.iter().any(|row| row.verdict.starts_with("fail")) {
        99
    } else {
        0
    };
    write_run_json(shards, &results, &rows, &folder, exit_code)?;
    Ok(Merged { results, folder })
}

/// `volley merge`: returns 0, 99 when a merged threshold fails, 2 when the folders are not
/// one complete set of shards, 1 on other failures.
pub fn run(folders: &[PathBuf], out: Option<&Path>) -> u8 {
    let merged = read_folders(folders)
        .and_then(check_set)
        .and_then(|shards| write(&shards, out));
    let merged = match merged {
        Ok(merged) => merged,
        Err(error) => {
            eprintln!("error: {}", error.message);
            return error.code;
        }
    };
    let rows: Vec<report::summary::SummaryRow> =
        merged.results.iter().map(report::summary::row).collect();
    print!("{}", report::table::render(&rows));
    println!("report: {}", merged.folder.display());
    if rows.iter().any(|row| row.verdict.starts_with("fail")) {
        99
    } else {
        0
    }
}
