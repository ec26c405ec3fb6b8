//! `shard.json`: what a shard's report folder adds for `volley merge`. It contains the
//! scenario's hash, the shard's index and count, every cell's definition and the cell's exact
//! totals: counts per outcome, bytes, error samples, rate-limit figures, send window and the
//! latency histograms at full precision (HdrHistogram V2 with deflate, in base64).

use std::path::Path;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};
use serde::{Deserialize, Serialize};

use super::ShardRun;
use crate::engine::cell::CellResult;
use crate::metrics::{ErrorDetail, ErrorSample, OUTCOMES, Outcome, RateLimitSeen, Tally};
use crate::scenario::{LoadPoint, Plan};

/// The file name in a shard's report folder.
pub const FILE_NAME: &str = "shard.json";

/// The value of [`ShardRecord::format`]; a merge rejects any other.
pub const FORMAT: &str = "volley-shard-1";

/// The whole of `shard.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShardRecord {
    /// [`FORMAT`].
    pub format: String,
    /// The volley version that ran the shard.
    pub volley_version: String,
    /// The scenario's name.
    pub scenario_name: String,
    /// `sha256:HEX` of the scenario after overrides, see [`super::scenario_hash`].
    pub scenario_hash: String,
    /// The shard's index, from 0.
    pub shard_index: u32,
    /// The number of shards.
    pub shard_count: u32,
    /// The seed the shard ran with.
    pub seed: u64,
    /// Every cell that ran, in run order.
    pub cells: Vec<CellRecord>,
}

/// One cell's load: the whole cell's, or one shard's share of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadRecord {
    /// `closed` or `open`.
    pub model: String,
    /// Closed model: workers. Open model: the maximum number of requests in flight.
    pub concurrency: u32,
    /// Open model: requests per second (with stages, the mean planned rate).
    pub rate: Option<f64>,
    /// The iterations, when the scenario limits them.
    pub iterations: Option<u64>,
    /// Closed model: the throttle in requests per second.
    pub throttle_rps: Option<f64>,
}

impl LoadRecord {
    fn new(point: LoadPoint, iterations: Option<u64>, throttle_rps: Option<f64>) -> LoadRecord {
        match point {
            LoadPoint::Closed { concurrency } => LoadRecord {
                model: "closed".into(),
                concurrency,
                rate: None,
                iterations,
                throttle_rps,
            },
            LoadPoint::Open {
                rate,
                max_in_flight,
            } => LoadRecord {
                model: "open".into(),
                concurrency: max_in_flight,
                rate: Some(rate),
                iterations,
                throttle_rps: None,
            },
        }
    }

    /// Returns the load point this record describes.
    pub fn point(&self) -> LoadPoint {
        match self.rate {
            Some(rate) if self.model == "open" => LoadPoint::Open {
                rate,
                max_in_flight: self.concurrency,
            },
            _ => LoadPoint::Closed {
                concurrency: self.concurrency,
            },
        }
    }
}

/// One cell of one shard.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CellRecord {
    /// The cell's number, from 1, as in `summary.csv`.
    pub cell: usize,
    /// The variant's index in the scenario.
    pub variant_index: usize,
    /// The variant's name.
    pub variant: String,
    /// The whole cell's load.
    pub total: LoadRecord,
    /// This shard's share.
    pub share: LoadRecord,
    /// Whether the share was zero, so the shard sent nothing in this cell.
    pub idle: bool,
    /// The variant's thresholds, such as `p99_ms < 500`, with `abort_on_fail` flags.
    pub thresholds: Vec<ThresholdRecord>,
    /// Wall-clock start, RFC 3339 UTC with nanoseconds.
    pub started_at: String,
    /// The time requests were being sent, in nanoseconds.
    pub send_window_ns: u64,
    /// From the start until the last response, in nanoseconds.
    pub elapsed_ns: u64,
    /// Whether an interrupt ended the cell early.
    pub interrupted: bool,
    /// Requests per outcome, by outcome name (`ok`, `forbidden`, ...).
    pub counts: std::collections::BTreeMap<String, u64>,
    /// Request body bytes sent.
    pub request_bytes: u64,
    /// Response body bytes received.
    pub response_bytes: u64,
    /// Open model: requests skipped because every slot was busy.
    pub dropped: u64,
    /// Open model: the largest delay of a send behind its due time, in microseconds.
    pub max_lag_us: u64,
    /// Extra attempts after 429 responses.
    pub retries: u64,
    /// Error responses whose kind did not fit in `errors`.
    pub errors_unsampled: u64,
    /// Rate-limit figures announced by the server.
    pub rate_limit: RateLimitRecord,
    /// Error kinds with counts and the first sample of each.
    pub errors: Vec<ErrorRecord>,
    /// The latency histogram in microseconds (corrected for the open model).
    pub latency: String,
    /// Open model: the latency histogram measured from the actual send.
    pub uncorrected: Option<String>,
    /// The latency histogram of each outcome that had a latency, by outcome name.
    #[serde(default)]
    pub by_outcome: std::collections::BTreeMap<String, String>,
}

