//! [`Tally`]: what one worker, one second or one cell recorded.

use std::time::SystemTime;

use hdrhistogram::Histogram;

use super::outcome::{OUTCOMES, Outcome};
use super::rate_limit::RateLimitSeen;

/// The highest latency a histogram holds: one hour, in microseconds.
pub const MAX_LATENCY_US: u64 = 3_600_000_000;

/// Details kept per kind of error, at most this many kinds per tally.
const MAX_ERROR_KINDS: usize = 64;

/// The highest latency a growing histogram covers before it first grows, in microseconds.
/// hdrhistogram's smallest layout at 3 significant digits covers 2,048 values with 16 KiB of
/// counts, and each doubling of the range adds 1,024 counts (8 KiB).
const GROWING_START_US: u64 = 2_048;

/// Creates an empty latency histogram: microseconds from 1 us to 1 h, 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("the bounds are valid")
}

/// Creates an empty histogram with the same precision as [`new_histogram`] that allocates
/// counts only up to the largest latency recorded (at most 1 h, because [`Tally::record`]
/// clamps). A fixed 1 h histogram contains 184 KiB of counts, while latencies below 16 ms
/// need 40 KiB and latencies below 1 s need 88 KiB.
fn new_growing_histogram() -> Histogram<u64> {
    let mut histogram =
        Histogram::new_with_bounds(1, GROWING_START_US, 3).expect("the bounds are valid");
    histogram.auto(true);
    histogram
}

/// Records `latency_us`, clamped to 1 us..1 h. `record`, not `saturating_record`, because
/// the latter clamps to a growing histogram's current range instead of growing it. Clamping
/// to 1 h first keeps a growing histogram from growing past the fixed ones.
fn record_latency(histogram: &mut Histogram<u64>, latency_us: u64) {
    let latency_us = latency_us.clamp(1, MAX_LATENCY_US);
    if histogram.record(latency_us).is_err() {
        // Only a histogram that cannot grow to 1 h gets here; none is made that way.
        histogram.saturating_record(latency_us);
    }
}

/// The reason a request failed, from its response or its error.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorDetail {
    /// The HTTP status, 0 when there was no response.
    pub status: u16,
    /// The body's `code` field, or the transport error's kind.
    pub code: String,
    /// The body's `message` field, or the transport error's text.
    pub message: String,
    /// The response's `ININ-Correlation-Id` header.
    pub correlation_id: String,
    /// The `Retry-After` header.
    pub retry_after: String,
    /// Rate-limit headers as `name=value` pairs joined by `;`.
    pub rate_limit: String,
}

/// One kind of error (outcome, status and code) with its count and a sample.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorSample {
    /// The request's outcome.
    pub outcome: Outcome,
    /// How many requests ended this way.
    pub count: u64,
    /// When the first one was seen.
    pub first_seen: SystemTime,
    /// When the last one was seen.
    pub last_seen: SystemTime,
    /// The first one's details.
    pub detail: ErrorDetail,
}

/// Counts, histograms and error samples of one worker, one second or one cell.
#[derive(Debug, Clone)]
pub struct Tally {
    /// Requests per outcome, indexed by [`Outcome::index`].
    pub counts: [u64; OUTCOMES.len()],
    /// Latency in microseconds of every request with an outcome. For the open model it is
    /// measured from the due time, corrected for coordinated omission.
    pub latency: Histogram<u64>,
    /// Open model only: latency measured from the actual send.
    pub uncorrected: Option<Histogram<u64>>,
    /// Latency per outcome, indexed by [`Outcome::index`], made at the outcome's first
    /// latency. Together they contain what `latency` contains, so a report can show the
    /// latency of 200s apart from fast 429s.
    pub by_outcome: [Option<Histogram<u64>>; OUTCOMES.len()],
    /// Request body bytes sent.
    pub request_bytes: u64,
    /// Response body bytes received.
    pub response_bytes: u64,
    /// Open model: requests skipped because every slot was busy.
    pub dropped: u64,
    /// Open model: the largest delay of a send behind its due time, in microseconds.
    pub max_lag_us: u64,
    /// Error kinds seen, in the order first seen.
    pub errors: Vec<ErrorSample>,
    /// Error responses whose kind did not fit in `errors`.
    pub errors_unsampled: u64,
    /// When the latest request was sent.
    pub last_sent: Option<tokio::time::Instant>,
    /// Extra attempts made after 429 responses with `on_429 = "retry-after"`.
    pub retries: u64,
    /// Rate limits the server announced.
    pub rate_limit: RateLimitSeen,
}

