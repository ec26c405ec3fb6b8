//! `summary.csv`: one row per cell.

use serde::Serialize;

use super::round3;
use crate::engine::cell::CellResult;
use crate::metrics::{Outcome, Tally};
use crate::scenario::LoadPoint;

/// One row of `summary.csv`. The first columns are fixed; later ones may be added at the end.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SummaryRow {
    /// The cell's number, from 1.
    pub cell: usize,
    /// The variant's name.
    pub variant: String,
    /// `closed` or `open`.
    pub model: &'static str,
    /// Workers (closed) or the most requests in flight (open).
    pub concurrency: u32,
    /// The open model's rate, or the closed model's throttle; empty without either.
    pub target_rps: Option<f64>,
    /// Requests with an outcome per second of the send window.
    pub achieved_rps: f64,
    /// The send window in seconds.
    pub duration_s: f64,
    /// Requests with an outcome: the sum of the outcome columns.
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
    /// Requests without a complete response within the timeout.
    pub timeout: u64,
    /// Refused, reset or closed connections.
    pub connect_error: u64,
    /// Anything else.
    pub other_error: u64,
    /// Open model: requests skipped because every slot was busy (not in `requests`).
    pub dropped: u64,
    /// Share of requests with a 403 response, from 0 to 1.
    pub rate_403: f64,
    /// Share of requests with a 429 response, from 0 to 1.
    pub rate_429: f64,
    /// Mean request body size in bytes, per attempt (retries included).
    pub req_bytes_mean: f64,
    /// Median latency in ms (open model: from the due time).
    pub p50_ms: f64,
    /// 90th percentile latency in ms.
    pub p90_ms: f64,
    /// 95th percentile latency in ms.
    pub p95_ms: f64,
    /// 99th percentile latency in ms.
    pub p99_ms: f64,
    /// 99.9th percentile latency in ms.
    pub p999_ms: f64,
    /// Highest latency in ms.
    pub max_ms: f64,
    /// Mean latency in ms.
    pub mean_ms: f64,
    /// Open model: median latency from the actual send.
    pub p50_uncorrected_ms: Option<f64>,
    /// Open model: 90th percentile from the actual send.
    pub p90_uncorrected_ms: Option<f64>,
    /// Open model: 95th percentile from the actual send.
    pub p95_uncorrected_ms: Option<f64>,
    /// Open model: 99th percentile from the actual send.
    pub p99_uncorrected_ms: Option<f64>,
    /// Open model: 99.9th percentile from the actual send.
    pub p999_uncorrected_ms: Option<f64>,
    /// Open model: highest latency from the actual send.
    pub max_uncorrected_ms: Option<f64>,
    /// Open model: mean latency from the actual send.
    pub mean_uncorrected_ms: Option<f64>,
    /// Requests still in flight when an interrupt's grace period ran out.
    pub cancelled: u64,
    /// Mean response body size in bytes.
    pub resp_bytes_mean: f64,
    /// Open model: the largest delay of a send behind its due time, in ms.
    pub max_lag_ms: Option<f64>,
    /// Whether an interrupt cut the cell short.
    pub interrupted: bool,
    /// `pass`, `fail: ` with the failed thresholds, or empty without thresholds.
    pub verdict: String,
    /// Extra attempts after 429 responses (`on_429 = "retry-after"`), not in `requests`.
    pub retries: u64,
    /// The largest rate limit the server announced in its headers.
    pub ratelimit_limit: Option<u64>,
    /// The window of that limit in seconds, when announced.
    pub ratelimit_window_s: Option<u64>,
    /// The smallest remaining allowance the server announced.
    pub ratelimit_min_remaining: Option<u64>,
    /// Median latency of 2xx responses in ms, empty without any.
    pub ok_p50_ms: Option<f64>,
    /// 99th percentile latency of 2xx responses in ms.
    pub ok_p99_ms: Option<f64>,
    /// Median latency of 403 responses in ms, empty without any.
    pub forbidden_p50_ms: Option<f64>,
    /// 99th percentile latency of 403 responses in ms.
    pub forbidden_p99_ms: Option<f64>,
    /// Median latency of 429 responses in ms, empty without any.
    pub throttled_p50_ms: Option<f64>,
    /// 99th percentile latency of 429 responses in ms.
    pub throttled_p99_ms: Option<f64>,
}

