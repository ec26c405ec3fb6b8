//! https targets: certificates are verified by default, and `insecure = true` turns the
//! check off with a warning. The server is a TLS listener with a self-signed certificate made
//! in the test.

mod support;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use support::*;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

/// Serves `200 {"ok":true}` over TLS on a free loopback port with a certificate for localhost.
async fn tls_server() -> SocketAddr {
    volley::init_crypto();
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        certified.signing_key.serialize_der(),
    ));
    let config = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![certified.cert.der().clone()], key)
        .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(stream) = acceptor.accept(stream).await else {
                    return;
                };
                let service = service_fn(|_request| async {
                    Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from_static(
                        b"{\"ok\":true}",
                    ))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    address
}

fn scenario(port: u16, insecure: bool) -> String {
    format!(
        "name = \"tls\"\n[target]\nurl = \"https://localhost:{port}\"\ninsecure = {insecure}\n[request]\npath = \"/x\"\nbody = '{{}}'\n[load]\nconcurrency = 1\niterations = 3\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_signed_certificate_is_rejected_by_default() {
    let address = tls_server().await;
    let dir = tempfile::tempdir().unwrap();
    let path = write_file(dir.path(), "s.toml", &scenario(address.port(), false));
    let out = dir.path().join("report");
    let output = volley(vec![
        "run".into(),
        path.display().to_string(),
        "--out".into(),
        out.display().to_string(),
    ])
    .await;
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("tls_handshake_failed"), "{stderr}");
    let row = &read_csv(&out.join("summary.csv"))[0];
    assert_eq!(row["connect_error"], "3");
    let errors = read_csv(&out.join("errors.csv"));
    assert!(
        errors[0]["message"].to_lowercase().contains("certificate"),
        "{:?}",
        errors[0]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insecure_accepts_self_signed_with_warning() {
    let address = tls_server().await;
    let dir = tempfile::tempdir().unwrap();
    let path = write_file(dir.path(), "s.toml", &scenario(address.port(), true));
    let out = dir.path().join("report");
    let output = volley(vec![
        "run".into(),
        path.display().to_string(),
        "--out".into(),
        out.display().to_string(),
    ])
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("warning: target.insecure is on"),
        "{stderr}"
    );
    let row = &read_csv(&out.join("summary.csv"))[0];
    assert_eq!(row["ok"], "3");
    assert_eq!(number(row, "resp_bytes_mean"), 11.0);
}
