//! Reading request bodies within the body limit and the time limit.

use std::future::{Future, poll_fn};
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode, header};
use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};

use super::app::ApiError;

/// Failure to read a request body.
#[derive(Debug)]
pub(crate) enum BodyError {
    /// The body is larger than the limit.
    TooLarge,
    /// The client sent the body too slowly.
    TimedOut,
    /// The connection failed while reading.
    Failed(String),
}

/// Reads a request body of at most `limit` bytes, never collecting more than that.
///
/// A Content-Length over the limit fails before anything is read, and a chunked body fails
/// as soon as it passes the limit.
pub(crate) async fn read_body(
    headers: &HeaderMap,
    body: axum::body::Body,
    limit: u64,
    timeout: Duration,
) -> Result<Bytes, BodyError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|text| text.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit) {
        return Err(BodyError::TooLarge);
    }
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let mut collect = pin!(Limited::new(body, limit).collect());
    // A small body usually arrives with the headers, so try once before arming a timer.
    let first_poll = poll_fn(|context| Poll::Ready(collect.as_mut().poll(context))).await;
    let result = match first_poll {
        Poll::Ready(result) => result,
        // Boxed because a timer is large and most requests never need one.
        Poll::Pending => match Box::pin(tokio::time::timeout(timeout, collect)).await {
            Ok(result) => result,
            Err(_) => return Err(BodyError::TimedOut),
        },
    };
    match result {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.is::<LengthLimitError>() => Err(BodyError::TooLarge),
        Err(error) => Err(BodyError::Failed(error.to_string())),
    }
}

impl From<BodyError> for ApiError {
    fn from(error: BodyError) -> Self {
        let mut api_error = match error {
            BodyError::TooLarge => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "request.entity.too.large",
                "the request body is larger than the server's body limit",
            ),
            BodyError::TimedOut => ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "request.timeout",
                "the request body did not arrive in time",
            ),
            BodyError::Failed(reason) => ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad.request",
                format!("failed to read the request body: {reason}"),
            ),
        };
        api_error.close_connection = true;
        api_error
    }
}
