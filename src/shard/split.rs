//! The split of a plan into one shard's share: workers, rates, iterations, throttle, stages
//! and data rows.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use super::{ShardSpec, shard_seed};
use crate::engine::stages::{StageSpec, Stages};
use crate::scenario::{CellSpec, Load, LoadPoint, Plan};
use crate::units::Rate;

/// Rates are split in thousandths of a request per second.
const RATE_UNITS_PER_RPS: f64 = 1000.0;

/// Returns shard `index`'s share of `total` split over `count` shards: `total / count`, plus
/// one for each of the lowest `total % count` indexes, so the shares add up to `total`.
pub fn split(total: u64, index: u32, count: u32) -> u64 {
    let (index, count) = (u64::from(index), u64::from(count.max(1)));
    total / count + u64::from(index < total % count)
}

/// Returns shard `index`'s share of a rate in requests per second, split like [`split`] in
/// thousandths of a request per second, so a rate of 100 over 3 shards gives 33.334, 33.333
/// and 33.333. The total is first rounded to a thousandth.
pub fn split_rate(rate: f64, index: u32, count: u32) -> f64 {
    let units = (rate * RATE_UNITS_PER_RPS).round().max(0.0) as u64;
    split(units, index, count) as f64 / RATE_UNITS_PER_RPS
}

/// Returns how many shards get a share above zero of `total`, which are the lowest indexes.
fn shards_with_share(total: u64, count: u32) -> u32 {
    total.min(u64::from(count)) as u32
}

/// One cell as a shard runs it.
#[derive(Debug, Clone)]
pub struct CellShare {
    /// The shard's part of the cell: its workers, rate and stages.
    pub spec: CellSpec,
    /// The whole cell's load, as an unsharded run would apply it.
    pub total: LoadPoint,
    /// The `[load]` table this shard runs the cell with: its share of `iterations` and of
    /// `throttle`.
    pub load: Load,
    /// The whole cell's `throttle` in requests per second (closed model).
    pub total_throttle_rps: Option<f64>,
    /// Whether this shard's share of the cell is zero, so it sends nothing in the cell.
    pub idle: bool,
}

/// One shard's part of the run, with the details `volley merge` needs to check and combine it.
#[derive(Debug, Clone)]
pub struct ShardRun {
    /// The shard's index and the shard count.
    pub spec: ShardSpec,
    /// The scenario's hash, see [`super::scenario_hash`].
    pub scenario_hash: String,
    /// The shard's own seed.
    pub seed: u64,
    /// One share per cell of the plan, in plan order.
    pub cells: Vec<CellShare>,
}

impl ShardRun {
    /// Returns the share of the cell with this index (from 1).
    pub fn cell(&self, index: usize) -> Option<&CellShare> {
        self.cells.iter().find(|share| share.spec.index == index)
    }
}

/// Returns the plan that shard `spec` runs and the record of its shares. The error names
/// the setting that cannot be split over this many shards and how to fix it.
pub fn apply(
    plan: &Plan,
    spec: ShardSpec,
    scenario_hash: String,
) -> Result<(Plan, ShardRun), String> {
    let mut sharded = plan.clone();
    if let Some(data) = &plan.data {
        if data.len() < spec.count as usize {
            return Err(format!(
                "the data file has {} rows, fewer than the {} shards, so some shards would have no row; add rows or run at most {} shards",
                data.len(),
                spec.count,
                data.len()
            ));
        }
        sharded.data = Some(data.shard(spec.index as usize, spec.count as usize));
    }
    sharded.seed = shard_seed(plan.seed, spec);
    let mut cells = Vec::with_capacity(plan.cells.len());
    for cell in &plan.cells {
        cells.push(share_cell(cell, &plan.scenario.load, spec)?);
    }
    sharded.cells = cells.iter().map(|share| share.spec.clone()).collect();
    let seed = sharded.seed;
    Ok((
        sharded,
        ShardRun {
            spec,
            scenario_hash,
            seed,
            cells,
        },
    ))
}

/// The shard's part of one load quantity, and how many shards have a part above zero.
struct Part {
    share: u64,
    active: u32,
}

fn part(total: u64, spec: ShardSpec) -> Part {
    Part {
        share: split(total, spec.index, spec.count),
        active: shards_with_share(total, spec.count),
    }
}

