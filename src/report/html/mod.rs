//! `report.html`: one self-contained page rendered from a report folder's data files
//! (`run.json`, `summary.csv`, `timeseries.csv`, `latency.hlog`, and `errors.csv` when
//! present). It loads nothing over the network: styles are inline and charts are inline SVG.

mod charts;
pub mod data;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use data::{FolderData, SecondLine, SummaryLine};

use crate::report::hlog;

/// The page's file name in a report folder.
pub const FILE_NAME: &str = "report.html";

/// An error rendering `report.html`.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The report folder does not exist.
    #[error(
        "report folder {0} not found; name a folder that `volley run` wrote, such as reports/<scenario>-<UTC time>"
    )]
    FolderNotFound(PathBuf),
    /// A data file is missing or invalid.
    #[error(transparent)]
    Data(#[from] data::DataError),
    /// The page could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The page's path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// Renders `report.html` from the data files of `folder` and writes it there; returns its
/// path. The page depends only on those files, so rendering again gives the same page.
pub fn write_for_folder(folder: &Path) -> Result<PathBuf, ReportError> {
    if !folder.is_dir() {
        return Err(ReportError::FolderNotFound(folder.to_path_buf()));
    }
    let data = data::load(folder)?;
    let page = render(&data);
    let path = folder.join(FILE_NAME);
    crate::report::write_atomically(&path, page.as_bytes()).map_err(|source| {
        ReportError::Write {
            path: path.clone(),
            source,
        }
    })?;
    Ok(path)
}

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            other => escaped.push(other),
        }
    }
    escaped
}

