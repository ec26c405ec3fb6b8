//! Running a plan: start the target and the token provider, run the cells one after another,
//! and keep the report files current after every cell.

pub mod cell;
pub mod jtl;
pub mod pacing;
pub mod progress;
pub mod stages;
pub mod transport;
pub mod worker;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::auth::{AuthProvider, TokenSummary};
use crate::mock::{self, MockServer};
use crate::report::hlog::{self, HlogWriter};
use crate::report::jtl::CellContext as JtlContext;
use crate::report::run_json::{CellRecord, RunRecord};
use crate::report::summary::SummaryRow;
use crate::report::timeseries::{TimeseriesRow, TimeseriesWriter};
use crate::report::{self, rfc3339};
use crate::scenario::{CellSpec, CompiledVariant, Load, LoadPoint, Plan};
use crate::thresholds;
use cell::{CellInputs, CellResult, run_cell};
use jtl::JtlWriter;
use progress::Progress;
use transport::Endpoint;

/// How to run a plan.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// The report folder; `None` makes `reports/<scenario>-<UTC time>`.
    pub out: Option<PathBuf>,
    /// The parent folder of report folders when `out` is not given.
    pub reports_root: PathBuf,
    /// No progress bars.
    pub quiet: bool,
    /// The `--set` overrides, recorded in `run.json`.
    pub overrides: Vec<String>,
    /// Set by the signal watcher to the exit code of the signal received.
    pub signal_code: Option<std::sync::Arc<std::sync::atomic::AtomicU8>>,
    /// With `--shard`: this shard's part of each cell, recorded in `shard.json`.
    pub shard: Option<Arc<crate::shard::ShardRun>>,
    /// Also write `results.jtl`, one row per request.
    pub jtl: bool,
}

/// What a run produced.
#[derive(Debug)]
pub struct RunOutput {
    /// One result per cell that ran.
    pub results: Vec<CellResult>,
    /// The summary rows, as written to `summary.csv`.
    pub rows: Vec<SummaryRow>,
    /// The report folder.
    pub folder: PathBuf,
    /// Whether an interrupt ended the run.
    pub interrupted: bool,
    /// The exit code of the signal that interrupted the run, when known.
    pub signal_code: Option<u8>,
    /// Whether a failed `abort_on_fail` threshold ended the run.
    pub aborted: bool,
    /// Token request figures, for OAuth2.
    pub token: Option<TokenSummary>,
    /// The base URL requests went to.
    pub target: String,
    /// With the embedded mock: its own counts at the end of the run.
    pub mock_stats: Option<crate::mock::StatsSnapshot>,
}

/// The started target: the embedded mock or a remote base URL.
pub(crate) struct Target {
    /// The base URL without a trailing slash.
    pub(crate) base_url: String,
    /// The embedded mock, when `target.url = "embedded"`; shut it down when done.
    pub(crate) mock: Option<MockServer>,
}

/// Starts the embedded mock on a free loopback port, or returns the scenario's base URL.
pub(crate) async fn start_target(plan: &Plan) -> anyhow::Result<Target> {
    let target = &plan.scenario.target;
    if target.url != "embedded" {
        if target.mock.is_some() {
            tracing::warn!("[target.mock] is ignored because target.url is not \"embedded\"");
        }
        return Ok(Target {
            base_url: target.url.trim_end_matches('/').to_string(),
            mock: None,
        });
    }
    let mut config = target.mock.clone().unwrap_or_default();
    // The embedded mock always takes a free loopback port, so runs never collide.
    config.listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let server = mock::spawn(config)
        .await
        .context("starting the embedded mock")?;
    tracing::info!(url = %server.base_url(), "embedded mock started");
    Ok(Target {
        base_url: server.base_url(),
        mock: Some(server),
    })
}

