//! The one worker loop that both load models share: take a ticket from the pacing strategy,
//! render and send the request, classify the response, record it in the worker's own tally.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Uri};
use http_body_util::Full;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use serde::Deserialize;
use tokio::sync::watch;
use tokio::time::Instant;

use super::pacing::{Pacing, StopRule, WorkerPace};
use super::transport::{self, Connection, Endpoint, Response, TransportError};
use crate::data::{DataSet, RowCursor, RowOrder};
use crate::metrics::{ErrorDetail, Outcome, Tally};
use crate::scenario::CompiledVariant;
use crate::template::RenderContext;

/// Response headers kept with 403 and 429 responses to explain a refusal.
const RATE_LIMIT_HEADERS: [&str; 10] = [
    "inin-ratelimit-allowed",
    "inin-ratelimit-count",
    "inin-ratelimit-reset",
    "x-ratelimit-limit",
    "x-ratelimit-remaining",
    "x-ratelimit-reset",
    "ratelimit-limit",
    "ratelimit-remaining",
    "ratelimit-reset",
    "ratelimit-policy",
];

/// The parts of a request prepared once per cell.
pub struct PreparedRequest {
    method: Method,
    /// The URI when the path has no per-request placeholder.
    uri: Option<Uri>,
    /// Headers whose values have no per-request placeholder, plus `Host`.
    headers: HeaderMap,
    variant: Arc<CompiledVariant>,
}

impl PreparedRequest {
    /// Renders the constant parts of `variant` once.
    pub fn new(variant: Arc<CompiledVariant>, endpoint: &Endpoint) -> PreparedRequest {
        let mut headers = HeaderMap::new();
        headers.insert(http::header::HOST, endpoint.authority().clone());
        for (name, template) in &variant.headers {
            if let Some(value) = template
                .as_constant()
                .and_then(|text| HeaderValue::from_str(text).ok())
            {
                headers.insert(name.clone(), value);
            }
        }
        let uri = variant
            .path
            .as_constant()
            .and_then(|path| path.parse().ok());
        PreparedRequest {
            method: variant.method.clone(),
            uri,
            headers,
            variant,
        }
    }
}

/// Everything the workers of one cell share.
pub struct CellShared {
    /// The request to send.
    pub request: PreparedRequest,
    /// Where to send it.
    pub endpoint: Arc<Endpoint>,
    /// The authentication header and its current value.
    pub auth: Option<(HeaderName, watch::Receiver<HeaderValue>)>,
    /// Data rows for `{{row.X}}`.
    pub data: Option<DataSet>,
    /// How workers walk through the rows.
    pub row_order: RowOrder,
    /// Seed for rows and random placeholders.
    pub seed: u64,
    /// When to send.
    pub pacing: Pacing,
    /// When to stop.
    pub stop: StopRule,
    /// The timeout of each request.
    pub timeout: Duration,
    /// The number of workers.
    pub workers: u32,
    /// The retry policy for 429 responses.
    pub retry: RetryPolicy,
}

/// How a worker answers 429s.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Whether to wait and send again.
    pub enabled: bool,
    /// The maximum number of retries of one request.
    pub max_retries: u32,
    /// The maximum wait before one retry.
    pub max_wait: Duration,
}

impl RetryPolicy {
    /// Returns how long to wait before retry number `retry` (from 0): what `Retry-After`
    /// asks (seconds or an HTTP date), else 1 s doubled each time, never above `max_wait`.
    pub fn wait(&self, retry_after: Option<&HeaderValue>, retry: u32) -> Duration {
        let asked = retry_after
            .and_then(|value| value.to_str().ok())
            .and_then(parse_retry_after);
        let backoff = Duration::from_secs(1u64 << retry.min(20));
        asked.unwrap_or(backoff).min(self.max_wait)
    }
}

