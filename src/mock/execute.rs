//! The execute endpoints: `POST /api/v2/{integrations,data}/actions/{actionId}/execute`.
//!
//! Checks run in this order, and the first that fails sets the response: bearer token (401),
//! action (404), body size (413), JSON body (400), per-token rate limit (429), organization
//! rule (403). Only requests that pass the JSON check use up rate-limit budget. The
//! configured latency applies to 200 and 403 responses alike, a 429 takes the base latency and
//! jitter without the per-KiB cost, and earlier rejections are immediate.

use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::admin::RequestRecord;
use super::app::{ApiError, CorrelationId, RequestContext, Shared};
use super::auth::authenticate_bearer;
use super::body::read_body;
use super::faults::{Draw, Fault};
use super::org::{check_org, scan_body};
use super::stats::Endpoint;

/// Passes an execute request that came through the router to [`handle`].
///
/// The route exists so that other methods on the execute paths get 405. Because
/// `observe::serve_request` sends POST requests to [`handle`] directly, this handler runs only
/// for a path that the router matches but that shortcut does not.
pub(crate) async fn execute(
    State(shared): State<Arc<Shared>>,
    Extension(context): Extension<RequestContext>,
    request: Request,
) -> Response {
    handle(&shared, &context, request).await
}

/// Handles an execute request, or resets its connection when the fault injector draws a reset.
pub(crate) async fn handle(
    shared: &Shared,
    context: &RequestContext,
    request: Request,
) -> Response {
    let correlation = context.correlation;
    let (parts, body) = request.into_parts();
    let mut record = RequestRecord::new(&parts);
    let draw = shared.faults.draw();
    let result = match draw.fault {
        Fault::Reset => {
            shared.stats.endpoint(Endpoint::Execute).count_reset();
            shared.requests.push(record);
            context.connection.request_reset();
            // The connection task drops this future together with the connection.
            return std::future::pending().await;
        }
        Fault::ServerError => {
            let message = "injected server error (error_rate)";
            Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal.error",
                message,
            ))
        }
        Fault::None => check(shared, &parts, body, draw, correlation, &mut record).await,
    };
    let (response, delay) =
        result.unwrap_or_else(|error| (error.into_response(correlation), Duration::ZERO));
    record.status = Some(response.status().as_u16());
    shared.requests.push(record);
    if !delay.is_zero() {
        // Boxed because a timer is large and responses without configured latency do not wait.
        Box::pin(tokio::time::sleep(delay)).await;
    }
    response
}

/// Runs the checks in order and returns the response with its delay.
///
/// Rate-limit and organization errors come back as responses inside `Ok`, because they carry
/// the rate-limit headers of the charged request. Earlier errors come back as `Err`. Only the
/// body read awaits, which keeps this future small.
async fn check(
    shared: &Shared,
    parts: &Parts,
    body: axum::body::Body,
    draw: Draw,
    correlation: CorrelationId,
    record: &mut RequestRecord,
) -> Result<(Response, Duration), ApiError> {
    let token = authenticate_bearer(shared, &parts.headers)?;
    let action_id = configured_action(shared, parts.uri.path())?;
    let limit = shared.config.body_limit;
    let timeout = shared.config.header_read_timeout.0;
    let bytes = read_body(&parts.headers, body, limit, timeout).await?;
    shared
        .stats
        .endpoint(Endpoint::Execute)
        .count_bytes(bytes.len());
    record.set_body(&bytes);
    let body_org = scan_body(&bytes).map_err(|error| {
        let message = format!("the request body is not valid JSON: {error}");
        ApiError::new(StatusCode::BAD_REQUEST, "bad.request", message)
    })?;

    let outcome = shared.rate_limit.charge(token.id);
    let client = &shared.config.clients[token.client];
    let require_body_org_id = shared.config.require_body_org_id;
    let (mut response, delay) = match &outcome {
        // A throttled call stops at the gateway: its 429 takes the base latency and jitter,
        // the round trip, but not the per-KiB cost of running the action.
        Err(rejection) => {
            let error = shared.rate_limit.rejection_error(rejection);
            let delay = shared.faults.latency(draw, 0);
            (error.into_response(correlation), delay)
        }
        // The organization check runs with the action, so a 403 takes as long as a 200.
        Ok(_) => {
            let delay = shared.faults.latency(draw, bytes.len());
            match check_org(client, &parts.headers, &body_org, require_body_org_id) {
                Ok(org_id) => (success_response(action_id, org_id, &bytes), delay),
                Err(error) => (error.into_response(correlation), delay),
            }
        }
    };
    shared
        .rate_limit
        .set_headers(response.headers_mut(), &outcome);
    Ok((response, delay))
}

/// Returns the configured action that the execute path names, percent-decoded.
fn configured_action<'a>(shared: &'a Shared, path: &str) -> Result<&'a str, ApiError> {
    let segment = path
        .strip_suffix("/execute")
        .and_then(|rest| rest.rsplit_once('/'))
        .map_or("", |(_, segment)| segment);
    let decoded = percent_decode(segment);
    let action = decoded.as_deref().and_then(|name| shared.actions.get(name));
    match action {
        Some(action) => Ok(action.as_str()),
        None => {
            let shown = decoded.unwrap_or_else(|| segment.to_string());
            let message = format!("data action \"{shown}\" not found");
            Err(ApiError::new(StatusCode::NOT_FOUND, "not.found", message))
        }
    }
}

/// Decodes `%XX` escapes of a path segment. Returns `None` for a bad escape or bytes that
/// are not UTF-8.
fn percent_decode(segment: &str) -> Option<String> {
    if !segment.contains('%') {
        return Some(segment.to_string());
    }
    let bytes = segment.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' {
            let hex = bytes.get(index + 1..index + 3)?;
            let text = std::str::from_utf8(hex).ok()?;
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return None;
            }
            decoded.push(u8::from_str_radix(text, 16).ok()?);
            index += 3;
        } else {
            decoded.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8(decoded).ok()
}

/// Builds the 200 response `{"actionId","orgId","input"}`.
///
/// The body is copied into `input` as it arrived, which is safe because it passed the JSON
/// check, and which saves parsing it into a `serde_json::Value` and serializing it again.
fn success_response(action_id: &str, org_id: &str, body: &[u8]) -> Response {
    let mut json = Vec::with_capacity(body.len() + action_id.len() + org_id.len() + 40);
    json.extend_from_slice(b"{\"actionId\":");
    // serde_json fails only on I/O errors, and writing to a Vec has none.
    let _ = serde_json::to_writer(&mut json, action_id);
    json.extend_from_slice(b",\"orgId\":");
    let _ = serde_json::to_writer(&mut json, org_id);
    json.extend_from_slice(b",\"input\":");
    json.extend_from_slice(body);
    json.push(b'}');
    let content_type = HeaderValue::from_static("application/json");
    ([(header::CONTENT_TYPE, content_type)], json).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decode_handles_escapes() {
        assert_eq!(
            percent_decode("demo-action").as_deref(),
            Some("demo-action")
        );
        assert_eq!(percent_decode("a%20b%2F").as_deref(), Some("a b/"));
        assert_eq!(percent_decode("%C3%A9").as_deref(), Some("\u{e9}"));
        assert_eq!(percent_decode("bad%2"), None);
        assert_eq!(percent_decode("bad%zz"), None);
        assert_eq!(percent_decode("%FF"), None);
        assert_eq!(percent_decode("%+1"), None);
    }
}
