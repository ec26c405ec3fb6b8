//! `errors.csv`: per cell, each kind of error with its count and one sample.

use serde::Serialize;

use super::rfc3339;
use crate::engine::cell::CellResult;

/// One row of `errors.csv`.
#[derive(Debug, Serialize)]
pub struct ErrorRow<'a> {
    /// The cell's number.
    pub cell: usize,
    /// The variant's name.
    pub variant: &'a str,
    /// The outcome the requests were counted as.
    pub outcome: &'static str,
    /// The HTTP status, 0 without a response.
    pub status: u16,
    /// The body's `code`, or the transport error's kind.
    pub code: &'a str,
    /// The body's `message` or the transport error's text, from the first one seen.
    pub message: &'a str,
    /// How many requests ended this way.
    pub count: u64,
    /// When the first was seen, RFC 3339 UTC.
    pub first_seen: String,
    /// When the last was seen.
    pub last_seen: String,
    /// The first one's `ININ-Correlation-Id`.
    pub correlation_id: &'a str,
    /// The first one's `Retry-After`.
    pub retry_after: &'a str,
    /// The first one's rate-limit headers, `name=value` joined by `;`.
    pub rate_limit_headers: &'a str,
}

/// Renders `errors.csv`; it always has its header, and a row per error kind per cell.
pub fn to_csv(results: &[CellResult]) -> Result<Vec<u8>, csv::Error> {
    let mut writer = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(Vec::new());
    writer.write_record([
        "cell",
        "variant",
        "outcome",
        "status",
        "code",
        "message",
        "count",
        "first_seen",
        "last_seen",
        "correlation_id",
        "retry_after",
        "rate_limit_headers",
    ])?;
    for result in results {
        for sample in &result.total.errors {
            writer.serialize(ErrorRow {
                cell: result.spec.index,
                variant: &result.variant,
                outcome: sample.outcome.name(),
                status: sample.detail.status,
                code: &sample.detail.code,
                message: &sample.detail.message,
                count: sample.count,
                first_seen: rfc3339(sample.first_seen),
                last_seen: rfc3339(sample.last_seen),
                correlation_id: &sample.detail.correlation_id,
                retry_after: &sample.detail.retry_after,
                rate_limit_headers: &sample.detail.rate_limit,
            })?;
        }
    }
    writer
        .into_inner()
        .map_err(|error| error.into_error().into())
}
