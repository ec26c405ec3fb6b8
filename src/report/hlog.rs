//! `latency.hlog`: the HdrHistogram interval log (format version 1.3) of every cell, one
//! tagged line per cell per second, readable by the Java `HistogramLogProcessor` and the
//! Python `hdrhistogram` package.
//!
//! Values are microseconds. The header states a max-value divisor of 1000, so the max column
//! of each line, which is for people reading the file, is in milliseconds. Timestamps are
//! seconds since the `BaseTime` header, which is the start of the run.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::interval_log::{
    IntervalLogIterator, IntervalLogWriterBuilder, LogEntry, Tag,
};
use hdrhistogram::serialization::{Deserializer, V2DeflateSerializer};

use crate::engine::cell::Interval;
use crate::metrics::new_histogram;

/// The file's name in a report folder.
pub const FILE_NAME: &str = "latency.hlog";

/// Microseconds per millisecond: the divisor of the max column.
pub const MAX_VALUE_DIVISOR: f64 = 1000.0;

/// The column legend that HdrHistogram's Java `HistogramLogWriter` writes after the header.
const LEGEND: &str =
    "\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\"\n";

/// Returns the tag of a cell's latency histogram (corrected for open cells).
pub fn cell_tag(cell: usize) -> String {
    format!("cell{cell}")
}

/// Returns the tag of an open cell's latency histogram measured from the actual send.
pub fn uncorrected_tag(cell: usize) -> String {
    format!("cell{cell}-uncorrected")
}

/// Appends interval histograms to `latency.hlog`, one `write_all` per line, so a process
/// killed later leaves every line written before intact.
pub struct HlogWriter {
    file: File,
    serializer: V2DeflateSerializer,
    base_time: SystemTime,
    line: Vec<u8>,
    /// The cell of the last interval written and its end, as time since the cell started.
    previous: Option<(usize, Duration)>,
}

impl HlogWriter {
    /// Creates the file with its header; interval timestamps count from `base_time`.
    pub fn create(path: &Path, base_time: SystemTime) -> io::Result<HlogWriter> {
        let mut file = File::create(path)?;
        let mut header = Vec::new();
        let mut serializer = V2DeflateSerializer::new();
        IntervalLogWriterBuilder::new()
            .add_comment(&format!(
                "[Logged with volley {}]",
                env!("CARGO_PKG_VERSION")
            ))
            .add_comment("[Histogram log format version 1.3]")
            .add_comment("[Values are microseconds; Interval_Max is in milliseconds]")
            .with_start_time(base_time)
            .with_base_time(base_time)
            .with_max_value_divisor(MAX_VALUE_DIVISOR)
            .begin_log_with(&mut header, &mut serializer)?;
        header.extend_from_slice(LEGEND.as_bytes());
        file.write_all(&header)?;
        Ok(HlogWriter {
            file,
            serializer,
            base_time,
            line: Vec::new(),
            previous: None,
        })
    }

    /// Appends one histogram line. `tag` must not contain spaces, commas or line breaks.
    pub fn write_histogram(
        &mut self,
        tag: &str,
        start: SystemTime,
        duration: Duration,
        histogram: &Histogram<u64>,
    ) -> io::Result<()> {
        let tag = Tag::new(tag).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("hlog tag {tag:?} contains a space, comma or line break"),
            )
        })?;
        let offset = start.duration_since(self.base_time).unwrap_or_default();
        self.line.clear();
        {
            // The builder writes its max-value divisor header first; only the interval line
            // that follows it goes to the file.
            let mut log = IntervalLogWriterBuilder::new()
                .with_max_value_divisor(MAX_VALUE_DIVISOR)
                .begin_log_with(&mut self.line, &mut self.serializer)?;
            log.write_histogram(histogram, offset, duration, Some(tag))
                .map_err(|error| io::Error::other(error.to_string()))?;
        }
        let line_start = self
            .line
            .iter()
            .position(|byte| *byte == b'\n')
            .map_or(0, |newline| newline + 1);
        self.file.write_all(&self.line[line_start..])
    }

    /// Appends one second of a cell: its latency histogram tagged `cell<N>`, and for open
    /// cells also the uncorrected one tagged `cell<N>-uncorrected`.
    pub fn write_interval(&mut self, cell: usize, interval: &Interval<'_>) -> io::Result<()> {
        let since = match self.previous {
            Some((previous_cell, end)) if previous_cell == cell => end,
            _ => Duration::ZERO,
        };
        let duration = interval.elapsed.saturating_sub(since);
        self.previous = Some((cell, interval.elapsed));
        let start = interval.at.checked_sub(duration).unwrap_or(interval.at);
        self.write_histogram(&cell_tag(cell), start, duration, &interval.tally.latency)?;
        if let Some(uncorrected) = &interval.tally.uncorrected {
            self.write_histogram(&uncorrected_tag(cell), start, duration, uncorrected)?;
        }
        Ok(())
    }
}