/// A run in progress: the target, the token provider and the report files, with cells
/// added one at a time. `volley run` adds the plan's cells; `volley capacity` adds cells at
/// the rates its search picks.
pub struct Session<'a> {
    plan: &'a Plan,
    options: &'a RunOptions,
    cancel: CancellationToken,
    started: SystemTime,
    target: Target,
    endpoint: Arc<Endpoint>,
    auth: AuthProvider,
    folder: PathBuf,
    timeseries: TimeseriesWriter,
    hlog: HlogWriter,
    progress: Progress,
    results: Vec<CellResult>,
    aborted: bool,
    jtl: Option<JtlWriter>,
}

impl<'a> Session<'a> {
    /// Starts the target and the token provider and creates the report folder.
    pub async fn start(
        plan: &'a Plan,
        options: &'a RunOptions,
        cancel: CancellationToken,
    ) -> anyhow::Result<Session<'a>> {
        crate::init_crypto();
        let started = SystemTime::now();
        let target = start_target(plan).await?;
        let insecure = plan.scenario.target.insecure;
        if insecure {
            tracing::warn!("target.insecure is on: TLS certificates are not checked");
            eprintln!("warning: target.insecure is on, so TLS certificates are not checked");
        }
        let mut endpoint =
            Endpoint::from_url(&target.base_url, insecure).map_err(anyhow::Error::msg)?;
        if options.jtl {
            endpoint.record_timings();
        }
        let endpoint = Arc::new(endpoint);
        let auth = AuthProvider::start(&plan.scenario.auth, &target.base_url).await?;
        let folder = report::create_folder(
            options.out.as_deref(),
            &options.reports_root,
            &plan.scenario.name,
        )
        .context("creating the report folder")?;
        let timeseries = TimeseriesWriter::create(&folder.join("timeseries.csv"))
            .with_context(|| format!("creating {}", folder.join("timeseries.csv").display()))?;
        let jtl = if options.jtl {
            let path = folder.join("results.jtl");
            Some(JtlWriter::create(&path).with_context(|| format!("creating {}", path.display()))?)
        } else {
            None
        };
        let hlog_path = folder.join(hlog::FILE_NAME);
        let hlog = HlogWriter::create(&hlog_path, started)
            .with_context(|| format!("creating {}", hlog_path.display()))?;
        let session = Session {
            plan,
            options,
            cancel,
            started,
            target,
            endpoint,
            auth,
            folder,
            timeseries,
            hlog,
            progress: Progress::new(options.quiet),
            results: Vec::new(),
            aborted: false,
            jtl,
        };
        write_tables(&session.folder, &session.results)?;
        session.write_progress()?;
        Ok(session)
    }

    /// Returns what ran so far, as the final output would describe it.
    fn snapshot(&self) -> RunOutput {
        let signal_code = self
            .options
            .signal_code
            .as_ref()
            .map(|code| code.load(std::sync::atomic::Ordering::Relaxed))
            .filter(|code| *code != 0);
        RunOutput {
            results: self.results.clone(),
            rows: self.results.iter().map(report::summary::row).collect(),
            folder: self.folder.clone(),
            interrupted: self.cancel.is_cancelled(),
            signal_code,
            aborted: self.aborted,
            token: self.auth.token_stats().map(|stats| stats.summary()),
            target: self.target.base_url.clone(),
            mock_stats: self.target.mock.as_ref().map(MockServer::stats),
        }
    }

    /// Rewrites `run.json` (and `shard.json` of a shard) with what ran so far, so a run
    /// killed later still records what it was.
    fn write_progress(&self) -> anyhow::Result<()> {
        if let Some(shard) = &self.options.shard {
            crate::shard::record::write(&self.folder, self.plan, shard, &self.results)?;
        }
        write_run_json(
            self.plan,
            self.options,
            &self.snapshot(),
            self.started,
            false,
        )
    }

    /// Returns the report folder.
    pub fn folder(&self) -> &Path {
        &self.folder
    }

    /// Returns whether the run should stop: interrupted, or a threshold asked to abort.
    pub fn stopped(&self) -> bool {
        self.cancel.is_cancelled() || self.aborted
    }

    /// Runs one cell after the pause between cells, records its verdict and rewrites the
    /// summary files. Returns `None` when the run was stopped before the cell started.
    pub async fn run_cell(
        &mut self,
        spec: &CellSpec,
        load: &Load,
        cell_count: usize,
    ) -> anyhow::Result<Option<&CellResult>> {
        if self.stopped() {
            return Ok(None);
        }
        if let Some(share) = self.idle_share(spec.index) {
            return self.skip_idle_cell(spec, &share).await;
        }
        if !self.results.is_empty() {
            tokio::select! {
                () = tokio::time::sleep(load.pause.0) => {}
                () = self.cancel.cancelled() => return Ok(None),
            }
        }
        let variant = Arc::new(self.plan.variants[spec.variant].clone());
        let label = cell_label(spec.index, cell_count, &variant.name, &spec.load);
        tracing::info!(cell = spec.index, variant = %variant.name, "cell started");
        let duration = match &spec.stages {
            Some(stages) => Some(stages.duration()),
            None => load.duration.map(|duration| duration.0),
        };
        self.progress.start_cell(label, duration, load.iterations);
        let by_requests = duration.is_none();
        let jtl = self.jtl.as_ref().map(|writer| {
            let url = jtl_url(self.plan, spec.variant, &variant, &self.target.base_url);
            writer.cell(|base| JtlContext::new(spec.index, &variant.name, url, base))
        });
        let mut write_error = None;
        let mut hlog_error = None;
        let progress = &self.progress;
        let timeseries = &mut self.timeseries;
        let hlog = &mut self.hlog;
        let mut result = run_cell(
            CellInputs {
                spec: spec.clone(),
                variant: Arc::clone(&variant),
                load: load.clone(),
                endpoint: Arc::clone(&self.endpoint),
                auth: self.auth.header(),
                data: self.plan.data.clone(),
                row_order: self.plan.row_order,
                seed: self.plan.seed,
                cancel: self.cancel.clone(),
                jtl,
            },
            &mut |interval| {
                progress.update(&interval, by_requests);
                // The hlog line goes first, so latency.hlog never has fewer seconds than
                // timeseries.csv.
                if let Err(error) = hlog.write_interval(spec.index, &interval) {
                    hlog_error.get_or_insert(error);
                }
                let row = TimeseriesRow::new(spec.index, &variant.name, &interval);
                if let Err(error) = timeseries.write(&row) {
                    write_error.get_or_insert(error);
                }
            },
        )
        .await;
        self.progress.finish_cell();
        if let Some(error) = write_error {
            tracing::error!(%error, "writing timeseries.csv failed");
        }
        if let Some(error) = hlog_error {
            tracing::error!(%error, "writing latency.hlog failed");
        }
        tracing::info!(
            cell = spec.index,
            requests = result.total.requests(),
            "cell finished"
        );

        let verdict = thresholds::verdict(&variant.thresholds, &report::summary::row(&result));
        result.verdict = verdict.text;
        // A shard judges only its part of the load, so it never stops the other shards' run.
        if verdict.abort && self.options.shard.is_none() {
            eprintln!(
                "cell {} failed a threshold with abort_on_fail; skipping the remaining cells",
                spec.index
            );
            self.aborted = true;
        }
        self.results.push(result);
        write_tables(&self.folder, &self.results)?;
        self.write_progress()?;
        // The page is rewritten after every cell so a run killed later still has one.
        if let Err(error) = report::html::write_for_folder(&self.folder) {
            tracing::warn!(%error, "rendering report.html failed");
        }
        Ok(self.results.last())
    }

    /// Returns this shard's share of the cell when that share is zero.
    fn idle_share(&self, cell: usize) -> Option<crate::shard::CellShare> {
        let share = self.options.shard.as_ref()?.cell(cell)?;
        share.idle.then(|| share.clone())
    }

    /// Records a cell in which this shard has no share: it sends nothing, but waits out the
    /// pause and the cell's duration so that its next cell starts with the other shards'.
    /// A cell limited by iterations alone has no known duration, so it is not waited out.
    async fn skip_idle_cell(
        &mut self,
        spec: &CellSpec,
        share: &crate::shard::CellShare,
    ) -> anyhow::Result<Option<&CellResult>> {
        let wait = crate::shard::planned_duration(share).unwrap_or_default()
            + if self.results.is_empty() {
                std::time::Duration::ZERO
            } else {
                share.load.pause.0
            };
        tracing::info!(cell = spec.index, "this shard's share of the cell is zero");
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = self.cancel.cancelled() => return Ok(None),
        }
        let variant = &self.plan.variants[spec.variant];
        let open = matches!(spec.load, LoadPoint::Open { .. });
        self.results.push(CellResult {
            spec: spec.clone(),
            variant: variant.name.clone(),
            open,
            started_at: SystemTime::now(),
            send_window: std::time::Duration::ZERO,
            elapsed: std::time::Duration::ZERO,
            total: crate::metrics::Tally::new(open),
            interrupted: false,
            throttle_rps: None,
            verdict: String::new(),
        });
        write_tables(&self.folder, &self.results)?;
        self.write_progress()?;
        Ok(self.results.last())
    }

    /// Writes the final reports, stops the target and returns what ran.
    pub async fn finish(mut self) -> anyhow::Result<RunOutput> {
        let output = self.snapshot();
        write_tables(&output.folder, &output.results)?;
        if let Some(shard) = &self.options.shard {
            crate::shard::record::write(&output.folder, self.plan, shard, &output.results)?;
        }
        write_run_json(self.plan, self.options, &output, self.started, true)?;
        if let Err(error) = report::html::write_for_folder(&output.folder) {
            // The data files are complete, so `volley report` can render the page later.
            eprintln!("warning: report.html was not written: {error}");
        }
        if let Some(jtl) = self.jtl.take() {
            let summary = jtl.finish()?;
            if summary.lost > 0 {
                eprintln!(
                    "warning: results.jtl lacks {} of {} rows because its writer fell behind by more than {} rows; summary.csv counts every request",
                    summary.lost,
                    summary.rows + summary.lost,
                    jtl::MAX_QUEUED_ROWS
                );
            }
        }
        drop(self.auth);
        if let Some(server) = self.target.mock {
            server.shutdown().await;
        }
        Ok(output)
    }
}