fn share_cell(cell: &CellSpec, load: &Load, spec: ShardSpec) -> Result<CellShare, String> {
    let mut shard_load = load.clone();
    let (point, stages, active) = match (&cell.stages, cell.load) {
        (None, LoadPoint::Closed { concurrency }) => {
            let workers = part(u64::from(concurrency), spec);
            (
                LoadPoint::Closed {
                    concurrency: workers.share as u32,
                },
                None,
                workers.active,
            )
        }
        (
            None,
            LoadPoint::Open {
                rate,
                max_in_flight,
            },
        ) => {
            let units = (rate * RATE_UNITS_PER_RPS).round().max(0.0) as u64;
            let active = shards_with_share(units, spec.count);
            let in_flight = in_flight_share(max_in_flight, active, spec, cell.index)?;
            (
                LoadPoint::Open {
                    rate: split_rate(rate, spec.index, spec.count),
                    max_in_flight: in_flight,
                },
                None,
                active,
            )
        }
        (Some(stages), LoadPoint::Closed { .. }) => {
            let (shared, active) = share_stages(load, stages, spec, |target| target.round())?;
            let peak = shared.peak().ceil() as u32;
            (
                LoadPoint::Closed { concurrency: peak },
                Some(Arc::new(shared)),
                active,
            )
        }
        (Some(stages), LoadPoint::Open { max_in_flight, .. }) => {
            let (shared, active) = share_stages(load, stages, spec, |target| {
                (target * RATE_UNITS_PER_RPS).round()
            })?;
            let in_flight = in_flight_share(max_in_flight, active, spec, cell.index)?;
            let seconds = shared.duration().as_secs_f64();
            let rate = if seconds > 0.0 {
                shared.planned_requests() / seconds
            } else {
                0.0
            };
            (
                LoadPoint::Open {
                    rate,
                    max_in_flight: in_flight,
                },
                Some(Arc::new(shared)),
                active,
            )
        }
    };
    let runs = spec.index < active;
    shard_load.iterations = load.iterations.map(|iterations| {
        if runs {
            split(iterations, spec.index, active)
        } else {
            0
        }
    });
    let is_closed = matches!(cell.load, LoadPoint::Closed { .. });
    let total_throttle_rps = if is_closed {
        load.throttle.map(|rate| rate.per_second())
    } else {
        None
    };
    if is_closed && let Some(throttle) = load.throttle {
        shard_load.throttle = throttle_share(throttle, active, runs, spec, cell.index)?;
    }
    let idle = !runs || shard_load.iterations == Some(0) || point.workers() == 0;
    Ok(CellShare {
        spec: CellSpec {
            index: cell.index,
            variant: cell.variant,
            load: point,
            stages,
        },
        total: cell.load,
        load: shard_load,
        total_throttle_rps,
        idle,
    })
}

/// Splits `max_in_flight` over the shards that send; each of them needs at least one slot.
fn in_flight_share(
    max_in_flight: u32,
    active: u32,
    spec: ShardSpec,
    cell: usize,
) -> Result<u32, String> {
    if spec.index >= active {
        return Ok(0);
    }
    if max_in_flight < active {
        return Err(format!(
            "cell {cell}: load.max_in_flight {max_in_flight} cannot be split over {active} shards that send, because each needs at least one request in flight; raise max_in_flight to {active} or run fewer shards"
        ));
    }
    Ok(split(u64::from(max_in_flight), spec.index, active) as u32)
}

/// Splits the throttle's count over the shards that run workers, keeping its period.
fn throttle_share(
    throttle: Rate,
    active: u32,
    runs: bool,
    spec: ShardSpec,
    cell: usize,
) -> Result<Option<Rate>, String> {
    if !runs {
        return Ok(None);
    }
    let share = split(u64::from(throttle.count.get()), spec.index, active);
    let count = u32::try_from(share)
        .ok()
        .and_then(NonZeroU32::new)
        .ok_or_else(|| {
            format!(
                "cell {cell}: load.throttle {throttle} cannot be split over {active} shards that run workers, because each needs a count of at least 1; raise the count to {active} per period or run fewer shards"
            )
        })?;
    Ok(Some(Rate {
        count,
        period: throttle.period,
    }))
}

