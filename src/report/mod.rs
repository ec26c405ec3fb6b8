//! Report files, one module per format. Each writer is a function of the results, so the
//! same results always give the same bytes (apart from timestamps they carry).

pub mod errors;
pub mod run_json;
pub mod summary;
pub mod table;
pub mod timeseries;

use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Rounds to three decimals, so CSV cells read `12.346` rather than `12.345999999`.
pub fn round3(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

/// Formats a time as RFC 3339 in UTC with milliseconds.
pub fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_millis(time).to_string()
}

/// Creates the report folder: `DIR` when given, else `ROOT/<scenario>-<UTC time>`.
pub fn create_folder(out: Option<&Path>, root: &Path, scenario: &str) -> std::io::Result<PathBuf> {
    let folder = match out {
        Some(out) => out.to_path_buf(),
        None => {
            let stamp = humantime::format_rfc3339_seconds(SystemTime::now())
                .to_string()
                .replace(':', "");
            let safe: String = scenario
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            root.join(format!("{safe}-{stamp}"))
        }
    };
    std::fs::create_dir_all(&folder)?;
    Ok(folder)
}

/// Writes `bytes` to `path` through a temporary file, so a reader never sees half a file.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let temporary = path.with_extension("tmp");
    std::fs::write(&temporary, bytes)?;
    std::fs::rename(&temporary, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round3_keeps_three_decimals() {
        assert_eq!(round3(12.345_678), 12.346);
        assert_eq!(round3(0.1 + 0.2), 0.3);
    }

    #[test]
    fn folder_name_is_safe_and_stamped() {
        let root = tempfile::tempdir().unwrap();
        let folder = create_folder(None, root.path(), "data action/org").unwrap();
        let name = folder.file_name().unwrap().to_str().unwrap().to_string();
        assert!(name.starts_with("data_action_org-"), "{name}");
        assert!(name.ends_with('Z'), "{name}");
        assert!(folder.is_dir());
    }
}
