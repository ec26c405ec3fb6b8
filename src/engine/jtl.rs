//! Streams `results.jtl` off the request path. Each worker appends [`Record`]s to its own
//! batch and hands full batches to a writer thread over a channel. So a worker never does file
//! I/O, takes a shared lock per request or waits for the writer.
//!
//! Memory stays bounded. A worker hands its batch over once it contains [`BATCH_ROWS`] rows or
//! its oldest row is a second old, and at most [`MAX_QUEUED_ROWS`] rows wait for the writer. A
//! batch that would pass that limit is not queued: its rows are counted as lost, logged, and
//! named in a warning when the run ends.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use http::HeaderMap;
use tokio::time::Instant;

use super::transport::{Response, TransportError};
use super::worker::WorkerSlot;
use crate::metrics::Outcome;
use crate::report::jtl::{self, CellContext, Record, RowScratch};

/// The rows a worker collects before it hands them to the writer.
pub const BATCH_ROWS: usize = 512;

/// The maximum age of a worker's oldest unsent row, so the file keeps up with slow cells.
const BATCH_AGE: Duration = Duration::from_secs(1);

/// The maximum number of rows waiting for the writer thread; each takes about 100 bytes, so
/// the queue stays below about 100 MB.
pub const MAX_QUEUED_ROWS: usize = 1 << 20;

/// How often the writer thread flushes the file while rows arrive.
const FLUSH_INTERVAL: Duration = Duration::from_secs(1);

/// The writer's buffer; rows reach the file when it fills and at each flush.
const WRITE_BUFFER: usize = 256 * 1024;

enum Message {
    Batch(Arc<CellContext>, Vec<Record>),
    Close,
}

/// Counters the workers and the writer thread share.
#[derive(Default)]
struct Queue {
    /// Rows sent to the writer thread and not yet written.
    queued: AtomicUsize,
    /// Rows not written because the queue was full or the file failed.
    lost: AtomicU64,
    /// Whether the first loss has been logged.
    loss_logged: AtomicBool,
}

impl Queue {
    fn count_lost(&self, rows: usize) {
        self.lost.fetch_add(rows as u64, Ordering::Relaxed);
        if !self.loss_logged.swap(true, Ordering::Relaxed) {
            tracing::error!(
                rows,
                limit = MAX_QUEUED_ROWS,
                "results.jtl: rows lost because the writer fell behind or failed"
            );
        }
    }
}

/// The row counts of a closed `results.jtl`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JtlSummary {
    /// Rows in the file, the header not counted.
    pub rows: u64,
    /// Rows recorded but not written.
    pub lost: u64,
}

/// The open `results.jtl` and its writer thread.
pub struct JtlWriter {
    path: PathBuf,
    sender: mpsc::Sender<Message>,
    queue: Arc<Queue>,
    thread: Option<JoinHandle<io::Result<u64>>>,
}

impl JtlWriter {
    /// Creates the file at `path`, writes the header and starts the writer thread.
    pub fn create(path: &Path) -> io::Result<JtlWriter> {
        let file = File::create(path)?;
        let mut writer = csv::WriterBuilder::new()
            .buffer_capacity(WRITE_BUFFER)
            .from_writer(file);
        writer.write_record(jtl::HEADER)?;
        writer.flush()?;
        let (sender, receiver) = mpsc::channel();
        let queue = Arc::new(Queue::default());
        let thread_queue = Arc::clone(&queue);
        let thread = std::thread::Builder::new()
            .name("jtl-writer".to_string())
            .spawn(move || write_rows(writer, &receiver, &thread_queue))?;
        Ok(JtlWriter {
            path: path.to_path_buf(),
            sender,
            queue,
            thread: Some(thread),
        })
    }

    /// Starts the rows of one cell, whose clock base is now.
    pub fn cell(&self, context: impl FnOnce(SystemTime) -> CellContext) -> Arc<JtlCell> {
        let base = Instant::now();
        let context = context(SystemTime::now());
        Arc::new(JtlCell {
            context: Arc::new(context),
            base,
            sender: self.sender.clone(),
            queue: Arc::clone(&self.queue),
            running: AtomicU32::new(0),
        })
    }

    /// Writes every row handed over so far, flushes and closes the file. Call it after the
    /// last cell has ended, so that every worker has handed over its rows.
    pub fn finish(mut self) -> anyhow::Result<JtlSummary> {
        self.close()
    }