impl Tally {
    /// Creates an empty tally; `corrected` adds the uncorrected histogram of the open model.
    pub fn new(corrected: bool) -> Tally {
        Tally::with_histograms(new_histogram(), corrected.then(new_histogram))
    }

    /// Creates an empty tally whose histograms grow with the latencies recorded. Workers and
    /// the per-second sums use it: they hold few distinct latencies, and a cell may run
    /// hundreds of workers.
    pub fn new_growing(corrected: bool) -> Tally {
        Tally::with_histograms(
            new_growing_histogram(),
            corrected.then(new_growing_histogram),
        )
    }

    /// Creates an empty tally of the same shape: histograms of the same range that grow
    /// the same way, so that a worker's next second starts at the size its last one reached.
    pub fn empty_like(&self) -> Tally {
        let mut tally = Tally::with_histograms(
            Histogram::new_from(&self.latency),
            self.uncorrected.as_ref().map(Histogram::new_from),
        );
        for (fresh, used) in tally.by_outcome.iter_mut().zip(&self.by_outcome) {
            *fresh = used.as_ref().map(Histogram::new_from);
        }
        tally
    }

    fn with_histograms(latency: Histogram<u64>, uncorrected: Option<Histogram<u64>>) -> Tally {
        Tally {
            counts: [0; OUTCOMES.len()],
            latency,
            uncorrected,
            by_outcome: Default::default(),
            request_bytes: 0,
            response_bytes: 0,
            dropped: 0,
            max_lag_us: 0,
            errors: Vec::new(),
            errors_unsampled: 0,
            last_sent: None,
            retries: 0,
            rate_limit: RateLimitSeen::default(),
        }
    }

