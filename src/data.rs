//! Data rows read from a CSV file, handed to workers in sequential or seeded random order.
//!
//! The header names the columns. Quoted fields with embedded commas and newlines work, a
//! UTF-8 byte-order mark is stripped, values stay text exactly as written (leading zeros
//! kept), and blank lines are skipped.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// How workers walk through the rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RowOrder {
    /// In file order, wrapping around at the end.
    #[default]
    Sequential,
    /// Uniformly at random, from a seeded generator so that runs repeat.
    Random,
}

/// A data file that could not be used.
#[derive(Debug, Error)]
pub enum DataError {
    /// The file could not be opened or read.
    #[error(
        "cannot read data file {path}: {source}; check the [data] file path, which is relative to the scenario file"
    )]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A row is not valid CSV, has another field count than the header, or is not UTF-8.
    #[error("invalid data file {path}, line {line}: {reason}")]
    Row {
        /// The file.
        path: PathBuf,
        /// The 1-based line where the bad record starts.
        line: u64,
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// No header or no data row.
    #[error(
        "data file {path} has {what}: add a header line naming the columns and at least one row"
    )]
    Empty {
        /// The file.
        path: PathBuf,
        /// "no header" or "no data rows".
        what: &'static str,
    },
}

/// All rows of a data file, shared by the workers.
#[derive(Debug, Clone)]
pub struct DataSet {
    columns: Vec<String>,
    rows: Arc<Vec<Vec<String>>>,
}

impl DataSet {
    /// Reads a CSV file whose first line names the columns.
    pub fn load(path: &Path) -> Result<DataSet, DataError> {
        let bytes = std::fs::read(path).map_err(|source| DataError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        DataSet::parse(&bytes, path)
    }

    /// Parses CSV bytes; `path` only names the source in errors.
    pub fn parse(bytes: &[u8], path: &Path) -> Result<DataSet, DataError> {
        let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(false)
            .from_reader(bytes);
        let row_error = |error: csv::Error| row_error(path, error);
        let header = reader.headers().map_err(row_error)?.clone();
        if header.is_empty() || (header.len() == 1 && header[0].is_empty()) {
            return Err(DataError::Empty {
                path: path.to_path_buf(),
                what: "no header",
            });
        }
        let columns: Vec<String> = header.iter().map(|name| name.trim().to_string()).collect();
        if let Some(duplicate) = first_duplicate(&columns) {
            return Err(DataError::Row {
                path: path.to_path_buf(),
                line: 1,
                reason: format!(
                    "the column \"{duplicate}\" appears twice in the header; rename one"
                ),
            });
        }
        let mut rows = Vec::new();
        for record in reader.records() {
            let record = record.map_err(row_error)?;
            rows.push(record.iter().map(str::to_string).collect());
        }
        if rows.is_empty() {
            return Err(DataError::Empty {
                path: path.to_path_buf(),
                what: "no data rows",
            });
        }
        Ok(DataSet {
            columns,
            rows: Arc::new(rows),
        })
    }

    /// Returns the column names from the header, in file order.
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// Returns the number of data rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Returns whether the set has no rows; never true for a loaded file.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Returns row `index`, wrapping around at the end.
    pub fn row(&self, index: u64) -> &[String] {
        &self.rows[(index % self.rows.len() as u64) as usize]
    }

    /// Keeps every `count`-th row starting at `index`, for one shard of a sharded run.
    pub fn shard(&self, index: usize, count: usize) -> DataSet {
        let rows: Vec<Vec<String>> = self
            .rows
            .iter()
            .skip(index)
            .step_by(count.max(1))
            .cloned()
            .collect();
        DataSet {
            columns: self.columns.clone(),
            rows: Arc::new(if rows.is_empty() {
                self.rows.to_vec()
            } else {
                rows
            }),
        }
    }
}

fn first_duplicate(columns: &[String]) -> Option<&str> {
    columns
        .iter()
        .enumerate()
        .find(|(index, name)| columns[..*index].contains(name))
        .map(|(_, name)| name.as_str())
}

fn row_error(path: &Path, error: csv::Error) -> DataError {
    let line = error.position().map_or(0, csv::Position::line);
    let reason = match error.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => format!(
            "the row has {len} fields but the header has {expected_len}; quote fields that contain commas"
        ),
        csv::ErrorKind::Utf8 { err, .. } => format!(
            "field {} is not valid UTF-8; save the file as UTF-8",
            err.field() + 1
        ),
        _ => error.to_string(),
    };
    DataError::Row {
        path: path.to_path_buf(),
        line,
        reason,
    }
}

