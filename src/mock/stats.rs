//! Exact request and response counters per endpoint, kept in atomics so that counting takes no
//! lock on the request path.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

/// Lowest and highest status code that `http::StatusCode` accepts.
const MIN_STATUS: u16 = 100;
const MAX_STATUS: u16 = 999;

/// The endpoint groups that the mock counts separately.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
    /// `POST /oauth/token`.
    Token,
    /// Both execute paths.
    Execute,
    /// Every other path except `/mock/*`, which is not counted.
    Other,
}

/// Counters of one endpoint group.
pub(crate) struct EndpointCounters {
    requests: AtomicU64,
    resets: AtomicU64,
    bytes_received: AtomicU64,
    /// One counter per status code, indexed by `status - MIN_STATUS`.
    responses: Box<[AtomicU64]>,
}

impl EndpointCounters {
    fn new() -> Self {
        let responses = (MIN_STATUS..=MAX_STATUS)
            .map(|_| AtomicU64::new(0))
            .collect();
        EndpointCounters {
            requests: AtomicU64::new(0),
            resets: AtomicU64::new(0),
            bytes_received: AtomicU64::new(0),
            responses,
        }
    }

    pub(crate) fn count_request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_reset(&self) {
        self.resets.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_bytes(&self, bytes: usize) {
        self.bytes_received
            .fetch_add(bytes as u64, Ordering::Relaxed);
    }

    pub(crate) fn count_response(&self, status: u16) {
        if let Some(counter) = status
            .checked_sub(MIN_STATUS)
            .and_then(|index| self.responses.get(usize::from(index)))
        {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn snapshot(&self) -> EndpointStats {
        let responses = self
            .responses
            .iter()
            .zip(MIN_STATUS..)
            .map(|(counter, status)| (status, counter.load(Ordering::Relaxed)))
            .filter(|&(_, count)| count > 0)
            .collect();
        EndpointStats {
            requests: self.requests.load(Ordering::Relaxed),
            responses,
            resets: self.resets.load(Ordering::Relaxed),
            bytes_received: self.bytes_received.load(Ordering::Relaxed),
        }
    }

    fn clear(&self) {
        self.requests.store(0, Ordering::Relaxed);
        self.resets.store(0, Ordering::Relaxed);
        self.bytes_received.store(0, Ordering::Relaxed);
        for counter in self.responses.iter() {
            counter.store(0, Ordering::Relaxed);
        }
    }
}

/// Counters of all endpoint groups.
pub(crate) struct Stats {
    token: EndpointCounters,
    execute: EndpointCounters,
    other: EndpointCounters,
}

impl Stats {
    pub(crate) fn new() -> Self {
        Stats {
            token: EndpointCounters::new(),
            execute: EndpointCounters::new(),
            other: EndpointCounters::new(),
        }
    }

    pub(crate) fn endpoint(&self, endpoint: Endpoint) -> &EndpointCounters {
        match endpoint {
            Endpoint::Token => &self.token,
            Endpoint::Execute => &self.execute,
            Endpoint::Other => &self.other,
        }
    }

    pub(crate) fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            token: self.token.snapshot(),
            execute: self.execute.snapshot(),
            other: self.other.snapshot(),
        }
    }

    /// Sets every counter to zero. Requests in flight meanwhile may be counted in part.
    pub(crate) fn clear(&self) {
        self.token.clear();
        self.execute.clear();
        self.other.clear();
    }
}

/// Counts of one endpoint group since the start or the last `POST /mock/reset`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointStats {
    /// Requests that reached the endpoint (requests that hyper rejected as malformed HTTP
    /// never do).
    pub requests: u64,
    /// Responses sent, per HTTP status code. Codes with no response are left out.
    pub responses: BTreeMap<u16, u64>,
    /// Connections that the fault injector reset instead of responding.
    pub resets: u64,
    /// Bytes of request bodies that the server read in full. A body rejected for its size
    /// counts nothing.
    pub bytes_received: u64,
}

impl EndpointStats {
    /// Returns the number of responses sent with `status`.
    pub fn status(&self, status: u16) -> u64 {
        self.responses.get(&status).copied().unwrap_or(0)
    }

    /// Returns the number of responses sent, whatever their status.
    pub fn total_responses(&self) -> u64 {
        self.responses.values().sum()
    }
}

/// Counts of the mock server, the body of `GET /mock/stats`.
///
/// `/mock/*` requests are not counted anywhere, so reading the stats does not change them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsSnapshot {
    /// `POST /oauth/token`.
    pub token: EndpointStats,
    /// Both execute paths, whatever the method.
    pub execute: EndpointStats,
    /// Every other path, such as unknown routes that get 404.
    pub other: EndpointStats,
}

impl StatsSnapshot {
    /// Returns the number of execute responses sent with `status`.
    pub fn execute_status(&self, status: u16) -> u64 {
        self.execute.status(status)
    }

    /// Returns the number of execute requests received.
    pub fn execute_requests(&self) -> u64 {
        self.execute.requests
    }

    /// Returns the number of execute connections reset by the fault injector.
    pub fn execute_resets(&self) -> u64 {
        self.execute.resets
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_lists_counted_statuses() {
        let stats = Stats::new();
        let execute = stats.endpoint(Endpoint::Execute);
        execute.count_request();
        execute.count_response(200);
        execute.count_response(200);
        execute.count_response(429);
        execute.count_bytes(10);
        let snapshot = stats.snapshot();
        assert_eq!(snapshot.execute_requests(), 1);
        assert_eq!(snapshot.execute_status(200), 2);
        assert_eq!(snapshot.execute_status(429), 1);
        assert_eq!(snapshot.execute.responses.len(), 2);
        assert_eq!(snapshot.execute.bytes_received, 10);
        assert_eq!(snapshot.token, EndpointStats::default());
    }

    #[test]
    fn snapshot_round_trips_through_json() {
        let stats = Stats::new();
        stats.endpoint(Endpoint::Other).count_response(404);
        let snapshot = stats.snapshot();
        let text = serde_json::to_string(&snapshot).unwrap();
        assert!(text.contains("\"404\":1"), "{text}");
        let back: StatsSnapshot = serde_json::from_str(&text).unwrap();
        assert_eq!(back, snapshot);
    }

    #[test]
    fn clear_zeroes_everything() {
        let stats = Stats::new();
        stats.endpoint(Endpoint::Token).count_request();
        stats.endpoint(Endpoint::Token).count_response(200);
        stats.clear();
        assert_eq!(stats.snapshot(), StatsSnapshot::default());
    }
}
