//! Command-line definitions.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

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
    /// Run every cell of a scenario and write a report folder.
    Run(RunArgs),
    /// Check a scenario and its data file without sending anything.
    Validate(ScenarioArgs),
    /// Send one request per variant and print each request and response, secrets redacted.
    Probe(ProbeArgs),
    /// Start the mock Data Actions API in the foreground, for volley or any other client.
    Mock(MockConfig),
}

/// The scenario file and its overrides.
#[derive(Debug, Args)]
pub struct ScenarioArgs {
    /// The scenario file (TOML).
    pub scenario: PathBuf,
    /// Override a scenario key, as KEY.PATH=VALUE; repeatable. The value is TOML
    /// (`5`, `[1, 4]`, `true`) or plain text: --set load.duration=5s --set 'load.concurrency=[1,4]'.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
}

/// Options of `volley run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The scenario and overrides.
    #[command(flatten)]
    pub scenario: ScenarioArgs,
    /// Write the reports to this folder instead of reports/<scenario>-<UTC time>.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Hide the progress bars (they are also hidden when stderr is not a terminal).
    #[arg(long, short)]
    pub quiet: bool,
}

/// Options of `volley probe`.
#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// The scenario and overrides.
    #[command(flatten)]
    pub scenario: ScenarioArgs,
    /// Probe only the variant with this name.
    #[arg(long, value_name = "NAME")]
    pub variant: Option<String>,
}
