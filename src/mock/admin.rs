//! The `/mock/*` endpoints for tests and people, and the bounded log of recent execute
//! requests behind `GET /mock/requests`.
//!
//! These endpoints are not counted in the stats, so reading them changes nothing they report.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use axum::Extension;
use axum::extract::{Query, State};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::app::{ApiError, RequestContext, Shared};

/// Number of execute requests the log keeps. Older ones are dropped first.
pub(crate) const REQUEST_LOG_CAPACITY: usize = 1000;
/// Body bytes kept per logged request, so that the log stays under about 16 MiB.
const RECORDED_BODY_LIMIT: usize = 16 * 1024;
/// Value that replaces credentials in logged headers.
const REDACTED: &str = "[redacted]";

/// One execute request as `GET /mock/requests` lists it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RecordedRequest {
    /// HTTP method.
    pub method: String,
    /// Path and query string.
    pub path: String,
    /// Headers by lower-case name, repeated headers joined with ", ". Authorization and
    /// Proxy-Authorization read `[redacted]`.
    pub headers: BTreeMap<String, String>,
    /// Body as text (invalid UTF-8 replaced), or `None` when the server responded before
    /// reading it. Only the first 16 KiB are kept.
    pub body: Option<String>,
    /// Whether the body was cut to 16 KiB.
    pub body_truncated: bool,
    /// Status of the response, or `None` when the fault injector reset the connection.
    pub status: Option<u16>,
}

/// One execute request as the handler records it: cheap to build on every request and
/// turned into a [`RecordedRequest`] only when `GET /mock/requests` reads it.
pub(crate) struct RequestRecord {
    method: Method,
    path: String,
    /// Header lines `name: value\n` with credentials redacted, in one allocation and not yet
    /// checked for UTF-8.
    header_lines: Vec<u8>,
    body: Option<Vec<u8>>,
    body_truncated: bool,
    /// Status of the response, or `None` for a reset connection.
    pub(crate) status: Option<u16>,
}

impl RequestRecord {
    pub(crate) fn new(parts: &Parts) -> Self {
        let length: usize = parts
            .headers
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len() + 3)
            .sum();
        let mut header_lines = Vec::with_capacity(length);
        for (name, value) in &parts.headers {
            header_lines.extend_from_slice(name.as_str().as_bytes());
            header_lines.extend_from_slice(b": ");
            match name.as_str() {
                "authorization" | "proxy-authorization" => {
                    header_lines.extend_from_slice(REDACTED.as_bytes())
                }
                _ => header_lines.extend_from_slice(value.as_bytes()),
            }
            header_lines.push(b'\n');
        }
        let path = parts
            .uri
            .path_and_query()
            .map_or_else(|| parts.uri.path().to_string(), ToString::to_string);
        RequestRecord {
            method: parts.method.clone(),
            path,
            header_lines,
            body: None,
            body_truncated: false,
            status: None,
        }
    }

    pub(crate) fn set_body(&mut self, body: &[u8]) {
        let kept = &body[..body.len().min(RECORDED_BODY_LIMIT)];
        self.body = Some(kept.to_vec());
        self.body_truncated = kept.len() < body.len();
    }

    fn to_recorded(&self) -> RecordedRequest {
        let mut headers: BTreeMap<String, String> = BTreeMap::new();
        // Header values cannot contain line breaks, so each line is one header.
        for line in String::from_utf8_lossy(&self.header_lines).lines() {
            // Header names cannot contain ':', so the first ": " ends the name.
            let (name, value) = line.split_once(": ").unwrap_or((line, ""));
            headers
                .entry(name.to_string())
                .and_modify(|joined| {
                    joined.push_str(", ");
                    joined.push_str(value);
                })
                .or_insert_with(|| value.to_string());
        }
        RecordedRequest {
            method: self.method.to_string(),
            path: self.path.clone(),
            headers,
            body: self
                .body
                .as_deref()
                .map(|body| String::from_utf8_lossy(body).into_owned()),
            body_truncated: self.body_truncated,
            status: self.status,
        }
    }
}

/// The last `REQUEST_LOG_CAPACITY` execute requests, oldest first.
pub(crate) struct RequestLog {
    entries: Mutex<VecDeque<RequestRecord>>,
}

impl RequestLog {
    pub(crate) fn new() -> Self {
        RequestLog {
            entries: Mutex::new(VecDeque::with_capacity(REQUEST_LOG_CAPACITY)),
        }
    }

    pub(crate) fn push(&self, request: RequestRecord) {
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if entries.len() == REQUEST_LOG_CAPACITY {
            entries.pop_front();
        }
        entries.push_back(request);
    }

    /// Returns the newest `limit` requests, oldest first.
    fn last(&self, limit: usize) -> Vec<RecordedRequest> {
        let entries = self
            .entries
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let skip = entries.len().saturating_sub(limit);
        entries
            .iter()
            .skip(skip)
            .map(RequestRecord::to_recorded)
            .collect()
    }

    fn clear(&self) {
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        entries.clear();
    }
}

/// Returns the stats as JSON (`StatsSnapshot`).
pub(crate) async fn stats(State(shared): State<Arc<Shared>>) -> Response {
    axum::Json(shared.stats.snapshot()).into_response()
}

/// Query of `GET /mock/requests`.
#[derive(Debug, Deserialize)]
pub(crate) struct RequestsQuery {
    /// Number of newest requests to return; all that the log keeps when absent.
    limit: Option<usize>,
}

/// Returns the newest logged execute requests as a JSON array, oldest first.
pub(crate) async fn requests(
    State(shared): State<Arc<Shared>>,
    Extension(context): Extension<RequestContext>,
    query: Result<Query<RequestsQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let limit = match query {
        Ok(Query(query)) => query.limit.unwrap_or(REQUEST_LOG_CAPACITY),
        Err(rejection) => {
            let message = format!(
                "invalid query ({}): use ?limit=N with a whole number N",
                rejection.body_text()
            );
            return ApiError::new(StatusCode::BAD_REQUEST, "bad.request", message)
                .into_response(context.correlation);
        }
    };
    axum::Json(shared.requests.last(limit)).into_response()
}

/// Clears the stats and the request log. Tokens and rate-limit state stay.
pub(crate) async fn reset(State(shared): State<Arc<Shared>>) -> Response {
    shared.stats.clear();
    shared.requests.clear();
    StatusCode::NO_CONTENT.into_response()
}
