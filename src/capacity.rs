//! `volley capacity`: the highest open-model rate that still meets the pass criteria.
//!
//! The search runs the open model at a start rate and doubles it while each step passes.
//! After the first failing step it bisects between the last passing and the first failing
//! rate until they are within 5% of each other, and reports the last passing rate. A step
//! passes when it meets every criterion and achieves at least 95% of its target rate, since
//! a target that cannot keep up has reached its capacity whatever its latency says.

use std::time::Duration;

use serde::Serialize;

use crate::engine::cell::CellResult;
use crate::report::summary::{self, SummaryRow};
use crate::scenario::{CellSpec, Load, LoadPoint, Model};
use crate::thresholds::{Threshold, ThresholdSpec};

/// The bisection stops when the failing rate is within this share above the passing one.
pub const PRECISION: f64 = 0.05;

/// The share of the target rate a step must achieve to pass.
pub const MIN_ACHIEVED: f64 = 0.95;

/// The maximum number of steps of a search, so a target that never fails still ends.
pub const MAX_STEPS: usize = 40;

/// Settings of one search.
#[derive(Debug, Clone)]
pub struct SearchSettings {
    /// The first rate tried, in requests per second.
    pub start_rate: f64,
    /// The highest rate tried.
    pub max_rate: f64,
    /// How long each step sends.
    pub step_duration: Duration,
    /// The maximum number of requests in flight in each step.
    pub max_in_flight: u32,
    /// The criteria every step must meet.
    pub criteria: Vec<Threshold>,
}

/// Parses `--until`: criteria such as `"p99_ms < 500, rate_429 < 0.01"`.
pub fn parse_criteria(text: &str) -> Result<Vec<Threshold>, String> {
    let mut criteria = Vec::new();
    for part in text
        .split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
    {
        let split = part.find(|c: char| "<>=".contains(c)).ok_or_else(|| {
            format!("invalid criterion \"{part}\": write METRIC OP VALUE, such as \"p99_ms < 500\"")
        })?;
        let (metric, condition) = part.split_at(split);
        criteria.push(Threshold::parse(
            metric.trim(),
            &ThresholdSpec::Condition(condition.to_string()),
        )?);
    }
    if criteria.is_empty() {
        return Err(
            "--until is empty: give criteria such as \"p99_ms < 500, rate_429 < 0.01\"".to_string(),
        );
    }
    Ok(criteria)
}

/// One step of the search, as written to `capacity.csv`.
#[derive(Debug, Clone, Serialize)]
pub struct StepRow {
    /// The step's number, from 1.
    pub step: usize,
    /// The target rate.
    pub rate_rps: f64,
    /// The achieved rate.
    pub achieved_rps: f64,
    /// Requests with an outcome.
    pub requests: u64,
    /// 99th percentile latency in ms, from the due time.
    pub p99_ms: f64,
    /// Share of 429 responses.
    pub rate_429: f64,
    /// Share of requests that were not `ok`.
    pub error_rate: f64,
    /// `pass`, or `fail: ` and what failed.
    pub verdict: String,
    /// `double` or `bisect`.
    pub phase: &'static str,
    /// Median latency in ms.
    pub p50_ms: f64,
    /// Requests skipped because every slot was busy.
    pub dropped: u64,
}

/// Decides one step: the failed criteria, or an empty list when it passes.
pub fn judge(row: &SummaryRow, criteria: &[Threshold], rate: f64) -> Vec<String> {
    let mut failed: Vec<String> = criteria
        .iter()
        .filter(|criterion| !criterion.passes(row))
        .map(|criterion| {
            let value = crate::thresholds::display_value(criterion.metric.value(row));
            format!("{criterion} (was {value})")
        })
        .collect();
    if row.achieved_rps < rate * MIN_ACHIEVED {
        failed.push(format!("achieved {} of {rate} req/s", row.achieved_rps));
    }
    failed
}

/// The state of the search between steps.
#[derive(Debug, Clone, PartialEq)]
pub struct Search {
    /// The highest passing rate so far.
    pub passing: Option<f64>,
    /// The lowest failing rate so far.
    pub failing: Option<f64>,
    settings_start: f64,
    max_rate: f64,
}

impl Search {
    /// Starts a search at `start` requests per second, never above `max_rate`.
    pub fn new(start: f64, max_rate: f64) -> Search {
        Search {
            passing: None,
            failing: None,
            settings_start: start,
            max_rate,
        }
    }

    /// Returns the next rate to try, or `None` when the search is over.
    pub fn next_rate(&self) -> Option<f64> {
        match (self.passing, self.failing) {
            (None, None) => Some(self.settings_start),
            (None, Some(_)) => None,
            (Some(passing), None) => {
                let next = (passing * 2.0).min(self.max_rate);
                (next > passing).then_some(next)
            }
            (Some(passing), Some(failing)) => {
                ((failing - passing) / passing > PRECISION).then(|| (passing + failing) / 2.0)
            }
        }
    }

