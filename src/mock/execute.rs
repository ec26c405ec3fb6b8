//! The execute endpoints: `POST /api/v2/{integrations,data}/actions/{actionId}/execute`.
//!
//! Checks run in this order, and the first that fails sets the response: bearer token (401),
//! action (404), body size (413), JSON body (400), per-token rate limit (429), organization
//! rule (403). Only requests that pass the JSON check use up rate-limit budget.

use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::extract::{FromRequestParts, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use governor::clock::Clock;
use serde_json::Value;

use super::admin::RecordedRequest;
use super::app::{ApiError, CorrelationId, Shared, read_body, set_ratelimit_headers};
use super::auth::{TokenEntry, authenticate_bearer};
use super::config::ClientConfig;
use super::faults::{Draw, Fault};
use super::server::ConnectionControl;
use super::stats::Endpoint;

/// Header that names the organization a request acts for.
const ORG_HEADER: &str = "x-genesys-org-id";

/// Handles an execute request, or resets its connection when the fault injector draws a reset.
pub(crate) async fn execute(
    State(shared): State<Arc<Shared>>,
    Extension(correlation): Extension<CorrelationId>,
    connection: Option<Extension<Arc<ConnectionControl>>>,
    request: Request,
) -> Response {
    let (mut parts, body) = request.into_parts();
    let mut record = RecordedRequest::new(&parts);
    let draw = shared.faults.draw();
    let (response, delay) = match draw.fault {
        Fault::Reset => match connection {
            Some(Extension(control)) => {
                shared.stats.endpoint(Endpoint::Execute).count_reset();
                shared.requests.push(record);
                control.request_reset();
                // The connection task drops this future together with the connection.
                return std::future::pending().await;
            }
            None => (reset_unavailable(correlation), Duration::ZERO),
        },
        Fault::ServerError => {
            let message = "injected server error (error_rate)";
            let error = ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal.error", message);
            (error.into_response(correlation), Duration::ZERO)
        }
        Fault::None => match check(&shared, &mut parts, body, draw, correlation, &mut record).await
        {
            Ok((response, delay)) => (response, delay),
            Err(error) => (error.into_response(correlation), Duration::ZERO),
        },
    };
    record.status = Some(response.status().as_u16());
    shared.requests.push(record);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    response
}

/// Runs the checks in order and returns the success response with its delay.
///
/// Rate-limit and organization errors come back as responses inside `Ok`, because they carry
/// the rate-limit headers of the charged request. Earlier errors come back as `Err`.
async fn check(
    shared: &Shared,
    parts: &mut Parts,
    body: axum::body::Body,
    draw: Draw,
    correlation: CorrelationId,
    record: &mut RecordedRequest,
) -> Result<(Response, Duration), ApiError> {
    let token = authenticate_bearer(shared, &parts.headers)?;
    let action_id = action_id(parts, shared).await?;
    let limit = shared.config.body_limit;
    let timeout = shared.config.header_read_timeout.0;
    let bytes = read_body(&parts.headers, body, limit, timeout).await?;
    shared
        .stats
        .endpoint(Endpoint::Execute)
        .count_bytes(bytes.len());
    record.set_body(&bytes);
    let input: Value = serde_json::from_slice(&bytes).map_err(|error| {
        let message = format!("the request body is not valid JSON: {error}");
        ApiError::new(StatusCode::BAD_REQUEST, "bad.request", message)
    })?;

    let mut headers = HeaderMap::new();
    let charged = charge_rate_limit(shared, &token, &mut headers);
    let client = &shared.config.clients[token.client];
    let org_id = match charged.and_then(|()| check_org(shared, client, &parts.headers, &input)) {
        Ok(org_id) => org_id,
        Err(error) => {
            let response = with_headers(error.into_response(correlation), headers);
            return Ok((response, Duration::ZERO));
        }
    };
    let result = serde_json::json!({
        "actionId": action_id,
        "orgId": org_id,
        "input": input,
    });
    let response = with_headers(axum::Json(result).into_response(), headers);
    Ok((response, shared.faults.latency(draw, bytes.len())))
}

/// Returns the action id from the path if the action is configured.
async fn action_id(parts: &mut Parts, shared: &Shared) -> Result<String, ApiError> {
    let not_found = |action: &str| {
        let message = format!("data action \"{action}\" not found");
        ApiError::new(StatusCode::NOT_FOUND, "not.found", message)
    };
    let Path(action_id) = Path::<String>::from_request_parts(parts, &())
        .await
        .map_err(|_| not_found("(not valid UTF-8)"))?;
    if shared.actions.contains(&action_id) {
        Ok(action_id)
    } else {
        Err(not_found(&action_id))
    }
}

/// Charges one request to the token's rate limit and fills the `inin-ratelimit-*` headers.
///
/// On rejection the response is 429 with `Retry-After` in whole seconds, rounded up.
fn charge_rate_limit(
    shared: &Shared,
    token: &TokenEntry,
    headers: &mut HeaderMap,
) -> Result<(), ApiError> {
    let rate = shared.config.rate_limit;
    let allowed = rate.count.get();
    match shared.limiter.check_key(&token.id) {
        Ok(state) => {
            let used = allowed.saturating_sub(state.remaining_burst_capacity());
            let reset = ceil_seconds(rate.interval() * used);
            set_ratelimit_headers(headers, used, allowed, reset);
            Ok(())
        }
        Err(not_until) => {
            let wait = not_until.wait_time_from(shared.limiter.clock().now());
            // The bucket is full again once the next request is due plus the rest of a burst.
            let full = wait + rate.interval() * (allowed - 1);
            set_ratelimit_headers(headers, allowed, allowed, ceil_seconds(full));
            let retry_after = ceil_seconds(wait).max(1);
            headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
            let message =
                format!("rate limit of {rate} per access token exceeded: retry in {retry_after} s");
            Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too.many.requests",
                message,
            ))
        }
    }
}