/// Runs every cell of `plan` and writes the reports; `cancel` ends the run early.
pub async fn run(
    plan: &Plan,
    options: &RunOptions,
    cancel: CancellationToken,
) -> anyhow::Result<RunOutput> {
    let mut session = Session::start(plan, options, cancel).await?;
    for spec in &plan.cells {
        // A shard runs each cell with its share of iterations and throttle.
        let load = options
            .shard
            .as_ref()
            .and_then(|shard| shard.cell(spec.index))
            .map_or(&plan.scenario.load, |share| &share.load);
        if session
            .run_cell(spec, load, plan.cells.len())
            .await?
            .is_none()
        {
            break;
        }
    }
    session.finish().await
}

/// Returns the URL column of `results.jtl` for variant `index`: the rendered path when it has
/// no per-request placeholder, else the scenario's path text with its placeholders.
fn jtl_url(plan: &Plan, index: usize, variant: &CompiledVariant, base_url: &str) -> String {
    let path = match variant.path.as_constant() {
        Some(path) => path.to_string(),
        None => plan
            .scenario
            .variants
            .get(index)
            .and_then(|own| own.path.clone())
            .unwrap_or_else(|| plan.scenario.request.path.clone()),
    };
    let secrets = report::run_json::secrets(&plan.scenario.auth);
    report::jtl::safe_url(base_url, &path, &secrets)
}