    /// Returns the number of requests with an outcome.
    pub fn requests(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Returns the count of one outcome.
    pub fn count(&self, outcome: Outcome) -> u64 {
        self.counts[outcome.index()]
    }

    /// Records one request's outcome and latencies (`uncorrected_us` is ignored by closed
    /// tallies).
    pub fn record(&mut self, outcome: Outcome, latency_us: u64, uncorrected_us: u64) {
        self.counts[outcome.index()] += 1;
        record_latency(&mut self.latency, latency_us);
        let by_outcome = self.by_outcome[outcome.index()].get_or_insert_with(new_growing_histogram);
        record_latency(by_outcome, latency_us);
        if let Some(uncorrected) = &mut self.uncorrected {
            record_latency(uncorrected, uncorrected_us);
        }
    }

    /// Counts an outcome that has no latency, such as a request cancelled by an interrupt.
    pub fn count_only(&mut self, outcome: Outcome) {
        self.counts[outcome.index()] += 1;
    }

    /// Records an error's details, grouped by outcome, status and code.
    pub fn record_error(&mut self, outcome: Outcome, detail: ErrorDetail) {
        let now = SystemTime::now();
        let existing = self.errors.iter_mut().find(|sample| {
            sample.outcome == outcome
                && sample.detail.status == detail.status
                && sample.detail.code == detail.code
        });
        if let Some(sample) = existing {
            sample.count += 1;
            sample.last_seen = now;
        } else if self.errors.len() < MAX_ERROR_KINDS {
            self.errors.push(ErrorSample {
                outcome,
                count: 1,
                first_seen: now,
                last_seen: now,
                detail,
            });
        } else {
            self.errors_unsampled += 1;
        }
    }

    /// Adds `other` into this tally.
    pub fn merge(&mut self, other: &Tally) {
        for (count, add) in self.counts.iter_mut().zip(other.counts) {
            *count += add;
        }
        self.latency
            .add(&other.latency)
            .expect("histograms share their bounds");
        match (&mut self.uncorrected, &other.uncorrected) {
            (Some(mine), Some(theirs)) => mine.add(theirs).expect("histograms share their bounds"),
            (None, Some(theirs)) => self.uncorrected = Some(theirs.clone()),
            _ => {}
        }
        for (mine, theirs) in self.by_outcome.iter_mut().zip(&other.by_outcome) {
            match (mine, theirs) {
                (Some(mine), Some(theirs)) => {
                    // Per-outcome histograms grow with their latencies, so `theirs` may
                    // reach past the range `mine` has grown to so far.
                    mine.auto(true);
                    mine.add(theirs)
                        .expect("a growing histogram takes any value up to 1 h");
                }
                (mine @ None, Some(theirs)) => *mine = Some(theirs.clone()),
                _ => {}
            }
        }
        self.request_bytes += other.request_bytes;
        self.response_bytes += other.response_bytes;
        self.dropped += other.dropped;
        self.max_lag_us = self.max_lag_us.max(other.max_lag_us);
        self.errors_unsampled += other.errors_unsampled;
        self.last_sent = self.last_sent.max(other.last_sent);
        self.retries += other.retries;
        self.rate_limit.merge(&other.rate_limit);
        for sample in &other.errors {
            self.merge_error(sample);
        }
    }

    fn merge_error(&mut self, sample: &ErrorSample) {
        let existing = self.errors.iter().position(|mine| {
            mine.outcome == sample.outcome
                && mine.detail.status == sample.detail.status
                && mine.detail.code == sample.detail.code
        });
        match existing {
            Some(position) => {
                let mine = &mut self.errors[position];
                mine.count += sample.count;
                mine.first_seen = mine.first_seen.min(sample.first_seen);
                mine.last_seen = mine.last_seen.max(sample.last_seen);
            }
            None if self.errors.len() < MAX_ERROR_KINDS => self.errors.push(sample.clone()),
            None => self.errors_unsampled += sample.count,
        }
    }

    /// Returns a latency quantile in milliseconds, 0 when nothing was recorded.
    pub fn quantile_ms(histogram: &Histogram<u64>, quantile: f64) -> f64 {
        if histogram.is_empty() {
            return 0.0;
        }
        histogram.value_at_quantile(quantile) as f64 / 1000.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_counts_and_histograms() {
        let mut tally = Tally::new(true);
        tally.record(Outcome::Ok, 2_000, 1_000);
        tally.record(Outcome::Throttled, 4_000, 3_000);
        assert_eq!(tally.requests(), 2);
        assert_eq!(tally.count(Outcome::Ok), 1);
        assert_eq!(tally.count(Outcome::Throttled), 1);
        assert_eq!(tally.latency.len(), 2);
        assert_eq!(tally.uncorrected.as_ref().unwrap().max(), 3_001);
    }

    #[test]
    fn growing_tally_keeps_large_latencies() {
        let mut tally = Tally::new_growing(true);
        tally.record(Outcome::Timeout, 300_000, 299_000);
        tally.record(Outcome::Timeout, u64::MAX, u64::MAX);
        assert_eq!(tally.latency.len(), 2);
        assert_eq!(
            tally.latency.min(),
            tally.latency.lowest_equivalent(300_000)
        );
        assert_eq!(
            tally.latency.max(),
            tally.latency.highest_equivalent(MAX_LATENCY_US)
        );
        let uncorrected = tally.uncorrected.as_ref().unwrap();
        assert_eq!(uncorrected.min(), uncorrected.lowest_equivalent(299_000));
    }

    #[test]
    fn merge_from_growing_tally_keeps_values() {
        let mut worker = Tally::new_growing(false);
        worker.record(Outcome::Ok, 150, 0);
        worker.record(Outcome::Ok, 42_000, 0);
        let mut next = worker.empty_like();
        next.record(Outcome::Ok, 41_000, 0);
        let mut total = Tally::new(false);
        total.merge(&worker);
        total.merge(&next);
        assert_eq!(total.latency.len(), 3);
        assert_eq!(total.latency.min(), 150);
        assert_eq!(
            total.latency.max(),
            total.latency.highest_equivalent(42_000)
        );
    }

    #[test]
    fn outcomes_get_their_own_histograms() {
        let mut worker = Tally::new_growing(false);
        worker.record(Outcome::Ok, 20_000, 0);
        worker.record(Outcome::Ok, 30_000, 0);
        worker.record(Outcome::Throttled, 500, 0);
        worker.count_only(Outcome::Cancelled);
        let mut total = Tally::new(false);
        total.merge(&worker);
        total.merge(&worker.empty_like());
        let ok = total.by_outcome[Outcome::Ok.index()].as_ref().unwrap();
        let throttled = total.by_outcome[Outcome::Throttled.index()]
            .as_ref()
            .unwrap();
        assert_eq!(ok.len(), 2);
        assert_eq!(ok.min(), ok.lowest_equivalent(20_000));
        assert_eq!(throttled.len(), 1);
        assert_eq!(throttled.max(), throttled.highest_equivalent(500));
        assert!(total.by_outcome[Outcome::Cancelled.index()].is_none());
        assert!(total.by_outcome[Outcome::Forbidden.index()].is_none());
        assert_eq!(total.latency.len(), 3);
    }

    #[test]
    fn latency_above_an_hour_saturates() {
        let mut tally = Tally::new(false);
        tally.record(Outcome::Timeout, u64::MAX, 0);
        assert_eq!(tally.latency.len(), 1);
    }

    #[test]
    fn merge_adds_everything() {
        let mut first = Tally::new(false);
        first.record(Outcome::Ok, 1_000, 0);
        first.request_bytes = 10;
        first.max_lag_us = 5;
        let mut second = Tally::new(false);
        second.record(Outcome::Ok, 3_000, 0);
        second.record(Outcome::Forbidden, 3_000, 0);
        second.request_bytes = 20;
        second.max_lag_us = 9;
        second.dropped = 4;
        first.merge(&second);
        assert_eq!(first.requests(), 3);
        assert_eq!(first.count(Outcome::Ok), 2);
        assert_eq!(first.latency.len(), 3);
        assert_eq!(first.request_bytes, 30);
        assert_eq!(first.max_lag_us, 9);
        assert_eq!(first.dropped, 4);
    }

    #[test]
    fn errors_group_by_outcome_status_and_code() {
        let detail = |code: &str| ErrorDetail {
            status: 403,
            code: code.to_string(),
            ..ErrorDetail::default()
        };
        let mut first = Tally::new(false);
        first.record_error(Outcome::Forbidden, detail("not.authorized"));
        first.record_error(Outcome::Forbidden, detail("not.authorized"));
        first.record_error(Outcome::Forbidden, detail("other"));
        let mut second = Tally::new(false);
        second.record_error(Outcome::Forbidden, detail("not.authorized"));
        first.merge(&second);
        assert_eq!(first.errors.len(), 2);
        assert_eq!(first.errors[0].count, 3);
        assert_eq!(first.errors[1].count, 1);
    }

    #[test]
    fn error_kinds_are_bounded() {
        let mut tally = Tally::new(false);
        for code in 0..(MAX_ERROR_KINDS + 5) {
            tally.record_error(
                Outcome::ClientError,
                ErrorDetail {
                    status: 400,
                    code: code.to_string(),
                    ..ErrorDetail::default()
                },
            );
        }
        assert_eq!(tally.errors.len(), MAX_ERROR_KINDS);
        assert_eq!(tally.errors_unsampled, 5);
    }
}
