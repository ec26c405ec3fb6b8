//! Scenario files: reading, `--set` overrides, environment variables and validation.
//!
//! Loading goes through three steps so that every error can point at a line: the text is
//! parsed with `toml_edit` (which keeps the layout), overrides and `${NAME}` expansions are
//! applied to that document, and the result is read into [`Scenario`] by serde, whose errors
//! carry a byte span that is turned into a line and column.

mod env;
mod model;
mod overrides;
mod plan;

use std::path::{Path, PathBuf};

use thiserror::Error;

pub use model::*;
pub use plan::{CellSpec, CompiledVariant, DEFAULT_MAX_IN_FLIGHT, LoadPoint, Plan};

/// A scenario that cannot be run; the message names the file, the place and the fix.
#[derive(Debug, Error)]
pub enum ScenarioError {
    /// The file could not be read.
    #[error("cannot read scenario {path}: {source}")]
    Io {
        /// The scenario file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// One or more problems, each already formatted with its location.
    #[error("invalid scenario {path}:\n{}", .problems.join("\n"))]
    Invalid {
        /// The scenario file.
        path: PathBuf,
        /// One line per problem.
        problems: Vec<String>,
    },
}

impl ScenarioError {
    fn invalid(path: &Path, problem: String) -> ScenarioError {
        ScenarioError::Invalid {
            path: path.to_path_buf(),
            problems: vec![problem],
        }
    }
}

/// A scenario read from a file, with the text it was read from after overrides.
#[derive(Debug, Clone)]
pub struct LoadedScenario {
    /// The parsed scenario.
    pub scenario: Scenario,
    /// The scenario file.
    pub path: PathBuf,
    /// The text after `--set` overrides and before `${NAME}` expansion, so it contains no secret.
    pub text: String,
}

/// Reads a scenario file and applies `--set key.path=value` overrides.
pub fn load(path: &Path, overrides: &[String]) -> Result<LoadedScenario, ScenarioError> {
    let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    load_text(&text, path, overrides)
}

/// Parses scenario text; `path` names the file in errors and anchors relative data paths.
pub fn load_text(
    text: &str,
    path: &Path,
    overrides: &[String],
) -> Result<LoadedScenario, ScenarioError> {
    let mut document: toml_edit::DocumentMut =
        text.parse().map_err(|error: toml_edit::TomlError| {
            let at = error
                .span()
                .map(|span| location(text, span.start))
                .unwrap_or_default();
            ScenarioError::invalid(
                path,
                format!("{}{at}: {}", path.display(), first_line(error.message())),
            )
        })?;
    for item in overrides {
        overrides::apply(&mut document, item)
            .map_err(|problem| ScenarioError::invalid(path, problem))?;
    }
    let unexpanded = document.to_string();
    env::expand_document(&mut document).map_err(|problem| ScenarioError::invalid(path, problem))?;
    let expanded = document.to_string();
    let scenario: Scenario = toml::from_str(&expanded).map_err(|error| {
        let at = error
            .span()
            .map(|span| location(&expanded, span.start))
            .unwrap_or_default();
        let culprit = error
            .span()
            .and_then(|span| expanded.get(span))
            .unwrap_or_default();
        let origin = overrides::blame(overrides, culprit)
            .map(|item| format!(" (from --set {item})"))
            .unwrap_or_default();
        ScenarioError::invalid(
            path,
            format!(
                "{}{at}: {}{origin}",
                path.display(),
                explain(error.message())
            ),
        )
    })?;
    Ok(LoadedScenario {
        scenario,
        path: path.to_path_buf(),
        text: unexpanded,
    })
}

/// Formats a byte offset as `:LINE:COLUMN`, both counted from 1.
pub(crate) fn location(text: &str, offset: usize) -> String {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rsplit('\n')
        .next()
        .map_or(0, |tail| tail.chars().count())
        + 1;
    format!(":{line}:{column}")
}

fn first_line(message: &str) -> &str {
    message.lines().next().unwrap_or(message).trim()
}

/// Adds the fix to serde's wording where serde leaves it out.
fn explain(message: &str) -> String {
    let message = first_line(message);
    if message.starts_with("unknown field") {
        return format!("{message}; remove it or correct its spelling");
    }
    if message.starts_with("missing field") {
        return format!("{message}; add it to this table");
    }
    if message.starts_with("unknown variant") {
        return format!("{message}; use one of the listed values");
    }
    message.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
name = "t"
[target]
url = "embedded"
[request]
path = "/x"
[load]
concurrency = 2
duration = "1s"
"#;

    fn problem(text: &str, overrides: &[&str]) -> String {
        let overrides: Vec<String> = overrides.iter().map(|item| item.to_string()).collect();
        load_text(text, Path::new("s.toml"), &overrides)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn minimal_scenario_loads() {
        let loaded = load_text(MINIMAL, Path::new("s.toml"), &[]).unwrap();
        assert_eq!(loaded.scenario.request.method, "POST");
        assert_eq!(loaded.scenario.load.concurrency, Some(OneOrMany::One(2)));
    }

    #[test]
    fn unknown_key_names_line_and_column() {
        let text = MINIMAL.replace("duration = \"1s\"", "durration = \"1s\"");
        let message = problem(&text, &[]);
        assert!(message.contains("s.toml:9:1"), "{message}");
        assert!(message.contains("durration"), "{message}");
        assert!(
            message.contains("remove it or correct its spelling"),
            "{message}"
        );
    }

    #[test]
    fn wrong_type_is_rejected() {
        let message = problem(
            &MINIMAL.replace("concurrency = 2", "concurrency = \"two\""),
            &[],
        );
        assert!(message.contains(":8:15"), "{message}");
        assert!(message.contains("[1, 8, 32]"), "{message}");
    }

    #[test]
    fn syntax_error_names_line() {
        let message = problem(&MINIMAL.replace("[load]", "[load"), &[]);
        assert!(message.contains("s.toml:7:"), "{message}");
    }

    #[test]
    fn set_overrides_scalars_and_lists() {
        let overrides = vec![
            "load.duration=5s".to_string(),
            "load.concurrency=[1,4]".to_string(),
        ];
        let loaded = load_text(MINIMAL, Path::new("s.toml"), &overrides).unwrap();
        assert_eq!(loaded.scenario.load.duration.unwrap().0.as_secs(), 5);
        assert_eq!(
            loaded.scenario.load.concurrency,
            Some(OneOrMany::Many(vec![1, 4]))
        );
    }

    #[test]
    fn set_on_unknown_key_is_blamed() {
        let message = problem(MINIMAL, &["load.durashun=5s"]);
        assert!(message.contains("--set load.durashun=5s"), "{message}");
    }

    #[test]
    fn set_without_equals_is_rejected() {
        let message = problem(MINIMAL, &["load.duration"]);
        assert!(message.contains("KEY=VALUE"), "{message}");
    }
}
