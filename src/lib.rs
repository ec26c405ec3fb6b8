//! volley: a load-testing harness for HTTP APIs behind OAuth and rate limits.
//!
//! The binary in `main.rs` is a thin shell over this library so that the end-to-end tests and
//! the benches drive the same code.

pub mod cli;
pub mod data;
pub mod metrics;
pub mod mock;
pub mod scenario;
pub mod template;
pub mod units;
