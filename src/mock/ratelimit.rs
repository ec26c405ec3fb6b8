//! The per-token rate limit of execute requests and the `inin-ratelimit-*` headers that
//! report it.

use std::time::Duration;

use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

use super::app::ApiError;
use crate::units::Rate;

const RATELIMIT_COUNT: HeaderName = HeaderName::from_static("inin-ratelimit-count");
const RATELIMIT_ALLOWED: HeaderName = HeaderName::from_static("inin-ratelimit-allowed");
const RATELIMIT_RESET: HeaderName = HeaderName::from_static("inin-ratelimit-reset");

/// Header values of the numbers up to this are built once, so that most responses allocate
/// nothing for their rate-limit headers.
const CACHED_NUMBERS: u64 = 1024;

/// Per-token rate limiter that reports the remaining burst on success.
type TokenLimiter =
    RateLimiter<u64, DefaultKeyedStateStore<u64>, DefaultClock, StateInformationMiddleware>;

/// A token's window after one request, as the headers report it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Window {
    /// Requests counted in the window, this one included.
    count: u32,
    /// Seconds until the window is empty again, rounded up.
    reset_seconds: u64,
}

/// A rejected request: its window and the whole seconds to wait, at least 1.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rejection {
    pub(crate) window: Window,
    pub(crate) retry_after: u64,
}

/// The limiter of all tokens: a burst of N requests, then one more every PERIOD/N.
pub(crate) struct RateLimit {
    limiter: TokenLimiter,
    rate: Rate,
    numbers: Vec<HeaderValue>,
    allowed: HeaderValue,
}

impl RateLimit {
    pub(crate) fn new(rate: Rate) -> anyhow::Result<Self> {
        let quota = Quota::with_period(rate.interval())
            .ok_or_else(|| anyhow::anyhow!("rate_limit {rate} has a zero interval"))?
            .allow_burst(rate.count);
        Ok(RateLimit {
            limiter: RateLimiter::keyed(quota).with_middleware::<StateInformationMiddleware>(),
            rate,
            numbers: (0..=CACHED_NUMBERS).map(HeaderValue::from).collect(),
            allowed: HeaderValue::from(rate.count.get()),
        })
    }

    /// Charges one request to the token with number `token_id`.
    pub(crate) fn charge(&self, token_id: u64) -> Result<Window, Rejection> {
        let allowed = self.rate.count.get();
        let interval = self.rate.interval();
        match self.limiter.check_key(&token_id) {
            Ok(state) => {
                let count = allowed.saturating_sub(state.remaining_burst_capacity());
                Ok(Window {
                    count,
                    reset_seconds: ceil_seconds(interval.saturating_mul(count)),
                })
            }
            Err(not_until) => {
                let wait = not_until.wait_time_from(self.limiter.clock().now());
                // The window is empty again once the next request is due plus the rest of a
                // burst.
                let empty = wait.saturating_add(interval.saturating_mul(allowed - 1));
                Err(Rejection {
                    window: Window {
                        count: allowed,
                        reset_seconds: ceil_seconds(empty),
                    },
                    retry_after: ceil_seconds(wait).max(1),
                })
            }
        }
    }

    /// Builds the 429 error of a rejection, telling the wait.
    pub(crate) fn rejection_error(&self, rejection: &Rejection) -> ApiError {
        let message = format!(
            "rate limit of {} per access token exceeded: retry in {} s",
            self.rate, rejection.retry_after
        );
        ApiError::new(StatusCode::TOO_MANY_REQUESTS, "too.many.requests", message)
    }

    /// Sets the `inin-ratelimit-*` headers, and `Retry-After` for a rejection.
    pub(crate) fn set_headers(&self, headers: &mut HeaderMap, outcome: &Result<Window, Rejection>) {
        let window = match outcome {
            Ok(window) => window,
            Err(rejection) => {
                let retry_after = self.number(rejection.retry_after);
                headers.insert(header::RETRY_AFTER, retry_after);
                &rejection.window
            }
        };
        headers.insert(RATELIMIT_COUNT, self.number(u64::from(window.count)));
        headers.insert(RATELIMIT_ALLOWED, self.allowed.clone());
        headers.insert(RATELIMIT_RESET, self.number(window.reset_seconds));
    }

    /// Sets the `inin-ratelimit-*` headers of a response to a request that was not charged,
    /// unless the handler set them already.
    pub(crate) fn set_uncharged_headers(&self, headers: &mut HeaderMap) {
        if headers.contains_key(RATELIMIT_ALLOWED) {
            return;
        }
        headers.insert(RATELIMIT_COUNT, self.numbers[0].clone());
        headers.insert(RATELIMIT_ALLOWED, self.allowed.clone());
        headers.insert(RATELIMIT_RESET, self.numbers[0].clone());
    }

    /// Drops the state of tokens whose window is empty again.
    pub(crate) fn retain_recent(&self) {
        self.limiter.retain_recent();
    }

    fn number(&self, number: u64) -> HeaderValue {
        usize::try_from(number)
            .ok()
            .and_then(|index| self.numbers.get(index))
            .cloned()
            .unwrap_or_else(|| HeaderValue::from(number))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_rejection() {
        let limit = RateLimit::new("3/60s".parse().unwrap()).unwrap();
        for expected in 1..=3 {
            let window = limit.charge(7).unwrap();
            assert_eq!(window.count, expected);
            assert_eq!(window.reset_seconds, 20 * u64::from(expected));
        }
        let rejection = limit.charge(7).unwrap_err();
        assert_eq!(rejection.window.count, 3);
        assert!((1..=20).contains(&rejection.retry_after), "{rejection:?}");
        assert!(limit.charge(8).is_ok(), "another token has its own window");
    }

    #[test]
    fn headers_report_window() {
        let limit = RateLimit::new("5/10s".parse().unwrap()).unwrap();
        let mut headers = HeaderMap::new();
        limit.set_headers(&mut headers, &Ok(limit.charge(1).unwrap()));
        assert_eq!(headers[RATELIMIT_COUNT], "1");
        assert_eq!(headers[RATELIMIT_ALLOWED], "5");
        assert_eq!(headers[RATELIMIT_RESET], "2");
        assert!(!headers.contains_key(header::RETRY_AFTER));
    }

    #[test]
    fn numbers_past_cache_still_format() {
        let limit = RateLimit::new("5/10s".parse().unwrap()).unwrap();
        assert_eq!(limit.number(CACHED_NUMBERS + 5), "1029");
        assert_eq!(limit.number(3), "3");
    }
}