    /// Records a step's result.
    pub fn record(&mut self, rate: f64, passed: bool) {
        if passed {
            self.passing = Some(self.passing.map_or(rate, |passing| passing.max(rate)));
        } else {
            self.failing = Some(self.failing.map_or(rate, |failing| failing.min(rate)));
        }
    }

    /// Returns the phase the next step belongs to.
    pub fn phase(&self) -> &'static str {
        if self.failing.is_some() {
            "bisect"
        } else {
            "double"
        }
    }
}

/// Returns the cell spec and load of a step at `rate`.
pub fn step_cell(
    index: usize,
    variant: usize,
    rate: f64,
    settings: &SearchSettings,
    base: &Load,
) -> (CellSpec, Load) {
    let mut load = base.clone();
    load.model = Model::Open;
    load.duration = Some(crate::units::TextDuration(settings.step_duration));
    load.iterations = None;
    load.stages = None;
    load.throttle = None;
    let spec = CellSpec {
        index,
        variant,
        load: LoadPoint::Open {
            rate,
            max_in_flight: settings.max_in_flight,
        },
        stages: None,
    };
    (spec, load)
}

/// Builds the `capacity.csv` row of a finished step.
pub fn step_row(
    step: usize,
    rate: f64,
    result: &CellResult,
    failed: &[String],
    phase: &'static str,
) -> StepRow {
    let row = summary::row(result);
    let error_rate = crate::thresholds::Metric::ErrorRate.value(&row);
    StepRow {
        step,
        rate_rps: crate::report::round3(rate),
        achieved_rps: row.achieved_rps,
        requests: row.requests,
        p99_ms: row.p99_ms,
        rate_429: row.rate_429,
        error_rate: crate::thresholds::display_value(error_rate),
        verdict: if failed.is_empty() {
            "pass".to_string()
        } else {
            format!("fail: {}", failed.join("; "))
        },
        phase,
        p50_ms: row.p50_ms,
        dropped: row.dropped,
    }
}

/// Renders `capacity.csv`.
pub fn to_csv(rows: &[StepRow]) -> Result<Vec<u8>, csv::Error> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    for row in rows {
        writer.serialize(row)?;
    }
    writer
        .into_inner()
        .map_err(|error| error.into_error().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a search against a target that passes up to `capacity` req/s.
    fn search(start: f64, capacity: f64) -> (Option<f64>, Vec<f64>) {
        let mut search = Search::new(start, 1_000_000.0);
        let mut tried = Vec::new();
        while let Some(rate) = search.next_rate() {
            tried.push(rate);
            search.record(rate, rate <= capacity);
            assert!(tried.len() < MAX_STEPS);
        }
        (search.passing, tried)
    }

    #[test]
    fn doubles_then_bisects_to_five_percent() {
        let (found, tried) = search(10.0, 50.0);
        assert_eq!(&tried[..4], [10.0, 20.0, 40.0, 80.0]);
        let found = found.unwrap();
        assert!(
            (50.0 / (1.0 + PRECISION)..=50.0).contains(&found),
            "found {found}"
        );
    }

    #[test]
    fn failing_at_start_ends_at_once() {
        let (found, tried) = search(10.0, 5.0);
        assert_eq!(found, None);
        assert_eq!(tried, [10.0]);
    }

    #[test]
    fn max_rate_bounds_the_doubling() {
        let mut search = Search::new(10.0, 25.0);
        let mut tried = Vec::new();
        while let Some(rate) = search.next_rate() {
            tried.push(rate);
            search.record(rate, true);
        }
        assert_eq!(tried, [10.0, 20.0, 25.0]);
        assert_eq!(search.passing, Some(25.0));
    }

    #[test]
    fn criteria_parse_from_until() {
        let criteria = parse_criteria("p99_ms < 500, rate_429 < 0.01").unwrap();
        assert_eq!(criteria.len(), 2);
        assert_eq!(criteria[0].to_string(), "p99_ms < 500");
        assert!(
            parse_criteria("p99_ms")
                .unwrap_err()
                .contains("METRIC OP VALUE")
        );
        assert!(
            parse_criteria("p99 < 5")
                .unwrap_err()
                .contains("unknown metric")
        );
        assert!(parse_criteria(" , ").unwrap_err().contains("empty"));
    }

    #[test]
    fn slow_step_fails_on_achieved_rate() {
        let mut row = SummaryRow::blank();
        row.achieved_rps = 90.0;
        let failed = judge(&row, &[], 100.0);
        assert_eq!(failed, ["achieved 90 of 100 req/s"]);
        row.achieved_rps = 96.0;
        assert!(judge(&row, &[], 100.0).is_empty());
    }
}