/// One line of an interval log.
#[derive(Debug, Clone)]
pub struct HlogInterval {
    /// The line's tag, empty when it has none.
    pub tag: String,
    /// The interval's start.
    pub start: SystemTime,
    /// The interval's length.
    pub duration: Duration,
    /// The latencies recorded in the interval, in microseconds.
    pub histogram: Histogram<u64>,
}

/// An error reading an interval log.
#[derive(Debug, thiserror::Error)]
pub enum HlogError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A line is not an interval log line.
    #[error("{path}: line {line} is not an HdrHistogram interval log line")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The line number, from 1.
        line: usize,
    },
    /// A line's histogram could not be decoded.
    #[error("{path}: line {line} has an invalid histogram: {message}")]
    Histogram {
        /// The file.
        path: PathBuf,
        /// The line number, from 1.
        line: usize,
        /// The decoder's message.
        message: String,
    },
}

impl HlogError {
    /// Returns the message without the file's path, for callers that name the file already.
    pub fn problem(&self) -> String {
        match self {
            HlogError::Io { source, .. } => format!("cannot read it: {source}"),
            HlogError::Syntax { line, .. } => {
                format!("line {line} is not an HdrHistogram interval log line")
            }
            HlogError::Histogram { line, message, .. } => {
                format!("line {line} has an invalid histogram: {message}")
            }
        }
    }
}

/// Reads every interval of an interval log, in file order.
///
/// Timestamps follow the Java `HistogramLogReader`: relative to `BaseTime` when the log has
/// one, else relative to `StartTime` when they are more than a year before it, else seconds
/// since the epoch. A last line without its line break, as a killed writer may leave, is
/// skipped.
pub fn read(path: &Path) -> Result<Vec<HlogInterval>, HlogError> {
    let bytes = std::fs::read(path).map_err(|source| HlogError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&bytes).map_err(|error| match error {
        ParseError::Syntax { line } => HlogError::Syntax {
            path: path.to_path_buf(),
            line,
        },
        ParseError::Histogram { line, message } => HlogError::Histogram {
            path: path.to_path_buf(),
            line,
            message,
        },
    })
}

enum ParseError {
    Syntax { line: usize },
    Histogram { line: usize, message: String },
}

fn parse(bytes: &[u8]) -> Result<Vec<HlogInterval>, ParseError> {
    let complete = match bytes.iter().rposition(|byte| *byte == b'\n') {
        Some(last_newline) => &bytes[..=last_newline],
        None => &[],
    };
    if complete.len() < bytes.len() {
        tracing::warn!(
            bytes = bytes.len() - complete.len(),
            "skipping the unfinished last line of an hlog"
        );
    }
    let mut start_time: Option<Duration> = None;
    let mut base_time: Option<Duration> = None;
    let mut deserializer = Deserializer::new();
    let mut intervals = Vec::new();
    // One iterator per line, so an error can name its line; the iterator skips comment and
    // legend lines by returning nothing.
    for (index, text) in complete.split_inclusive(|byte| *byte == b'\n').enumerate() {
        let line = index + 1;
        let entry = match IntervalLogIterator::new(text).next() {
            None => continue,
            Some(Ok(entry)) => entry,
            Some(Err(_)) => return Err(ParseError::Syntax { line }),
        };
        match entry {
            LogEntry::StartTime(time) => start_time = Some(time),
            LogEntry::BaseTime(time) => base_time = Some(time),
            LogEntry::Interval(interval) => {
                let timestamp = interval.start_timestamp();
                let base = match (base_time, start_time) {
                    (Some(base), _) => base,
                    (None, Some(start)) if timestamp + ONE_YEAR < start => start,
                    _ => Duration::ZERO,
                };
                let histogram_error = |message: String| ParseError::Histogram { line, message };
                let encoded = base64::engine::general_purpose::STANDARD
                    .decode(interval.encoded_histogram())
                    .map_err(|error| histogram_error(error.to_string()))?;
                let histogram: Histogram<u64> =
                    deserializer
                        .deserialize(&mut encoded.as_slice())
                        .map_err(|error| histogram_error(format!("{error:?}")))?;
                intervals.push(HlogInterval {
                    tag: interval
                        .tag()
                        .map(|tag| tag.to_string())
                        .unwrap_or_default(),
                    start: UNIX_EPOCH + base + timestamp,
                    duration: interval.duration(),
                    histogram,
                });
            }
        }
    }
    Ok(intervals)
}

/// The Java reader's rule: timestamps more than this before `StartTime` are relative to it.
const ONE_YEAR: Duration = Duration::from_secs(365 * 24 * 3600);

/// Adds up the histograms of each tag. Every sum covers 1 us to 1 h, so any interval of a
/// volley log fits.
pub fn sum_by_tag(intervals: &[HlogInterval]) -> BTreeMap<String, Histogram<u64>> {
    let mut sums: BTreeMap<String, Histogram<u64>> = BTreeMap::new();
    for interval in intervals {
        let sum = sums
            .entry(interval.tag.clone())
            .or_insert_with(new_histogram);
        if sum.add(&interval.histogram).is_err() {
            // A histogram wider than 1 h comes from another tool; keep what fits.
            for value in interval.histogram.iter_recorded() {
                sum.saturating_record_n(value.value_iterated_to(), value.count_at_value());
            }
        }
    }
    sums
}