impl SummaryRow {
    /// Creates a row of zeros, for tests of code that reads rows.
    #[cfg(test)]
    pub fn blank() -> SummaryRow {
        SummaryRow {
            cell: 1,
            variant: String::new(),
            model: "closed",
            concurrency: 1,
            target_rps: None,
            achieved_rps: 0.0,
            duration_s: 0.0,
            requests: 0,
            ok: 0,
            forbidden: 0,
            throttled: 0,
            client_error: 0,
            server_error: 0,
            timeout: 0,
            connect_error: 0,
            other_error: 0,
            dropped: 0,
            rate_403: 0.0,
            rate_429: 0.0,
            req_bytes_mean: 0.0,
            p50_ms: 0.0,
            p90_ms: 0.0,
            p95_ms: 0.0,
            p99_ms: 0.0,
            p999_ms: 0.0,
            max_ms: 0.0,
            mean_ms: 0.0,
            p50_uncorrected_ms: None,
            p90_uncorrected_ms: None,
            p95_uncorrected_ms: None,
            p99_uncorrected_ms: None,
            p999_uncorrected_ms: None,
            max_uncorrected_ms: None,
            mean_uncorrected_ms: None,
            cancelled: 0,
            resp_bytes_mean: 0.0,
            max_lag_ms: None,
            interrupted: false,
            verdict: String::new(),
            retries: 0,
            ratelimit_limit: None,
            ratelimit_window_s: None,
            ratelimit_min_remaining: None,
            ok_p50_ms: None,
            ok_p99_ms: None,
            forbidden_p50_ms: None,
            forbidden_p99_ms: None,
            throttled_p50_ms: None,
            throttled_p99_ms: None,
        }
    }
}

/// Latency figures of one histogram, in ms.
struct Percentiles {
    p50: f64,
    p90: f64,
    p95: f64,
    p99: f64,
    p999: f64,
    max: f64,
    mean: f64,
}

fn percentiles(histogram: &hdrhistogram::Histogram<u64>) -> Percentiles {
    let at = |quantile| round3(Tally::quantile_ms(histogram, quantile));
    let (max, mean) = if histogram.is_empty() {
        (0.0, 0.0)
    } else {
        (histogram.max() as f64 / 1000.0, histogram.mean() / 1000.0)
    };
    Percentiles {
        p50: at(0.5),
        p90: at(0.9),
        p95: at(0.95),
        p99: at(0.99),
        p999: at(0.999),
        max: round3(max),
        mean: round3(mean),
    }
}

