//! The load path's HTTP/1.1 transport: one hyper connection per worker, over TCP or rustls.
//!
//! hyper's per-connection client skips the pooling and URL handling of higher-level clients,
//! which matters at tens of thousands of requests per second. A worker keeps its connection
//! alive across requests and reconnects after a close, an error or a timeout.
//!
//! The worker's own task drives hyper's connection future while it awaits a response, instead
//! of a task spawned per connection. hyper then hands requests and responses between two
//! futures of one task, and no request costs a wake-up of a second task in each direction.

use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use http::header::HeaderValue;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::ServerName;

use crate::metrics::{ErrorDetail, Outcome};

/// How much of an error response's body is kept to read its `code` and `message`.
const ERROR_BODY_SAMPLE: usize = 4096;

/// Where the load goes: host, port and, for https, the TLS settings.
pub struct Endpoint {
    host: String,
    port: u16,
    authority: HeaderValue,
    tls: Option<(TlsConnector, ServerName<'static>)>,
    /// Whether responses carry [`Response::head_at`], which `--jtl` reports as latency.
    timings: bool,
}

impl Endpoint {
    /// Reads an `http://` or `https://` base URL; `insecure` turns certificate checks off.
    pub fn from_url(url: &str, insecure: bool) -> Result<Endpoint, String> {
        let uri: http::Uri = url
            .parse()
            .map_err(|_| format!("invalid target URL \"{url}\""))?;
        let host = uri
            .host()
            .ok_or_else(|| format!("the target URL \"{url}\" has no host"))?;
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => {
                return Err(format!(
                    "the target URL \"{url}\" must start with http:// or https://"
                ));
            }
        };
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let authority = uri.authority().map_or(host, |authority| authority.as_str());
        let authority = HeaderValue::from_str(authority)
            .map_err(|_| format!("the target URL \"{url}\" has an invalid host"))?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let tls = if https {
            let name = ServerName::try_from(host.clone()).map_err(|_| {
                format!("the target host \"{host}\" is not a valid TLS server name")
            })?;
            Some((TlsConnector::from(Arc::new(tls_config(insecure)?)), name))
        } else {
            None
        };
        Ok(Endpoint {
            host,
            port,
            authority,
            tls,
            timings: false,
        })
    }

    /// Makes every response record when its head arrived, at the cost of one clock read per
    /// request.
    pub fn record_timings(&mut self) {
        self.timings = true;
    }

    /// Returns the `Host` header value.
    pub fn authority(&self) -> &HeaderValue {
        &self.authority
    }

    /// Opens a connection and spawns its driver task.
    pub async fn connect(&self) -> Result<Connection, TransportError> {
        let stream = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|error| TransportError::connect("connect", &error))?;
        // Small requests must not wait for Nagle's algorithm.
        stream
            .set_nodelay(true)
            .map_err(|error| TransportError::connect("connect", &error))?;
        match &self.tls {
            None => handshake(stream).await,
            Some((connector, name)) => {
                let stream = connector
                    .connect(name.clone(), stream)
                    .await
                    .map_err(|error| TransportError::connect("tls", &error))?;
                handshake(stream).await
            }
        }
    }
}

fn tls_config(insecure: bool) -> Result<tokio_rustls::rustls::ClientConfig, String> {
    crate::init_crypto();
    let mut config = if insecure {
        tokio_rustls::rustls::ClientConfig::builder()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(insecure::AcceptAnyCertificate::new()))
            .with_no_client_auth()
    } else {
        use rustls_platform_verifier::ConfigVerifierExt;
        tokio_rustls::rustls::ClientConfig::with_platform_verifier()
            .map_err(|error| format!("cannot load the system's TLS roots: {error}"))?
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

async fn handshake<S>(stream: S) -> Result<Connection, TransportError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|error| TransportError::from_hyper(&error))?;
    Ok(Connection {
        sender,
        driver: Box::pin(connection),
        finished: false,
    })
}

/// hyper's connection future: it writes the requests and reads the responses.
type Driver = Pin<Box<dyn Future<Output = hyper::Result<()>> + Send>>;

