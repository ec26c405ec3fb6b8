//! Bad targets: refused connections, a server that never answers, huge and endless bodies,
//! resets during a run and a target that goes away and comes back.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use support::*;

fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn plain_scenario(base_url: &str, load: &str) -> String {
    format!(
        "name = \"bad\"\n[target]\nurl = \"{base_url}\"\n[request]\npath = \"/x\"\nbody = '{{}}'\n[load]\n{load}\n"
    )
}

fn run(dir: &std::path::Path, text: &str) -> (std::process::Output, std::path::PathBuf) {
    let path = write_file(dir, "s.toml", text);
    let out = dir.join("report");
    let output = volley_blocking(&[
        "run".into(),
        path.display().to_string(),
        "--out".into(),
        out.display().to_string(),
    ]);
    (output, out)
}

/// Serves each connection on its own thread with `answer`, which gets the stream after the
/// request head was read.
fn raw_server(answer: fn(TcpStream)) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut stream = stream;
                let mut head = [0u8; 4096];
                if stream.read(&mut head).is_ok() {
                    answer(stream);
                }
            });
        }
    });
    address
}

#[test]
fn refused_token_endpoint_exits_1_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let port = closed_port();
    let text = format!(
        "name = \"bad\"\n[target]\nurl = \"http://127.0.0.1:{port}\"\n[auth]\ntype = \"oauth2-client-credentials\"\ntoken_url = \"{{target}}/oauth/token\"\nclient_id = \"c\"\nclient_secret = \"hunter2-secret\"\n[request]\npath = \"/x\"\n[load]\nconcurrency = 1\nduration = \"1s\"\n"
    );
    let (output, _) = run(dir.path(), &text);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!(
            "token request to http://127.0.0.1:{port}/oauth/token failed"
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2-secret"), "{stderr}");
}

#[test]
fn refused_target_exits_1_when_nothing_was_sent() {
    let dir = tempfile::tempdir().unwrap();
    let port = closed_port();
    let (output, out) = run(
        dir.path(),
        &plain_scenario(
            &format!("http://127.0.0.1:{port}"),
            "concurrency = 2\nduration = \"1s\"",
        ),
    );
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no request reached"), "{stderr}");
    assert!(stderr.contains("connection_refused"), "{stderr}");
    let row = &read_csv(&out.join("summary.csv"))[0];
    assert_eq!(
        row["requests"], row["connect_error"],
        "every attempt is counted as connect_error"
    );
    assert!(number(row, "connect_error") > 0.0);
}

#[test]
fn silent_server_gives_timeouts() {
    let address = raw_server(|stream| {
        std::thread::sleep(Duration::from_secs(20));
        drop(stream);
    });
    let dir = tempfile::tempdir().unwrap();
    let (output, out) = run(
        dir.path(),
        &plain_scenario(
            &format!("http://{address}"),
            "concurrency = 1\niterations = 3\ntimeout = \"300ms\"",
        ),
    );
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let row = &read_csv(&out.join("summary.csv"))[0];
    assert_eq!(row["timeout"], "3");
    let max = number(row, "max_ms");
    assert!(
        (300.0..2000.0).contains(&max),
        "a timeout is recorded at about 300 ms, not {max}"
    );
    let errors = read_csv(&out.join("errors.csv"));
    assert_eq!(errors[0]["code"], "timed_out");
}

#[test]
fn huge_body_is_counted_and_discarded() {
    let address = raw_server(|mut stream| {
        let size = 64 * 1024 * 1024;
        let head =
            format!("HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: {size}\r\n\r\n");
        if stream.write_all(head.as_bytes()).is_err() {
            return;
        }
        let chunk = vec![b'x'; 1024 * 1024];
        for _ in 0..64 {
            if stream.write_all(&chunk).is_err() {
                return;
            }
        }
        std::thread::sleep(Duration::from_secs(5));
    });
    let dir = tempfile::tempdir().unwrap();
    let (output, out) = run(
        dir.path(),
        &plain_scenario(
            &format!("http://{address}"),
            "concurrency = 1\niterations = 2\ntimeout = \"20s\"",
        ),
    );
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let row = &read_csv(&out.join("summary.csv"))[0];
    assert_eq!(row["ok"], "2");
    assert_eq!(number(row, "resp_bytes_mean"), 64.0 * 1024.0 * 1024.0);
}

