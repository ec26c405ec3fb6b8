//! report.html in a real browser: headless Chromium opens the page of a run and must log no
//! console message (a script error, a blocked fetch or a policy violation all log one), and
//! writes a screenshot. Skips with a message when Chromium is not installed.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::*;

/// Returns the Chromium binary: `VOLLEY_CHROMIUM`, else Debian's `/usr/bin/chromium`.
fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("VOLLEY_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    if path.is_file() {
        Some(path)
    } else {
        eprintln!(
            "\n*** SKIPPED: {} not found, so report.html is not checked in a browser \
             (apt-get install chromium, or set VOLLEY_CHROMIUM) ***\n",
            path.display()
        );
        None
    }
}

/// The console output of one page visit.
struct Visit {
    /// Console lines Chromium wrote to stderr.
    console: Vec<String>,
    /// The whole stderr, for failure messages.
    stderr: String,
}

/// Opens `page` in headless Chromium with a fresh profile, writes a screenshot of `size`
/// (width, height in CSS pixels) to `screenshot` and returns the console lines.
fn visit(chromium: &Path, page: &Path, screenshot: &Path, size: (u32, u32)) -> Visit {
    let profile = tempfile::tempdir().unwrap();
    let url = format!("file://{}", page.canonicalize().unwrap().display());
    let mut child = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--window-size={},{}", size.0, size.1))
        .arg(format!("--screenshot={}", screenshot.display()))
        .arg(&url)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("chromium starts");
    let stderr_pipe = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut { stderr_pipe }, &mut text).unwrap();
        text
    });
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("chromium did not finish within 90 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let stderr = reader.join().unwrap();
    // Chromium 156 (Debian 12) logs each console message as `...:INFO:CONSOLE:LINE] "text", source: URL`.
    let console = stderr
        .lines()
        .filter(|line| line.contains(":CONSOLE"))
        .map(str::to_string)
        .collect();
    Visit { console, stderr }
}

fn assert_png(path: &Path) {
    let bytes = std::fs::read(path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    assert!(
        bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
        "{} is a PNG",
        path.display()
    );
    assert!(bytes.len() > 1000, "the screenshot has content");
}

#[test]
fn broken_page_logs_console_errors() {
    let Some(chromium) = chromium() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let page = write_file(
        dir.path(),
        "broken.html",
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; script-src 'unsafe-inline'\">\
         <title>broken</title></head><body><p>broken</p>\
         <img src=\"http://127.0.0.1:9/blocked.png\">\
         <script>throw new Error(\"deliberate failure\");</script></body></html>",
    );
    let screenshot = dir.path().join("broken.png");
    let visit = visit(&chromium, &page, &screenshot, (400, 300));
    assert_png(&screenshot);
    let console = visit.console.join("\n");
    assert!(
        console.contains("deliberate failure"),
        "a thrown error must show as a console line:\n{}",
        visit.stderr
    );
    assert!(
        console.contains("Content Security Policy"),
        "a blocked fetch must show as a console line:\n{}",
        visit.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_page_logs_nothing() {
    let Some(chromium) = chromium() else {
        return;
    };
    let server = start_mock(|config| {
        config.rate_limit = "100/1s".parse().unwrap();
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    write_file(dir.path(), "rows.csv", ROWS);
    let load =
        "model = \"open\"\nrate = [40, 150]\nmax_in_flight = 8\nduration = \"2s\"\npause = \"0s\"";
    let scenario = write_file(
        dir.path(),
        "s.toml",
        &org_scenario(&server.base_url(), load),
    );
    let out = dir.path().join("report");
    let mut args = run_args(&scenario, &out);
    args.push("--quiet".into());
    let output = volley(args).await;
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    server.shutdown().await;

    let screenshot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("report-screenshot.png");
    let page = out.join("report.html");
    let visit = tokio::task::spawn_blocking(move || {
        let visit = visit(&chromium, &page, &screenshot, (1400, 2400));
        assert_png(&screenshot);
        eprintln!("screenshot of report.html: {}", screenshot.display());
        visit
    })
    .await
    .unwrap();
    assert!(
        visit.console.is_empty(),
        "report.html logged console messages:\n{}",
        visit.console.join("\n")
    );
}