fn share(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// Builds the summary row of one cell.
pub fn row(result: &CellResult) -> SummaryRow {
    let total = &result.total;
    let requests = total.requests();
    let (model, concurrency, target_rps) = match result.spec.load {
        LoadPoint::Closed { concurrency } => ("closed", concurrency, result.throttle_rps),
        LoadPoint::Open {
            rate,
            max_in_flight,
        } => ("open", max_in_flight, Some(rate)),
    };
    let corrected = percentiles(&total.latency);
    let uncorrected = total.uncorrected.as_ref().map(percentiles);
    let pick = |get: fn(&Percentiles) -> f64| uncorrected.as_ref().map(get);
    SummaryRow {
        cell: result.spec.index,
        variant: result.variant.clone(),
        model,
        concurrency,
        target_rps: target_rps.map(round3),
        achieved_rps: round3(result.achieved_rps()),
        duration_s: round3(result.send_window.as_secs_f64()),
        requests,
        ok: total.count(Outcome::Ok),
        forbidden: total.count(Outcome::Forbidden),
        throttled: total.count(Outcome::Throttled),
        client_error: total.count(Outcome::ClientError),
        server_error: total.count(Outcome::ServerError),
        timeout: total.count(Outcome::Timeout),
        connect_error: total.count(Outcome::ConnectError),
        other_error: total.count(Outcome::OtherError),
        dropped: total.dropped,
        rate_403: round_share(share(total.count(Outcome::Forbidden), requests)),
        rate_429: round_share(share(total.count(Outcome::Throttled), requests)),
        // Retries resend the same body, so the mean is per attempt.
        req_bytes_mean: round3(share(total.request_bytes, requests + total.retries)),
        p50_ms: corrected.p50,
        p90_ms: corrected.p90,
        p95_ms: corrected.p95,
        p99_ms: corrected.p99,
        p999_ms: corrected.p999,
        max_ms: corrected.max,
        mean_ms: corrected.mean,
        p50_uncorrected_ms: pick(|p| p.p50),
        p90_uncorrected_ms: pick(|p| p.p90),
        p95_uncorrected_ms: pick(|p| p.p95),
        p99_uncorrected_ms: pick(|p| p.p99),
        p999_uncorrected_ms: pick(|p| p.p999),
        max_uncorrected_ms: pick(|p| p.max),
        mean_uncorrected_ms: pick(|p| p.mean),
        cancelled: total.count(Outcome::Cancelled),
        resp_bytes_mean: round3(share(total.response_bytes, requests)),
        max_lag_ms: result
            .open
            .then(|| round3(total.max_lag_us as f64 / 1000.0)),
        interrupted: result.interrupted,
        verdict: result.verdict.clone(),
        retries: total.retries,
        ratelimit_limit: total.rate_limit.limit,
        ratelimit_window_s: total.rate_limit.window_s,
        ratelimit_min_remaining: total.rate_limit.min_remaining,
        ok_p50_ms: outcome_quantile(total, Outcome::Ok, 0.5),
        ok_p99_ms: outcome_quantile(total, Outcome::Ok, 0.99),
        forbidden_p50_ms: outcome_quantile(total, Outcome::Forbidden, 0.5),
        forbidden_p99_ms: outcome_quantile(total, Outcome::Forbidden, 0.99),
        throttled_p50_ms: outcome_quantile(total, Outcome::Throttled, 0.5),
        throttled_p99_ms: outcome_quantile(total, Outcome::Throttled, 0.99),
    }
}

/// Returns a latency quantile of one outcome in ms, `None` when no request had it.
fn outcome_quantile(total: &Tally, outcome: Outcome, quantile: f64) -> Option<f64> {
    let histogram = total.by_outcome[outcome.index()].as_ref()?;
    (!histogram.is_empty()).then(|| round3(Tally::quantile_ms(histogram, quantile)))
}

/// Shares keep six decimals, so a rate of one in a hundred thousand still shows.
fn round_share(value: f64) -> f64 {
    (value * 1e6).round() / 1e6
}

/// The columns of `summary.csv`, in order.
pub const COLUMNS: [&str; 49] = [
    "cell",
    "variant",
    "model",
    "concurrency",
    "target_rps",
    "achieved_rps",
    "duration_s",
    "requests",
    "ok",
    "forbidden",
    "throttled",
    "client_error",
    "server_error",
    "timeout",
    "connect_error",
    "other_error",
    "dropped",
    "rate_403",
    "rate_429",
    "req_bytes_mean",
    "p50_ms",
    "p90_ms",
    "p95_ms",
    "p99_ms",
    "p999_ms",
    "max_ms",
    "mean_ms",
    "p50_uncorrected_ms",
    "p90_uncorrected_ms",
    "p95_uncorrected_ms",
    "p99_uncorrected_ms",
    "p999_uncorrected_ms",
    "max_uncorrected_ms",
    "mean_uncorrected_ms",
    "cancelled",
    "resp_bytes_mean",
    "max_lag_ms",
    "interrupted",
    "verdict",
    "retries",
    "ratelimit_limit",
    "ratelimit_window_s",
    "ratelimit_min_remaining",
    "ok_p50_ms",
    "ok_p99_ms",
    "forbidden_p50_ms",
    "forbidden_p99_ms",
    "throttled_p50_ms",
    "throttled_p99_ms",
];

/// Renders `summary.csv`; with no results it holds the header alone.
pub fn to_csv(results: &[CellResult]) -> Result<Vec<u8>, csv::Error> {
    let mut writer = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(Vec::new());
    writer.write_record(COLUMNS)?;
    for result in results {
        writer.serialize(row(result))?;
    }
    writer
        .into_inner()
        .map_err(|error| error.into_error().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_matches_row_fields() {
        let mut writer = csv::Writer::from_writer(Vec::new());
        writer.serialize(SummaryRow::blank()).unwrap();
        let text = String::from_utf8(writer.into_inner().unwrap()).unwrap();
        let header = text.lines().next().unwrap();
        assert_eq!(header, COLUMNS.join(","));
    }

    #[test]
    fn required_columns_lead_in_order() {
        let required = "cell,variant,model,concurrency,target_rps,achieved_rps,duration_s,requests,ok,forbidden,throttled,client_error,server_error,timeout,connect_error,other_error,dropped,rate_403,rate_429,req_bytes_mean,p50_ms,p90_ms,p95_ms,p99_ms,p999_ms,max_ms,mean_ms";
        assert!(COLUMNS.join(",").starts_with(required));
    }
}