#[cfg(test)]
mod tests {
    use super::*;

    fn histogram_of(values: &[u64]) -> Histogram<u64> {
        let mut histogram = new_histogram();
        for value in values {
            histogram.record(*value).unwrap();
        }
        histogram
    }

    #[test]
    fn written_intervals_read_back_equal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let base = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let first = histogram_of(&[1_500, 25_000, 25_100]);
        let second = histogram_of(&[3_600_000_000]);
        let mut writer = HlogWriter::create(&path, base).unwrap();
        let start = base + Duration::from_millis(5);
        writer
            .write_histogram("cell1", start, Duration::from_secs(1), &first)
            .unwrap();
        writer
            .write_histogram("cell1-uncorrected", start, Duration::from_secs(1), &second)
            .unwrap();
        drop(writer);

        let intervals = read(&path).unwrap();
        assert_eq!(intervals.len(), 2);
        assert_eq!(intervals[0].tag, "cell1");
        assert_eq!(intervals[1].tag, "cell1-uncorrected");
        assert_eq!(intervals[0].histogram, first);
        assert_eq!(intervals[1].histogram, second);
        assert_eq!(intervals[0].start, start);
        assert_eq!(intervals[0].duration, Duration::from_secs(1));
    }

    #[test]
    fn header_names_version_divisor_and_legend() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let base = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let mut writer = HlogWriter::create(&path, base).unwrap();
        writer
            .write_histogram(
                "cell2",
                base,
                Duration::from_secs(1),
                &histogram_of(&[2_500]),
            )
            .unwrap();

        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines.contains(&"#[Histogram log format version 1.3]"),
            "{text}"
        );
        assert!(lines.contains(&"#[MaxValueDivisor: 1000.000]"), "{text}");
        assert!(
            lines.contains(&"#[BaseTime: 1800000000.000 (seconds since epoch)]"),
            "{text}"
        );
        assert!(lines.contains(&LEGEND.trim_end()), "{text}");
        let last = lines.last().unwrap();
        assert!(
            last.starts_with("Tag=cell2,0.000,1.000,2.501,HISTF"),
            "{last}"
        );
        assert_eq!(text.matches("MaxValueDivisor").count(), 1, "{text}");
    }

    #[test]
    fn tag_with_space_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = HlogWriter::create(&dir.path().join(FILE_NAME), UNIX_EPOCH).unwrap();
        let error = writer
            .write_histogram("cell 1", UNIX_EPOCH, Duration::ZERO, &new_histogram())
            .unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn unfinished_last_line_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let mut writer = HlogWriter::create(&path, UNIX_EPOCH).unwrap();
        writer
            .write_histogram(
                "cell1",
                UNIX_EPOCH,
                Duration::from_secs(1),
                &histogram_of(&[7]),
            )
            .unwrap();
        drop(writer);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend_from_slice(b"Tag=cell1,1.000,1.000,0.007,HISTFAAAA");
        std::fs::write(&path, bytes).unwrap();
        assert_eq!(read(&path).unwrap().len(), 1);
    }

    #[test]
    fn invalid_line_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        std::fs::write(&path, "#comment\nnot a histogram\n").unwrap();
        let error = read(&path).unwrap_err().to_string();
        assert!(error.contains("line 2"), "{error}");
        std::fs::write(&path, "Tag=a,1.000,1.000,1.000,bm90IGEgaGlzdG9ncmFt\n").unwrap();
        let error = read(&path).unwrap_err().to_string();
        assert!(error.contains("line 1 has an invalid histogram"), "{error}");
    }

    #[test]
    fn untagged_absolute_timestamps_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let mut encoded = Vec::new();
        hdrhistogram::serialization::Serializer::serialize(
            &mut V2DeflateSerializer::new(),
            &histogram_of(&[10, 20]),
            &mut encoded,
        )
        .unwrap();
        let text = format!(
            "1800000000.500,1.000,0.020,{}\n",
            base64::engine::general_purpose::STANDARD.encode(encoded)
        );
        std::fs::write(&path, text).unwrap();
        let intervals = read(&path).unwrap();
        assert_eq!(intervals[0].tag, "");
        assert_eq!(
            intervals[0].start,
            UNIX_EPOCH + Duration::from_millis(1_800_000_000_500)
        );
        assert_eq!(intervals[0].histogram.len(), 2);
    }

    #[test]
    fn sums_add_each_tag() {
        let interval = |tag: &str, values: &[u64]| HlogInterval {
            tag: tag.to_string(),
            start: UNIX_EPOCH,
            duration: Duration::from_secs(1),
            histogram: histogram_of(values),
        };
        let sums = sum_by_tag(&[
            interval("cell1", &[1, 2]),
            interval("cell2", &[5]),
            interval("cell1", &[3]),
        ]);
        assert_eq!(sums["cell1"].len(), 3);
        assert_eq!(sums["cell2"].len(), 1);
    }
}
