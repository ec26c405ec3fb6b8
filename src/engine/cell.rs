//! One cell: start its workers, merge their tallies once a second, and return the totals.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use governor::{Quota, RateLimiter};
use http::header::{HeaderName, HeaderValue};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::jtl::JtlCell;
use super::pacing::{OpenSchedule, Pacing, Schedule, StopRule};
use super::transport::Endpoint;
use super::worker::{CellShared, PreparedRequest, RetryPolicy, WorkerSlot, run_worker};
use crate::data::{DataSet, RowOrder};
use crate::metrics::{Outcome, Tally};
use crate::scenario::{CellSpec, CompiledVariant, Load, LoadPoint, On429};

/// What a cell needs besides its spec.
pub struct CellInputs {
    /// The cell to run.
    pub spec: CellSpec,
    /// Its variant.
    pub variant: Arc<CompiledVariant>,
    /// The scenario's `[load]` table.
    pub load: Load,
    /// Where requests go.
    pub endpoint: Arc<Endpoint>,
    /// The authentication header, kept current by the provider.
    pub auth: Option<(HeaderName, watch::Receiver<HeaderValue>)>,
    /// Data rows.
    pub data: Option<DataSet>,
    /// How workers walk the rows.
    pub row_order: RowOrder,
    /// Seed for rows and random placeholders.
    pub seed: u64,
    /// Cancelled on interrupt.
    pub cancel: CancellationToken,
    /// With `--jtl`: where each request's row goes.
    pub jtl: Option<Arc<JtlCell>>,
}

/// One second (or the last part of one) of a cell.
pub struct Interval<'a> {
    /// The second's number within the cell, from 1.
    pub second: u64,
    /// Time since the cell started.
    pub elapsed: Duration,
    /// Wall-clock time at the end of the interval.
    pub at: SystemTime,
    /// What the workers recorded during the interval.
    pub tally: &'a Tally,
    /// What the cell recorded so far, this interval included.
    pub total: &'a Tally,
}

/// The totals of a finished cell.
#[derive(Debug, Clone)]
pub struct CellResult {
    /// The cell.
    pub spec: CellSpec,
    /// The variant's name.
    pub variant: String,
    /// Whether the open model ran.
    pub open: bool,
    /// Wall-clock start.
    pub started_at: SystemTime,
    /// The time requests were being sent: the duration, or less when the cell ended early.
    pub send_window: Duration,
    /// From the start until the last response.
    pub elapsed: Duration,
    /// Everything recorded.
    pub total: Tally,
    /// Whether an interrupt ended the cell early.
    pub interrupted: bool,
    /// The `throttle` of a closed cell, in requests per second.
    pub throttle_rps: Option<f64>,
    /// The threshold verdict, empty when the scenario has no thresholds.
    pub verdict: String,
}

impl CellResult {
    /// Returns requests with an outcome per second of the send window.
    pub fn achieved_rps(&self) -> f64 {
        let seconds = self.send_window.as_secs_f64();
        if seconds > 0.0 {
            self.total.requests() as f64 / seconds
        } else {
            0.0
        }
    }
}

