//! report.html and `volley report`: the page shows every variant and cell with inline SVG
//! charts, loads nothing from the network, escapes scenario text, and renders again from the
//! data files alone.

mod support;

use std::path::{Path, PathBuf};

use support::*;

/// A variant name that would run a script if the page did not escape it.
const HOSTILE: &str = "<img src=x onerror=alert(1)>&\"'";

/// Runs a two-variant scenario (one with a hostile name) against a fresh mock and returns
/// the temporary folder and the report folder.
async fn run_report(load: &str) -> (tempfile::TempDir, PathBuf) {
    let server = start_mock(|config| {
        config.rate_limit = "100000/1s".parse().unwrap();
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let scenario = format!(
        r#"
name = "html"
[target]
url = "{base}"
[auth]
type = "none"
[request]
method = "POST"
path = "/api/v2/integrations/actions/demo-action/execute"
body = '{{"org_id": "x"}}'
[[variant]]
name = "plain"
[[variant]]
name = '''{HOSTILE}'''
body = '{{"org_id": "x", "extra": "{{{{pad(100)}}}}"}}'
[load]
{load}
"#,
        base = server.base_url()
    );
    let path = write_file(dir.path(), "s.toml", &scenario);
    let out = dir.path().join("report");
    let mut args = run_args(&path, &out);
    args.push("--quiet".into());
    let output = volley(args).await;
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    server.shutdown().await;
    (dir, out)
}

fn page(folder: &Path) -> String {
    std::fs::read_to_string(folder.join("report.html")).expect("report.html is written")
}

/// Returns every value of a `src` or `href` attribute in `html`.
fn link_values(html: &str) -> Vec<String> {
    let lower = html.to_ascii_lowercase();
    let mut values = Vec::new();
    for attribute in ["src=", "href="] {
        for (index, _) in lower.match_indices(attribute) {
            let rest = &html[index + attribute.len()..];
            let value: String = match rest.chars().next() {
                Some(quote @ ('"' | '\'')) => {
                    rest[1..].chars().take_while(|c| *c != quote).collect()
                }
                _ => rest
                    .chars()
                    .take_while(|c| !c.is_whitespace() && *c != '>')
                    .collect(),
            };
            values.push(value);
        }
    }
    values
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_shows_variants_and_charts() {
    let (_dir, out) = run_report("concurrency = [1, 2]\nduration = \"1s\"\npause = \"0s\"").await;
    let html = page(&out);
    let rows = read_csv(&out.join("summary.csv"));
    assert_eq!(rows.len(), 4);

    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains("plain"));
    assert!(
        html.contains("&lt;img src=x onerror=alert(1)&gt;&amp;&quot;&#39;"),
        "the hostile variant name is shown escaped"
    );
    assert!(
        !html.contains(HOSTILE),
        "the hostile name appears unescaped"
    );
    assert!(
        !html.contains("<img"),
        "no scenario text becomes an element"
    );
    for row in &rows {
        let heading = format!("<h3 id=\"cell-{}\">", row["cell"]);
        assert!(
            html.contains(&heading),
            "a section for cell {}",
            row["cell"]
        );
    }
    assert_eq!(
        html.matches("<svg").count(),
        3 * rows.len(),
        "three charts per cell"
    );
    for title in [
        "Latency over time",
        "Outcomes per second",
        "Latency by percentile",
    ] {
        assert_eq!(
            html.matches(title).count(),
            rows.len(),
            "{title} once per cell"
        );
    }
    assert!(html.contains("Variant comparison"));
    assert!(html.contains("baseline"));
    // `, "extra": ""` and the 100 padding characters.
    assert!(
        html.contains("+113.0"),
        "the padded variant sends 113 more bytes per request"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_loads_nothing_external() {
    let (_dir, out) = run_report("concurrency = [1]\nduration = \"1s\"\npause = \"0s\"").await;
    let html = page(&out);
    for value in link_values(&html) {
        assert!(
            !value.contains("//") && !value.to_ascii_lowercase().starts_with("data:"),
            "external or embedded resource: {value}"
        );
    }
    let lower = html.to_ascii_lowercase();
    for pattern in ["<script", "<link", "<iframe", "@import", "url("] {
        assert!(!lower.contains(pattern), "the page contains {pattern}");
    }
    assert!(
        html.contains("Content-Security-Policy\" content=\"default-src 'none'"),
        "a policy blocks every fetch"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_cells_show_uncorrected_latency() {
    let load = "model = \"open\"\nrate = 50\nmax_in_flight = 4\nduration = \"1s\"\npause = \"0s\"";
    let (_dir, out) = run_report(load).await;
    let html = page(&out);
    assert!(html.contains("<th>p99 uncorrected</th>"));
    // Each open cell draws uncorrected lines over time and an uncorrected distribution.
    assert_eq!(html.matches(">p99 uncorrected</span>").count(), 2);
    assert_eq!(html.matches(">uncorrected</span>").count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_command_renders_page_again() {
    let (_dir, out) = run_report("concurrency = [1]\nduration = \"1s\"\npause = \"0s\"").await;
    let first = page(&out);
    std::fs::remove_file(out.join("report.html")).unwrap();
    let output = volley(vec!["report".into(), out.display().to_string()]).await;
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("report.html"), "{stdout}");
    assert_eq!(
        page(&out),
        first,
        "the page depends on the data files alone"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_command_names_missing_folder() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-report");
    let output = volley(vec!["report".into(), missing.display().to_string()]).await;
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&missing.display().to_string()), "{stderr}");
    assert!(stderr.contains("not found"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_command_names_broken_files() {
    let (_dir, out) = run_report("concurrency = [1]\nduration = \"1s\"\npause = \"0s\"").await;
    let report = |out: PathBuf| async move {
        let output = volley(vec!["report".into(), out.display().to_string()]).await;
        assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
        String::from_utf8_lossy(&output.stderr).to_string()
    };

    let hlog = out.join("latency.hlog");
    let mut text = std::fs::read_to_string(&hlog).unwrap();
    text.push_str("not a histogram line\n");
    std::fs::write(&hlog, text).unwrap();
    let stderr = report(out.clone()).await;
    assert!(stderr.contains("latency.hlog"), "{stderr}");
    assert!(
        stderr.contains("is not an HdrHistogram interval log line"),
        "{stderr}"
    );
    assert_eq!(
        stderr.matches("latency.hlog").count(),
        1,
        "the message names the file once: {stderr}"
    );

    std::fs::remove_file(out.join("timeseries.csv")).unwrap();
    let stderr = report(out.clone()).await;
    assert!(stderr.contains("timeseries.csv: not found"), "{stderr}");

    std::fs::write(out.join("summary.csv"), "cell,variant\n1,x\n").unwrap();
    let stderr = report(out.clone()).await;
    assert!(stderr.contains("summary.csv: invalid CSV"), "{stderr}");
}