/// One threshold of a cell.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ThresholdRecord {
    /// The metric, such as `p99_ms`.
    pub metric: String,
    /// The condition, such as `< 500`.
    pub condition: String,
    /// Whether a failure stops the run.
    pub abort_on_fail: bool,
}

/// [`RateLimitSeen`] as stored.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct RateLimitRecord {
    /// The largest announced limit.
    pub limit: Option<u64>,
    /// The window of that limit in seconds.
    pub window_s: Option<u64>,
    /// The smallest remaining allowance seen.
    pub min_remaining: Option<u64>,
}

/// [`ErrorSample`] as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorRecord {
    /// The outcome's name.
    pub outcome: String,
    /// How many requests ended this way.
    pub count: u64,
    /// First seen, RFC 3339 UTC with nanoseconds.
    pub first_seen: String,
    /// Last seen, RFC 3339 UTC with nanoseconds.
    pub last_seen: String,
    /// The HTTP status, 0 without a response.
    pub status: u16,
    /// The body's `code`, or the transport error's kind.
    pub code: String,
    /// The body's `message`, or the transport error's text.
    pub message: String,
    /// The first one's `ININ-Correlation-Id`.
    pub correlation_id: String,
    /// The first one's `Retry-After`.
    pub retry_after: String,
    /// The first one's rate-limit headers.
    pub rate_limit: String,
}

fn time_text(time: SystemTime) -> String {
    humantime::format_rfc3339_nanos(time).to_string()
}

