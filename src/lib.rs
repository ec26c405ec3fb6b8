//! volley: a load-testing harness for HTTP APIs behind OAuth and rate limits.
//!
//! The binary in `main.rs` is a thin shell over this library so that the end-to-end tests and
//! the benches drive the same code.

pub mod auth;
pub mod capacity;
pub mod capacity_command;
pub mod cli;
pub mod commands;
pub mod data;
pub mod engine;
pub mod metrics;
pub mod mock;
pub mod probe;
pub mod report;
pub mod scenario;
pub mod shard;
pub mod template;
pub mod thresholds;
pub mod units;

/// Installs the process-wide TLS crypto provider (ring) once; later calls do nothing.
pub fn init_crypto() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Another part of the process may have installed one first, which is as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}
