//! Pass criteria: `metric = "OP VALUE"` over a cell's summary figures, and the verdict they give.
//!
//! A scenario's `[thresholds]` apply to every cell; a variant's own `thresholds` replace the
//! scenario's for the same metric, so a variant that is expected to fail can say so
//! (`rate_403 = "== 1"`).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::report::summary::SummaryRow;

/// A threshold as written: `"< 500"` or `{ condition = "< 500", abort_on_fail = true }`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum ThresholdSpec {
    /// Just the condition.
    Condition(String),
    /// The condition and whether a failure stops the run.
    Full(FullThreshold),
}

/// A threshold written as a table, which rejects misspelt keys such as `abort_on_failure`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FullThreshold {
    /// `OP VALUE`, such as `< 500`.
    pub condition: String,
    /// Stop the run after the first cell that fails this threshold.
    #[serde(default)]
    pub abort_on_fail: bool,
}

/// The metrics a threshold can test, all columns of `summary.csv`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// `p50_ms`.
    P50,
    /// `p90_ms`.
    P90,
    /// `p95_ms`.
    P95,
    /// `p99_ms`.
    P99,
    /// `p999_ms`.
    P999,
    /// `max_ms`.
    Max,
    /// `mean_ms`.
    Mean,
    /// `ok_p50_ms`: the median of 2xx responses alone.
    OkP50,
    /// `ok_p99_ms`: the 99th percentile of 2xx responses alone.
    OkP99,
    /// `rate_403`.
    Rate403,
    /// `rate_429`.
    Rate429,
    /// `error_rate`: the share of requests whose outcome is not `ok`.
    ErrorRate,
    /// `achieved_rps`.
    AchievedRps,
    /// `dropped`.
    Dropped,
}

const METRICS: [(Metric, &str); 14] = [
    (Metric::P50, "p50_ms"),
    (Metric::P90, "p90_ms"),
    (Metric::P95, "p95_ms"),
    (Metric::P99, "p99_ms"),
    (Metric::P999, "p999_ms"),
    (Metric::Max, "max_ms"),
    (Metric::Mean, "mean_ms"),
    (Metric::OkP50, "ok_p50_ms"),
    (Metric::OkP99, "ok_p99_ms"),
    (Metric::Rate403, "rate_403"),
    (Metric::Rate429, "rate_429"),
    (Metric::ErrorRate, "error_rate"),
    (Metric::AchievedRps, "achieved_rps"),
    (Metric::Dropped, "dropped"),
];

impl Metric {
    /// Finds a metric by its column name.
    pub fn parse(name: &str) -> Option<Metric> {
        METRICS
            .iter()
            .find(|(_, known)| *known == name)
            .map(|(metric, _)| *metric)
    }

    /// Returns the column name.
    pub fn name(self) -> &'static str {
        METRICS
            .iter()
            .find(|(metric, _)| *metric == self)
            .map_or("", |(_, name)| name)
    }

    /// Returns the metric's value in a summary row.
    pub fn value(self, row: &SummaryRow) -> f64 {
        match self {
            Metric::P50 => row.p50_ms,
            Metric::P90 => row.p90_ms,
            Metric::P95 => row.p95_ms,
            Metric::P99 => row.p99_ms,
            Metric::P999 => row.p999_ms,
            Metric::Max => row.max_ms,
            Metric::Mean => row.mean_ms,
            // Without any 2xx response the value is NaN, which fails every comparison.
            Metric::OkP50 => row.ok_p50_ms.unwrap_or(f64::NAN),
            Metric::OkP99 => row.ok_p99_ms.unwrap_or(f64::NAN),
            Metric::Rate403 => row.rate_403,
            Metric::Rate429 => row.rate_429,
            Metric::ErrorRate => {
                if row.requests == 0 {
                    0.0
                } else {
                    (row.requests - row.ok) as f64 / row.requests as f64
                }
            }
            Metric::AchievedRps => row.achieved_rps,
            Metric::Dropped => row.dropped as f64,
        }
    }
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `<`
    Less,
    /// `<=`
    LessOrEqual,
    /// `>`
    Greater,
    /// `>=`
    GreaterOrEqual,
    /// `==`
    Equal,
}