/// Reads `Retry-After` as whole seconds or as an HTTP date.
pub fn parse_retry_after(text: &str) -> Option<Duration> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let when = httpdate::parse_http_date(text).ok()?;
    Some(
        when.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

struct WorkerState {
    connection: Option<Connection>,
    rng: SmallRng,
    cursor: RowCursor,
    auth: Option<(HeaderName, watch::Receiver<HeaderValue>, HeaderValue)>,
    pace: WorkerPace,
}

/// What one worker records, read by the cell once a second.
pub struct WorkerSlot {
    /// The worker's counts and histograms since the last collection.
    pub tally: Mutex<Tally>,
    /// Whether a request is on its way; read only after the worker task has ended.
    pub in_flight: AtomicBool,
}

impl WorkerSlot {
    /// Creates the slot of a worker of a closed (`open = false`) or open cell.
    pub fn new(open: bool) -> WorkerSlot {
        WorkerSlot {
            tally: Mutex::new(Tally::new_growing(open)),
            in_flight: AtomicBool::new(false),
        }
    }
}

/// Runs worker `index` until the cell's stop rule ends it, recording into its slot.
pub async fn run_worker(shared: Arc<CellShared>, index: u32, slot: Arc<WorkerSlot>) {
    let tally = &slot.tally;
    let mut state = WorkerState {
        connection: None,
        rng: SmallRng::seed_from_u64(shared.seed ^ u64::from(index).rotate_left(17)),
        cursor: RowCursor::new(shared.row_order, shared.seed, index, shared.workers),
        auth: shared.auth.clone().map(|(name, mut receiver)| {
            let value = receiver.borrow_and_update().clone();
            (name, receiver, value)
        }),
        pace: WorkerPace {
            index,
            workers: shared.workers,
            sent: 0,
        },
    };
    loop {
        let mut dropped = 0;
        let ticket = shared
            .pacing
            .next(&mut state.pace, &shared.stop, &mut dropped)
            .await;
        if dropped > 0 {
            tally.lock().expect("tally lock").dropped += dropped;
        }
        let Some(ticket) = ticket else {
            break;
        };
        let sent_at = Instant::now();
        let (result, retries, body_len) = match build_request(&shared, &mut state, ticket.seq) {
            Ok(prepared) => {
                let body_len = prepared.body.len() as u64;
                slot.in_flight.store(true, Ordering::Relaxed);
                let (result, retries) = send_with_retries(&shared, &mut state, prepared).await;
                (result, retries, body_len)
            }
            Err(error) => (Err(error), 0, 0),
        };
        let done = Instant::now();

        let mut tally = tally.lock().expect("tally lock");
        slot.in_flight.store(false, Ordering::Relaxed);
        tally.request_bytes += body_len * (1 + retries);
        tally.retries += retries;
        tally.last_sent = tally.last_sent.max(Some(sent_at));
        tally.max_lag_us = tally.max_lag_us.max(micros(sent_at - ticket.due));
        let outcome = match result {
            Ok(response) => {
                tally.response_bytes += response.body_bytes;
                tally.rate_limit.observe(&response.headers);
                let outcome = Outcome::from_status(response.status);
                if outcome != Outcome::Ok {
                    tally.record_error(outcome, response_detail(&response));
                }
                outcome
            }
            Err(error) => {
                tally.record_error(error.outcome, error.detail());
                error.outcome
            }
        };
        tally.record(outcome, micros(done - ticket.due), micros(done - sent_at));
    }
}

/// Sends the request, and again after each 429 while the retry policy allows. Returns the
/// last attempt's result and the number of retries made.
async fn send_with_retries(
    shared: &CellShared,
    state: &mut WorkerState,
    prepared: Prepared,
) -> (Result<Response, TransportError>, u64) {
    let policy = shared.retry;
    let mut retries = 0u32;
    let mut next = Some(prepared);
    loop {
        let current = next.take().expect("a request is ready to send");
        // Keep a copy only while a 429 may make the worker send it again.
        if policy.enabled && retries < policy.max_retries {
            next = Some(current.clone());
        }
        let result = tokio::time::timeout(
            shared.timeout,
            transport::send(
                &shared.endpoint,
                &mut state.connection,
                current.into_request(),
            ),
        )
        .await
        .unwrap_or_else(|_| Err(TransportError::timeout(shared.timeout)));
        if result.is_err() {
            // A timed-out or broken connection may still deliver a stale answer; start afresh.
            state.connection = None;
        }
        let retry_after = match &result {
            Ok(response) if response.status == 429 && next.is_some() => {
                response.headers.get(http::header::RETRY_AFTER)
            }
            _ => return (result, u64::from(retries)),
        };
        let wait = policy.wait(retry_after, retries);
        tracing::debug!(
            worker = state.pace.index,
            wait_ms = wait.as_millis() as u64,
            "429 answer; waiting before a retry"
        );
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = shared.stop.cancel.cancelled() => return (result, u64::from(retries)),
        }
        retries += 1;
    }
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

/// A request ready to send; cloned only when a 429 retry may need it again.
#[derive(Clone)]
struct Prepared {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
}

impl Prepared {
    fn into_request(self) -> Request<Full<Bytes>> {
        let mut request = Request::new(Full::new(self.body));
        *request.method_mut() = self.method;
        *request.uri_mut() = self.uri;
        *request.headers_mut() = self.headers;
        request
    }
}

/// Renders the per-request parts and assembles the request.
fn build_request(
    shared: &CellShared,
    state: &mut WorkerState,
    seq: u64,
) -> Result<Prepared, TransportError> {
    let prepared = &shared.request;
    let variant = &prepared.variant;
    let row: &[String] = match &shared.data {
        Some(data) => data.row(state.cursor.next_index(data.len())),
        None => &[],
    };
    let mut context = RenderContext {
        row,
        seq,
        worker: state.pace.index,
        rng: &mut state.rng,
    };
    let mut body = Vec::new();
    variant.body.render_into(&mut body, &mut context);

    let uri = match &prepared.uri {
        Some(uri) => uri.clone(),
        None => {
            let mut path = Vec::new();
            variant.path.render_into(&mut path, &mut context);
            Uri::try_from(path.as_slice()).map_err(|_| {
                invalid_request(format!(
                    "the rendered path \"{}\" is not a valid URI; percent-encode spaces and other reserved characters",
                    String::from_utf8_lossy(&path)
                ))
            })?
        }
    };
    let mut headers = prepared.headers.clone();
    for (name, template) in &variant.headers {
        if template.as_constant().is_none() {
            let mut value = Vec::new();
            template.render_into(&mut value, &mut context);
            let value = HeaderValue::from_bytes(&value).map_err(|_| {
                invalid_request(format!(
                    "the rendered {name} header has characters a header cannot carry, such as a newline"
                ))
            })?;
            headers.insert(name.clone(), value);
        }
    }
    if let Some((name, receiver, value)) = &mut state.auth {
        if receiver.has_changed().unwrap_or(false) {
            *value = receiver.borrow_and_update().clone();
        }
        headers.insert(name.clone(), value.clone());
    }
    Ok(Prepared {
        method: prepared.method.clone(),
        uri,
        headers,
        body: Bytes::from(body),
    })
}

/// The error of a request that could not be built from its data row, so was never sent.
fn invalid_request(message: String) -> TransportError {
    TransportError {
        outcome: Outcome::OtherError,
        code: "invalid_request",
        message,
    }
}

#[derive(Deserialize, Default)]
struct ErrorBody {
    #[serde(default)]
    code: Option<serde_json::Value>,
    #[serde(default)]
    message: Option<String>,
}

/// Extracts why the server refused: the body's `code` and `message` and the limit headers.
fn response_detail(response: &Response) -> ErrorDetail {
    let body: ErrorBody = serde_json::from_slice(&response.body_sample).unwrap_or_default();
    let code = match body.code {
        Some(serde_json::Value::String(code)) => code,
        Some(other) => other.to_string(),
        None => String::new(),
    };
    let message = body.message.unwrap_or_else(|| {
        let text = String::from_utf8_lossy(&response.body_sample);
        text.chars().take(200).collect()
    });
    let header = |name: &str| {
        response
            .headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let rate_limit = RATE_LIMIT_HEADERS
        .iter()
        .filter_map(|name| {
            let value = response.headers.get(*name)?.to_str().ok()?;
            Some(format!("{name}={value}"))
        })
        .collect::<Vec<_>>()
        .join(";");
    ErrorDetail {
        status: response.status,
        code,
        message,
        correlation_id: header("inin-correlation-id"),
        retry_after: header("retry-after"),
        rate_limit,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            enabled: true,
            max_retries: 5,
            max_wait: Duration::from_secs(10),
        }
    }

    #[test]
    fn retry_after_seconds_are_honoured() {
        let value = HeaderValue::from_static("3");
        assert_eq!(policy().wait(Some(&value), 0), Duration::from_secs(3));
    }

    #[test]
    fn retry_after_http_date_is_honoured() {
        let when = std::time::SystemTime::now() + Duration::from_secs(5);
        let value = HeaderValue::from_str(&httpdate::fmt_http_date(when)).unwrap();
        let wait = policy().wait(Some(&value), 0);
        assert!(
            wait > Duration::from_secs(3) && wait <= Duration::from_secs(5),
            "{wait:?}"
        );
    }

    #[test]
    fn past_http_date_means_no_wait() {
        let value = HeaderValue::from_static("Thu, 01 Jan 2015 00:00:00 GMT");
        assert_eq!(policy().wait(Some(&value), 0), Duration::ZERO);
    }

    #[test]
    fn missing_header_backs_off_exponentially_to_the_cap() {
        let waits: Vec<u64> = (0..6)
            .map(|retry| policy().wait(None, retry).as_secs())
            .collect();
        assert_eq!(waits, [1, 2, 4, 8, 10, 10]);
    }

    #[test]
    fn long_requests_are_cut_to_max_wait() {
        let value = HeaderValue::from_static("3600");
        assert_eq!(policy().wait(Some(&value), 0), Duration::from_secs(10));
    }

    #[test]
    fn garbage_retry_after_falls_back_to_backoff() {
        let value = HeaderValue::from_static("soon");
        assert_eq!(policy().wait(Some(&value), 1), Duration::from_secs(2));
    }
}
