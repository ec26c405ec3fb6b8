//! Staged load: a list of `{ duration, target }` steps that move the concurrency (closed
//! model) or the arrival rate (open model) linearly from the previous step's target, starting
//! at zero.
//!
//! For the open model the due time of request `i` is where the planned request count, the
//! integral of the piecewise-linear rate, reaches `i`. Within a step that ramps from `r0` to
//! `r1` over `D` seconds the count after `t` seconds is `r0 t + (r1 - r0) t^2 / (2 D)`, so
//! the due time solves that quadratic.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::units::TextDuration;

/// One step as written in the scenario.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StageSpec {
    /// How long the step lasts.
    pub duration: TextDuration,
    /// The concurrency or rate reached at the end of the step.
    pub target: f64,
}

/// A checked list of steps.
#[derive(Debug, Clone, PartialEq)]
pub struct Stages {
    /// (start value, end value, duration in seconds) of each step.
    steps: Vec<(f64, f64, f64)>,
}

impl Stages {
    /// Checks the steps: at least one, each longer than zero, targets finite and not negative.
    pub fn new(specs: &[StageSpec]) -> Result<Stages, String> {
        if specs.is_empty() {
            return Err(
                "the list is empty; add steps such as { duration = \"30s\", target = 200 }"
                    .to_string(),
            );
        }
        let mut steps = Vec::new();
        let mut previous = 0.0;
        for (index, spec) in specs.iter().enumerate() {
            if spec.duration.0.is_zero() {
                return Err(format!(
                    "step {index} has a zero duration; give it a duration such as \"30s\""
                ));
            }
            if !spec.target.is_finite() || spec.target < 0.0 {
                return Err(format!(
                    "step {index} has an invalid target {}; use a number of 0 or more",
                    spec.target
                ));
            }
            steps.push((previous, spec.target, spec.duration.0.as_secs_f64()));
            previous = spec.target;
        }
        Ok(Stages { steps })
    }

    /// Returns the total duration of the steps.
    pub fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.steps.iter().map(|(_, _, seconds)| seconds).sum())
    }

    /// Returns the highest target of any step.
    pub fn peak(&self) -> f64 {
        self.steps
            .iter()
            .map(|(_, end, _)| *end)
            .fold(0.0, f64::max)
    }

    /// Returns the number of requests the open model plans over all steps.
    pub fn planned_requests(&self) -> f64 {
        self.steps
            .iter()
            .map(|(start, end, seconds)| (start + end) / 2.0 * seconds)
            .sum()
    }

    /// Returns the concurrency or rate planned at `elapsed` from the start.
    pub fn value_at(&self, elapsed: Duration) -> f64 {
        let mut left = elapsed.as_secs_f64();
        for (start, end, seconds) in &self.steps {
            if left <= *seconds {
                return start + (end - start) * left / seconds;
            }
            left -= seconds;
        }
        self.steps.last().map_or(0.0, |(_, end, _)| *end)
    }

    /// Returns the number of requests the open model plans within `elapsed` of the start.
    pub fn planned_by(&self, elapsed: Duration) -> f64 {
        let mut left = elapsed.as_secs_f64();
        let mut count = 0.0;
        for (start, end, seconds) in &self.steps {
            let span = left.min(*seconds);
            let reached = start + (end - start) * span / seconds;
            count += (start + reached) / 2.0 * span;
            left -= span;
            if left <= 0.0 {
                break;
            }
        }
        count
    }

    /// Returns when request `index` is due in the open model, or `None` past the last step.
    pub fn due_offset(&self, index: u64) -> Option<Duration> {
        let mut remaining = index as f64;
        let mut offset = 0.0;
        for (start, end, seconds) in &self.steps {
            let count = (start + end) / 2.0 * seconds;
            if remaining < count {
                let slope = (end - start) / seconds;
                let within = if slope.abs() < 1e-12 {
                    remaining / start
                } else {
                    // Solve start t + slope t^2 / 2 = remaining for the positive root.
                    (-start + (start * start + 2.0 * slope * remaining).sqrt()) / slope
                };
                return Some(Duration::from_secs_f64(
                    offset + within.clamp(0.0, *seconds),
                ));
            }
            remaining -= count;
            offset += seconds;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stages(steps: &[(&str, f64)]) -> Stages {
        let specs: Vec<StageSpec> = steps
            .iter()
            .map(|(duration, target)| StageSpec {
                duration: duration.parse().unwrap(),
                target: *target,
            })
            .collect();
        Stages::new(&specs).unwrap()
    }

    #[test]
    fn values_ramp_linearly_from_zero() {
        let stages = stages(&[("10s", 100.0), ("10s", 100.0), ("10s", 0.0)]);
        assert_eq!(stages.duration(), Duration::from_secs(30));
        assert_eq!(stages.value_at(Duration::from_secs(5)), 50.0);
        assert_eq!(stages.value_at(Duration::from_secs(15)), 100.0);
        assert_eq!(stages.value_at(Duration::from_secs(25)), 50.0);
        assert_eq!(stages.peak(), 100.0);
        assert_eq!(stages.planned_requests(), 2000.0);
    }

    #[test]
    fn due_times_follow_the_integral() {
        let stages = stages(&[("10s", 100.0), ("10s", 100.0)]);
        // The ramp plans 500 requests; request 125 is due where 5 t^2 = 125, at 5 s.
        assert_eq!(stages.due_offset(125).unwrap(), Duration::from_secs(5));
        assert_eq!(stages.due_offset(500).unwrap(), Duration::from_secs(10));
        assert_eq!(stages.due_offset(600).unwrap(), Duration::from_secs(11));
        assert_eq!(stages.due_offset(1500), None);
    }

    #[test]
    fn planned_by_inverts_due_offset() {
        let stages = stages(&[("10s", 100.0), ("10s", 100.0)]);
        assert_eq!(stages.planned_by(Duration::from_secs(5)), 125.0);
        assert_eq!(stages.planned_by(Duration::from_secs(11)), 600.0);
        assert_eq!(stages.planned_by(Duration::from_secs(60)), 1500.0);
    }

    #[test]
    fn due_times_never_decrease() {
        let stages = stages(&[("3s", 40.0), ("2s", 10.0), ("4s", 10.0), ("1s", 90.0)]);
        let mut last = Duration::ZERO;
        let mut index = 0;
        while let Some(due) = stages.due_offset(index) {
            assert!(due >= last, "request {index} at {due:?} before {last:?}");
            last = due;
            index += 1;
        }
        assert_eq!(index as f64, stages.planned_requests().ceil());
    }

    #[test]
    fn invalid_steps_are_rejected() {
        assert!(Stages::new(&[]).unwrap_err().contains("empty"));
        let zero = StageSpec {
            duration: TextDuration(Duration::ZERO),
            target: 5.0,
        };
        assert!(Stages::new(&[zero]).unwrap_err().contains("zero duration"));
        let negative = StageSpec {
            duration: "1s".parse().unwrap(),
            target: -1.0,
        };
        assert!(
            Stages::new(&[negative])
                .unwrap_err()
                .contains("invalid target")
        );
    }
}
