//! The commands behind the command line, each returning the process exit code.
//!
//! Exit codes: 0 success, 1 a failure other than bad input, 2 an invalid scenario or usage,
//! 99 a failed threshold, 130 interrupted by SIGINT and 143 by SIGTERM.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use tokio_util::sync::CancellationToken;

use crate::cli::{ProbeArgs, ReportArgs, RunArgs, ScenarioArgs};
use crate::engine::{self, RunOptions};
use crate::mock::MockConfig;
use crate::report;
use crate::scenario::{self, Plan};

/// Exit code of an invalid scenario or usage.
pub const EXIT_INVALID: u8 = 2;

/// Exit code of a failure other than bad input.
pub const EXIT_FAILURE: u8 = 1;

/// Loads and checks a scenario, printing the problems; the error is the exit code.
pub fn plan(args: &ScenarioArgs) -> Result<Plan, u8> {
    let loaded = scenario::load(&args.scenario, &args.overrides).map_err(|error| {
        eprintln!("error: {error}");
        EXIT_INVALID
    })?;
    Plan::build(&loaded).map_err(|error| {
        eprintln!("error: {error}");
        EXIT_INVALID
    })
}

/// `volley validate`: checks the scenario and opens its data file.
pub fn validate(args: &ScenarioArgs) -> u8 {
    match plan(args) {
        Ok(plan) => {
            let rows = plan.data.as_ref().map_or(0, |data| data.len());
            println!(
                "{} is valid: {} variants, {} cells, {} data rows",
                args.scenario.display(),
                plan.variants.len(),
                plan.cells.len(),
                rows
            );
            0
        }
        Err(code) => code,
    }
}

/// `volley probe`: sends one request per variant and prints each exchange.
pub async fn probe(args: ProbeArgs) -> u8 {
    match plan(&args.scenario) {
        Ok(plan) => crate::probe::run(&plan, args.variant.as_deref()).await,
        Err(code) => code,
    }
}

/// `volley run`: runs the scenario, prints the table and the report folder.
pub async fn run(args: RunArgs) -> u8 {
    let plan = match plan(&args.scenario) {
        Ok(plan) => plan,
        Err(code) => return code,
    };
    let (plan, shard) = match shard_plan(plan, args.shard) {
        Ok(found) => found,
        Err(message) => {
            eprintln!("error: {message}");
            return EXIT_INVALID;
        }
    };
    let (cancel, signal_code, signal) = watch_interrupts();
    let options = RunOptions {
        out: args.out,
        reports_root: PathBuf::from("reports"),
        quiet: args.quiet,
        overrides: args.scenario.overrides.clone(),
        signal_code: Some(Arc::clone(&signal_code)),
        shard: shard.clone(),
        jtl: args.jtl,
    };
    let result = engine::run(&plan, &options, cancel.clone()).await;
    signal.abort();
    let output = match result {
        Ok(output) => output,
        Err(error) => {
            eprintln!("error: {error:#}");
            return EXIT_FAILURE;
        }
    };
    print!("{}", report::table::render(&output.rows));
    if let Some(token) = &output.token {
        println!(
            "token requests: {} sent, {} failed, p50 {:.1}ms, max {:.1}ms (not in the table)",
            token.requests, token.failures, token.p50_ms, token.max_ms
        );
    }
    warn_unreached_rates(&output.rows);
    println!("report: {}", output.folder.display());
    // A shard whose share of every cell is zero sends nothing by design, and an Indexed Job
    // must not count it as failed.
    let idle_shard = shard
        .as_ref()
        .is_some_and(|run| run.cells.iter().all(|cell| cell.idle));
    if !idle_shard && let Some(message) = unreachable_target(&output) {
        eprintln!("error: {message}");
        return EXIT_FAILURE;
    }
    match (
        signal_code.load(Ordering::Relaxed),
        engine::exit_code(&output),
    ) {
        (0, 99) if shard.is_some() => {
            // A Job would retry a pod that exits non-zero and send its load again.
            println!(
                "this shard's figures failed a threshold; `volley merge` judges the thresholds on all shards together, so the shard exits 0"
            );
            0
        }
        (0, code) => code,
        (code, _) => code,
    }
}

/// Returns the plan this process runs: the whole plan, or with `--shard` (or the Indexed
/// Job's environment) its shard's share, with the record that `shard.json` is written from.
fn shard_plan(
    plan: Plan,
    flag: Option<crate::shard::ShardSpec>,
) -> Result<(Plan, Option<Arc<crate::shard::ShardRun>>), String> {
    let Some(spec) = crate::shard::resolve(flag, |name| std::env::var(name).ok())? else {
        return Ok((plan, None));
    };
    let hash = crate::shard::scenario_hash(&plan)?;
    let (sharded, run) = crate::shard::apply(&plan, spec, hash)?;
    for share in run.cells.iter().filter(|share| share.idle) {
        eprintln!(
            "warning: shard {spec} has no share of cell {} ({}); it sends nothing in that cell",
            share.spec.index,
            describe_load(share.total, plan.scenario.load.iterations)
        );
    }
    Ok((sharded, Some(Arc::new(run))))
}