/// Splits every stage's target: `units` turns a target into the whole units that are split
/// (workers, or thousandths of a request per second). Returns the shard's stages and the
/// number of shards whose peak is above zero.
fn share_stages(
    load: &Load,
    stages: &Stages,
    spec: ShardSpec,
    units: impl Fn(f64) -> f64,
) -> Result<(Stages, u32), String> {
    let specs = load.stages.as_deref().unwrap_or_default();
    let scale = units(1.0);
    let mut peak_units = 0;
    let shared: Vec<StageSpec> = specs
        .iter()
        .map(|stage| {
            let total = units(stage.target).max(0.0) as u64;
            peak_units = peak_units.max(total);
            StageSpec {
                duration: stage.duration,
                target: split(total, spec.index, spec.count) as f64 / scale,
            }
        })
        .collect();
    let shared = Stages::new(&shared).map_err(|problem| format!("load.stages: {problem}"))?;
    debug_assert_eq!(shared.duration(), stages.duration());
    Ok((shared, shards_with_share(peak_units, spec.count)))
}

/// Returns how long the cell of `share` sends, when it has a fixed duration.
pub(crate) fn planned_duration(share: &CellShare) -> Option<Duration> {
    match &share.spec.stages {
        Some(stages) => Some(stages.duration()),
        None => share.load.duration.map(|duration| duration.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_add_up_to_the_total() {
        for total in [0, 1, 2, 3, 7, 10, 64, 1001] {
            for count in 1..=9 {
                let shares: Vec<u64> = (0..count).map(|index| split(total, index, count)).collect();
                assert_eq!(
                    shares.iter().sum::<u64>(),
                    total,
                    "{total} over {count}: {shares:?}"
                );
                let (low, high) = (shares.iter().min().unwrap(), shares.iter().max().unwrap());
                assert!(high - low <= 1, "{total} over {count}: {shares:?}");
            }
        }
    }

    #[test]
    fn remainder_goes_to_lowest_indexes() {
        let shares: Vec<u64> = (0..4).map(|index| split(10, index, 4)).collect();
        assert_eq!(shares, [3, 3, 2, 2]);
        let shares: Vec<u64> = (0..3).map(|index| split(2, index, 3)).collect();
        assert_eq!(shares, [1, 1, 0]);
    }

    #[test]
    fn rate_shares_add_up_in_thousandths() {
        let shares: Vec<f64> = (0..3).map(|index| split_rate(100.0, index, 3)).collect();
        assert_eq!(shares, [33.334, 33.333, 33.333]);
        let units: u64 = shares
            .iter()
            .map(|share| (share * 1000.0).round() as u64)
            .sum();
        assert_eq!(units, 100_000);
        let shares: Vec<f64> = (0..4).map(|index| split_rate(0.5, index, 4)).collect();
        assert_eq!(shares, [0.125, 0.125, 0.125, 0.125]);
    }

    fn plan(load: &str, rows: Option<usize>) -> (tempfile::TempDir, Plan) {
        let dir = tempfile::tempdir().unwrap();
        let data = match rows {
            Some(rows) => {
                let mut text = "id\n".to_string();
                for row in 0..rows {
                    text.push_str(&format!("{row}\n"));
                }
                std::fs::write(dir.path().join("rows.csv"), text).unwrap();
                "[data]\nfile = \"rows.csv\"\n"
            }
            None => "",
        };
        let text = format!(
            "name = \"s\"\n[target]\nurl = \"embedded\"\n[request]\npath = \"/x\"\n{data}[load]\n{load}\n"
        );
        let path = dir.path().join("s.toml");
        std::fs::write(&path, &text).unwrap();
        let loaded = crate::scenario::load(&path, &[]).unwrap();
        let plan = Plan::build(&loaded).unwrap();
        (dir, plan)
    }

    fn shards(plan: &Plan, count: u32) -> Vec<(Plan, ShardRun)> {
        (0..count)
            .map(|index| apply(plan, ShardSpec { index, count }, "h".into()).unwrap())
            .collect()
    }

    #[test]
    fn closed_cells_split_workers_and_iterations() {
        let (_dir, plan) = plan("concurrency = [2, 7]\niterations = 10", None);
        let runs = shards(&plan, 3);
        let workers: Vec<Vec<u32>> = runs
            .iter()
            .map(|(plan, _)| plan.cells.iter().map(|cell| cell.load.workers()).collect())
            .collect();
        assert_eq!(workers, [vec![1, 3], vec![1, 2], vec![0, 2]]);
        // With 2 workers only shards 0 and 1 send, so the 10 iterations go to them.
        let iterations: Vec<Vec<Option<u64>>> = runs
            .iter()
            .map(|(_, run)| run.cells.iter().map(|cell| cell.load.iterations).collect())
            .collect();
        assert_eq!(
            iterations,
            [
                vec![Some(5), Some(4)],
                vec![Some(5), Some(3)],
                vec![Some(0), Some(3)]
            ]
        );
        let idle: Vec<bool> = runs.iter().map(|(_, run)| run.cells[0].idle).collect();
        assert_eq!(idle, [false, false, true]);
    }

    #[test]
    fn open_cells_split_rate_and_in_flight() {
        let (_dir, plan) = plan(
            "model = \"open\"\nrate = 100\nmax_in_flight = 10\nduration = \"1s\"",
            None,
        );
        let runs = shards(&plan, 3);
        let points: Vec<LoadPoint> = runs.iter().map(|(plan, _)| plan.cells[0].load).collect();
        assert_eq!(
            points,
            [
                LoadPoint::Open {
                    rate: 33.334,
                    max_in_flight: 4
                },
                LoadPoint::Open {
                    rate: 33.333,
                    max_in_flight: 3
                },
                LoadPoint::Open {
                    rate: 33.333,
                    max_in_flight: 3
                },
            ]
        );
        assert!(
            runs.iter()
                .all(|(_, run)| run.cells[0].total == plan.cells[0].load)
        );
    }

    #[test]
    fn too_few_slots_are_rejected() {
        let (_dir, plan) = plan(
            "model = \"open\"\nrate = 100\nmax_in_flight = 2\nduration = \"1s\"",
            None,
        );
        let error = apply(&plan, ShardSpec { index: 0, count: 3 }, "h".into()).unwrap_err();
        assert!(error.contains("max_in_flight 2"), "{error}");
    }

    #[test]
    fn throttle_count_is_split() {
        let (_dir, plan) = plan(
            "concurrency = 4\nthrottle = \"10/1s\"\nduration = \"1s\"",
            None,
        );
        let counts: Vec<u32> = shards(&plan, 3)
            .iter()
            .map(|(_, run)| run.cells[0].load.throttle.unwrap().count.get())
            .collect();
        assert_eq!(counts, [4, 3, 3]);
        let (_dir, plan) = self::plan(
            "concurrency = 4\nthrottle = \"2/1s\"\nduration = \"1s\"",
            None,
        );
        // Shard 2 runs a worker but would get none of the 2 requests per second.
        let error = apply(&plan, ShardSpec { index: 2, count: 3 }, "h".into()).unwrap_err();
        assert!(error.contains("load.throttle"), "{error}");
    }

    #[test]
    fn stage_targets_are_split() {
        let (_dir, plan) = plan(
            "model = \"open\"\nstages = [{ duration = \"2s\", target = 30 }, { duration = \"2s\", target = 10 }]",
            None,
        );
        let runs = shards(&plan, 4);
        let planned: f64 = runs
            .iter()
            .map(|(plan, _)| plan.cells[0].stages.as_ref().unwrap().planned_requests())
            .sum();
        let whole = plan.cells[0].stages.as_ref().unwrap().planned_requests();
        assert!((planned - whole).abs() < 1e-6, "{planned} vs {whole}");

        let (_dir, plan) = self::plan(
            "stages = [{ duration = \"2s\", target = 5 }]\nmodel = \"closed\"",
            None,
        );
        let peaks: Vec<u32> = shards(&plan, 2)
            .iter()
            .map(|(plan, _)| plan.cells[0].load.workers())
            .collect();
        assert_eq!(peaks, [3, 2]);
    }

    #[test]
    fn data_rows_are_dealt_without_overlap() {
        let (_dir, plan) = plan("concurrency = 2\nduration = \"1s\"", Some(10));
        let mut seen: Vec<String> = Vec::new();
        for (sharded, _) in shards(&plan, 3) {
            let data = sharded.data.unwrap();
            for row in 0..data.len() {
                seen.push(data.row(row as u64)[0].clone());
            }
        }
        seen.sort_by_key(|id| id.parse::<u32>().unwrap());
        let expected: Vec<String> = (0..10).map(|row| row.to_string()).collect();
        assert_eq!(seen, expected);
    }

    #[test]
    fn fewer_rows_than_shards_is_rejected() {
        let (_dir, plan) = plan("concurrency = 4\nduration = \"1s\"", Some(2));
        let error = apply(&plan, ShardSpec { index: 0, count: 3 }, "h".into()).unwrap_err();
        assert!(error.contains("2 rows, fewer than the 3 shards"), "{error}");
    }
}
