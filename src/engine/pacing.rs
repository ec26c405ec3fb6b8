//! When a worker sends its next request: the pacing and stopping strategies of the one worker
//! loop.
//!
//! - Closed model: a worker sends as soon as its previous request finished, optionally
//!   waiting on a governor (GCRA) limiter that all workers share to cap the total rate.
//! - Open model: request `i` is due at `start + i / rate`, whatever happened to earlier
//!   requests, so the schedule never drifts. Workers claim the next index from a shared
//!   counter. With `queue`, a request claimed after its due time is sent late and its latency
//!   counts from the due time (the coordinated-omission correction that wrk2 applies). With
//!   `drop`, a request whose due time passed before any worker was free to claim it is
//!   skipped and counted as dropped, as k6's arrival-rate executors do: an idle worker
//!   always holds the next index before it falls due, so a late claim means every worker
//!   was busy.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::DefaultDirectRateLimiter;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::stages::Stages;
use crate::scenario::OnSaturation;

/// When a cell stops sending.
pub struct StopRule {
    /// No request is sent at or after this time.
    pub deadline: Option<Instant>,
    /// No more than this many requests are sent.
    pub iterations: Option<u64>,
    /// Requests claimed so far, when `iterations` is set (closed model).
    pub issued: AtomicU64,
    /// Cancelled on interrupt.
    pub cancel: CancellationToken,
}

impl StopRule {
    fn past_deadline(&self, time: Instant) -> bool {
        self.deadline.is_some_and(|deadline| time >= deadline)
    }
}

/// The pacing strategy of a cell.
pub enum Pacing {
    /// Back to back, optionally capped by a shared limiter.
    Closed {
        /// The shared `throttle` limiter.
        throttle: Option<Arc<DefaultDirectRateLimiter>>,
        /// Staged concurrency: worker `i` sends only while the planned count exceeds `i`.
        stages: Option<(Instant, Arc<Stages>)>,
    },
    /// A fixed arrival schedule.
    Open(OpenSchedule),
}

/// The open model's arrival schedule, shared by the workers of a cell.
pub struct OpenSchedule {
    /// The time request 0 is due.
    pub start: Instant,
    /// Requests per second, or the staged rate.
    pub rate: Schedule,
    /// The next request index to claim.
    pub next: AtomicU64,
    /// What to do with requests that fall due while every worker is busy.
    pub on_saturation: OnSaturation,
}

impl OpenSchedule {
    /// Creates a schedule whose request 0 is due at `start`.
    pub fn new(start: Instant, rate: Schedule, on_saturation: OnSaturation) -> OpenSchedule {
        OpenSchedule {
            start,
            rate,
            next: AtomicU64::new(0),
            on_saturation,
        }
    }

    /// Claims the next request index and computes its due time, without waiting for it.
    /// With `drop`, indices already due at `now` are skipped and added to `dropped`. Returns
    /// `None` when the schedule or the stop rule has no further request.
    pub fn claim(&self, stop: &StopRule, now: Instant, dropped: &mut u64) -> Option<Ticket> {
        loop {
            let index = self.next.fetch_add(1, Ordering::Relaxed);
            if stop.iterations.is_some_and(|limit| index >= limit) {
                return None;
            }
            let due = self.start + self.rate.offset(index)?;
            if stop.past_deadline(due) {
                return None;
            }
            if let Some(deadline) = stop.deadline
                && now >= deadline
            {
                // The send window is over: this request and every one still unclaimed that
                // fell due before the deadline can no longer be sent, so they are dropped in
                // one step.
                let planned = self.rate.due_within(deadline - self.start);
                let claimed = self.next.fetch_max(planned, Ordering::Relaxed);
                *dropped += 1 + planned.saturating_sub(claimed);
                return None;
            }
            if self.on_saturation == OnSaturation::Drop && now > due {
                // Every request already due fell due while all workers were busy: skip them
                // all at once, so a rate far beyond reach cannot keep a worker counting.
                let overdue = self.rate.due_within(now - self.start);
                let claimed = self.next.fetch_max(overdue, Ordering::Relaxed);
                *dropped += 1 + overdue.saturating_sub(claimed);
                continue;
            }
            return Some(Ticket {
                due,
                seq: index,
                released: now,
            });
        }
    }
}

/// The open model's arrival rate.
pub enum Schedule {
    /// A constant rate in requests per second.
    Constant(f64),
    /// A rate that follows the stages.
    Staged(Arc<Stages>),
}

impl Schedule {
    /// Returns when request `index` is due after the start, or `None` when the plan has no
    /// such request.
    fn offset(&self, index: u64) -> Option<Duration> {
        match self {
            Schedule::Constant(rate) => Duration::try_from_secs_f64(index as f64 / rate).ok(),
            Schedule::Staged(stages) => stages.due_offset(index),
        }
    }

