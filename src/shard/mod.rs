//! Sharding: one run split over N processes (`volley run --shard I/N`), and the exact merge of
//! their report folders (`volley merge`).
//!
//! Each shard runs every cell with its share of the load. Whole quantities (workers,
//! `max_in_flight`, `iterations`, the throttle's count) are split with [`split`]: the shares
//! add up to the total and the remainder goes one each to the lowest indexes. Rates are split
//! the same way in thousandths of a request per second. Data rows are dealt out like cards:
//! shard I keeps rows I, I + N, I + 2N, ..., and the workers of a shard stride through those,
//! so no two shards send the same row.

pub mod merge;
mod output;
pub mod record;
mod split;

use std::fmt;
use std::str::FromStr;

pub(crate) use split::planned_duration;
pub use split::{CellShare, ShardRun, apply, split, split_rate};

/// Environment variable that Kubernetes sets to the pod's index in an Indexed Job.
pub const INDEX_VARIABLE: &str = "JOB_COMPLETION_INDEX";

/// Environment variable with the number of shards, set in the Job's pod template.
pub const COUNT_VARIABLE: &str = "VOLLEY_SHARDS";

/// The shard a process runs: `index` from 0 to `count - 1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardSpec {
    /// The shard's index, from 0.
    pub index: u32,
    /// The number of shards.
    pub count: u32,
}

impl fmt::Display for ShardSpec {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}/{}", self.index, self.count)
    }
}

impl ShardSpec {
    /// Checks the index against the count; `source` names where the values came from.
    fn new(index: u32, count: u32, source: &str) -> Result<ShardSpec, String> {
        if count == 0 {
            return Err(format!(
                "invalid {source}: the shard count is 0; use 1 or more shards"
            ));
        }
        if index >= count {
            return Err(format!(
                "invalid {source}: shard index {index} is not below the count {count}; indexes run from 0 to {}",
                count - 1
            ));
        }
        Ok(ShardSpec { index, count })
    }

    /// Reads `JOB_COMPLETION_INDEX` and `VOLLEY_SHARDS` through `variable`. Returns `None`
    /// when neither is set, and an error when only one is set or either is not a number.
    pub fn from_env(
        variable: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<ShardSpec>, String> {
        let index = variable(INDEX_VARIABLE);
        let count = variable(COUNT_VARIABLE);
        let (index, count) = match (index, count) {
            (None, None) => return Ok(None),
            (Some(index), None) => {
                return Err(format!(
                    "{INDEX_VARIABLE} is set ({index}) but {COUNT_VARIABLE} is not; set {COUNT_VARIABLE} to the number of shards (the Job's completions), or pass --shard I/N"
                ));
            }
            (None, Some(count)) => {
                return Err(format!(
                    "{COUNT_VARIABLE} is set ({count}) but {INDEX_VARIABLE} is not; run as a Kubernetes Indexed Job (completionMode: Indexed), or pass --shard I/N"
                ));
            }
            (Some(index), Some(count)) => (index, count),
        };
        let number = |name: &str, value: &str| {
            value.trim().parse::<u32>().map_err(|_| {
                format!("invalid {name} \"{value}\": expected a whole number such as 0 or 4")
            })
        };
        let index = number(INDEX_VARIABLE, &index)?;
        let count = number(COUNT_VARIABLE, &count)?;
        ShardSpec::new(
            index,
            count,
            &format!("{INDEX_VARIABLE}={index} with {COUNT_VARIABLE}={count}"),
        )
        .map(Some)
    }
}

impl FromStr for ShardSpec {
    type Err = String;