/// One worker's position in the data set.
///
/// Sequential cursors stride by the worker count, so worker `w` of `n` reads rows
/// `w, w + n, w + 2n, ...` and together the workers read the file in order without sharing
/// a counter.
pub struct RowCursor {
    next: u64,
    stride: u64,
    order: RowOrder,
    rng: SmallRng,
}

impl RowCursor {
    /// Creates the cursor of worker `worker` among `workers`.
    pub fn new(order: RowOrder, seed: u64, worker: u32, workers: u32) -> RowCursor {
        RowCursor {
            next: u64::from(worker),
            stride: u64::from(workers.max(1)),
            order,
            rng: SmallRng::seed_from_u64(seed ^ (u64::from(worker) << 32 | 0x5eed)),
        }
    }

    /// Returns the index of the next row to use.
    pub fn next_index(&mut self, len: usize) -> u64 {
        match self.order {
            RowOrder::Sequential => {
                let index = self.next;
                self.next = self.next.wrapping_add(self.stride);
                index % len.max(1) as u64
            }
            RowOrder::Random => self.rng.random_range(0..len.max(1) as u64),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<DataSet, DataError> {
        DataSet::parse(text.as_bytes(), Path::new("customers.csv"))
    }

    #[test]
    fn quoted_fields_and_leading_zeros_survive() {
        let data = parse("id,name\n007,\"Smith, J\"\n008,\"two\nlines\"\n").unwrap();
        assert_eq!(data.columns(), ["id", "name"]);
        assert_eq!(data.row(0), ["007", "Smith, J"]);
        assert_eq!(data.row(1), ["008", "two\nlines"]);
    }

    #[test]
    fn byte_order_mark_is_stripped() {
        let data = parse("\u{feff}id\n1\n").unwrap();
        assert_eq!(data.columns(), ["id"]);
    }

    #[test]
    fn blank_lines_are_skipped() {
        let data = parse("id\n1\n\n2\n\n").unwrap();
        assert_eq!(data.len(), 2);
    }

    #[test]
    fn ragged_row_names_its_line() {
        let error = parse("id,name\n1,a\n2\n").unwrap_err().to_string();
        assert!(error.contains("line 3"), "{error}");
        assert!(error.contains("1 fields but the header has 2"), "{error}");
    }

    #[test]
    fn non_utf8_is_rejected() {
        let error = DataSet::parse(b"id\n\xff\xfe\n", Path::new("x.csv")).unwrap_err();
        assert!(error.to_string().contains("UTF-8"), "{error}");
    }

    #[test]
    fn empty_files_are_rejected() {
        assert!(parse("").unwrap_err().to_string().contains("no header"));
        assert!(
            parse("id\n")
                .unwrap_err()
                .to_string()
                .contains("no data rows")
        );
    }

    #[test]
    fn duplicate_columns_are_rejected() {
        let error = parse("id,id\n1,2\n").unwrap_err().to_string();
        assert!(error.contains("\"id\" appears twice"), "{error}");
    }

    #[test]
    fn sequential_cursors_cover_rows_in_order() {
        let mut seen = Vec::new();
        let mut cursors: Vec<RowCursor> = (0..3)
            .map(|worker| RowCursor::new(RowOrder::Sequential, 1, worker, 3))
            .collect();
        for _ in 0..3 {
            for cursor in &mut cursors {
                seen.push(cursor.next_index(5));
            }
        }
        assert_eq!(seen, [0, 1, 2, 3, 4, 0, 1, 2, 3]);
    }

    #[test]
    fn random_cursor_repeats_with_seed() {
        let draw = |seed| {
            let mut cursor = RowCursor::new(RowOrder::Random, seed, 0, 1);
            (0..20).map(|_| cursor.next_index(1000)).collect::<Vec<_>>()
        };
        assert_eq!(draw(9), draw(9));
        assert_ne!(draw(9), draw(10));
    }

    #[test]
    fn shard_keeps_every_nth_row() {
        let data = parse("id\n0\n1\n2\n3\n4\n").unwrap();
        let shard = data.shard(1, 2);
        assert_eq!(shard.len(), 2);
        assert_eq!(shard.row(0), ["1"]);
        assert_eq!(shard.row(1), ["3"]);
    }
}