#[test]
fn endless_body_times_out() {
    let address = raw_server(|mut stream| {
        if stream
            .write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
            .is_err()
        {
            return;
        }
        let chunk = format!("{:x}\r\n{}\r\n", 4096, "y".repeat(4096));
        while stream.write_all(chunk.as_bytes()).is_ok() {}
    });
    let dir = tempfile::tempdir().unwrap();
    let (output, out) = run(
        dir.path(),
        &plain_scenario(
            &format!("http://{address}"),
            "concurrency = 1\niterations = 1\ntimeout = \"1s\"",
        ),
    );
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let row = &read_csv(&out.join("summary.csv"))[0];
    assert_eq!(row["timeout"], "1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resets_are_counted_as_connect_errors() {
    let server = start_mock(|config| {
        config.rate_limit = "100000/1s".parse().unwrap();
        config.reset_rate = 0.2;
        config.error_rate = 0.1;
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let text = plain_scenario(&server.base_url(), "concurrency = 4\niterations = 400")
        .replace("[request]\npath = \"/x\"", "[auth]\ntype = \"oauth2-client-credentials\"\ntoken_url = \"{target}/oauth/token\"\nclient_id = \"demo-client\"\nclient_secret = \"demo-secret\"\n[request]\npath = \"/api/v2/integrations/actions/demo-action/execute\"")
        .replace("body = '{}'", &format!("body = '{{\"org_id\": \"{}\"}}'", volley::mock::DEMO_HOME_ORG));
    let dir_path = dir.path().to_path_buf();
    let (output, out) = tokio::task::spawn_blocking(move || run(&dir_path, &text))
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let row = &read_csv(&out.join("summary.csv"))[0];
    let stats = server.stats();
    assert_eq!(row["requests"], "400");
    assert_eq!(number(row, "connect_error") as u64, stats.execute_resets());
    assert_eq!(
        number(row, "server_error") as u64,
        stats.execute_status(500)
    );
    assert_eq!(number(row, "ok") as u64, stats.execute_status(200));
    assert!(
        stats.execute_resets() > 20,
        "a 20% reset rate over 400 requests"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_recovers_when_target_returns() {
    let first = start_mock(|config| config.rate_limit = "100000/1s".parse().unwrap()).await;
    let address = first.addr();
    let dir = tempfile::tempdir().unwrap();
    let text = plain_scenario(&first.base_url(), "concurrency = 2\nduration = \"6s\"")
        .replace(
            "path = \"/x\"",
            "path = \"/api/v2/integrations/actions/demo-action/execute\"",
        )
        .replace(
            "[request]",
            "[auth]\ntype = \"bearer\"\ntoken = \"not-a-real-token\"\n[request]",
        );
    let dir_path = dir.path().to_path_buf();
    let runner = tokio::task::spawn_blocking(move || run(&dir_path, &text));
    tokio::time::sleep(Duration::from_secs(2)).await;
    first.shutdown().await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let second = start_mock(|config| {
        config.listen = address;
        config.rate_limit = "100000/1s".parse().unwrap();
    })
    .await;
    let (output, out) = runner.await.unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let row = &read_csv(&out.join("summary.csv"))[0];
    // The bearer token is unknown to the mock, so every answered request is a 401.
    assert!(
        number(row, "connect_error") > 0.0,
        "requests failed while the target was down: {row:?}"
    );
    assert!(
        second.stats().execute_status(401) > 0,
        "requests reached the target after it came back"
    );
    let series = read_csv(&out.join("timeseries.csv"));
    let last = series
        .iter()
        .rev()
        .find(|row| row["second"] != "7")
        .unwrap();
    assert!(
        number(last, "client_error") > 0.0,
        "the last seconds have answers again: {last:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsendable_rows_are_counted_as_other_error() {
    let server = start_mock(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    write_file(dir.path(), "rows.csv", "id\n1\na b\n");
    let text = plain_scenario(&server.base_url(), "concurrency = 1\niterations = 4")
        .replace("path = \"/x\"", "path = \"/x/{{row.id}}\"")
        .replace("[load]", "[data]\nfile = \"rows.csv\"\n[load]");
    let dir_path = dir.path().to_path_buf();
    let (output, out) = tokio::task::spawn_blocking(move || run(&dir_path, &text))
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let row = &read_csv(&out.join("summary.csv"))[0];
    assert_eq!(row["other_error"], "2", "{row:?}");
    assert_eq!(
        row["client_error"], "2",
        "the valid rows reach the server: {row:?}"
    );
    let errors = read_csv(&out.join("errors.csv"));
    let invalid = errors
        .iter()
        .find(|error| error["code"] == "invalid_request")
        .unwrap();
    assert!(invalid["message"].contains("/x/a b"), "{invalid:?}");
}