/// Applies the organization rule and returns the organization the request acts for.
///
/// The target is the `x-genesys-org-id` header, or the client's home organization without
/// it. The client must be allowed to act for the target, and when `require_body_org_id` is
/// on, the body's `org_id` must name the target.
fn check_org(
    shared: &Shared,
    client: &ClientConfig,
    headers: &HeaderMap,
    input: &Value,
) -> Result<String, ApiError> {
    let forbidden =
        |message: String| ApiError::new(StatusCode::FORBIDDEN, "not.authorized", message);
    let (target, source) = match headers.get(ORG_HEADER) {
        Some(value) => {
            let value = value
                .to_str()
                .map_err(|_| forbidden(format!("the {ORG_HEADER} header is not valid text")))?;
            (value.trim(), "the x-genesys-org-id header")
        }
        None => (client.home_org.as_str(), "the client's home organization"),
    };
    if !client.may_act_for(target) {
        return Err(forbidden(format!(
            "client \"{}\" may not act for organization {target}",
            client.id
        )));
    }
    if !shared.config.require_body_org_id {
        return Ok(target.to_string());
    }
    match input.get("org_id") {
        None => Err(forbidden(format!(
            "the request body has no org_id: add \"org_id\": \"{target}\" ({source})"
        ))),
        Some(Value::String(org_id)) if org_id.eq_ignore_ascii_case(target) => {
            Ok(target.to_string())
        }
        Some(Value::String(org_id)) => Err(forbidden(format!(
            "the body's org_id {org_id} does not match organization {target} ({source})"
        ))),
        Some(other) => Err(forbidden(format!(
            "the body's org_id must be a string naming organization {target}, not {other}"
        ))),
    }
}

fn ceil_seconds(duration: Duration) -> u64 {
    let seconds = duration.as_secs();
    if duration.subsec_nanos() > 0 {
        seconds + 1
    } else {
        seconds
    }
}

fn with_headers(mut response: Response, headers: HeaderMap) -> Response {
    response.headers_mut().extend(headers);
    response
}

fn reset_unavailable(correlation: CorrelationId) -> Response {
    let message = "injected reset (reset_rate) is not possible outside volley's own server";
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal.error", message)
        .into_response(correlation)
}
