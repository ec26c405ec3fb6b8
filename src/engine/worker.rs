//! The one worker loop that both load models share: take a ticket from the pacing strategy,
//! render and send the request, classify the response, record it in the worker's own tally.

use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::{CONTENT_LENGTH, HeaderMap, HeaderName, HeaderValue, TRANSFER_ENCODING};
use http::{Method, Request, Uri};
use http_body_util::Full;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use serde::Deserialize;
use tokio::sync::watch;
use tokio::time::{Instant, Sleep};

use super::jtl::{JtlCell, JtlRecorder};
use super::pacing::{Pacing, StopRule, WorkerPace};
use super::transport::{self, Connection, Endpoint, Response, TransportError};
use crate::data::{DataSet, RowCursor, RowOrder};
use crate::metrics::{ErrorDetail, Outcome, Tally};
use crate::scenario::CompiledVariant;
use crate::template::{RenderContext, Template};

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
    /// Whether any header value has a per-request placeholder.
    dynamic_headers: bool,
    /// The bytes reserved before rendering: enough for the body and every per-request path
    /// and header value, so that all of them usually fit in one buffer.
    render_size: usize,
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
        let dynamic: Vec<&Template> = variant
            .headers
            .iter()
            .map(|(_, template)| template)
            .chain(std::iter::once(&variant.path))
            .filter(|template| template.as_constant().is_none())
            .collect();
        let dynamic_headers = variant
            .headers
            .iter()
            .any(|(_, template)| template.as_constant().is_none());
        let render_size = variant.body.size_hint()
            + dynamic
                .iter()
                .map(|template| template.size_hint())
                .sum::<usize>();
        PreparedRequest {
            method: variant.method.clone(),
            uri,
            headers,
            dynamic_headers,
            render_size,
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
    /// With `--jtl`: where each request's row goes.
    pub jtl: Option<Arc<JtlCell>>,
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
    /// The constant headers with the current auth value, cloned for each request of a
    /// variant without per-request headers.
    headers: HeaderMap,
    /// Whether this worker sets `content-length` itself, in the last entry of `headers`.
    /// hyper adds the header when the request lacks it, and the append grows the cloned map,
    /// which has no spare capacity, so each request would reallocate it.
    sets_length: bool,
    /// The last body length and its header value, reused while the length stays the same.
    length: (usize, HeaderValue),
    /// The timeout timer of [`within_deadline`].
    timer: Pin<Box<Sleep>>,
    /// Rendered bodies, paths and header values are split off this buffer. hyper drops a
    /// request's parts once written, so the buffer reclaims its space and a worker renders
    /// without allocating.
    buffer: BytesMut,
    pace: WorkerPace,
    jtl: Option<JtlRecorder>,
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
    let auth = shared.auth.clone().map(|(name, mut receiver)| {
        let value = receiver.borrow_and_update().clone();
        (name, receiver, value)
    });
    let mut headers = shared.request.headers.clone();
    if let Some((name, _, value)) = &auth {
        headers.insert(name.clone(), value.clone());
    }
    // A length or encoding that the scenario sets goes out as written, as hyper leaves it.
    let sets_length = !shared.request.dynamic_headers
        && !headers.contains_key(CONTENT_LENGTH)
        && !headers.contains_key(TRANSFER_ENCODING);
    let length = (0, HeaderValue::from_static("0"));
    if sets_length {
        headers.insert(CONTENT_LENGTH, length.1.clone());
    }
    let mut state = WorkerState {
        connection: None,
        rng: SmallRng::seed_from_u64(shared.seed ^ u64::from(index).rotate_left(17)),
        cursor: RowCursor::new(shared.row_order, shared.seed, index, shared.workers),
        auth,
        headers,
        sets_length,
        length,
        // Already elapsed, so that the first request arms it with its own deadline.
        timer: Box::pin(tokio::time::sleep_until(Instant::now())),
        buffer: BytesMut::new(),
        pace: WorkerPace {
            index,
            workers: shared.workers,
            sent: 0,
        },
        jtl: shared
            .jtl
            .as_ref()
            .map(|jtl| jtl.recorder(index, Arc::clone(&slot))),
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
        let sent_at = ticket.released;
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
        if let Some(jtl) = &mut state.jtl {
            jtl.record(sent_at, done, &result, body_len * (1 + retries));
        }

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
                    let auth = state.auth.as_ref().map(|(_, _, value)| value);
                    tally.record_error(outcome, response_detail(&response, auth));
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
        let deadline = Instant::now() + shared.timeout;
        let result = within_deadline(
            &mut state.timer,
            deadline,
            transport::send(
                &shared.endpoint,
                &mut state.connection,
                current.into_request(),
            ),
        )
        .await
        .unwrap_or_else(|| Err(TransportError::timeout(shared.timeout)));
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
        // A retry that would start after the cell's end is not made, so the cell stays bounded.
        if shared
            .stop
            .deadline
            .is_some_and(|deadline| Instant::now() + wait >= deadline)
        {
            return (result, u64::from(retries));
        }
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

/// Runs `future` until it completes or `deadline` passes, whichever comes first; `None` means
/// the deadline passed.
///
/// `timer` is the worker's one timeout timer. It is re-armed only when it fires: deadlines
/// grow with every request, so a timer armed for an earlier request's deadline fires no later
/// than this one's, and on firing it moves to this deadline. That replaces the insertion and
/// removal of a timer per request with about one re-arm per timeout period.
async fn within_deadline<F: Future>(
    timer: &mut Pin<Box<Sleep>>,
    deadline: Instant,
    future: F,
) -> Option<F::Output> {
    let mut future = pin!(future);
    loop {
        tokio::select! {
            biased;
            output = &mut future => return Some(output),
            () = timer.as_mut() => {
                if Instant::now() >= deadline {
                    return None;
                }
                timer.as_mut().reset(deadline);
            }
        }
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
    if let Some((name, receiver, value)) = &mut state.auth
        && receiver.has_changed().unwrap_or(false)
    {
        *value = receiver.borrow_and_update().clone();
        state.headers.insert(name.clone(), value.clone());
    }
    let mut context = RenderContext {
        row,
        seq,
        worker: state.pace.index,
        rng: &mut state.rng,
    };
    let buffer = &mut state.buffer;
    buffer.reserve(prepared.render_size);
    variant.body.render_into(buffer, &mut context);
    let body = buffer.split().freeze();

    let uri = match &prepared.uri {
        Some(uri) => uri.clone(),
        None => {
            variant.path.render_into(buffer, &mut context);
            let path = buffer.split().freeze();
            Uri::from_maybe_shared(path.clone()).map_err(|_| {
                invalid_request(format!(
                    "the rendered path \"{}\" is not a valid URI; percent-encode spaces and other reserved characters",
                    String::from_utf8_lossy(&path)
                ))
            })?
        }
    };
    let headers = if prepared.dynamic_headers {
        // Rendered values are inserted after the constant ones and the auth value last, in
        // the order `volley probe` shows.
        let mut headers = prepared.headers.clone();
        for (name, template) in &variant.headers {
            if template.as_constant().is_none() {
                template.render_into(buffer, &mut context);
                let value = HeaderValue::from_maybe_shared(buffer.split().freeze()).map_err(|_| {
                    invalid_request(format!(
                        "the rendered {name} header has characters a header cannot carry, such as a newline"
                    ))
                })?;
                headers.insert(name.clone(), value);
            }
        }
        if let Some((name, _, value)) = &state.auth {
            headers.insert(name.clone(), value.clone());
        }
        headers
    } else {
        let mut headers = state.headers.clone();
        if state.sets_length {
            // hyper sends no content-length with an empty body, so neither does the worker.
            // The entry is the last one, so removing it moves no other header.
            if body.is_empty() {
                headers.remove(CONTENT_LENGTH);
            } else {
                if state.length.0 != body.len() {
                    state.length = (body.len(), HeaderValue::from(body.len()));
                }
                headers.insert(CONTENT_LENGTH, state.length.1.clone());
            }
        }
        headers
    };
    Ok(Prepared {
        method: prepared.method.clone(),
        uri,
        headers,
        body,
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

/// Replaces credentials a server may echo in an error body: the value this worker sent in
/// its authentication header and anything after `Bearer ` or `Basic `.
fn redact_credentials(text: &str, auth: Option<&HeaderValue>) -> String {
    let mut text = text.to_string();
    if let Some(value) = auth.and_then(|value| value.to_str().ok()) {
        let token = value.rsplit(' ').next().unwrap_or(value);
        for secret in [value, token] {
            if secret.len() >= 4 && text.contains(secret) {
                text = text.replace(secret, crate::report::run_json::REDACTED);
            }
        }
    }
    for scheme in ["Bearer ", "bearer ", "Basic ", "basic "] {
        let mut start = 0;
        while let Some(found) = text[start..].find(scheme) {
            let value_start = start + found + scheme.len();
            let value_end = text[value_start..]
                .find(|c: char| c.is_whitespace() || c == '"' || c == ',' || c == ';')
                .map_or(text.len(), |end| value_start + end);
            if text[value_start..value_end] != *crate::report::run_json::REDACTED {
                text.replace_range(value_start..value_end, crate::report::run_json::REDACTED);
            }
            start = value_start
                + crate::report::run_json::REDACTED
                    .len()
                    .min(text.len() - value_start);
        }
    }
    text
}

/// Extracts why the server refused: the body's `code` and `message` and the limit headers,
/// with any echoed credential redacted.
fn response_detail(response: &Response, auth: Option<&HeaderValue>) -> ErrorDetail {
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
        code: redact_credentials(&code, auth),
        message: redact_credentials(&message, auth),
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
    fn echoed_credentials_are_redacted() {
        let sent = HeaderValue::from_static("Bearer tok-123456");
        let text = "token rejected: authorization: Bearer tok-123456, also tok-123456 and Basic dXNlcjpwYXNz";
        let redacted = redact_credentials(text, Some(&sent));
        assert!(!redacted.contains("tok-123456"), "{redacted}");
        assert!(!redacted.contains("dXNlcjpwYXNz"), "{redacted}");
        assert!(
            redacted.starts_with("token rejected: authorization: [redacted]"),
            "{redacted}"
        );
    }

    #[test]
    fn header_key_is_redacted() {
        let sent = HeaderValue::from_static("key-header-51c2");
        let redacted = redact_credentials("bad key key-header-51c2", Some(&sent));
        assert_eq!(redacted, "bad key [redacted]");
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