fn describe_load(point: crate::scenario::LoadPoint, iterations: Option<u64>) -> String {
    let load = match point {
        crate::scenario::LoadPoint::Closed { concurrency } => format!("concurrency {concurrency}"),
        crate::scenario::LoadPoint::Open { rate, .. } => format!("rate {rate}/s"),
    };
    match iterations {
        Some(iterations) => format!("{load}, {iterations} iterations"),
        None => load,
    }
}

/// Starts watching SIGINT and SIGTERM; returns the token they cancel, the exit code they set
/// and the watcher task.
pub fn watch_interrupts() -> (
    CancellationToken,
    Arc<AtomicU8>,
    tokio::task::JoinHandle<()>,
) {
    let cancel = CancellationToken::new();
    let code = Arc::new(AtomicU8::new(0));
    let task = tokio::spawn(watch_signals(cancel.clone(), Arc::clone(&code)));
    (cancel, code, task)
}

/// Cancels the run on SIGINT (exit code 130) or SIGTERM (143), as shells and Kubernetes
/// expect; a second SIGINT exits at once.
async fn watch_signals(cancel: CancellationToken, code: Arc<AtomicU8>) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut interrupt), Ok(mut terminate)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        tracing::warn!(
            "cannot watch SIGINT and SIGTERM; an interrupt will end the run without reports"
        );
        return;
    };
    let received = tokio::select! {
        _ = interrupt.recv() => 130,
        _ = terminate.recv() => 143,
    };
    code.store(received, Ordering::Relaxed);
    eprintln!(
        "interrupted: stopping; the reports will hold what ran (interrupt again to exit at once)"
    );
    cancel.cancel();
    interrupt.recv().await;
    eprintln!("interrupted twice: exiting without waiting");
    std::process::exit(130);
}

/// `volley report`: renders report.html again from a report folder's data files.
pub fn report(args: &ReportArgs) -> u8 {
    match report::html::write_for_folder(&args.folder) {
        Ok(path) => {
            println!("report: {}", path.display());
            0
        }
        Err(error @ report::html::ReportError::Write { .. }) => {
            eprintln!("error: {error}");
            EXIT_FAILURE
        }
        Err(error) => {
            eprintln!("error: {error}");
            EXIT_INVALID
        }
    }
}

/// `volley mock`: serves the mock API until interrupted.
pub async fn mock(config: MockConfig) -> u8 {
    match crate::mock::run_cli(config).await {
        Ok(()) => 0,
        Err(error) => {
            eprintln!("error: {error:#}");
            EXIT_FAILURE
        }
    }
}

/// Names each open cell whose target rate was not met, so an unreachable rate is not hidden
/// in large corrected latencies.
fn warn_unreached_rates(rows: &[report::summary::SummaryRow]) {
    for row in rows
        .iter()
        .filter(|row| row.model == "open" && !row.interrupted)
    {
        let Some(target) = row.target_rps else {
            continue;
        };
        if row.dropped > 0 || row.achieved_rps < target * 0.99 {
            eprintln!(
                "warning: cell {} reached {:.1} of {target} req/s ({} dropped, sends up to {:.1}ms behind schedule); \
                 raise load.max_in_flight (now {}) or lower the rate",
                row.cell,
                row.achieved_rps,
                row.dropped,
                row.max_lag_ms.unwrap_or(0.0),
                row.concurrency
            );
        }
    }
}

/// Returns an error message when no request of the whole run reached the target: every one
/// failed to connect, or none was sent.
fn unreachable_target(output: &engine::RunOutput) -> Option<String> {
    if output.interrupted {
        return None;
    }
    let mut requests = 0;
    let mut failed = 0;
    let mut code = None;
    for result in &output.results {
        requests += result.total.requests();
        failed += result.total.count(crate::metrics::Outcome::ConnectError);
        code = code.or_else(|| {
            result
                .total
                .errors
                .first()
                .map(|sample| sample.detail.code.clone())
        });
    }
    let dropped: u64 = output
        .results
        .iter()
        .map(|result| result.total.dropped)
        .sum();
    // Nothing sent because the schedule dropped everything is a rate problem, which the
    // unreached-rate warning names; it says nothing about the target.
    if requests > failed || (requests == 0 && dropped > 0) {
        return None;
    }
    if requests == 0 {
        return Some(format!(
            "no request was sent to {}; check the load settings",
            output.target
        ));
    }
    let reason = code.map_or(String::new(), |code| format!(" ({code})"));
    Some(format!(
        "no request reached {}: every connection failed{reason}; check target.url and that the server is up",
        output.target
    ))
}
