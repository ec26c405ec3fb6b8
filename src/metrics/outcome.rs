//! The outcome of one request: the report key for every count.

use serde::Serialize;

/// How one request ended. Every request sent ends in exactly one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// A 2xx response.
    Ok,
    /// A 403 response.
    Forbidden,
    /// A 429 response.
    Throttled,
    /// Any other 4xx response.
    ClientError,
    /// A 5xx response.
    ServerError,
    /// No complete response within the request timeout.
    Timeout,
    /// The connection could not be made, or was refused, reset or closed before a response.
    ConnectError,
    /// Anything else: a 1xx or 3xx response, or a response that could not be parsed.
    OtherError,
    /// Still in flight when an interrupt's grace period ran out.
    Cancelled,
}

/// Every outcome, in report column order.
pub const OUTCOMES: [Outcome; 9] = [
    Outcome::Ok,
    Outcome::Forbidden,
    Outcome::Throttled,
    Outcome::ClientError,
    Outcome::ServerError,
    Outcome::Timeout,
    Outcome::ConnectError,
    Outcome::OtherError,
    Outcome::Cancelled,
];

impl Outcome {
    /// Classifies an HTTP status code.
    pub fn from_status(status: u16) -> Outcome {
        match status {
            200..=299 => Outcome::Ok,
            403 => Outcome::Forbidden,
            429 => Outcome::Throttled,
            400..=499 => Outcome::ClientError,
            500..=599 => Outcome::ServerError,
            _ => Outcome::OtherError,
        }
    }

    /// Returns the snake_case name used as the report column.
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Forbidden => "forbidden",
            Outcome::Throttled => "throttled",
            Outcome::ClientError => "client_error",
            Outcome::ServerError => "server_error",
            Outcome::Timeout => "timeout",
            Outcome::ConnectError => "connect_error",
            Outcome::OtherError => "other_error",
            Outcome::Cancelled => "cancelled",
        }
    }

    /// Returns the position in [`OUTCOMES`].
    pub fn index(self) -> usize {
        self as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_outcomes() {
        assert_eq!(Outcome::from_status(200), Outcome::Ok);
        assert_eq!(Outcome::from_status(204), Outcome::Ok);
        assert_eq!(Outcome::from_status(403), Outcome::Forbidden);
        assert_eq!(Outcome::from_status(429), Outcome::Throttled);
        assert_eq!(Outcome::from_status(401), Outcome::ClientError);
        assert_eq!(Outcome::from_status(413), Outcome::ClientError);
        assert_eq!(Outcome::from_status(500), Outcome::ServerError);
        assert_eq!(Outcome::from_status(503), Outcome::ServerError);
        assert_eq!(Outcome::from_status(302), Outcome::OtherError);
        assert_eq!(Outcome::from_status(101), Outcome::OtherError);
    }

    #[test]
    fn index_matches_column_order() {
        for (position, outcome) in OUTCOMES.iter().enumerate() {
            assert_eq!(outcome.index(), position, "{}", outcome.name());
        }
    }
}
