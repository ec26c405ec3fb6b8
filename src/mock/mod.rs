//! A mock of the Genesys Cloud Data Actions API, for load tests that must not hit the real one.
//!
//! The mock issues OAuth client-credentials tokens at `POST /oauth/token` and serves
//! `POST /api/v2/{integrations,data}/actions/{actionId}/execute` with checks modelled on the
//! real API: bearer token, known action, body size, JSON body, a per-token rate limit and the
//! organization rule. It can add latency and inject 500s, connection resets and stalls.
//! `GET /mock/stats`, `GET /mock/requests` and `POST /mock/reset` let tests check exactly what
//! arrived.

mod admin;
mod app;
mod auth;
mod body;
mod client;
mod config;
mod execute;
mod faults;
mod observe;
mod org;
mod ratelimit;
mod server;
mod stats;

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use admin::RecordedRequest;
pub use client::ClientConfig;
pub use config::{LatencyConfig, MockConfig};
pub use stats::{EndpointStats, StatsSnapshot};

/// Client id of the demo client that the default configuration contains.
pub const DEMO_CLIENT_ID: &str = "demo-client";
/// Client secret of the demo client.
pub const DEMO_CLIENT_SECRET: &str = "demo-secret";
/// Home (master) organization of the demo client.
pub const DEMO_HOME_ORG: &str = "11111111-1111-4111-8111-111111111111";
/// Sub-organization that the demo client may also act for.
pub const DEMO_SUB_ORG: &str = "22222222-2222-4222-8222-222222222222";
/// Data action id that the default configuration contains.
pub const DEMO_ACTION: &str = "demo-action";

/// A running mock server. Dropping it stops the server without waiting for open connections.
pub struct MockServer {
    addr: SocketAddr,
    shared: Arc<app::Shared>,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl MockServer {
    /// Returns the address the server listens on, with the real port when port 0 was asked.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Returns `http://ADDR`, the base URL of the server.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Returns the current counts, the same as `GET /mock/stats`.
    pub fn stats(&self) -> StatsSnapshot {
        self.shared.stats.snapshot()
    }

    /// Stops accepting connections and waits up to 5 s for open connections to finish their
    /// responses, then aborts the rest.
    pub async fn shutdown(self) {
        // A send error means the accept loop has already stopped.
        let _ = self.shutdown.send(true);
        if let Err(error) = self.task.await {
            tracing::error!(%error, "mock server task failed");
        }
        tracing::info!(addr = %self.addr, "mock server stopped");
    }
}

/// Validates `config`, binds `config.listen` and serves in a background task.
///
/// Returns once the socket is bound, so requests may be sent at once.
pub async fn spawn(config: MockConfig) -> anyhow::Result<MockServer> {
    config.validate()?;
    let listener = TcpListener::bind(config.listen).await.map_err(|error| {
        anyhow::anyhow!(
            "failed to listen on {}: {error}; pick a free port or use port 0",
            config.listen
        )
    })?;
    let addr = listener.local_addr()?;
    let shared = Arc::new(app::Shared::new(config)?);
    let (shutdown, shutdown_receiver) = watch::channel(false);
    let task = tokio::spawn(server::accept_loop(
        listener,
        shared.clone(),
        shutdown_receiver,
    ));
    tracing::info!(%addr, "mock server listening");
    Ok(MockServer {
        addr,
        shared,
        shutdown,
        task,
    })
}

/// Runs the mock in the foreground for `volley mock` until Ctrl-C or SIGTERM.
///
/// The first line on standard output is `listening on http://ADDR`, so a parent process can
/// read the real port.
pub async fn run_cli(config: MockConfig) -> anyhow::Result<()> {
    let server = spawn(config).await?;
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "listening on {}", server.base_url())?;
        stdout.flush()?;
    }
    wait_for_stop_signal().await?;
    tracing::info!("stop signal received; shutting down");
    server.shutdown().await;
    Ok(())
}

#[cfg(unix)]
async fn wait_for_stop_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate())?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result?,
        _ = terminate.recv() => {}
    }
    Ok(())
}

#[cfg(not(unix))]
async fn wait_for_stop_signal() -> anyhow::Result<()> {
    tokio::signal::ctrl_c().await?;
    Ok(())
}
