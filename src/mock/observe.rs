//! The wrapper around the router that every request passes through: it assigns the
//! correlation id, counts requests and responses, delays responses during stalls, and adds
//! the headers that every response carries.
//!
//! It runs outside the router, called by the connection's service, because an axum
//! middleware layer costs a boxed service clone per request.

use std::convert::Infallible;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, Request};
use axum::response::Response;
use hyper::body::Incoming;
use hyper::service::Service;
use hyper_util::service::TowerToHyperService;
use uuid::Uuid;

use super::app::{CORRELATION_HEADER, CorrelationId, RequestContext, Shared};
use super::execute;
use super::server::ConnectionControl;
use super::stats::Endpoint;

/// Routes one request and returns its response, with the bookkeeping described above.
pub(crate) async fn serve_request(
    shared: Arc<Shared>,
    router: TowerToHyperService<Router>,
    connection: Arc<ConnectionControl>,
    mut request: Request<Incoming>,
) -> Result<Response, Infallible> {
    let correlation = CorrelationId::random();
    let context = RequestContext {
        correlation,
        connection,
    };
    let endpoint = classify(request.uri().path());
    if let Some(endpoint) = endpoint {
        shared.stats.endpoint(endpoint).count_request();
    }

    // POST execute requests skip the router, so the hot path avoids route matching, boxed
    // futures and the extension map.
    let mut response = if endpoint == Some(Endpoint::Execute) && request.method() == Method::POST {
        execute::handle(&shared, &context, request.map(Body::new)).await
    } else {
        request.extensions_mut().insert(context);
        router.call(request).await?
    };

    if let Some(endpoint) = endpoint {
        let stall_end = shared
            .faults
            .has_stalls()
            .then(|| shared.faults.stall_until(tokio::time::Instant::now()))
            .flatten();
        if let Some(until) = stall_end {
            // Boxed because a timer is large and most responses do not wait.
            Box::pin(tokio::time::sleep_until(until)).await;
        }
        let counters = shared.stats.endpoint(endpoint);
        counters.count_response(response.status().as_u16());
    }
    add_common_headers(response.headers_mut(), correlation, &shared);
    Ok(response)
}

/// Returns the counted endpoint group of `path`, or `None` for the uncounted `/mock/*`.
fn classify(path: &str) -> Option<Endpoint> {
    if path == "/mock" || path.starts_with("/mock/") {
        return None;
    }
    if path == "/oauth/token" {
        return Some(Endpoint::Token);
    }
    let is_execute = path
        .strip_prefix("/api/v2/integrations/actions/")
        .or_else(|| path.strip_prefix("/api/v2/data/actions/"))
        .and_then(|rest| rest.strip_suffix("/execute"))
        .is_some_and(|action| !action.is_empty() && !action.contains('/'));
    Some(if is_execute {
        Endpoint::Execute
    } else {
        Endpoint::Other
    })
}

fn add_common_headers(headers: &mut HeaderMap, correlation: CorrelationId, shared: &Shared) {
    let mut buffer = Uuid::encode_buffer();
    let id = correlation.0.hyphenated().encode_lower(&mut buffer);
    if let Ok(value) = HeaderValue::from_str(id) {
        headers.insert(CORRELATION_HEADER, value);
    }
    shared.rate_limit.set_uncharged_headers(headers);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_groups_paths() {
        let cases = [
            ("/oauth/token", Some(Endpoint::Token)),
            (
                "/api/v2/integrations/actions/a/execute",
                Some(Endpoint::Execute),
            ),
            ("/api/v2/data/actions/a/execute", Some(Endpoint::Execute)),
            ("/api/v2/data/actions//execute", Some(Endpoint::Other)),
            ("/api/v2/data/actions/a/b/execute", Some(Endpoint::Other)),
            ("/nothing", Some(Endpoint::Other)),
            ("/mock/stats", None),
        ];
        for (path, expected) in cases {
            assert_eq!(classify(path), expected, "{path}");
        }
    }
}
