//! The `volley capacity` command: runs the search of [`crate::capacity`] against a target and
//! writes `capacity.csv` beside the usual reports.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::capacity::{self, Search, SearchSettings, StepRow};
use crate::cli::CapacityArgs;
use crate::commands::{EXIT_FAILURE, EXIT_INVALID, plan, watch_interrupts};
use crate::engine::{RunOptions, Session};
use crate::report;
use crate::scenario::Plan;
use crate::units::format_latency_us;

/// Runs the search and returns the exit code: 0, 99 when `--require` is not met, 1 on a
/// failure, 2 on invalid input, 130 or 143 when interrupted.
pub async fn run(args: CapacityArgs) -> u8 {
    let plan = match plan(&args.scenario) {
        Ok(plan) => plan,
        Err(code) => return code,
    };
    let (variant, settings) = match settings(&args, &plan) {
        Ok(found) => found,
        Err(message) => {
            eprintln!("error: {message}");
            return EXIT_INVALID;
        }
    };
    let (cancel, signal_code, signal) = watch_interrupts();
    let options = RunOptions {
        out: args.out.clone(),
        reports_root: PathBuf::from("reports"),
        quiet: args.quiet,
        overrides: args.scenario.overrides.clone(),
        signal_code: Some(Arc::clone(&signal_code)),
        shard: None,
        jtl: args.jtl,
    };
    let result = search(&plan, &options, variant, &settings, cancel).await;
    signal.abort();
    let (found, folder) = match result {
        Ok(found) => found,
        Err(error) => {
            eprintln!("error: {error:#}");
            return EXIT_FAILURE;
        }
    };
    println!("report: {}", folder.display());
    println!("capacity: {} req/s", found.map_or(0.0, report::round3));
    match signal_code.load(Ordering::Relaxed) {
        0 => {}
        code => return code,
    }
    match args.require {
        Some(required) if found.unwrap_or(0.0) < required => {
            eprintln!("capacity below the required {required} req/s");
            99
        }
        _ => 0,
    }
}

fn settings(args: &CapacityArgs, plan: &Plan) -> Result<(usize, SearchSettings), String> {
    let variant = match &args.variant {
        None => 0,
        Some(name) => plan
            .variants
            .iter()
            .position(|variant| &variant.name == name)
            .ok_or_else(|| {
                let names: Vec<&str> = plan
                    .variants
                    .iter()
                    .map(|variant| variant.name.as_str())
                    .collect();
                format!(
                    "unknown variant \"{name}\": use one of {}",
                    names.join(", ")
                )
            })?,
    };
    let criteria = match &args.until {
        Some(text) => capacity::parse_criteria(text)?,
        None if !plan.variants[variant].thresholds.is_empty() => {
            plan.variants[variant].thresholds.clone()
        }
        None => capacity::parse_criteria("error_rate < 0.01")?,
    };
    let load = &plan.scenario.load;
    let start = args
        .start
        .or_else(|| {
            load.rate
                .as_ref()
                .and_then(|rates| rates.to_vec().first().copied())
        })
        .unwrap_or(10.0);
    if !start.is_finite() || start <= 0.0 {
        return Err(format!("invalid --start {start}: use a rate above 0"));
    }
    if !args.max_rate.is_finite() || args.max_rate < start {
        return Err(format!(
            "invalid --max-rate {}: use a rate of at least --start ({start})",
            args.max_rate
        ));
    }
    if args.step_duration.0.is_zero() {
        return Err("invalid --step-duration 0s: use a duration such as 10s".to_string());
    }
    let max_in_flight = args
        .max_in_flight
        .or(load.max_in_flight)
        .unwrap_or(crate::scenario::DEFAULT_MAX_IN_FLIGHT);
    if max_in_flight == 0 {
        return Err("invalid --max-in-flight 0: use at least 1".to_string());
    }
    Ok((
        variant,
        SearchSettings {
            start_rate: start,
            max_rate: args.max_rate,
            step_duration: args.step_duration.0,
            max_in_flight,
            criteria,
        },
    ))
}

async fn search(
    plan: &Plan,
    options: &RunOptions,
    variant: usize,
    settings: &SearchSettings,
    cancel: tokio_util::sync::CancellationToken,
) -> anyhow::Result<(Option<f64>, PathBuf)> {
    let mut session = Session::start(plan, options, cancel).await?;
    let criteria: Vec<String> = settings.criteria.iter().map(ToString::to_string).collect();
    println!(
        "searching with {} from {} req/s, {} steps: {}, and 95% of each rate achieved",
        plan.variants[variant].name,
        settings.start_rate,
        crate::units::format_duration(settings.step_duration),
        criteria.join(", ")
    );
    let mut search = Search::new(settings.start_rate, settings.max_rate);
    let mut steps: Vec<StepRow> = Vec::new();
    while let Some(rate) = search.next_rate() {
        if steps.len() >= capacity::MAX_STEPS {
            println!("stopping after {} steps", capacity::MAX_STEPS);
            break;
        }
        let phase = search.phase();
        let (spec, load) = capacity::step_cell(
            steps.len() + 1,
            variant,
            rate,
            settings,
            &plan.scenario.load,
        );
        let Some(result) = session.run_cell(&spec, &load, 0).await? else {
            break;
        };
        let row = report::summary::row(result);
        let failed = capacity::judge(&row, &settings.criteria, rate);
        let step = capacity::step_row(steps.len() + 1, rate, result, &failed, phase);
        println!(
            "step {}: {:.1} req/s -> {:.1} achieved, p99 {}, 429 {:.2}%, errors {:.2}%: {}",
            step.step,
            rate,
            step.achieved_rps,
            format_latency_us(step.p99_ms * 1000.0),
            step.rate_429 * 100.0,
            step.error_rate * 100.0,
            step.verdict
        );
        search.record(rate, failed.is_empty());
        steps.push(step);
        let bytes = capacity::to_csv(&steps)?;
        report::write_atomically(&session.folder().join("capacity.csv"), &bytes)?;
    }
    let folder = session.folder().to_path_buf();
    session.finish().await?;
    match search.passing {
        None if search.failing.is_some() => {
            println!(
                "the target fails the criteria at the start rate of {} req/s; try a lower --start",
                settings.start_rate
            )
        }
        Some(rate) => {
            if let Some(step) = steps
                .iter()
                .filter(|step| step.verdict == "pass")
                .find(|step| (step.rate_rps - report::round3(rate)).abs() < 1e-6)
            {
                println!(
                    "highest passing rate: {:.1} req/s (achieved {:.1}, p50 {}, p99 {}, 429 {:.2}%, errors {:.2}%)",
                    rate,
                    step.achieved_rps,
                    format_latency_us(step.p50_ms * 1000.0),
                    format_latency_us(step.p99_ms * 1000.0),
                    step.rate_429 * 100.0,
                    step.error_rate * 100.0
                );
            }
            if search.failing.is_none() {
                println!(
                    "no step failed up to --max-rate {}; the capacity may be higher",
                    settings.max_rate
                );
            }
        }
        None => {}
    }
    Ok((search.passing, folder))
}