fn cell_label(index: usize, count: usize, variant: &str, load: &LoadPoint) -> String {
    let load = match load {
        LoadPoint::Closed { concurrency } => format!("c={concurrency}"),
        LoadPoint::Open { rate, .. } => format!("{rate} req/s"),
    };
    if count == 0 {
        return format!("step {index} {variant} {load}");
    }
    format!("cell {index}/{count} {variant} {load}")
}

fn write_tables(folder: &Path, results: &[CellResult]) -> anyhow::Result<()> {
    let summary = report::summary::to_csv(results).context("rendering summary.csv")?;
    report::write_atomically(&folder.join("summary.csv"), &summary)
        .context("writing summary.csv")?;
    let errors = report::errors::to_csv(results).context("rendering errors.csv")?;
    report::write_atomically(&folder.join("errors.csv"), &errors).context("writing errors.csv")?;
    Ok(())
}

/// Returns the exit code a run ends with: the signal's code (130 for SIGINT, 143 for
/// SIGTERM) when interrupted, 99 when a threshold failed, else 0.
pub fn exit_code(output: &RunOutput) -> u8 {
    if output.interrupted {
        output.signal_code.unwrap_or(130)
    } else if output
        .rows
        .iter()
        .any(|row| row.verdict.starts_with("fail"))
    {
        99
    } else {
        0
    }
}