impl Op {
    fn holds(self, left: f64, right: f64) -> bool {
        match self {
            Op::Less => left < right,
            Op::LessOrEqual => left <= right,
            Op::Greater => left > right,
            Op::GreaterOrEqual => left >= right,
            Op::Equal => (left - right).abs() <= 1e-9 * right.abs().max(1.0),
        }
    }

    fn text(self) -> &'static str {
        match self {
            Op::Less => "<",
            Op::LessOrEqual => "<=",
            Op::Greater => ">",
            Op::GreaterOrEqual => ">=",
            Op::Equal => "==",
        }
    }
}

/// One checked threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    /// The metric tested.
    pub metric: Metric,
    /// The comparison.
    pub op: Op,
    /// The limit.
    pub limit: f64,
    /// Stop the run when a cell fails this threshold.
    pub abort_on_fail: bool,
}

impl fmt::Display for Threshold {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "{} {} {}",
            self.metric.name(),
            self.op.text(),
            self.limit
        )
    }
}

impl Threshold {
    /// Parses `metric` and its spec; errors name the valid metrics or the expected form.
    pub fn parse(metric: &str, spec: &ThresholdSpec) -> Result<Threshold, String> {
        let (condition, abort_on_fail) = match spec {
            ThresholdSpec::Condition(condition) => (condition.as_str(), false),
            ThresholdSpec::Full(full) => (full.condition.as_str(), full.abort_on_fail),
        };
        let names: Vec<&str> = METRICS.iter().map(|(_, name)| *name).collect();
        let metric_value = Metric::parse(metric.trim()).ok_or_else(|| {
            format!(
                "unknown metric \"{metric}\": use one of {}",
                names.join(", ")
            )
        })?;
        let text = condition.trim();
        let (op, rest) = [
            ("<=", Op::LessOrEqual),
            (">=", Op::GreaterOrEqual),
            ("==", Op::Equal),
            ("<", Op::Less),
            (">", Op::Greater),
        ]
        .iter()
        .find_map(|(prefix, op)| text.strip_prefix(prefix).map(|rest| (*op, rest)))
        .ok_or_else(|| format!("invalid condition \"{condition}\" for {metric}: write OP VALUE with OP one of <, <=, >, >=, ==, such as \"< 500\""))?;
        let limit: f64 = rest
            .trim()
            .parse()
            .ok()
            .filter(|value: &f64| value.is_finite())
            .ok_or_else(|| {
                format!(
                    "invalid condition \"{condition}\" for {metric}: \"{}\" is not a number",
                    rest.trim()
                )
            })?;
        Ok(Threshold {
            metric: metric_value,
            op,
            limit,
            abort_on_fail,
        })
    }

    /// Returns whether `row` meets the threshold.
    pub fn passes(&self, row: &SummaryRow) -> bool {
        self.op.holds(self.metric.value(row), self.limit)
    }
}

/// Parses a table of thresholds, returning every problem as `(metric, message)`.
pub fn parse_table(
    table: &BTreeMap<String, ThresholdSpec>,
) -> Result<Vec<Threshold>, Vec<(String, String)>> {
    let mut thresholds = Vec::new();
    let mut problems = Vec::new();
    for (metric, spec) in table {
        match Threshold::parse(metric, spec) {
            Ok(threshold) => thresholds.push(threshold),
            Err(problem) => problems.push((metric.clone(), problem)),
        }
    }
    if problems.is_empty() {
        Ok(thresholds)
    } else {
        Err(problems)
    }
}

/// Combines scenario-wide thresholds with a variant's own, which win for the same metric.
pub fn effective(scenario: &[Threshold], variant: &[Threshold]) -> Vec<Threshold> {
    let mut combined: Vec<Threshold> = scenario
        .iter()
        .filter(|threshold| !variant.iter().any(|own| own.metric == threshold.metric))
        .cloned()
        .collect();
    combined.extend(variant.iter().cloned());
    combined
}

/// Rounds a metric's value to six decimals for messages, so shares read `0.201333`.
pub fn display_value(value: f64) -> f64 {
    (value * 1e6).round() / 1e6
}

/// The outcome of checking one cell.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// `pass`, `fail: ...` with each failed threshold and its value, or empty without thresholds.
    pub text: String,
    /// Whether a failed threshold asks to stop the run.
    pub abort: bool,
}

