//! The data files of a report folder, read back for `report.html`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use hdrhistogram::Histogram;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::report::hlog::{self, HlogInterval};

/// A data file that is missing or cannot be read, with what to do about it.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {problem}; {fix}")]
pub struct DataError {
    /// The file.
    pub path: PathBuf,
    /// The problem found.
    pub problem: String,
    /// The next step to take.
    pub fix: &'static str,
}

/// The advice for a data file that a run writes.
const RERUN: &str = "render a report folder that `volley run` wrote, or run the scenario again";

/// One row of `summary.csv`, the columns the page shows.
#[derive(Debug, Clone, Deserialize)]
pub struct SummaryLine {
    pub cell: usize,
    pub variant: String,
    pub model: String,
    pub concurrency: u32,
    pub target_rps: Option<f64>,
    pub achieved_rps: f64,
    pub duration_s: f64,
    pub requests: u64,
    pub ok: u64,
    pub forbidden: u64,
    pub throttled: u64,
    pub client_error: u64,
    pub server_error: u64,
    pub timeout: u64,
    pub connect_error: u64,
    pub other_error: u64,
    pub dropped: u64,
    pub rate_403: f64,
    pub rate_429: f64,
    pub req_bytes_mean: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub p50_uncorrected_ms: Option<f64>,
    pub p99_uncorrected_ms: Option<f64>,
    #[serde(default)]
    pub cancelled: u64,
    #[serde(default)]
    pub interrupted: bool,
    #[serde(default)]
    pub verdict: String,
}

impl SummaryLine {
    /// Returns the cell's load as the terminal table shows it: `c=8` or `50 req/s`.
    pub fn load_label(&self) -> String {
        match (self.model.as_str(), self.target_rps) {
            ("open", Some(rate)) => format!("{rate} req/s"),
            _ => format!("c={}", self.concurrency),
        }
    }

    /// Returns requests that ended in neither 2xx, 403 nor 429.
    pub fn other_errors(&self) -> u64 {
        self.client_error
            + self.server_error
            + self.timeout
            + self.connect_error
            + self.other_error
            + self.cancelled
    }
}

/// One row of `timeseries.csv`, the columns the charts use.
#[derive(Debug, Clone, Deserialize)]
pub struct SecondLine {
    pub cell: usize,
    pub elapsed_s: f64,
    pub ok: u64,
    pub forbidden: u64,
    pub throttled: u64,
    pub client_error: u64,
    pub server_error: u64,
    pub timeout: u64,
    pub connect_error: u64,
    pub other_error: u64,
    #[serde(default)]
    pub cancelled: u64,
    pub dropped: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl SecondLine {
    /// Returns requests that ended in neither 2xx, 403 nor 429.
    pub fn other_errors(&self) -> u64 {
        self.client_error
            + self.server_error
            + self.timeout
            + self.connect_error
            + self.other_error
            + self.cancelled
    }
}

/// One row of `errors.csv`.
#[derive(Debug, Clone, Deserialize)]
pub struct ErrorLine {
    pub cell: usize,
    pub outcome: String,
    pub status: u16,
    pub code: String,
    pub message: String,
    pub count: u64,
}

/// Everything the page is rendered from.
pub struct FolderData {
    /// `run.json` as written.
    pub run: serde_json::Value,
    /// `summary.csv`, one line per cell.
    pub summary: Vec<SummaryLine>,
    /// `timeseries.csv`, one line per cell per second.
    pub seconds: Vec<SecondLine>,
    /// `errors.csv`; empty when the folder has none.
    pub errors: Vec<ErrorLine>,
    /// `latency.hlog`, line by line.
    pub intervals: Vec<HlogInterval>,
    /// `latency.hlog` summed per tag.
    pub sums: BTreeMap<String, Histogram<u64>>,
}

/// Reads the data files of a report folder. `errors.csv` is optional; the others are required.
pub fn load(folder: &Path) -> Result<FolderData, DataError> {
    let run_path = folder.join("run.json");
    let run_bytes = read_required(&run_path)?;
    let run: serde_json::Value = serde_json::from_slice(&run_bytes).map_err(|error| DataError {
        path: run_path.clone(),
        problem: format!("invalid JSON: {error}"),
        fix: RERUN,
    })?;
    if !run.is_object() {
        return Err(DataError {
            path: run_path,
            problem: "not a JSON object".to_string(),
            fix: RERUN,
        });
    }

    let summary = read_csv(&folder.join("summary.csv"))?;
    let seconds = read_csv(&folder.join("timeseries.csv"))?;
    let errors_path = folder.join("errors.csv");
    let errors = if errors_path.exists() {
        read_csv(&errors_path)?
    } else {
        Vec::new()
    };

    let hlog_path = folder.join(hlog::FILE_NAME);
    if !hlog_path.exists() {
        return Err(missing(&hlog_path));
    }
    let intervals = hlog::read(&hlog_path).map_err(|error| DataError {
        path: hlog_path,
        problem: error.problem(),
        fix: RERUN,
    })?;
    let sums = hlog::sum_by_tag(&intervals);
    Ok(FolderData {
        run,
        summary,
        seconds,
        errors,
        intervals,
        sums,
    })
}

fn missing(path: &Path) -> DataError {
    DataError {
        path: path.to_path_buf(),
        problem: "not found".to_string(),
        fix: RERUN,
    }
}

fn read_required(path: &Path) -> Result<Vec<u8>, DataError> {
    std::fs::read(path).map_err(|error| {
        if error.kind() == std::io::ErrorKind::NotFound {
            missing(path)
        } else {
            DataError {
                path: path.to_path_buf(),
                problem: format!("cannot read: {error}"),
                fix: "check the file's permissions",
            }
        }
    })
}

fn read_csv<T: DeserializeOwned>(path: &Path) -> Result<Vec<T>, DataError> {
    let bytes = read_required(path)?;
    let mut reader = csv::Reader::from_reader(bytes.as_slice());
    reader
        .deserialize()
        .collect::<Result<Vec<T>, csv::Error>>()
        .map_err(|error| DataError {
            path: path.to_path_buf(),
            problem: format!("invalid CSV: {error}"),
            fix: RERUN,
        })
}