    fn close(&mut self) -> anyhow::Result<JtlSummary> {
        let Some(thread) = self.thread.take() else {
            anyhow::bail!("results.jtl is already closed");
        };
        // An error here means the thread has ended; joining it returns the reason.
        let _ = self.sender.send(Message::Close);
        let written = match thread.join() {
            Ok(Ok(rows)) => rows,
            Ok(Err(error)) => {
                return Err(
                    anyhow::Error::new(error).context(format!("writing {}", self.path.display()))
                );
            }
            Err(_) => anyhow::bail!("the results.jtl writer thread panicked"),
        };
        Ok(JtlSummary {
            rows: written,
            lost: self.queue.lost.load(Ordering::Relaxed),
        })
    }
}

impl Drop for JtlWriter {
    /// Flushes the file when a run ends with an error before [`JtlWriter::finish`].
    fn drop(&mut self) {
        if self.thread.is_some()
            && let Err(error) = self.close()
        {
            tracing::error!(error = %format!("{error:#}"), "closing results.jtl failed");
        }
    }
}

/// Runs on the writer thread: writes each batch until [`Message::Close`] or until every
/// sender is gone, flushing once a second. Returns the rows written.
fn write_rows(
    mut writer: csv::Writer<File>,
    receiver: &mpsc::Receiver<Message>,
    queue: &Queue,
) -> io::Result<u64> {
    let mut scratch = RowScratch::default();
    let mut written = 0u64;
    let mut failure: Option<io::Error> = None;
    let mut last_flush = std::time::Instant::now();
    let mut dirty = false;
    loop {
        match receiver.recv_timeout(FLUSH_INTERVAL) {
            Ok(Message::Batch(context, records)) => {
                let mut unwritten = records.len();
                if failure.is_none() {
                    for record in &records {
                        if let Err(error) =
                            jtl::write_row(&mut writer, &context, record, &mut scratch)
                        {
                            failure = Some(error.into());
                            break;
                        }
                        unwritten -= 1;
                        written += 1;
                        dirty = true;
                    }
                }
                if unwritten > 0 {
                    queue.count_lost(unwritten);
                }
                queue.queued.fetch_sub(records.len(), Ordering::Relaxed);
            }
            Ok(Message::Close) | Err(RecvTimeoutError::Disconnected) => break,
            Err(RecvTimeoutError::Timeout) => {}
        }
        if dirty && failure.is_none() && last_flush.elapsed() >= FLUSH_INTERVAL {
            if let Err(error) = writer.flush() {
                failure = Some(error);
            }
            last_flush = std::time::Instant::now();
            dirty = false;
        }
    }
    if let Some(error) = failure {
        return Err(error);
    }
    writer.flush()?;
    Ok(written)
}

/// The rows of one cell: the shared context, the clock base and the channel to the writer.
pub struct JtlCell {
    context: Arc<CellContext>,
    base: Instant,
    sender: mpsc::Sender<Message>,
    queue: Arc<Queue>,
    /// Workers started and not yet ended, reported as `grpThreads` and `allThreads`.
    running: AtomicU32,
}

impl JtlCell {
    /// Creates the recorder of worker `worker`, whose slot shows whether a request was in
    /// flight when the worker was aborted.
    pub fn recorder(self: &Arc<JtlCell>, worker: u32, slot: Arc<WorkerSlot>) -> JtlRecorder {
        self.running.fetch_add(1, Ordering::Relaxed);
        JtlRecorder {
            cell: Arc::clone(self),
            worker,
            slot,
            batch: Vec::new(),
            batch_started: self.base,
            free_since: Instant::now(),
        }
    }

    fn micros_since_base(&self, at: Instant) -> u64 {
        micros(at.saturating_duration_since(self.base))
    }

    /// Queues `batch` for the writer, or counts it as lost when the queue is full.
    fn hand_over(&self, batch: Vec<Record>) {
        let rows = batch.len();
        if self.queue.queued.fetch_add(rows, Ordering::Relaxed) + rows > MAX_QUEUED_ROWS {
            self.queue.queued.fetch_sub(rows, Ordering::Relaxed);
            self.queue.count_lost(rows);
            return;
        }
        if self
            .sender
            .send(Message::Batch(Arc::clone(&self.context), batch))
            .is_err()
        {
            self.queue.queued.fetch_sub(rows, Ordering::Relaxed);
            self.queue.count_lost(rows);
        }
    }
}