/// Runs one cell to its end, calling `on_interval` once a second and once at the end.
pub async fn run_cell(inputs: CellInputs, on_interval: &mut dyn FnMut(Interval<'_>)) -> CellResult {
    let open = matches!(inputs.spec.load, LoadPoint::Open { .. });
    let workers = inputs.spec.load.workers();
    let started_at = SystemTime::now();
    // A short lead lets every worker start before the first request of the schedule is due.
    let start = Instant::now() + Duration::from_millis(5);
    let duration = match &inputs.spec.stages {
        Some(stages) => Some(stages.duration()),
        None => inputs.load.duration.map(|duration| duration.0),
    };
    let deadline = duration.map(|duration| start + duration);
    let shared = Arc::new(CellShared {
        request: PreparedRequest::new(Arc::clone(&inputs.variant), &inputs.endpoint),
        endpoint: Arc::clone(&inputs.endpoint),
        auth: inputs.auth.clone(),
        data: inputs.data.clone(),
        row_order: inputs.row_order,
        seed: inputs.seed,
        pacing: pacing(&inputs, start),
        stop: StopRule {
            deadline,
            iterations: inputs.load.iterations,
            issued: AtomicU64::new(0),
            cancel: inputs.cancel.clone(),
        },
        timeout: inputs.load.timeout.0,
        workers,
        retry: RetryPolicy {
            enabled: inputs.load.on_429 == On429::RetryAfter,
            max_retries: inputs.load.max_retries,
            max_wait: inputs.load.max_retry_wait.0,
        },
        jtl: inputs.jtl.clone(),
    });

    let slots: Vec<Arc<WorkerSlot>> = (0..workers)
        .map(|_| Arc::new(WorkerSlot::new(open)))
        .collect();
    let mut tasks = JoinSet::new();
    let ramp_up = if open {
        Duration::ZERO
    } else {
        inputs.load.ramp_up.0
    };
    for (index, slot) in slots.iter().enumerate() {
        let index = index as u32;
        let delay = ramp_up.mul_f64(f64::from(index) / f64::from(workers));
        let shared = Arc::clone(&shared);
        let slot = Arc::clone(slot);
        tasks.spawn(async move {
            tokio::select! {
                () = tokio::time::sleep_until(start + delay) => run_worker(shared, index, slot).await,
                () = shared.stop.cancel.cancelled() => {}
            }
        });
    }

    let mut total = Tally::new(open);
    let mut ticker =
        tokio::time::interval_at(start + Duration::from_secs(1), Duration::from_secs(1));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut second = 0;
    let mut grace_end: Option<Instant> = None;
    let mut cancelled_at: Option<Instant> = None;
    loop {
        tokio::select! {
            () = inputs.cancel.cancelled(), if grace_end.is_none() => {
                cancelled_at = Some(Instant::now());
                grace_end = Some(Instant::now() + inputs.load.grace.0);
            }
            () = sleep_until_some(grace_end) => {
                tracing::warn!(cell = inputs.spec.index, "grace period over; cancelling the requests in flight");
                tasks.abort_all();
                while tasks.join_next().await.is_some() {}
                count_cancelled(&slots);
                break;
            }
            _ = ticker.tick() => {
                second += 1;
                let interval = collect(&slots, open);
                total.merge(&interval);
                on_interval(Interval { second, elapsed: start.elapsed(), at: SystemTime::now(), tally: &interval, total: &total });
            }
            joined = tasks.join_next() => match joined {
                None => break,
                Some(Err(error)) if !error.is_cancelled() => {
                    tracing::error!(cell = inputs.spec.index, %error, "worker task failed");
                }
                Some(Err(_)) => {}
                Some(Ok(())) => {}
            },
        }
    }
    let elapsed = start.elapsed();
    let last = collect(&slots, open);
    total.merge(&last);
    if last.requests() > 0 || last.dropped > 0 || second == 0 {
        on_interval(Interval {
            second: second + 1,
            elapsed,
            at: SystemTime::now(),
            tally: &last,
            total: &total,
        });
    }

    let interrupted = inputs.cancel.is_cancelled();
    // A saturated open cell keeps sending late requests after the deadline, so the window
    // runs to the last send and the achieved rate falls below the target.
    let last_send = total
        .last_sent
        .map_or(Duration::ZERO, |sent| sent.saturating_duration_since(start));
    let send_window = match (deadline, cancelled_at) {
        // Sending stopped at the interrupt; the grace period after it is not sending time.
        (_, Some(cancelled)) => cancelled.saturating_duration_since(start),
        (Some(deadline), None) => last_send.max(deadline - start).min(elapsed),
        (None, None) => elapsed,
    };
    CellResult {
        spec: inputs.spec,
        variant: inputs.variant.name.clone(),
        open,
        started_at,
        send_window,
        elapsed,
        total,
        interrupted,
        throttle_rps: if open {
            None
        } else {
            inputs.load.throttle.map(|rate| rate.per_second())
        },
        verdict: String::new(),
    }
}

fn pacing(inputs: &CellInputs, start: Instant) -> Pacing {
    match inputs.spec.load {
        LoadPoint::Closed { .. } => Pacing::Closed {
            stages: inputs.spec.stages.clone().map(|stages| (start, stages)),
            throttle: inputs.load.throttle.map(|rate| {
                // GCRA with a burst of one period's count: at most N in any PERIOD window.
                let quota = Quota::with_period(rate.interval().max(Duration::from_nanos(1)))
                    .expect("the interval is above zero")
                    .allow_burst(rate.count);
                Arc::new(RateLimiter::direct(quota))
            }),
        },
        LoadPoint::Open { rate, .. } => Pacing::Open(OpenSchedule::new(
            start,
            match &inputs.spec.stages {
                Some(stages) => Schedule::Staged(Arc::clone(stages)),
                None => Schedule::Constant(rate),
            },
            inputs.load.on_saturation,
        )),
    }
}

/// Swaps every worker's tally for an empty one of the same size and returns their sum.
fn collect(slots: &[Arc<WorkerSlot>], open: bool) -> Tally {
    let mut sum = Tally::new_growing(open);
    for slot in slots {
        let taken = {
            let mut tally = slot.tally.lock().expect("tally lock");
            let fresh = tally.empty_like();
            std::mem::replace(&mut *tally, fresh)
        };
        sum.merge(&taken);
    }
    sum
}

/// Counts the requests of aborted workers as cancelled. Call only after every worker task
/// has ended, so no flag changes underneath.
fn count_cancelled(slots: &[Arc<WorkerSlot>]) {
    for slot in slots {
        if slot.in_flight.swap(false, Ordering::Relaxed) {
            slot.tally
                .lock()
                .expect("tally lock")
                .count_only(Outcome::Cancelled);
        }
    }
}

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until_some(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
