//! `timeseries.csv`: one row per cell per second, flushed as each second ends so that a
//! crash loses at most the second in progress.

use std::fs::File;
use std::path::Path;

use serde::Serialize;

use super::{rfc3339, round3};
use crate::engine::cell::Interval;
use crate::metrics::{Outcome, Tally};

/// One row of `timeseries.csv`.
#[derive(Debug, Serialize)]
pub struct TimeseriesRow<'a> {
    /// The cell's number.
    pub cell: usize,
    /// The variant's name.
    pub variant: &'a str,
    /// The second's number within the cell, from 1.
    pub second: u64,
    /// Seconds since the cell started, at the end of this row's interval.
    pub elapsed_s: f64,
    /// Wall-clock time at the end of the interval, RFC 3339 UTC.
    pub time: String,
    /// Requests with an outcome in this interval.
    pub requests: u64,
    /// 2xx responses.
    pub ok: u64,
    /// 403 responses.
    pub forbidden: u64,
    /// 429 responses.
    pub throttled: u64,
    /// Other 4xx responses.
    pub client_error: u64,
    /// 5xx responses.
    pub server_error: u64,
    /// Timeouts.
    pub timeout: u64,
    /// Connection errors.
    pub connect_error: u64,
    /// Other errors.
    pub other_error: u64,
    /// Requests cancelled by an interrupt.
    pub cancelled: u64,
    /// Open model: requests skipped.
    pub dropped: u64,
    /// Median latency in ms.
    pub p50_ms: f64,
    /// 90th percentile latency in ms.
    pub p90_ms: f64,
    /// 99th percentile latency in ms.
    pub p99_ms: f64,
    /// Highest latency in ms.
    pub max_ms: f64,
}

impl<'a> TimeseriesRow<'a> {
    /// Builds the row of one interval.
    pub fn new(cell: usize, variant: &'a str, interval: &Interval<'_>) -> TimeseriesRow<'a> {
        let tally = interval.tally;
        let max = if tally.latency.is_empty() {
            0.0
        } else {
            tally.latency.max() as f64 / 1000.0
        };
        TimeseriesRow {
            cell,
            variant,
            second: interval.second,
            elapsed_s: round3(interval.elapsed.as_secs_f64()),
            time: rfc3339(interval.at),
            requests: tally.requests(),
            ok: tally.count(Outcome::Ok),
            forbidden: tally.count(Outcome::Forbidden),
            throttled: tally.count(Outcome::Throttled),
            client_error: tally.count(Outcome::ClientError),
            server_error: tally.count(Outcome::ServerError),
            timeout: tally.count(Outcome::Timeout),
            connect_error: tally.count(Outcome::ConnectError),
            other_error: tally.count(Outcome::OtherError),
            cancelled: tally.count(Outcome::Cancelled),
            dropped: tally.dropped,
            p50_ms: round3(Tally::quantile_ms(&tally.latency, 0.5)),
            p90_ms: round3(Tally::quantile_ms(&tally.latency, 0.9)),
            p99_ms: round3(Tally::quantile_ms(&tally.latency, 0.99)),
            max_ms: round3(max),
        }
    }
}

/// Appends rows to `timeseries.csv` and flushes each one.
pub struct TimeseriesWriter {
    writer: csv::Writer<File>,
}

impl TimeseriesWriter {
    /// Creates the file with its header.
    pub fn create(path: &Path) -> std::io::Result<TimeseriesWriter> {
        let file = File::create(path)?;
        let mut writer = csv::WriterBuilder::new()
            .has_headers(false)
            .from_writer(file);
        writer.write_record([
            "cell",
            "variant",
            "second",
            "elapsed_s",
            "time",
            "requests",
            "ok",
            "forbidden",
            "throttled",
            "client_error",
            "server_error",
            "timeout",
            "connect_error",
            "other_error",
            "cancelled",
            "dropped",
            "p50_ms",
            "p90_ms",
            "p99_ms",
            "max_ms",
        ])?;
        writer.flush()?;
        Ok(TimeseriesWriter { writer })
    }

    /// Writes one row and flushes it to the file.
    pub fn write(&mut self, row: &TimeseriesRow<'_>) -> std::io::Result<()> {
        self.writer.serialize(row)?;
        // csv::Writer::flush also flushes the file, so the row is on disk after this.
        self.writer.flush()
    }
}
