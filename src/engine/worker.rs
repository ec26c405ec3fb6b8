//! The one worker loop that both load models share: take a ticket from the pacing strategy,
//! render and send the request, classify the answer, record it in the worker's own tally.

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

/// Response headers kept with 403 and 429 answers to explain a refusal.
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
                headers.append(name.clone(), value);
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
}

struct WorkerState {
    connection: Option<Connection>,
    rng: SmallRng,
    cursor: RowCursor,
    auth: Option<(HeaderName, watch::Receiver<HeaderValue>, HeaderValue)>,
    pace: WorkerPace,
}

/// Runs worker `index` until the cell's stop rule ends it, recording into `tally`.
pub async fn run_worker(shared: Arc<CellShared>, index: u32, tally: Arc<Mutex<Tally>>) {
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
        let (request, body_len) = build_request(&shared, &mut state, ticket.seq);
        let sent_at = Instant::now();
        let result = tokio::time::timeout(
            shared.timeout,
            transport::send(&shared.endpoint, &mut state.connection, request),
        )
        .await
        .unwrap_or_else(|_| Err(TransportError::timeout(shared.timeout)));
        let done = Instant::now();
        if result.is_err() {
            // A timed-out or broken connection may still deliver a stale answer; start afresh.
            state.connection = None;
        }

        let mut tally = tally.lock().expect("tally lock");
        tally.request_bytes += body_len;
        tally.last_sent = tally.last_sent.max(Some(sent_at));
        tally.max_lag_us = tally.max_lag_us.max(micros(sent_at - ticket.due));
        let outcome = match result {
            Ok(response) => {
                tally.response_bytes += response.body_bytes;
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

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

/// Renders the per-request parts and assembles the request.
fn build_request(
    shared: &CellShared,
    state: &mut WorkerState,
    seq: u64,
) -> (Request<Full<Bytes>>, u64) {
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
    let body_len = body.len() as u64;

    let mut request = Request::new(Full::new(Bytes::from(body)));
    *request.method_mut() = prepared.method.clone();
    *request.uri_mut() = match &prepared.uri {
        Some(uri) => uri.clone(),
        None => {
            let mut path = Vec::new();
            variant.path.render_into(&mut path, &mut context);
            Uri::try_from(path).unwrap_or_else(|_| Uri::from_static("/"))
        }
    };
    let headers = request.headers_mut();
    *headers = prepared.headers.clone();
    for (name, template) in &variant.headers {
        if template.as_constant().is_none() {
            let mut value = Vec::new();
            template.render_into(&mut value, &mut context);
            if let Ok(value) = HeaderValue::from_bytes(&value) {
                headers.insert(name.clone(), value);
            }
        }
    }
    if let Some((name, receiver, value)) = &mut state.auth {
        if receiver.has_changed().unwrap_or(false) {
            *value = receiver.borrow_and_update().clone();
        }
        headers.insert(name.clone(), value.clone());
    }
    (request, body_len)
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