    fn from_str(text: &str) -> Result<ShardSpec, String> {
        let malformed = || {
            format!(
                "invalid shard \"{text}\": write INDEX/COUNT with the index from 0, such as 0/4"
            )
        };
        let (index, count) = text.trim().split_once('/').ok_or_else(malformed)?;
        let index: u32 = index.trim().parse().map_err(|_| malformed())?;
        let count: u32 = count.trim().parse().map_err(|_| malformed())?;
        ShardSpec::new(index, count, &format!("shard \"{text}\""))
    }
}

/// Picks the shard from `--shard` or, without it, from the environment. The flag wins; a
/// warning names an environment that disagrees with it.
pub fn resolve(
    flag: Option<ShardSpec>,
    variable: impl Fn(&str) -> Option<String>,
) -> Result<Option<ShardSpec>, String> {
    match flag {
        Some(flag) => {
            if let Ok(Some(from_env)) = ShardSpec::from_env(variable)
                && from_env != flag
            {
                eprintln!(
                    "warning: --shard {flag} overrides {INDEX_VARIABLE} and {COUNT_VARIABLE} ({from_env})"
                );
            }
            Ok(Some(flag))
        }
        None => ShardSpec::from_env(variable),
    }
}

/// Derives the seed of shard `index` from the scenario's seed, so shards draw different
/// random rows and `random_int` values. One shard of one keeps the scenario's seed.
pub fn shard_seed(seed: u64, spec: ShardSpec) -> u64 {
    if spec.count == 1 {
        return seed;
    }
    // SplitMix64's finaliser: neighbouring indexes give unrelated seeds.
    let mut value = seed ^ (u64::from(spec.index) + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    value = (value ^ (value >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    value = (value ^ (value >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    value ^ (value >> 31)
}

/// Returns `sha256:HEX` of the scenario as it runs: the scenario after `--set` overrides
/// and `${NAME}` expansion, serialised as JSON with sorted keys and secrets redacted, then
/// the bytes of the data file. Formatting, comments and the scenario's file path do not
/// count; every value that changes the load or the requests does, except secret values.
pub fn scenario_hash(plan: &crate::scenario::Plan) -> Result<String, String> {
    use sha2::{Digest, Sha256};
    let scenario = crate::report::run_json::redacted_scenario(&plan.scenario);
    let mut hasher = Sha256::new();
    hasher.update(b"volley scenario 1\n");
    hasher.update(scenario.to_string().as_bytes());
    if let Some(data) = &plan.scenario.data {
        let file = plan
            .path
            .parent()
            .unwrap_or(std::path::Path::new("."))
            .join(&data.file);
        let bytes = std::fs::read(&file)
            .map_err(|error| format!("cannot read data file {}: {error}", file.display()))?;
        hasher.update(b"\ndata\n");
        hasher.update(&bytes);
    }
    let digest = hasher.finalize();
    let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
    Ok(format!("sha256:{hex}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| value.to_string())
        }
    }

    #[test]
    fn flag_parses_index_and_count() {
        assert_eq!(
            "2/5".parse::<ShardSpec>().unwrap(),
            ShardSpec { index: 2, count: 5 }
        );
    }

    #[test]
    fn flag_rejects_bad_values() {
        let cases = [
            ("3/3", "not below the count 3"),
            ("0/0", "count is 0"),
            ("1-3", "write INDEX/COUNT"),
            ("a/3", "write INDEX/COUNT"),
            ("-1/3", "write INDEX/COUNT"),
            ("", "write INDEX/COUNT"),
        ];
        for (text, expected) in cases {
            let error = text.parse::<ShardSpec>().unwrap_err();
            assert!(error.contains(expected), "{text}: {error}");
        }
    }

    #[test]
    fn environment_gives_the_shard() {
        let found = ShardSpec::from_env(env(&[
            ("JOB_COMPLETION_INDEX", "1"),
            ("VOLLEY_SHARDS", "4"),
        ]))
        .unwrap();
        assert_eq!(found, Some(ShardSpec { index: 1, count: 4 }));
        assert_eq!(ShardSpec::from_env(env(&[])).unwrap(), None);
    }

    #[test]
    fn environment_needs_both_variables() {
        let error = ShardSpec::from_env(env(&[("JOB_COMPLETION_INDEX", "1")])).unwrap_err();
        assert!(error.contains("VOLLEY_SHARDS is not"), "{error}");
        let error = ShardSpec::from_env(env(&[("VOLLEY_SHARDS", "3")])).unwrap_err();
        assert!(error.contains("JOB_COMPLETION_INDEX is not"), "{error}");
    }

    #[test]
    fn environment_rejects_bad_values() {
        let error = ShardSpec::from_env(env(&[
            ("JOB_COMPLETION_INDEX", "x"),
            ("VOLLEY_SHARDS", "3"),
        ]))
        .unwrap_err();
        assert!(error.contains("JOB_COMPLETION_INDEX \"x\""), "{error}");
        let error = ShardSpec::from_env(env(&[
            ("JOB_COMPLETION_INDEX", "3"),
            ("VOLLEY_SHARDS", "3"),
        ]))
        .unwrap_err();
        assert!(error.contains("not below the count 3"), "{error}");
        let error = ShardSpec::from_env(env(&[
            ("JOB_COMPLETION_INDEX", "0"),
            ("VOLLEY_SHARDS", "0"),
        ]))
        .unwrap_err();
        assert!(error.contains("count is 0"), "{error}");
    }

    #[test]
    fn flag_wins_over_environment() {
        let flag = ShardSpec { index: 0, count: 2 };
        let chosen = resolve(
            Some(flag),
            env(&[("JOB_COMPLETION_INDEX", "1"), ("VOLLEY_SHARDS", "2")]),
        )
        .unwrap();
        assert_eq!(chosen, Some(flag));
    }

    #[test]
    fn seeds_differ_per_shard() {
        let seeds: Vec<u64> = (0..4)
            .map(|index| shard_seed(7, ShardSpec { index, count: 4 }))
            .collect();
        for (position, seed) in seeds.iter().enumerate() {
            assert!(!seeds[..position].contains(seed), "{seeds:?}");
        }
        assert_eq!(shard_seed(7, ShardSpec { index: 0, count: 1 }), 7);
    }
}
