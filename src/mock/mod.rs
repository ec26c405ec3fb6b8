//! The mock Data Actions API (placeholder until the real server lands).

use std::net::SocketAddr;

/// Settings of the mock server, shared by `volley mock` flags and a scenario's `[target.mock]`.
#[derive(Debug, Clone, clap::Args, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MockConfig {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:8089")]
    pub listen: SocketAddr,
}

impl Default for MockConfig {
    fn default() -> Self {
        MockConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8089)),
        }
    }
}

/// Runs the mock in the foreground until Ctrl-C.
pub async fn run_cli(_config: MockConfig) -> anyhow::Result<()> {
    anyhow::bail!("the mock server is not built yet")
}

/// A running mock server (placeholder).
pub struct MockServer {
    addr: SocketAddr,
}

impl MockServer {
    /// Returns the bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Returns `http://ADDR`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops the server.
    pub async fn shutdown(self) {}
}

/// Starts the mock in the background (placeholder).
pub async fn spawn(_config: MockConfig) -> anyhow::Result<MockServer> {
    anyhow::bail!("the mock server is not built yet")
}
