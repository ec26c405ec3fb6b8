//! volley against a rate limiter nobody here wrote: nginx's `limit_req` at 50 requests per
//! second in front of a fixed answer. The 429s volley counts must equal the 429s in nginx's
//! access log, and `volley capacity` must find the limit within 10%.
//!
//! nginx comes from Debian's packages (`.ci/run` installs it). Where it is missing the tests
//! print why and pass without checking anything.

mod support;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use support::*;

const NGINX: &str = "/usr/sbin/nginx";

/// An nginx started for one test, stopped by PID when dropped.
struct Nginx {
    child: Child,
    port: u16,
    access_log: PathBuf,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // The master process stops its workers on SIGTERM.
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts nginx with a limited front server that proxies to a fixed answer, because
/// `return` runs before `limit_req` and would bypass it.
fn start_nginx(dir: &Path) -> Option<Nginx> {
    if !Path::new(NGINX).exists() {
        eprintln!("skipped: {NGINX} is missing; install Debian's nginx package to run this check");
        return None;
    }
    let port = free_port();
    let backend = free_port();
    let access_log = dir.join("access.log");
    let config = format!(
        r#"
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    log_format statuses '$status';
    limit_req_zone $server_port zone=fixed:1m rate=50r/s;
    limit_req_status 429;
    server {{
        listen 127.0.0.1:{port};
        access_log {log} statuses;
        location / {{
            limit_req zone=fixed burst=5 nodelay;
            proxy_pass http://127.0.0.1:{backend};
        }}
    }}
    server {{
        listen 127.0.0.1:{backend};
        location / {{
            default_type application/json;
            return 200 '{{"ok":true}}';
        }}
    }}
}}
"#,
        dir = dir.display(),
        log = access_log.display(),
    );
    let config_path = write_file(dir, "nginx.conf", &config);
    let child = Command::new(NGINX)
        .args([
            "-p",
            &dir.display().to_string(),
            "-c",
            &config_path.display().to_string(),
            "-g",
            "daemon off;",
        ])
        .spawn()
        .expect("nginx starts");
    let nginx = Nginx {
        child,
        port,
        access_log,
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "nginx did not listen on {port}: {:?}",
            std::fs::read_to_string(dir.join("error.log"))
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Some(nginx)
}

fn scenario(port: u16, load: &str) -> String {
    format!(
        "name = \"nginx\"\n[target]\nurl = \"http://127.0.0.1:{port}\"\n[request]\npath = \"/\"\nbody = '{{\"id\": \"{{{{seq}}}}\"}}'\n[load]\n{load}\n"
    )
}

fn logged_statuses(log: &Path) -> (u64, u64) {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let throttled = lines.iter().filter(|line| line.trim() == "429").count() as u64;
    (lines.len() as u64, throttled)
}

#[test]
fn throttled_count_matches_nginx_log() {
    let dir = tempfile::tempdir().unwrap();
    let Some(nginx) = start_nginx(dir.path()) else {
        return;
    };
    let load = "model = \"open\"\nrate = 150\nmax_in_flight = 50\nduration = \"10s\"";
    let path = write_file(dir.path(), "s.toml", &scenario(nginx.port, load));
    let out = dir.path().join("report");
    let output = volley_blocking(&[
        "run".into(),
        path.display().to_string(),
        "--out".into(),
        out.display().to_string(),
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    // nginx writes a log line when the response is sent; give the last ones a moment.
    std::thread::sleep(Duration::from_millis(300));

    let row = &read_csv(&out.join("summary.csv"))[0];
    let (logged, logged_429) = logged_statuses(&nginx.access_log);
    assert_eq!(
        number(row, "requests") as u64,
        logged,
        "requests vs nginx log lines"
    );
    assert_eq!(
        number(row, "throttled") as u64,
        logged_429,
        "429s vs nginx log"
    );
    assert_eq!(number(row, "requests") as u64, 1500);
    // 50 per second plus a burst of 5 over 10 s: about 505 pass and the rest are 429.
    let ok = number(row, "ok");
    assert!((450.0..=560.0).contains(&ok), "{ok} passed nginx's 50 r/s");
}

#[test]
fn capacity_finds_nginx_limit() {
    let dir = tempfile::tempdir().unwrap();
    let Some(nginx) = start_nginx(dir.path()) else {
        return;
    };
    let load = "concurrency = 1\nduration = \"1s\"\npause = \"500ms\"";
    let path = write_file(dir.path(), "s.toml", &scenario(nginx.port, load));
    let out = dir.path().join("report");
    let output = volley_blocking(&[
        "capacity".into(),
        path.display().to_string(),
        "--until".into(),
        "rate_429 < 0.01".into(),
        "--start".into(),
        "10".into(),
        "--step-duration".into(),
        "4s".into(),
        "--out".into(),
        out.display().to_string(),
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let found: f64 = stdout
        .lines()
        .last()
        .and_then(|line| line.strip_prefix("capacity: "))
        .and_then(|rest| rest.strip_suffix(" req/s"))
        .unwrap_or_else(|| panic!("no capacity line:\n{stdout}"))
        .parse()
        .unwrap();
    assert!(
        (45.0..=55.0).contains(&found),
        "found {found} req/s for nginx's 50 r/s\n{stdout}"
    );
}