/// One worker's rows not yet handed to the writer. Dropping it hands them over, also when the
/// worker's task is aborted.
pub struct JtlRecorder {
    cell: Arc<JtlCell>,
    worker: u32,
    slot: Arc<WorkerSlot>,
    batch: Vec<Record>,
    /// When the oldest row in `batch` finished.
    batch_started: Instant,
    /// When the worker's previous request ended, or when the worker started.
    free_since: Instant,
}

impl JtlRecorder {
    /// Records a request sent at `sent_at` that ended at `done` with `result`, after sending
    /// `sent_bytes` of request bodies.
    pub fn record(
        &mut self,
        sent_at: Instant,
        done: Instant,
        result: &Result<Response, TransportError>,
        sent_bytes: u64,
    ) {
        let elapsed_us = micros(done.saturating_duration_since(sent_at));
        let mut record = Record {
            start_us: self.cell.micros_since_base(sent_at),
            elapsed_us,
            latency_us: 0,
            connect_us: 0,
            bytes: 0,
            sent_bytes,
            worker: self.worker,
            threads: self.cell.running.load(Ordering::Relaxed),
            status: 0,
            success: false,
            error_code: "",
            error_message: None,
        };
        match result {
            Ok(response) => {
                record.status = response.status;
                record.success = Outcome::from_status(response.status) == Outcome::Ok;
                record.bytes = head_bytes(response.status, &response.headers) + response.body_bytes;
                record.latency_us = response.head_at.map_or(elapsed_us, |at| {
                    micros(at.saturating_duration_since(sent_at))
                });
                record.connect_us = response.connect.map_or(0, micros);
            }
            Err(error) => {
                record.error_code = error.code;
                record.error_message = Some(error.message.as_str().into());
                // These codes come only from opening a connection, so the whole time was spent
                // connecting.
                if matches!(
                    error.code,
                    "connection_refused"
                        | "connect_timed_out"
                        | "connect_failed"
                        | "tls_handshake_failed"
                ) {
                    record.connect_us = elapsed_us;
                }
            }
        }
        self.free_since = done;
        self.push(record, done);
    }

    fn push(&mut self, record: Record, now: Instant) {
        if self.batch.is_empty() {
            self.batch_started = now;
            self.batch.reserve(64);
        }
        self.batch.push(record);
        if self.batch.len() >= BATCH_ROWS
            || now.saturating_duration_since(self.batch_started) >= BATCH_AGE
        {
            self.cell.hand_over(std::mem::take(&mut self.batch));
        }
    }
}

impl Drop for JtlRecorder {
    fn drop(&mut self) {
        // The worker was aborted with a request in flight, which the cell counts as cancelled.
        // NOTE: the worker does not report when that request was sent, so its row starts when
        // the worker's previous request ended, or when the worker started. That is the send
        // time for a closed cell without throttle, and earlier when the worker waited its turn.
        if self.slot.in_flight.load(Ordering::Relaxed) {
            let now = Instant::now();
            let record = Record {
                start_us: self.cell.micros_since_base(self.free_since),
                elapsed_us: micros(now.saturating_duration_since(self.free_since)),
                latency_us: 0,
                connect_us: 0,
                bytes: 0,
                sent_bytes: 0,
                worker: self.worker,
                threads: self.cell.running.load(Ordering::Relaxed),
                status: 0,
                success: false,
                error_code: jtl::CANCELLED,
                error_message: None,
            };
            self.batch.push(record);
        }
        if !self.batch.is_empty() {
            self.cell.hand_over(std::mem::take(&mut self.batch));
        }
        self.cell.running.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Returns the size of an HTTP/1.1 response head with these headers: the status line, each
/// `name: value` line and the blank line.
fn head_bytes(status: u16, headers: &HeaderMap) -> u64 {
    let reason = http::StatusCode::from_u16(status)
        .ok()
        .and_then(|status| status.canonical_reason())
        .unwrap_or_default();
    // "HTTP/1.1 200 OK\r\n"
    let mut size = 9 + 3 + 1 + reason.len() + 2;
    for (name, value) in headers {
        size += name.as_str().len() + 2 + value.len() + 2;
    }
    (size + 2) as u64
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}
