//! `volley merge`: combines the report folders of the shards of one run into one report.
//!
//! Counts, bytes and histograms are added, never averaged, so the merged percentiles are
//! those of all requests together. A cell's rate divides its requests by the cell's own time
//! window: from the earliest start of the cell on any shard to the latest end of its send
//! window on any shard. The gap between cells, or between runs started at different times,
//! never counts. Thresholds are judged once, on the merged figures.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use serde_json::Value;

use super::record::{self, CellRecord, ShardRecord};
use crate::engine::cell::CellResult;
use crate::metrics::Tally;
use crate::report;
use crate::scenario::CellSpec;
use crate::thresholds::{self, Threshold, ThresholdSpec};

/// Exit code of folders that cannot be merged.
const EXIT_INVALID: u8 = 2;

/// A merge that cannot go ahead: the exit code and a message naming the folder and the fix.
#[derive(Debug)]
pub struct MergeError {
    /// 2 for folders that do not form one complete set of shards, 1 for other failures.
    pub code: u8,
    /// The problem and the fix.
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
        let indexes: Vec<String> = present.iter().map(u32::to_string).collect();
        return Err(MergeError::invalid(format!(
            "incomplete set: shard {} of {count} missing (given {}); pass the report folder of every shard",
            missing.join(", "),
            indexes.join(", ")
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

/// Checks that the shards' shares of `iterations` add up to the cell's. The split guarantees
/// it, so a set that fails was not split by one volley run.
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
    let intervals = super::output::write_hlog(shards, &folder)?;
    super::output::write_timeseries(shards, &folder, &intervals)?;
    let exit_code = if rows.iter().any(|row| row.verdict.starts_with("fail")) {
        99
    } else {
        0
    };
    super::output::write_run_json(shards, &results, &rows, &folder, exit_code)?;
    if let Err(error) = report::html::write_for_folder(&folder) {
        // The data files are complete, so `volley report` can render the page later.
        eprintln!("warning: report.html was not written: {error}");
    }
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
