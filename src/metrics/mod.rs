//! Outcomes and the figures recorded for them: counts, latency histograms, error details.
//!
//! Each worker records into its own [`Tally`]; once a second the cell swaps every worker's
//! tally for a fresh one and merges them, which gives the per-second series and the cell
//! totals without any lock that two workers share.

mod outcome;
mod rate_limit;
mod tally;

pub use outcome::{OUTCOMES, Outcome};
pub use rate_limit::RateLimitSeen;
pub use tally::{ErrorDetail, ErrorSample, Tally, new_histogram};
