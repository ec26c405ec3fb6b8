//! Command-line definitions.

use std::num::NonZeroUsize;
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
    /// Threads of the async runtime. 1 runs everything on one thread with tokio's
    /// current-thread scheduler; a larger N starts tokio's multi-thread scheduler with N
    /// worker threads. Default: the number of CPUs this process may use.
    #[arg(long, global = true, value_name = "N", env = "VOLLEY_THREADS")]
    pub threads: Option<NonZeroUsize>,
}

/// volley's commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run every cell of a scenario and write a report folder.
    Run(RunArgs),
    /// Check a scenario and its data file without sending anything.
    Validate(ScenarioArgs),
    /// Find the highest open-model rate that still meets the pass criteria.
    Capacity(CapacityArgs),
    /// Send one request per variant and print each request and response, secrets redacted.
    Probe(ProbeArgs),
    /// Start the mock Data Actions API in the foreground, for volley or any other client.
    Mock(MockConfig),
    /// Merge the report folders of the shards of one run into one report.
    Merge(MergeArgs),
    /// Render report.html again from the data files of a report folder.
    Report(ReportArgs),
}

/// Options of `volley merge`.
#[derive(Debug, Args)]
pub struct MergeArgs {
    /// The report folder of every shard, written by `volley run --shard I/N`.
    #[arg(required = true, value_name = "DIR")]
    pub folders: Vec<PathBuf>,
    /// Write the merged report to this folder instead of reports/<scenario>-<UTC time>.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// Options of `volley report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The report folder, as `volley run` wrote it (summary.csv, timeseries.csv, run.json and
    /// latency.hlog).
    #[arg(value_name = "DIR")]
    pub folder: PathBuf,
}

/// Options of `volley capacity`.
#[derive(Debug, Args)]
pub struct CapacityArgs {
    /// The scenario and overrides.
    #[command(flatten)]
    pub scenario: ScenarioArgs,
    /// The variant to search with (default: the first).
    #[arg(long)]
    pub variant: Option<String>,
    /// Pass criteria of each step, such as "p99_ms < 500, rate_429 < 0.01" (default: the
    /// scenario's thresholds, else "error_rate < 0.01"). Every step must also achieve 95% of
    /// its rate.
    #[arg(long, value_name = "CRITERIA")]
    pub until: Option<String>,
    /// Exit with 99 when the capacity found is below this many requests per second.
    #[arg(long, value_name = "RPS")]
    pub require: Option<f64>,
    /// The first rate tried, in requests per second (default: the scenario's first rate, else 10).
    #[arg(long, value_name = "RPS")]
    pub start: Option<f64>,
    /// The highest rate tried, in requests per second.
    #[arg(long, value_name = "RPS", default_value_t = 1_000_000.0)]
    pub max_rate: f64,
    /// How long each step sends, such as 10s.
    #[arg(long, value_name = "DURATION", default_value = "10s")]
    pub step_duration: crate::units::TextDuration,
    /// The maximum number of requests in flight in each step (default: the scenario's max_in_flight, else 100).
    #[arg(long, value_name = "N")]
    pub max_in_flight: Option<u32>,
    /// Write the reports to this folder instead of reports/<scenario>-<UTC time>.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Hide the progress bars.
    #[arg(long, short)]
    pub quiet: bool,
    /// Also write results.jtl: one row per request of every step, in JMeter's default CSV
    /// columns.
    #[arg(long)]
    pub jtl: bool,
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
    /// Run shard INDEX of COUNT (INDEX from 0): its share of each cell's load and every
    /// COUNT-th data row from row INDEX. Without the flag, JOB_COMPLETION_INDEX and
    /// VOLLEY_SHARDS set it when both are present. Merge the folders with `volley merge`.
    #[arg(long, value_name = "INDEX/COUNT")]
    pub shard: Option<crate::shard::ShardSpec>,
    /// Also write results.jtl: one row per request in JMeter's default CSV columns.
    #[arg(long)]
    pub jtl: bool,
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