const STYLE: &str = "
body { font-family: system-ui, -apple-system, 'Segoe UI', sans-serif; margin: 24px; color: #222; max-width: 1400px; }
h1 { font-size: 1.5em; margin-bottom: 4px; }
h2 { font-size: 1.2em; margin-top: 32px; border-bottom: 1px solid #ccc; padding-bottom: 4px; }
h3 { font-size: 1.05em; margin: 24px 0 6px; }
table { border-collapse: collapse; font-size: 0.85em; margin: 8px 0; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: right; }
th { background: #f3f3f3; }
td.text, th.text { text-align: left; }
dl.meta { display: grid; grid-template-columns: max-content auto; gap: 2px 16px; font-size: 0.9em; }
dl.meta dt { color: #555; }
dl.meta dd { margin: 0; }
.pass { color: #1a7f37; font-weight: 600; }
.fail { color: #c62828; font-weight: 600; }
.worse { color: #c62828; }
.better { color: #1a7f37; }
.charts { display: flex; flex-wrap: wrap; gap: 8px; }
.charts figure { margin: 0; border: 1px solid #eee; }
.charts svg { display: block; }
figcaption { font-size: 0.8em; padding: 2px 8px 6px; text-align: center; }
.key { margin-right: 12px; white-space: nowrap; }
.key .line { display: inline-block; width: 16px; height: 3px; margin-right: 4px; vertical-align: middle; }
.key .box { display: inline-block; width: 10px; height: 10px; margin-right: 4px; vertical-align: middle; }
td { white-space: nowrap; }
td.message { white-space: normal; min-width: 30em; }
.note { color: #555; font-size: 0.9em; }
code { background: #f3f3f3; padding: 0 3px; }
";

/// Renders the page.
pub fn render(data: &FolderData) -> String {
    let name = text_field(&data.run, "scenario_name");
    let mut page = String::new();
    page.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    // The policy blocks every fetch and script, so the page works offline by construction
    // and a browser reports any attempt as a console error.
    page.push_str(
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n",
    );
    let _ = writeln!(page, "<title>volley report: {}</title>", escape(&name));
    // A figure as wide as its chart wraps a long legend instead of widening the figure.
    let _ = writeln!(
        page,
        "<style>{STYLE}.charts figure {{ width: {}px; }}\n</style>\n</head>\n<body>",
        charts::SIZE.0
    );
    let _ = writeln!(page, "<h1>volley report: {}</h1>", escape(&name));

    write_metadata(&mut page, data);
    write_verdicts(&mut page, &data.summary);
    write_summary(&mut page, &data.summary);
    write_comparison(&mut page, &data.summary);
    page.push_str("<h2>Cells</h2>\n");
    for line in &data.summary {
        write_cell(&mut page, data, line);
    }

    let _ = writeln!(
        page,
        "<p class=\"note\">Rendered by volley {} from the data files of this folder; \
         <code>volley report FOLDER</code> renders it again.</p>\n</body>\n</html>",
        escape(env!("CARGO_PKG_VERSION"))
    );
    page
}

fn text_field(value: &serde_json::Value, key: &str) -> String {
    match value.get(key) {
        Some(serde_json::Value::String(text)) => text.clone(),
        Some(serde_json::Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

fn write_metadata(page: &mut String, data: &FolderData) {
    let run = &data.run;
    let mut items: Vec<(&str, String)> = vec![
        ("scenario file", text_field(run, "scenario_file")),
        ("target", text_field(run, "target")),
        ("host", text_field(run, "host")),
        ("started", text_field(run, "started")),
        ("finished", text_field(run, "finished")),
        ("exit code", exit_code_text(run)),
        ("volley version", text_field(run, "volley_version")),
    ];
    if run.get("interrupted") == Some(&serde_json::Value::Bool(true)) {
        items.push((
            "interrupted",
            "yes: the last cell ran only in part".to_string(),
        ));
    }
    if run.get("aborted") == Some(&serde_json::Value::Bool(true)) {
        items.push((
            "aborted",
            "yes: an abort_on_fail threshold skipped the remaining cells".to_string(),
        ));
    }
    if let Some(overrides) = overrides_text(run) {
        items.push(("overrides", overrides));
    }
    if let Some(token) = run.get("token_requests").filter(|token| token.is_object()) {
        items.push((
            "token requests",
            format!(
                "{} sent, {} failed, p50 {} ms, max {} ms (not in the tables)",
                text_field(token, "requests"),
                text_field(token, "failures"),
                text_field(token, "p50_ms"),
                text_field(token, "max_ms")
            ),
        ));
    }
    if let Some(counts) = mock_counts_text(run) {
        items.push(("embedded mock counted", counts));
    }

    page.push_str("<dl class=\"meta\">\n");
    for (label, value) in items {
        let _ = writeln!(
            page,
            "<dt>{}</dt><dd>{}</dd>",
            escape(label),
            escape(&value)
        );
    }
    page.push_str("</dl>\n");
}

fn exit_code_text(run: &serde_json::Value) -> String {
    match run.get("exit_code").and_then(serde_json::Value::as_u64) {
        Some(0) => "0 (every threshold passed)".to_string(),
        Some(99) => "99 (a threshold failed)".to_string(),
        Some(130) => "130 (interrupted by SIGINT)".to_string(),
        Some(143) => "143 (interrupted by SIGTERM)".to_string(),
        Some(code) => code.to_string(),
        None => "none: the run had not finished when run.json was last written (still running, or killed)".to_string(),
    }
}

fn overrides_text(run: &serde_json::Value) -> Option<String> {
    let overrides = run.get("overrides")?.as_array()?;
    if overrides.is_empty() {
        return None;
    }
    let list: Vec<String> = overrides
        .iter()
        .map(|item| {
            item.as_str()
                .map_or_else(|| item.to_string(), str::to_string)
        })
        .collect();
    Some(list.join("  "))
}

fn mock_counts_text(run: &serde_json::Value) -> Option<String> {
    let execute = run.pointer("/mock_stats/execute")?;
    let responses: Vec<String> = execute
        .get("responses")?
        .as_object()?
        .iter()
        .map(|(status, count)| format!("{status}: {count}"))
        .collect();
    Some(format!(
        "{} execute requests ({}), {} connection resets",
        text_field(execute, "requests"),
        responses.join(", "),
        text_field(execute, "resets")
    ))
}

fn write_verdicts(page: &mut String, summary: &[SummaryLine]) {
    page.push_str("<h2>Verdicts</h2>\n");
    let judged: Vec<&SummaryLine> = summary
        .iter()
        .filter(|line| !line.verdict.is_empty())
        .collect();
    let failed: Vec<&&SummaryLine> = judged
        .iter()
        .filter(|line| line.verdict.starts_with("fail"))
        .collect();
    if judged.is_empty() {
        page.push_str("<p>The scenario has no thresholds, so no cell has a verdict.</p>\n");
        return;
    }
    if failed.is_empty() {
        let _ = writeln!(
            page,
            "<p class=\"pass\">All {} cells passed their thresholds.</p>",
            judged.len()
        );
        return;
    }
    let _ = writeln!(
        page,
        "<p class=\"fail\">{} of {} cells failed a threshold:</p>\n<ul>",
        failed.len(),
        judged.len()
    );
    for line in failed {
        let reasons = line
            .verdict
            .split_once(':')
            .map_or("", |(_, reasons)| reasons.trim());
        let _ = writeln!(
            page,
            "<li>cell {} ({}, {}): {}</li>",
            line.cell,
            escape(&line.variant),
            escape(&line.load_label()),
            escape(reasons)
        );
    }
    page.push_str("</ul>\n");
}

/// Formats milliseconds with three significant digits or more.
fn ms(value: f64) -> String {
    if value >= 100.0 {
        format!("{value:.0}")
    } else if value >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

/// Formats a difference of two shares in percentage points, with its sign.
fn percentage_points(change: f64) -> String {
    format!("{:+.2}", change * 100.0)
}

/// Formats a share from 0 to 1 as a percentage.
fn percent(share: f64) -> String {
    format!("{:.2}%", share * 100.0)
}

fn verdict_cell(verdict: &str) -> String {
    if verdict.starts_with("fail") {
        format!("<td class=\"text fail\">{}</td>", escape(verdict))
    } else if verdict.is_empty() {
        "<td class=\"text\"></td>".to_string()
    } else {
        format!("<td class=\"text pass\">{}</td>", escape(verdict))
    }
}

fn write_summary(page: &mut String, summary: &[SummaryLine]) {
    page.push_str("<h2>Summary</h2>\n");
    let open = summary.iter().any(|line| line.model == "open");
    page.push_str(
        "<table>\n<tr><th>cell</th><th class=\"text\">variant</th><th class=\"text\">load</th>\
         <th>requests</th><th>ok</th><th>403</th><th>429</th><th>other</th><th>dropped</th>\
         <th>req/s</th><th>req bytes</th><th>p50 ms</th><th>p90 ms</th><th>p99 ms</th>\
         <th>p99.9 ms</th><th>max ms</th>",
    );
    if open {
        page.push_str("<th>p50 uncorrected</th><th>p99 uncorrected</th>");
    }
    page.push_str("<th class=\"text\">verdict</th></tr>\n");
    for line in summary {
        let _ = write!(
            page,
            "<tr><td>{}</td><td class=\"text\">{}</td><td class=\"text\">{}</td><td>{}</td>\
             <td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.1}</td><td>{:.1}</td>\
             <td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>",
            line.cell,
            escape(&line.variant),
            escape(&line.load_label()),
            line.requests,
            line.ok,
            line.forbidden,
            line.throttled,
            line.other_errors(),
            line.dropped,
            line.achieved_rps,
            line.req_bytes_mean,
            ms(line.p50_ms),
            ms(line.p90_ms),
            ms(line.p99_ms),
            ms(line.p999_ms),
            ms(line.max_ms),
        );
        if open {
            let optional = |value: Option<f64>| value.map(ms).unwrap_or_default();
            let _ = write!(
                page,
                "<td>{}</td><td>{}</td>",
                optional(line.p50_uncorrected_ms),
                optional(line.p99_uncorrected_ms)
            );
        }
        let _ = writeln!(page, "{}</tr>", verdict_cell(&line.verdict));
    }
    page.push_str("</table>\n");
    if open {
        page.push_str(
            "<p class=\"note\">Open model: latency counts from each request's due time, \
             corrected for coordinated omission; the uncorrected columns count from the actual send.</p>\n",
        );
    }
}

/// Returns a table cell with a difference, marking a rise red and a fall green.
fn difference(change: f64, text: String) -> String {
    if change.abs() < 1e-9 {
        format!("<td>{text}</td>")
    } else if change > 0.0 {
        format!("<td class=\"worse\">{text}</td>")
    } else {
        format!("<td class=\"better\">{text}</td>")
    }
}

/// Formats a difference in milliseconds with its sign.
fn signed_ms(change: f64) -> String {
    if change < 0.0 {
        format!("-{}", ms(-change))
    } else {
        format!("+{}", ms(change))
    }
}

/// A compared column: its value, the baseline's, and how to format a value and a change.
type Column = (f64, f64, fn(f64) -> String, fn(f64) -> String);

fn write_comparison(page: &mut String, summary: &[SummaryLine]) {
    let mut loads: Vec<String> = Vec::new();
    for line in summary {
        let label = line.load_label();
        if !loads.contains(&label) {
            loads.push(label);
        }
    }
    let compared: Vec<(String, Vec<&SummaryLine>)> = loads
        .into_iter()
        .map(|load| {
            let lines = summary
                .iter()
                .filter(|line| line.load_label() == load)
                .collect();
            (load, lines)
        })
        .filter(|(_, lines): &(String, Vec<&SummaryLine>)| lines.len() > 1)
        .collect();
    if compared.is_empty() {
        return;
    }
    page.push_str("<h2>Variant comparison</h2>\n");
    page.push_str(
        "<p class=\"note\">Each variant against the first variant at the same load; \
         a rise is marked red. Rate differences are in percentage points.</p>\n",
    );
    page.push_str(
        "<table>\n<tr><th class=\"text\">load</th><th class=\"text\">variant</th>\
         <th>req bytes</th><th>&Delta;</th><th>p50 ms</th><th>&Delta;</th><th>p99 ms</th>\
         <th>&Delta;</th><th>403 rate</th><th>&Delta;</th><th>429 rate</th><th>&Delta;</th></tr>\n",
    );
    for (load, lines) in &compared {
        let base = lines[0];
        for line in lines {
            let _ = write!(
                page,
                "<tr><td class=\"text\">{}</td><td class=\"text\">{}</td>",
                escape(load),
                escape(&line.variant)
            );
            let is_base = std::ptr::eq(*line, base);
            let columns: [Column; 5] = [
                (
                    line.req_bytes_mean,
                    base.req_bytes_mean,
                    |value| format!("{value:.1}"),
                    |change| format!("{change:+.1}"),
                ),
                (line.p50_ms, base.p50_ms, ms, signed_ms),
                (line.p99_ms, base.p99_ms, ms, signed_ms),
                (line.rate_403, base.rate_403, percent, percentage_points),
                (line.rate_429, base.rate_429, percent, percentage_points),
            ];
            for (value, base_value, format_value, format_change) in columns {
                let _ = write!(page, "<td>{}</td>", format_value(value));
                if is_base {
                    page.push_str("<td class=\"note\">baseline</td>");
                } else {
                    let change = value - base_value;
                    page.push_str(&difference(change, format_change(change)));
                }
            }
            page.push_str("</tr>\n");
        }
    }
    page.push_str("</table>\n");
}

fn write_cell(page: &mut String, data: &FolderData, line: &SummaryLine) {
    let _ = writeln!(
        page,
        "<h3 id=\"cell-{}\">Cell {}: {}, {}</h3>",
        line.cell,
        line.cell,
        escape(&line.variant),
        escape(&line.load_label())
    );
    let _ = writeln!(
        page,
        "<p class=\"note\">{} requests in {:.1} s ({:.1} req/s): {} ok, {} with 403, {} with 429, \
         {} other errors, {} dropped{}</p>",
        line.requests,
        line.duration_s,
        line.achieved_rps,
        line.ok,
        line.forbidden,
        line.throttled,
        line.other_errors(),
        line.dropped,
        if line.interrupted {
            "; interrupted"
        } else {
            ""
        }
    );
    page.push_str("<div class=\"charts\">\n");
    for chart in cell_charts(data, line) {
        match chart {
            Ok(chart) => write_figure(page, &chart),
            Err(error) => {
                tracing::warn!(cell = line.cell, %error, "drawing a chart failed");
                let _ = writeln!(
                    page,
                    "<p class=\"fail\">chart not drawn: {}</p>",
                    escape(&error)
                );
            }
        }
    }
    page.push_str("</div>\n");
    write_errors(page, data, line.cell);
}

/// Draws a cell's three charts: latency over time, outcomes per second and the latency
/// distribution, with uncorrected latency beside corrected for open cells.
fn cell_charts(data: &FolderData, line: &SummaryLine) -> [Result<charts::Chart, String>; 3] {
    let seconds: Vec<&SecondLine> = data
        .seconds
        .iter()
        .filter(|second| second.cell == line.cell)
        .collect();
    let open = line.model == "open";
    let corrected_tag = hlog::cell_tag(line.cell);
    let uncorrected_tag = hlog::uncorrected_tag(line.cell);

    let mut lines = charts::latency_lines(&seconds);
    if open {
        let uncorrected = hlog_series(data, &uncorrected_tag, &corrected_tag);
        lines.extend(charts::uncorrected_lines(&uncorrected));
    }

    let mut distribution: Vec<(&'static str, &hdrhistogram::Histogram<u64>)> = Vec::new();
    if let Some(histogram) = data.sums.get(&corrected_tag) {
        distribution.push((if open { "corrected" } else { "latency" }, histogram));
    }
    if let Some(histogram) = data.sums.get(&uncorrected_tag).filter(|_| open) {
        distribution.push(("uncorrected", histogram));
    }

    [
        charts::latency_over_time(&lines),
        charts::outcomes_per_second(&seconds),
        charts::percentile_distribution(&distribution),
    ]
}

/// Writes a chart with its legend under it.
fn write_figure(page: &mut String, chart: &charts::Chart) {
    page.push_str("<figure>\n");
    page.push_str(&chart.svg);
    page.push_str("<figcaption>");
    for key in &chart.legend {
        let shape = if key.filled { "box" } else { "line" };
        let _ = write!(
            page,
            "<span class=\"key\"><span class=\"{shape}\" style=\"background: {}\"></span>{}</span>",
            key.css_color(),
            escape(key.name)
        );
    }
    page.push_str("</figcaption>\n</figure>\n");
}

/// Returns the intervals of `tag` as `(seconds from the start of the cell's first interval to
/// this interval's end, histogram)`, leaving out intervals too short for the latency lines.
/// The cell starts with the first interval of `cell_tag`.
fn hlog_series<'a>(
    data: &'a FolderData,
    tag: &str,
    cell_tag: &str,
) -> Vec<(f64, &'a hdrhistogram::Histogram<u64>)> {
    let Some(cell_start) = data
        .intervals
        .iter()
        .find(|interval| interval.tag == cell_tag || interval.tag == tag)
        .map(|interval| interval.start)
    else {
        return Vec::new();
    };
    data.intervals
        .iter()
        .filter(|interval| {
            interval.tag == tag && interval.duration.as_secs_f64() >= charts::MIN_LINE_INTERVAL_S
        })
        .map(|interval| {
            let end = (interval.start + interval.duration)
                .duration_since(cell_start)
                .unwrap_or_default();
            (end.as_secs_f64(), &interval.histogram)
        })
        .collect()
}

fn write_errors(page: &mut String, data: &FolderData, cell: usize) {
    let errors: Vec<_> = data
        .errors
        .iter()
        .filter(|error| error.cell == cell)
        .collect();
    if errors.is_empty() {
        return;
    }
    page.push_str(
        "<table>\n<tr><th class=\"text\">outcome</th><th>status</th><th class=\"text\">code</th>\
         <th>count</th><th class=\"text\">first message</th></tr>\n",
    );
    for error in errors {
        let _ = writeln!(
            page,
            "<tr><td class=\"text\">{}</td><td>{}</td><td class=\"text\">{}</td><td>{}</td>\
             <td class=\"text message\">{}</td></tr>",
            escape(&error.outcome),
            error.status,
            escape(&error.code),
            error.count,
            escape(&error.message)
        );
    }
    page.push_str("</table>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_covers_markup_characters() {
        assert_eq!(
            escape("<script>alert('x') & \"y\"</script>"),
            "&lt;script&gt;alert(&#39;x&#39;) &amp; &quot;y&quot;&lt;/script&gt;"
        );
    }

    #[test]
    fn milliseconds_keep_three_digits() {
        assert_eq!(ms(0.123), "0.12");
        assert_eq!(ms(24.31), "24.3");
        assert_eq!(ms(3102.7), "3103");
    }
}