    /// Returns how many requests fall due within `elapsed` of the start.
    fn due_within(&self, elapsed: Duration) -> u64 {
        let count = match self {
            Schedule::Constant(rate) => elapsed.as_secs_f64() * rate,
            Schedule::Staged(stages) => stages.planned_by(elapsed),
        };
        // Saturating float-to-integer conversion; an enormous count stays finite.
        count.ceil() as u64
    }
}

/// How often an idle worker of a staged closed cell checks whether it is needed.
const STAGE_POLL: Duration = Duration::from_millis(50);

/// Permission to send one request.
#[derive(Debug, Clone, Copy)]
pub struct Ticket {
    /// When the request was due; latency counts from here.
    pub due: Instant,
    /// The request's sequence number within the cell.
    pub seq: u64,
    /// When the pacing let the request go, read once after any wait. The worker takes it as
    /// the send time, so the hot path reads the clock once before and once after a request.
    pub released: Instant,
}

/// A worker's own pacing state.
pub struct WorkerPace {
    /// The worker's index.
    pub index: u32,
    /// The number of workers in the cell.
    pub workers: u32,
    /// Requests this worker has sent.
    pub sent: u64,
}

impl Pacing {
    /// Waits until the worker may send, or returns `None` when the cell is over. Requests
    /// skipped on the way (open model with `drop`) are added to `dropped`.
    pub async fn next(
        &self,
        pace: &mut WorkerPace,
        stop: &StopRule,
        dropped: &mut u64,
    ) -> Option<Ticket> {
        match self {
            Pacing::Closed { throttle, stages } => {
                if let Some((start, stages)) = stages {
                    wait_until_needed(*start, stages, pace.index, stop).await?;
                }
                next_closed(throttle.as_deref(), pace, stop).await
            }
            Pacing::Open(schedule) => next_open(schedule, stop, dropped).await,
        }
    }
}

/// Waits while the staged concurrency is at or below this worker's index.
async fn wait_until_needed(
    start: Instant,
    stages: &Stages,
    index: u32,
    stop: &StopRule,
) -> Option<()> {
    loop {
        let now = Instant::now();
        if stop.cancel.is_cancelled() || stop.past_deadline(now) {
            return None;
        }
        if stages
            .value_at(now.saturating_duration_since(start))
            .round()
            > f64::from(index)
        {
            return Some(());
        }
        tokio::select! {
            () = tokio::time::sleep(STAGE_POLL) => {}
            () = stop.cancel.cancelled() => return None,
        }
    }
}

async fn next_closed(
    throttle: Option<&DefaultDirectRateLimiter>,
    pace: &mut WorkerPace,
    stop: &StopRule,
) -> Option<Ticket> {
    let mut now = Instant::now();
    if stop.cancel.is_cancelled() || stop.past_deadline(now) {
        return None;
    }
    if let Some(limiter) = throttle {
        let deadline = stop
            .deadline
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(86_400 * 365));
        tokio::select! {
            () = limiter.until_ready() => {}
            () = tokio::time::sleep_until(deadline) => return None,
            () = stop.cancel.cancelled() => return None,
        }
        now = Instant::now();
    }
    if let Some(limit) = stop.iterations
        && stop.issued.fetch_add(1, Ordering::Relaxed) >= limit
    {
        return None;
    }
    let seq = pace.sent * u64::from(pace.workers) + u64::from(pace.index);
    pace.sent += 1;
    Some(Ticket {
        due: now,
        seq,
        released: now,
    })
}