/// One keep-alive connection. Dropping it closes the socket at once, even with a response
/// still on its way.
pub struct Connection {
    sender: SendRequest<Full<Bytes>>,
    /// Polled only by [`drive`], so only while the owning worker awaits a request
    /// on this connection. An idle connection notices that the server closed it when the
    /// next request is sent, which then goes out again on a new connection.
    driver: Driver,
    /// Whether `driver` has completed; a completed future must not be polled again.
    finished: bool,
}

impl Connection {
    fn is_closed(&self) -> bool {
        self.finished || self.sender.is_closed()
    }
}

/// Runs `work`, which uses the connection's sender, while polling the connection future that
/// does the reading and writing `work` waits for.
async fn drive<F: Future>(driver: &mut Driver, finished: &mut bool, work: F) -> F::Output {
    let mut work = pin!(work);
    poll_fn(|context| {
        // The driver goes first, so that a response it reads now completes `work` in the
        // same poll.
        if !*finished && let Poll::Ready(result) = driver.as_mut().poll(context) {
            *finished = true;
            if let Err(error) = result {
                tracing::trace!(%error, "connection closed with an error");
            }
        }
        // Once the driver has completed, hyper has closed the channels that `work` waits on,
        // so `work` finishes without it.
        work.as_mut().poll(context)
    })
    .await
}

/// A request that ended without a response, with what the report shows for it.
#[derive(Debug, Clone)]
pub struct TransportError {
    /// The outcome to count.
    pub outcome: Outcome,
    /// A short kind, such as `connection_refused`, used as the error code in reports.
    pub code: &'static str,
    /// A readable description.
    pub message: String,
}

impl TransportError {
    fn connect(stage: &'static str, error: &std::io::Error) -> TransportError {
        let code = match (stage, error.kind()) {
            ("tls", _) => "tls_handshake_failed",
            (_, std::io::ErrorKind::ConnectionRefused) => "connection_refused",
            (_, std::io::ErrorKind::ConnectionReset) => "connection_reset",
            (_, std::io::ErrorKind::TimedOut) => "connect_timed_out",
            _ => "connect_failed",
        };
        TransportError {
            outcome: Outcome::ConnectError,
            code,
            message: error.to_string(),
        }
    }

    fn from_hyper(error: &hyper::Error) -> TransportError {
        if error.is_parse() || error.is_parse_status() || error.is_parse_too_large() {
            return TransportError {
                outcome: Outcome::OtherError,
                code: "invalid_response",
                message: error.to_string(),
            };
        }
        let code = if error.is_incomplete_message() {
            "closed_before_response"
        } else if io_kind(error) == Some(std::io::ErrorKind::ConnectionReset) {
            "connection_reset"
        } else {
            "connection_closed"
        };
        TransportError {
            outcome: Outcome::ConnectError,
            code,
            message: error.to_string(),
        }
    }

    /// The error for a request that did not finish within `timeout`.
    pub fn timeout(timeout: Duration) -> TransportError {
        TransportError {
            outcome: Outcome::Timeout,
            code: "timed_out",
            message: format!(
                "no complete response within {}",
                crate::units::format_duration(timeout)
            ),
        }
    }

    /// Converts into the details kept for the errors report.
    pub fn detail(&self) -> ErrorDetail {
        ErrorDetail {
            status: 0,
            code: self.code.to_string(),
            message: self.message.clone(),
            ..ErrorDetail::default()
        }
    }
}

fn io_kind(error: &hyper::Error) -> Option<std::io::ErrorKind> {
    let mut source = std::error::Error::source(error);
    while let Some(inner) = source {
        if let Some(io) = inner.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        source = inner.source();
    }
    None
}

/// A complete response.
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The headers.
    pub headers: http::HeaderMap,
    /// Body bytes received.
    pub body_bytes: u64,
    /// The start of the body, kept only for error statuses.
    pub body_sample: Vec<u8>,
    /// How long opening the connection took, when this request opened one.
    pub connect: Option<Duration>,
    /// When the status line and headers had arrived; only set when the endpoint records
    /// timings.
    pub head_at: Option<Instant>,
}

