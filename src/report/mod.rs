//! Report files, one module per format. Each writer is a function of the results, so the
//! same results always give the same bytes (apart from timestamps they carry).

pub mod errors;
pub mod hlog;
pub mod html;
pub mod jtl;
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

/// Creates the report folder: `DIR` when given (it must not hold files already), else a new
/// `ROOT/<scenario>-<UTC time>`, with `-2`, `-3` ... added when runs start in the same second.
pub fn create_folder(out: Option<&Path>, root: &Path, scenario: &str) -> std::io::Result<PathBuf> {
    let folder = match out {
        Some(out) => {
            let occupied = std::fs::read_dir(out).is_ok_and(|mut entries| entries.next().is_some());
            if occupied || out.is_file() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    format!(
                        "--out {} already exists and is not an empty folder; name a new folder so no earlier report is overwritten",
                        out.display()
                    ),
                ));
            }
            out.to_path_buf()
        }
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
            let base = format!("{safe}-{stamp}");
            std::fs::create_dir_all(root).map_err(|error| with_path(error, root))?;
            // create_dir fails when the folder exists, so two runs never share one.
            let mut attempt = 1;
            loop {
                let name = if attempt == 1 {
                    base.clone()
                } else {
                    format!("{base}-{attempt}")
                };
                let candidate = root.join(name);
                match std::fs::create_dir(&candidate) {
                    Ok(()) => return Ok(candidate),
                    Err(error)
                        if error.kind() == std::io::ErrorKind::AlreadyExists && attempt < 1000 =>
                    {
                        attempt += 1
                    }
                    Err(error) => return Err(with_path(error, &candidate)),
                }
            }
        }
    };
    std::fs::create_dir_all(&folder).map_err(|error| with_path(error, &folder))?;
    Ok(folder)
}

fn with_path(error: std::io::Error, path: &Path) -> std::io::Error {
    std::io::Error::new(error.kind(), format!("{}: {error}", path.display()))
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
    fn runs_in_the_same_second_get_their_own_folders() {
        let root = tempfile::tempdir().unwrap();
        let first = create_folder(None, root.path(), "s").unwrap();
        let second = create_folder(None, root.path(), "s").unwrap();
        assert_ne!(first, second);
        assert!(second.is_dir());
    }

    #[test]
    fn out_must_not_hold_files() {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("summary.csv"), "old").unwrap();
        let error = create_folder(Some(root.path()), root.path(), "s").unwrap_err();
        assert!(error.to_string().contains("already exists"), "{error}");
        let empty = root.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        assert_eq!(
            create_folder(Some(&empty), root.path(), "s").unwrap(),
            empty
        );
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