fn write_run_json(
    plan: &Plan,
    options: &RunOptions,
    output: &RunOutput,
    started: SystemTime,
    finished: bool,
) -> anyhow::Result<()> {
    let cells = output
        .rows
        .iter()
        .map(|row| CellRecord {
            cell: row.cell,
            variant: row.variant.clone(),
            model: row.model,
            concurrency: row.concurrency,
            target_rps: row.target_rps,
            requests: row.requests,
            verdict: row
                .verdict
                .split(':')
                .next()
                .unwrap_or_default()
                .to_string(),
            failed_thresholds: row
                .verdict
                .split_once(':')
                .map(|(_, failed)| {
                    failed
                        .split(';')
                        .map(|item| item.trim().to_string())
                        .collect()
                })
                .unwrap_or_default(),
            interrupted: row.interrupted,
        })
        .collect();
    let target = if plan.scenario.target.url == "embedded" {
        format!("embedded ({})", output.target)
    } else {
        output.target.clone()
    };
    let record = RunRecord {
        volley_version: env!("CARGO_PKG_VERSION"),
        scenario_name: plan.scenario.name.clone(),
        scenario_file: plan.path.display().to_string(),
        overrides: redacted_overrides(&options.overrides, &plan.scenario.auth),
        scenario: report::run_json::redacted_scenario(&plan.scenario),
        host: report::run_json::host_name(),
        target,
        started: rfc3339(started),
        finished: finished.then(|| rfc3339(SystemTime::now())),
        interrupted: output.interrupted,
        aborted: output.aborted,
        exit_code: finished.then(|| exit_code(output)),
        token_requests: output.token.clone(),
        cells,
        mock_stats: output.mock_stats.clone(),
    };
    let bytes = serde_json::to_vec_pretty(&record).context("rendering run.json")?;
    report::write_atomically(&output.folder.join("run.json"), &bytes).context("writing run.json")
}

/// Hides the value of an override that sets a credential or contains a secret.
fn redacted_overrides(overrides: &[String], auth: &crate::scenario::Auth) -> Vec<String> {
    let secrets = report::run_json::secrets(auth);
    overrides
        .iter()
        .map(|item| {
            let (key, value) = item.split_once('=').unwrap_or((item, ""));
            let secret = report::run_json::looks_secret(key.rsplit('.').next().unwrap_or(key))
                || key.ends_with(".value")
                || secrets.iter().any(|secret| value.contains(secret.as_str()));
            if secret {
                format!("{key}={}", report::run_json::REDACTED)
            } else {
                item.clone()
            }
        })
        .collect()
}