/// Sends one request on `slot`'s connection, connecting first when there is none.
///
/// A request that hyper hands back unsent (the connection closed while idle) is sent again
/// on a new connection; it was never on the wire, so it is not a second request.
pub async fn send(
    endpoint: &Endpoint,
    slot: &mut Option<Connection>,
    mut request: http::Request<Full<Bytes>>,
) -> Result<Response, TransportError> {
    let mut connect = None;
    for _ in 0..3 {
        if slot.as_ref().is_none_or(Connection::is_closed) {
            let began = Instant::now();
            // Boxed because the TCP and TLS connect futures take about 3.5 KiB, which would
            // make every request's future that large and copy it on each move.
            *slot = Some(Box::pin(endpoint.connect()).await?);
            connect = Some(began.elapsed());
        }
        let Connection {
            sender,
            driver,
            finished,
        } = slot.as_mut().expect("connected above");
        let exchange = drive(driver, finished, async move {
            if sender.ready().await.is_err() {
                return Exchange::NotReady(request);
            }
            match sender.try_send_request(request).await {
                Ok(response) => Exchange::Answered(read_response(response, endpoint.timings).await),
                Err(mut error) => match error.take_message() {
                    Some(unsent) => Exchange::Unsent(unsent),
                    None => Exchange::Answered(Err(TransportError::from_hyper(error.error()))),
                },
            }
        })
        .await;
        match exchange {
            Exchange::Answered(mut result) => {
                match &mut result {
                    Ok(response) => response.connect = connect,
                    Err(_) => *slot = None,
                }
                return result;
            }
            Exchange::NotReady(unsent) | Exchange::Unsent(unsent) => {
                *slot = None;
                request = unsent;
            }
        }
    }
    Err(TransportError {
        outcome: Outcome::ConnectError,
        code: "connection_closed",
        message: "the server closed every new connection before the request was sent".to_string(),
    })
}

/// The end of one attempt on a connection.
enum Exchange {
    /// The request was sent; the response or the error that ended it.
    Answered(Result<Response, TransportError>),
    /// The connection closed before it was ready; the request was not sent.
    NotReady(http::Request<Full<Bytes>>),
    /// hyper handed the request back unsent, because the connection closed while idle.
    Unsent(http::Request<Full<Bytes>>),
}

async fn read_response(
    response: http::Response<hyper::body::Incoming>,
    timings: bool,
) -> Result<Response, TransportError> {
    let head_at = timings.then(Instant::now);
    let (parts, mut body) = response.into_parts();
    let status = parts.status.as_u16();
    let keep_sample = status >= 400;
    let mut body_bytes = 0u64;
    let mut body_sample = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|error| TransportError::from_hyper(&error))?;
        if let Some(data) = frame.data_ref() {
            body_bytes += data.len() as u64;
            if keep_sample && body_sample.len() < ERROR_BODY_SAMPLE {
                let room = ERROR_BODY_SAMPLE - body_sample.len();
                body_sample.extend_from_slice(&data[..data.len().min(room)]);
            }
        }
    }
    Ok(Response {
        status,
        headers: parts.headers,
        body_bytes,
        body_sample,
        connect: None,
        head_at,
    })
}

mod insecure {
    //! A certificate verifier that accepts everything, for `insecure = true` only.

    use tokio_rustls::rustls::client::danger::{
        HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
    };
    use tokio_rustls::rustls::crypto::{
        CryptoProvider, verify_tls12_signature, verify_tls13_signature,
    };
    use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    use tokio_rustls::rustls::{DigitallySignedStruct, Error, SignatureScheme};

    /// Accepts any certificate but still checks handshake signatures.
    #[derive(Debug)]
    pub struct AcceptAnyCertificate(CryptoProvider);

    impl AcceptAnyCertificate {
        pub fn new() -> AcceptAnyCertificate {
            AcceptAnyCertificate(tokio_rustls::rustls::crypto::ring::default_provider())
        }
    }

    impl ServerCertVerifier for AcceptAnyCertificate {
        fn verify_server_cert(
            &self,
            _end_entity: &CertificateDer<'_>,
            _intermediates: &[CertificateDer<'_>],
            _server_name: &ServerName<'_>,
            _ocsp_response: &[u8],
            _now: UnixTime,
        ) -> Result<ServerCertVerified, Error> {
            Ok(ServerCertVerified::assertion())
        }

        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            signature: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, Error> {
            verify_tls12_signature(
                message,
                cert,
                signature,
                &self.0.signature_verification_algorithms,
            )
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            signature: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, Error> {
            verify_tls13_signature(
                message,
                cert,
                signature,
                &self.0.signature_verification_algorithms,
            )
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }
}
