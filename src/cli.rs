//! Command-line definitions.

use clap::{Parser, Subcommand};

use crate::mock::MockConfig;

/// Load-testing harness for HTTP APIs behind OAuth and rate limits.
#[derive(Debug, Parser)]
#[command(name = "volley", version, about)]
pub struct Cli {
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// volley's commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the mock Data Actions API in the foreground, for volley or any other client.
    Mock(MockConfig),
}