/// Checks a cell's row against its thresholds.
pub fn verdict(thresholds: &[Threshold], row: &SummaryRow) -> Verdict {
    if thresholds.is_empty() {
        return Verdict {
            text: String::new(),
            abort: false,
        };
    }
    let failed: Vec<&Threshold> = thresholds
        .iter()
        .filter(|threshold| !threshold.passes(row))
        .collect();
    if failed.is_empty() {
        return Verdict {
            text: "pass".to_string(),
            abort: false,
        };
    }
    let described: Vec<String> = failed
        .iter()
        .map(|threshold| {
            let value = threshold.metric.value(row);
            if value.is_nan() {
                format!("{threshold} (no 2xx responses)")
            } else {
                format!("{threshold} (was {})", display_value(value))
            }
        })
        .collect();
    Verdict {
        text: format!("fail: {}", described.join("; ")),
        abort: failed.iter().any(|threshold| threshold.abort_on_fail),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> SummaryRow {
        let mut row = SummaryRow::blank();
        row.requests = 100;
        row.ok = 90;
        row.forbidden = 10;
        row.rate_403 = 0.1;
        row.p99_ms = 250.0;
        row
    }

    fn threshold(metric: &str, condition: &str) -> Threshold {
        Threshold::parse(metric, &ThresholdSpec::Condition(condition.to_string())).unwrap()
    }

    #[test]
    fn conditions_parse_and_compare() {
        let mut row = row();
        assert!(threshold("p99_ms", "< 500").passes(&row));
        assert!(!threshold("ok_p99_ms", "< 500").passes(&row));
        row.ok_p99_ms = Some(120.0);
        assert!(threshold("ok_p99_ms", "< 500").passes(&row));
        assert!(!threshold("ok_p99_ms", "< 100").passes(&row));
        assert!(!threshold("p99_ms", "< 250").passes(&row));
        assert!(threshold("p99_ms", "<= 250").passes(&row));
        assert!(threshold("rate_403", "== 0.1").passes(&row));
        assert!(threshold("error_rate", ">= 0.1").passes(&row));
        assert!(!threshold("error_rate", "> 0.1").passes(&row));
    }

    #[test]
    fn unknown_metric_lists_valid_names() {
        let error = Threshold::parse("p99", &ThresholdSpec::Condition("< 5".into())).unwrap_err();
        assert!(error.contains("unknown metric \"p99\""), "{error}");
        assert!(error.contains("p99_ms"), "{error}");
        assert!(error.contains("error_rate"), "{error}");
    }

    #[test]
    fn bad_conditions_are_rejected() {
        for condition in ["500", "<", "< fast", "=< 5", "< NaN"] {
            let error = Threshold::parse("p99_ms", &ThresholdSpec::Condition(condition.into()))
                .unwrap_err();
            assert!(error.contains("invalid condition"), "{condition}: {error}");
        }
    }

    #[test]
    fn verdict_names_failed_thresholds() {
        let thresholds = vec![threshold("p99_ms", "< 100"), threshold("rate_403", "< 0.5")];
        let verdict = verdict(&thresholds, &row());
        assert_eq!(verdict.text, "fail: p99_ms < 100 (was 250)");
        assert!(!verdict.abort);
    }

    #[test]
    fn variant_thresholds_replace_same_metric() {
        let scenario = vec![
            threshold("rate_403", "< 0.01"),
            threshold("p99_ms", "< 500"),
        ];
        let variant = vec![threshold("rate_403", "== 1")];
        let combined = effective(&scenario, &variant);
        assert_eq!(combined.len(), 2);
        assert!(combined.contains(&threshold("rate_403", "== 1")));
        assert!(combined.contains(&threshold("p99_ms", "< 500")));
    }

    #[test]
    fn abort_on_fail_is_carried() {
        let spec = ThresholdSpec::Full(FullThreshold {
            condition: "< 1".into(),
            abort_on_fail: true,
        });
        let thresholds = vec![Threshold::parse("p99_ms", &spec).unwrap()];
        assert!(verdict(&thresholds, &row()).abort);
    }

    #[test]
    fn no_thresholds_gives_empty_verdict() {
        assert_eq!(verdict(&[], &row()).text, "");
    }
}