async fn next_open(schedule: &OpenSchedule, stop: &StopRule, dropped: &mut u64) -> Option<Ticket> {
    if stop.cancel.is_cancelled() {
        return None;
    }
    let now = Instant::now();
    let mut ticket = schedule.claim(stop, now, dropped)?;
    // A late request goes out at once, without a timer or a cancellation waiter: when the
    // cell runs behind, every request is late and both would cost time on the hot path.
    if ticket.due > now {
        tokio::select! {
            () = tokio::time::sleep_until(ticket.due) => {}
            () = stop.cancel.cancelled() => return None,
        }
        ticket.released = Instant::now();
    }
    Some(ticket)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stop(deadline: Option<Instant>, iterations: Option<u64>) -> StopRule {
        StopRule {
            deadline,
            iterations,
            issued: AtomicU64::new(0),
            cancel: CancellationToken::new(),
        }
    }

    fn open(start: Instant, rate: f64, on_saturation: OnSaturation) -> Pacing {
        Pacing::Open(OpenSchedule::new(
            start,
            Schedule::Constant(rate),
            on_saturation,
        ))
    }

    fn pace() -> WorkerPace {
        WorkerPace {
            index: 1,
            workers: 4,
            sent: 0,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn open_schedule_never_drifts() {
        let start = Instant::now();
        let pacing = open(start, 100.0, OnSaturation::Queue);
        let stop = stop(Some(start + Duration::from_secs(1)), None);
        let mut dropped = 0;
        let mut dues = Vec::new();
        while let Some(ticket) = pacing.next(&mut pace(), &stop, &mut dropped).await {
            dues.push(ticket.due - start);
        }
        assert_eq!(dues.len(), 100);
        assert_eq!(dues[1], Duration::from_millis(10));
        assert_eq!(dues[99], Duration::from_millis(990));
        assert_eq!(dropped, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn queue_sends_late_requests_with_their_due_time() {
        let start = Instant::now();
        let pacing = open(start, 100.0, OnSaturation::Queue);
        let stop = stop(None, Some(10));
        tokio::time::advance(Duration::from_millis(55)).await;
        let mut dropped = 0;
        let ticket = pacing.next(&mut pace(), &stop, &mut dropped).await.unwrap();
        assert_eq!(ticket.due, start);
        assert_eq!(ticket.seq, 0);
        assert_eq!(dropped, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn drop_skips_requests_already_due() {
        let start = Instant::now();
        let pacing = open(start, 100.0, OnSaturation::Drop);
        let stop = stop(None, Some(100));
        tokio::time::advance(Duration::from_millis(55)).await;
        let mut dropped = 0;
        let ticket = pacing.next(&mut pace(), &stop, &mut dropped).await.unwrap();
        assert_eq!(ticket.seq, 6);
        assert_eq!(dropped, 6);
    }

    #[tokio::test(start_paused = true)]
    async fn drop_skips_unreachable_rates_in_one_step() {
        let start = Instant::now();
        let pacing = open(start, 1e12, OnSaturation::Drop);
        let stop = stop(Some(start + Duration::from_secs(1)), None);
        tokio::time::advance(Duration::from_millis(500)).await;
        let mut dropped = 0;
        let ticket = pacing.next(&mut pace(), &stop, &mut dropped).await.unwrap();
        assert!(dropped >= 499_000_000_000, "dropped {dropped}");
        assert!(ticket.seq >= dropped, "the ticket follows the dropped ones");
    }

    #[tokio::test(start_paused = true)]
    async fn claims_after_the_deadline_drop_the_backlog() {
        let start = Instant::now();
        let pacing = open(start, 1000.0, OnSaturation::Queue);
        let stop = stop(Some(start + Duration::from_secs(1)), None);
        let mut dropped = 0;
        let first = pacing.next(&mut pace(), &stop, &mut dropped).await.unwrap();
        assert_eq!(first.seq, 0);
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(
            pacing
                .next(&mut pace(), &stop, &mut dropped)
                .await
                .is_none()
        );
        assert_eq!(
            dropped, 999,
            "requests 1 to 999 could not be sent in the window"
        );
        assert!(
            pacing
                .next(&mut pace(), &stop, &mut dropped)
                .await
                .is_none()
        );
        assert_eq!(dropped, 999, "nothing is counted twice");
    }

    #[tokio::test(start_paused = true)]
    async fn iterations_bound_both_models() {
        let stop_open = stop(None, Some(3));
        let pacing = open(Instant::now(), 1000.0, OnSaturation::Queue);
        let mut dropped = 0;
        let mut count = 0;
        while pacing
            .next(&mut pace(), &stop_open, &mut dropped)
            .await
            .is_some()
        {
            count += 1;
        }
        assert_eq!(count, 3);

        let stop_closed = stop(None, Some(5));
        let closed = Pacing::Closed {
            throttle: None,
            stages: None,
        };
        let mut worker = pace();
        let mut seqs = Vec::new();
        while let Some(ticket) = closed.next(&mut worker, &stop_closed, &mut dropped).await {
            seqs.push(ticket.seq);
        }
        assert_eq!(seqs, [1, 5, 9, 13, 17]);
    }

    #[tokio::test(start_paused = true)]
    async fn cancel_stops_a_waiting_worker() {
        let pacing = open(
            Instant::now() + Duration::from_secs(60),
            1.0,
            OnSaturation::Queue,
        );
        let stop = Arc::new(stop(None, None));
        let cancel = stop.cancel.clone();
        let waiter = {
            let stop = Arc::clone(&stop);
            tokio::spawn(async move {
                let mut dropped = 0;
                pacing
                    .next(&mut pace(), &stop, &mut dropped)
                    .await
                    .is_none()
            })
        };
        tokio::time::advance(Duration::from_secs(1)).await;
        cancel.cancel();
        assert!(waiter.await.unwrap());
    }
}
