//! The progress bar of a cell on stderr: elapsed time, request rate, p99 and refusals.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::cell::Interval;
use crate::metrics::{Outcome, Tally};
use crate::units::format_latency_us;

/// Shows one bar per cell, or nothing with `--quiet`, `NO_COLOR`-free non-terminals included.
pub struct Progress {
    enabled: bool,
    bar: Option<ProgressBar>,
}

impl Progress {
    /// Creates the display; it stays silent when `quiet` or stderr is not a terminal.
    pub fn new(quiet: bool) -> Progress {
        Progress {
            enabled: !quiet && std::io::stderr().is_terminal(),
            bar: None,
        }
    }

    /// Starts the bar of a cell that runs for `duration` (or until `iterations`).
    pub fn start_cell(
        &mut self,
        label: String,
        duration: Option<Duration>,
        iterations: Option<u64>,
    ) {
        if !self.enabled {
            return;
        }
        let (length, unit) = match (duration, iterations) {
            (Some(duration), _) => (duration.as_secs().max(1), "s"),
            (None, Some(iterations)) => (iterations, " req"),
            (None, None) => (1, ""),
        };
        let bar = ProgressBar::with_draw_target(Some(length), ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template(&format!(
            "{{prefix}} [{{elapsed_precise}}] {{bar:24}} {{pos}}/{{len}}{unit} {{msg}}"
        ))
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        bar.set_prefix(label);
        self.bar = Some(bar);
    }

    /// Updates the bar after one interval.
    pub fn update(&self, interval: &Interval<'_>, by_requests: bool) {
        let Some(bar) = &self.bar else {
            return;
        };
        let seconds = if interval.second == 0 {
            1.0
        } else {
            interval.elapsed.as_secs_f64() / interval.second as f64
        };
        let rate = interval.tally.requests() as f64 / seconds.max(0.001);
        let p99 = Tally::quantile_ms(&interval.tally.latency, 0.99) * 1000.0;
        bar.set_message(format!(
            "{rate:.0} req/s  p99 {}  403 {}  429 {}",
            format_latency_us(p99),
            interval.total.count(Outcome::Forbidden),
            interval.total.count(Outcome::Throttled),
        ));
        if by_requests {
            bar.set_position(interval.total.requests());
        } else {
            bar.set_position(interval.elapsed.as_secs());
        }
    }

    /// Removes the bar of the finished cell.
    pub fn finish_cell(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}