/// Parses a time written by [`time_text`].
pub fn parse_time(text: &str) -> Result<SystemTime, String> {
    humantime::parse_rfc3339(text).map_err(|error| format!("invalid time \"{text}\": {error}"))
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// Encodes a histogram as base64 of the V2 deflate serialization.
pub fn encode_histogram(histogram: &Histogram<u64>) -> anyhow::Result<String> {
    let mut bytes = Vec::new();
    V2DeflateSerializer::new()
        .serialize(histogram, &mut bytes)
        .map_err(|error| anyhow::anyhow!("serialising a histogram failed: {error:?}"))?;
    Ok(BASE64.encode(bytes))
}

/// Decodes a histogram written by [`encode_histogram`] into one that covers 1 us to 1 h, the
/// range volley records. A histogram with values above 1 h is rejected.
pub fn decode_histogram(text: &str) -> Result<Histogram<u64>, String> {
    let bytes = BASE64
        .decode(text)
        .map_err(|error| format!("invalid histogram (base64: {error})"))?;
    let histogram: Histogram<u64> = Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .map_err(|error| format!("invalid histogram ({error:?})"))?;
    let mut range = crate::metrics::new_histogram();
    range.add(&histogram).map_err(|_| {
        format!(
            "invalid histogram: its maximum {} us is above the 1 h volley records",
            histogram.max()
        )
    })?;
    // A histogram that grew with its latencies decodes with the range it had reached, which
    // may be smaller than another shard's. The copy covers the full hour at the same
    // precision, so any two decoded histograms can be added.
    Ok(range)
}

impl CellRecord {
    fn new(result: &CellResult, plan: &Plan, run: &ShardRun) -> anyhow::Result<CellRecord> {
        let share = run.cell(result.spec.index);
        let total = &result.total;
        let (total_load, share_load, idle) = match share {
            Some(share) => (
                LoadRecord::new(
                    share.total,
                    plan.scenario.load.iterations,
                    share.total_throttle_rps,
                ),
                LoadRecord::new(
                    share.spec.load,
                    share.load.iterations,
                    share.load.throttle.map(|rate| rate.per_second()),
                ),
                share.idle,
            ),
            None => {
                let load = LoadRecord::new(result.spec.load, None, result.throttle_rps);
                (load.clone(), load, false)
            }
        };
        let thresholds = plan
            .variants
            .get(result.spec.variant)
            .map(|variant| {
                variant
                    .thresholds
                    .iter()
                    .map(|threshold| {
                        let text = threshold.to_string();
                        let condition = text
                            .strip_prefix(threshold.metric.name())
                            .unwrap_or(&text)
                            .trim()
                            .to_string();
                        ThresholdRecord {
                            metric: threshold.metric.name().to_string(),
                            condition,
                            abort_on_fail: threshold.abort_on_fail,
                        }
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(CellRecord {
            cell: result.spec.index,
            variant_index: result.spec.variant,
            variant: result.variant.clone(),
            total: total_load,
            share: share_load,
            idle,
            thresholds,
            started_at: time_text(result.started_at),
            send_window_ns: nanos(result.send_window),
            elapsed_ns: nanos(result.elapsed),
            interrupted: result.interrupted,
            counts: OUTCOMES
                .iter()
                .map(|outcome| (outcome.name().to_string(), total.count(*outcome)))
                .collect(),
            request_bytes: total.request_bytes,
            response_bytes: total.response_bytes,
            dropped: total.dropped,
            max_lag_us: total.max_lag_us,
            retries: total.retries,
            errors_unsampled: total.errors_unsampled,
            rate_limit: RateLimitRecord {
                limit: total.rate_limit.limit,
                window_s: total.rate_limit.window_s,
                min_remaining: total.rate_limit.min_remaining,
            },
            errors: total
                .errors
                .iter()
                .map(|sample| ErrorRecord {
                    outcome: sample.outcome.name().to_string(),
                    count: sample.count,
                    first_seen: time_text(sample.first_seen),
                    last_seen: time_text(sample.last_seen),
                    status: sample.detail.status,
                    code: sample.detail.code.clone(),
                    message: sample.detail.message.clone(),
                    correlation_id: sample.detail.correlation_id.clone(),
                    retry_after: sample.detail.retry_after.clone(),
                    rate_limit: sample.detail.rate_limit.clone(),
                })
                .collect(),
            latency: encode_histogram(&total.latency)?,
            uncorrected: total
                .uncorrected
                .as_ref()
                .map(encode_histogram)
                .transpose()?,
            by_outcome: OUTCOMES
                .iter()
                .filter_map(|outcome| {
                    let histogram = total.by_outcome[outcome.index()].as_ref()?;
                    Some(encode_histogram(histogram).map(|text| (outcome.name().to_string(), text)))
                })
                .collect::<anyhow::Result<_>>()?,
        })
    }

    /// Returns whether the cell ran the open model.
    pub fn open(&self) -> bool {
        self.total.model == "open"
    }

    /// Rebuilds the cell's tally; the error names the field that is invalid.
    // NOTE: this sets `Tally` fields directly, so a change to how a tally keeps its histograms
    // (such as one per outcome) must be mirrored here and in `CellRecord::new`.
    pub fn tally(&self) -> Result<Tally, String> {
        let mut tally = Tally::new(self.open());
        for (name, count) in &self.counts {
            let outcome = outcome_named(name)?;
            tally.counts[outcome.index()] = *count;
        }

        tally.latency =
            decode_histogram(&self.latency).map_err(|error| format!("latency: {error}"))?;
        tally.uncorrected = self
            .uncorrected
            .as_deref()
            .map(decode_histogram)
            .transpose()
            .map_err(|error| format!("uncorrected: {error}"))?;
        for (name, text) in &self.by_outcome {
            let outcome = outcome_named(name)?;
            tally.by_outcome[outcome.index()] = Some(
                decode_histogram(text).map_err(|error| format!("by_outcome.{name}: {error}"))?,
            );
        }

        tally.request_bytes = self.request_bytes;
        tally.response_bytes = self.response_bytes;
        tally.dropped = self.dropped;
        tally.max_lag_us = self.max_lag_us;
        tally.retries = self.retries;
        tally.errors_unsampled = self.errors_unsampled;
        tally.rate_limit = RateLimitSeen {
            limit: self.rate_limit.limit,
            window_s: self.rate_limit.window_s,
            min_remaining: self.rate_limit.min_remaining,
        };

        for error in &self.errors {
            tally.errors.push(ErrorSample {
                outcome: outcome_named(&error.outcome)?,
                count: error.count,
                first_seen: parse_time(&error.first_seen)?,
                last_seen: parse_time(&error.last_seen)?,
                detail: ErrorDetail {
                    status: error.status,
                    code: error.code.clone(),
                    message: error.message.clone(),
                    correlation_id: error.correlation_id.clone(),
                    retry_after: error.retry_after.clone(),
                    rate_limit: error.rate_limit.clone(),
                },
            });
        }
        Ok(tally)
    }
}

fn outcome_named(name: &str) -> Result<Outcome, String> {
    OUTCOMES
        .iter()
        .copied()
        .find(|outcome| outcome.name() == name)
        .ok_or_else(|| format!("unknown outcome \"{name}\""))
}

/// Rewrites `shard.json` in `folder` with the cells that ran so far.
pub fn write(
    folder: &Path,
    plan: &Plan,
    run: &ShardRun,
    results: &[CellResult],
) -> anyhow::Result<()> {
    let record = ShardRecord {
        format: FORMAT.to_string(),
        volley_version: env!("CARGO_PKG_VERSION").to_string(),
        scenario_name: plan.scenario.name.clone(),
        scenario_hash: run.scenario_hash.clone(),
        shard_index: run.spec.index,
        shard_count: run.spec.count,
        seed: run.seed,
        cells: results
            .iter()
            .map(|result| CellRecord::new(result, plan, run))
            .collect::<anyhow::Result<_>>()?,
    };
    let bytes = serde_json::to_vec_pretty(&record).context("rendering shard.json")?;
    crate::report::write_atomically(&folder.join(FILE_NAME), &bytes).context("writing shard.json")
}
