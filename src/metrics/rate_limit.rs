//! What servers announce about their rate limits, summarised per cell: the announced limit,
//! the window it applies to, and the smallest remaining allowance seen.
//!
//! Headers read: `inin-ratelimit-allowed/-count/-reset` (the contact-center platform),
//! `x-ratelimit-limit/-remaining/-reset` (common practice) and `ratelimit-limit/-remaining/
//! -reset/-policy` (the IETF httpapi draft, where `-policy` reads like `100;w=60`).

use http::{HeaderMap, HeaderName};

/// A `*-reset` value above this is a Unix time, not a number of seconds.
const EPOCH_THRESHOLD: u64 = 1_000_000_000;

/// The rate-limit figures announced in the responses of one cell.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateLimitSeen {
    /// The largest announced limit (requests per window).
    pub limit: Option<u64>,
    /// The window in seconds: from a policy header, else the largest reset time seen.
    pub window_s: Option<u64>,
    /// The smallest remaining allowance seen.
    pub min_remaining: Option<u64>,
}

// Parsed once here: a lookup by `&str` parses and validates the name on every response.
const ININ_ALLOWED: HeaderName = HeaderName::from_static("inin-ratelimit-allowed");
const ININ_COUNT: HeaderName = HeaderName::from_static("inin-ratelimit-count");
const ININ_RESET: HeaderName = HeaderName::from_static("inin-ratelimit-reset");
const X_LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
const X_REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
const X_RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");
const LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
const REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
const RESET: HeaderName = HeaderName::from_static("ratelimit-reset");
const POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");

fn number(headers: &HeaderMap, name: &HeaderName) -> Option<u64> {
    let text = headers.get(name)?.to_str().ok()?;
    // Draft headers may list several values ("100, 50;w=1"); the first one applies.
    let first = text.split([',', ';']).next()?.trim();
    first.parse().ok()
}

/// Returns whether `name` belongs to one of the header families read here.
fn is_rate_limit_header(name: &HeaderName) -> bool {
    let name = name.as_str();
    name.starts_with("ratelimit-")
        || name.starts_with("x-ratelimit-")
        || name.starts_with("inin-ratelimit-")
}

fn policy_window(headers: &HeaderMap) -> Option<u64> {
    let text = headers.get(&POLICY)?.to_str().ok()?;
    text.split([';', ','])
        .filter_map(|part| part.trim().strip_prefix("w="))
        .filter_map(|window| window.trim().parse().ok())
        .max()
}

fn max_option(first: Option<u64>, second: Option<u64>) -> Option<u64> {
    first.max(second)
}

fn min_option(first: Option<u64>, second: Option<u64>) -> Option<u64> {
    match (first, second) {
        (Some(first), Some(second)) => Some(first.min(second)),
        (first, second) => first.or(second),
    }
}

impl RateLimitSeen {
    /// Reads one response's headers into the summary.
    pub fn observe(&mut self, headers: &HeaderMap) {
        // One pass over the few headers of a typical response is cheaper than the ten
        // hashed lookups below, and most servers send no rate-limit header at all.
        if !headers.keys().any(is_rate_limit_header) {
            return;
        }
        let allowed = number(headers, &ININ_ALLOWED);
        let limit = allowed
            .or_else(|| number(headers, &X_LIMIT))
            .or_else(|| number(headers, &LIMIT));
        if limit.is_none() {
            return;
        }
        let remaining = number(headers, &X_REMAINING)
            .or_else(|| number(headers, &REMAINING))
            .or_else(|| Some(allowed?.saturating_sub(number(headers, &ININ_COUNT)?)));
        let reset = number(headers, &ININ_RESET)
            .or_else(|| number(headers, &RESET))
            .or_else(|| number(headers, &X_RESET))
            .filter(|reset| *reset < EPOCH_THRESHOLD);
        self.limit = max_option(self.limit, limit);
        self.window_s = max_option(self.window_s, policy_window(headers).or(reset));
        self.min_remaining = min_option(self.min_remaining, remaining);
    }

    /// Adds another summary into this one.
    pub fn merge(&mut self, other: &RateLimitSeen) {
        self.limit = max_option(self.limit, other.limit);
        self.window_s = max_option(self.window_s, other.window_s);
        self.min_remaining = min_option(self.min_remaining, other.min_remaining);
    }

    /// Describes the limit for people, such as `the server allows 300 per 60 s`.
    pub fn describe(&self) -> Option<String> {
        let limit = self.limit?;
        let window = self
            .window_s
            .map_or(String::new(), |window| format!(" per {window} s"));
        let remaining = self.min_remaining.map_or(String::new(), |remaining| {
            format!(", lowest remaining {remaining}")
        });
        Some(format!("the server allows {limit}{window}{remaining}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn inin_headers_give_limit_remaining_and_window() {
        let mut seen = RateLimitSeen::default();
        seen.observe(&headers(&[
            ("inin-ratelimit-allowed", "300"),
            ("inin-ratelimit-count", "12"),
            ("inin-ratelimit-reset", "60"),
        ]));
        seen.observe(&headers(&[
            ("inin-ratelimit-allowed", "300"),
            ("inin-ratelimit-count", "299"),
            ("inin-ratelimit-reset", "3"),
        ]));
        assert_eq!(seen.limit, Some(300));
        assert_eq!(seen.min_remaining, Some(1));
        assert_eq!(seen.window_s, Some(60));
        assert_eq!(
            seen.describe().unwrap(),
            "the server allows 300 per 60 s, lowest remaining 1"
        );
    }

    #[test]
    fn draft_headers_and_policy() {
        let mut seen = RateLimitSeen::default();
        seen.observe(&headers(&[
            ("ratelimit-limit", "100, 100;w=60"),
            ("ratelimit-remaining", "40"),
            ("ratelimit-policy", "100;w=60"),
        ]));
        assert_eq!(seen.limit, Some(100));
        assert_eq!(seen.window_s, Some(60));
        assert_eq!(seen.min_remaining, Some(40));
    }

    #[test]
    fn epoch_reset_is_not_a_window() {
        let mut seen = RateLimitSeen::default();
        seen.observe(&headers(&[
            ("x-ratelimit-limit", "50"),
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", "1767225600"),
        ]));
        assert_eq!(seen.window_s, None);
        assert_eq!(
            seen.describe().unwrap(),
            "the server allows 50, lowest remaining 0"
        );
    }

    #[test]
    fn no_headers_no_summary() {
        let mut seen = RateLimitSeen::default();
        seen.observe(&headers(&[("content-type", "application/json")]));
        assert_eq!(seen, RateLimitSeen::default());
        assert_eq!(seen.describe(), None);
    }

    #[test]
    fn merge_keeps_extremes() {
        let mut first = RateLimitSeen {
            limit: Some(10),
            window_s: Some(1),
            min_remaining: Some(5),
        };
        first.merge(&RateLimitSeen {
            limit: Some(20),
            window_s: None,
            min_remaining: Some(2),
        });
        assert_eq!(
            first,
            RateLimitSeen {
                limit: Some(20),
                window_s: Some(1),
                min_remaining: Some(2)
            }
        );
    }
}
