//! The table printed at the end of a run: one row per cell, for people.

use super::summary::SummaryRow;
use crate::units::format_latency_us;

/// Renders the summary rows as an aligned text table.
pub fn render(rows: &[SummaryRow]) -> String {
    let verdicts = rows.iter().any(|row| !row.verdict.is_empty());
    let mut header = vec![
        "cell",
        "variant",
        "load",
        "requests",
        "ok",
        "403",
        "429",
        "other",
        "req/s",
        "p50",
        "p99",
        "req bytes",
    ];
    if verdicts {
        header.push("verdict");
    }
    let mut lines: Vec<Vec<String>> = vec![header.iter().map(|text| text.to_string()).collect()];
    for row in rows {
        let load = match (row.model, row.target_rps) {
            ("open", Some(rate)) => format!("{rate} req/s"),
            (_, Some(rate)) => format!("c={} cap {rate}/s", row.concurrency),
            _ => format!("c={}", row.concurrency),
        };
        let other = row.requests - row.ok - row.forbidden - row.throttled;
        let mut line = vec![
            row.cell.to_string(),
            row.variant.clone(),
            load,
            row.requests.to_string(),
            row.ok.to_string(),
            row.forbidden.to_string(),
            row.throttled.to_string(),
            other.to_string(),
            format!("{:.1}", row.achieved_rps),
            format_latency_us(row.p50_ms * 1000.0),
            format_latency_us(row.p99_ms * 1000.0),
            format!("{:.1}", row.req_bytes_mean),
        ];
        if verdicts {
            line.push(if row.verdict.starts_with("fail") {
                format!("FAIL {}", &row.verdict[4..].trim_start_matches(':').trim())
            } else {
                row.verdict.clone()
            });
        }
        if row.interrupted {
            line[0].push('*');
        }
        lines.push(line);
    }
    let columns = lines[0].len();
    let widths: Vec<usize> = (0..columns)
        .map(|column| {
            lines
                .iter()
                .map(|line| line[column].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for line in &lines {
        let cells: Vec<String> = line
            .iter()
            .enumerate()
            .map(|(column, text)| {
                // Text columns align left, numbers right.
                if column == 1 || column == 2 || column == columns - 1 && verdicts {
                    format!("{text:<width$}", width = widths[column])
                } else {
                    format!("{text:>width$}", width = widths[column])
                }
            })
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    // One line per distinct announcement, naming the cells where 429s appeared.
    let mut announced: Vec<(String, Vec<String>)> = Vec::new();
    for row in rows.iter().filter(|row| row.throttled > 0) {
        let seen = crate::metrics::RateLimitSeen {
            limit: row.ratelimit_limit,
            window_s: row.ratelimit_window_s,
            min_remaining: row.ratelimit_min_remaining,
        };
        let Some(text) = seen.describe() else {
            continue;
        };
        match announced.iter_mut().find(|(known, _)| *known == text) {
            Some((_, cells)) => cells.push(row.cell.to_string()),
            None => announced.push((text, vec![row.cell.to_string()])),
        }
    }
    for (text, cells) in announced {
        let noun = if cells.len() == 1 { "cell" } else { "cells" };
        out.push_str(&format!("429s in {noun} {}: {text}\n", cells.join(", ")));
    }
    if rows.iter().any(|row| row.retries > 0) {
        let retries: u64 = rows.iter().map(|row| row.retries).sum();
        out.push_str(&format!(
            "{retries} retries after 429 responses (not counted as requests)\n"
        ));
    }
    if rows.iter().any(|row| row.interrupted) {
        out.push_str("* interrupted before the cell's end\n");
    }
    out
}
