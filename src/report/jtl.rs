//! `results.jtl`: one row per request in JMeter's default CSV result columns, so that JMeter's
//! dashboard generator (`jmeter -g results.jtl -o DIR`) and other JTL readers accept it.
//!
//! Workers record compact [`Record`]s, and the writer thread in `engine::jtl` turns them into
//! rows with [`write_row`]. Text fields never contain a line break, so every row is one line.

use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::report::run_json::{REDACTED, looks_secret};

/// The header row: JMeter's default CSV columns, in JMeter's order.
pub const HEADER: [&str; 17] = [
    "timeStamp",
    "elapsed",
    "label",
    "responseCode",
    "responseMessage",
    "threadName",
    "dataType",
    "success",
    "failureMessage",
    "bytes",
    "sentBytes",
    "grpThreads",
    "allThreads",
    "URL",
    "Latency",
    "IdleTime",
    "Connect",
];

/// The error code of a request still in flight when an interrupt's grace period ended.
pub const CANCELLED: &str = "cancelled";

/// One request with an outcome, as a worker records it. Times are microseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// When the request was sent, since the cell's clock base ([`CellContext::base_epoch_us`]).
    pub start_us: u64,
    /// From the send until the response was read or the request failed.
    pub elapsed_us: u64,
    /// From the send until the response's status line and headers had arrived; 0 without a
    /// response.
    pub latency_us: u64,
    /// The time spent opening a new connection; 0 when the request reused one.
    pub connect_us: u64,
    /// Response bytes: status line, headers and body.
    pub bytes: u64,
    /// Request body bytes, over every attempt.
    pub sent_bytes: u64,
    /// The worker's index within the cell, from 0.
    pub worker: u32,
    /// The cell's running workers when the request finished.
    pub threads: u32,
    /// The HTTP status; 0 when there was no response.
    pub status: u16,
    /// Whether the outcome is `ok`.
    pub success: bool,
    /// Without a response: volley's error code, such as `connection_refused`.
    pub error_code: &'static str,
    /// Without a response: volley's description of the error.
    pub error_message: Option<Box<str>>,
}

/// The fields that all rows of one cell share.
#[derive(Debug, Clone)]
pub struct CellContext {
    /// The cell's index, as in summary.csv.
    pub cell: usize,
    /// The variant's name, with line breaks replaced.
    pub label: String,
    /// The request URL without credentials.
    pub url: String,
    /// `host:port` of the target, for JMeter-style error messages.
    pub authority: String,
    /// The wall-clock time of the cell's clock base, in microseconds since the Unix epoch.
    pub base_epoch_us: u64,
}

impl CellContext {
    /// Describes cell `cell` of variant `variant`, sending to `url` (already made safe with
    /// [`safe_url`]), whose clock base is the wall-clock time `base`.
    pub fn new(cell: usize, variant: &str, url: String, base: SystemTime) -> CellContext {
        let authority = url
            .split_once("://")
            .map_or(url.as_str(), |(_, rest)| rest)
            .split(['/', '?'])
            .next()
            .unwrap_or_default()
            .to_string();
        CellContext {
            cell,
            label: single_line(variant),
            url,
            authority,
            base_epoch_us: u64::try_from(
                base.duration_since(UNIX_EPOCH)
                    .unwrap_or(Duration::ZERO)
                    .as_micros(),
            )
            .unwrap_or(u64::MAX),
        }
    }
}

/// Builds the URL column from the target's base URL and the request path: user info is
/// removed, query values whose name looks secret (`token`, `key` ...) are replaced, and so is
/// each value in `secrets`.
pub fn safe_url(base_url: &str, path: &str, secrets: &[String]) -> String {
    let base = base_url.trim_end_matches('/');
    let base = match base.split_once("://") {
        Some((scheme, rest)) => {
            let end = rest.find('/').unwrap_or(rest.len());
            let host = match rest[..end].rfind('@') {
                Some(at) => &rest[at + 1..],
                None => rest,
            };
            format!("{scheme}://{host}")
        }
        None => base.to_string(),
    };
    let mut url = match path.split_once('?') {
        Some((path, query)) => {
            let query: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((name, _)) if looks_secret(name) => format!("{name}={REDACTED}"),
                    _ => pair.to_string(),
                })
                .collect();
            format!("{base}{path}?{}", query.join("&"))
        }
        None => format!("{base}{path}"),
    };
    for secret in secrets.iter().filter(|secret| secret.len() >= 4) {
        url = url.replace(secret.as_str(), REDACTED);
    }
    single_line(&url)
}

/// Returns the Java exception class JMeter's HTTP sampler (HttpClient 4) reports for volley's
/// error `code`, and JMeter's message for it when that message is fixed text.
pub fn java_exception(code: &str) -> (&'static str, Option<&'static str>) {
    match code {
        "connection_refused" => ("org.apache.http.conn.HttpHostConnectException", None),
        "connect_timed_out" => ("org.apache.http.conn.ConnectTimeoutException", None),
        "closed_before_response" => ("org.apache.http.NoHttpResponseException", None),
        "timed_out" => ("java.net.SocketTimeoutException", Some("Read timed out")),
        "connection_reset" => ("java.net.SocketException", Some("Connection reset")),
        "connection_closed" => ("java.net.SocketException", None),
        "connect_failed" => ("java.net.ConnectException", None),
        "tls_handshake_failed" => ("javax.net.ssl.SSLHandshakeException", None),
        "invalid_response" => ("org.apache.http.ProtocolException", None),
        "invalid_request" => ("java.lang.IllegalArgumentException", None),
        CANCELLED => ("java.io.InterruptedIOException", None),
        _ => ("java.io.IOException", None),
    }
}

/// Returns the `responseMessage` text after `Non HTTP response message: ` for a request
/// without a response.
fn error_message(record: &Record, context: &CellContext) -> String {
    let authority = &context.authority;
    let text = match (java_exception(record.error_code), record.error_code) {
        ((_, Some(fixed)), _) => fixed.to_string(),
        (_, "connection_refused") => format!("Connect to {authority} failed: Connection refused"),
        (_, "connect_timed_out") => format!("Connect to {authority} failed: connect timed out"),
        (_, "closed_before_response") => format!("{authority} failed to respond"),
        (_, CANCELLED) => "cancelled when the interrupt's grace period ended".to_string(),
        _ => record
            .error_message
            .as_deref()
            .unwrap_or_default()
            .to_string(),
    };
    single_line(&text)
}

/// Replaces carriage returns and line feeds with spaces, so that the field stays on its row's
/// line; the csv crate quotes commas and quotes.
fn single_line(text: &str) -> String {
    if text.contains(['\r', '\n']) {
        text.replace("\r\n", " ").replace(['\r', '\n'], " ")
    } else {
        text.to_string()
    }
}

/// Reusable buffers of the writer thread, so that a row costs no allocation. The thread name
/// and the status fields are formatted again only when they change from the previous row.
#[derive(Default)]
pub struct RowScratch {
    numbers: [[u8; 20]; 8],
    thread_name: Vec<u8>,
    /// The cell and worker whose name `thread_name` contains.
    thread_of: Option<(usize, u32)>,
    code: Vec<u8>,
    message: Vec<u8>,
    /// The HTTP status whose code and reason `code` and `message` contain; `None` after a row
    /// without a response.
    status_of: Option<u16>,
    /// The row's fields, written with the csv crate's fast path for a whole record.
    row: csv::ByteRecord,
}

/// Writes `value` in decimal into `buffer` and returns the digits.
fn decimal(buffer: &mut [u8; 20], mut value: u64) -> &[u8] {
    let mut start = buffer.len();
    loop {
        start -= 1;
        buffer[start] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            return &buffer[start..];
        }
    }
}

/// Rounds microseconds down to whole milliseconds, as JMeter's times are.
fn millis(micros: u64) -> u64 {
    micros / 1000
}

/// Writes one row of `record`, a request of the cell described by `context`.
pub fn write_row<W: Write>(
    writer: &mut csv::Writer<W>,
    context: &CellContext,
    record: &Record,
    scratch: &mut RowScratch,
) -> csv::Result<()> {
    let RowScratch {
        numbers,
        thread_name,
        thread_of,
        code,
        message,
        status_of,
        row,
    } = scratch;
    if *thread_of != Some((context.cell, record.worker)) {
        // JMeter names threads "<group name> <group number>-<thread number>", and its
        // dashboard takes the text before the last space as the thread group of "Active
        // Threads Over Time".
        thread_name.clear();
        let _ = write!(
            thread_name,
            "cell {cell} {cell}-{worker}",
            cell = context.cell,
            worker = record.worker + 1
        );
        *thread_of = Some((context.cell, record.worker));
    }
    let (data_type, success): (&[u8], &[u8]) = if record.status == 0 {
        code.clear();
        message.clear();
        let (exception, _) = java_exception(record.error_code);
        let _ = write!(code, "Non HTTP response code: {exception}");
        let _ = write!(
            message,
            "Non HTTP response message: {}",
            error_message(record, context)
        );
        *status_of = None;
        (b"", b"false")
    } else {
        if *status_of != Some(record.status) {
            code.clear();
            message.clear();
            let _ = write!(code, "{}", record.status);
            let reason = http::StatusCode::from_u16(record.status)
                .ok()
                .and_then(|status| status.canonical_reason())
                .unwrap_or_default();
            message.extend_from_slice(reason.as_bytes());
            *status_of = Some(record.status);
        }
        (b"text", if record.success { b"true" } else { b"false" })
    };
    let [
        time_stamp,
        elapsed,
        bytes,
        sent_bytes,
        threads,
        latency,
        idle,
        connect,
    ] = numbers;
    let threads = decimal(threads, u64::from(record.threads));
    row.clear();
    for field in [
        decimal(
            time_stamp,
            millis(context.base_epoch_us.saturating_add(record.start_us)),
        ),
        decimal(elapsed, millis(record.elapsed_us)),
        context.label.as_bytes(),
        code,
        message,
        thread_name,
        data_type,
        success,
        b"",
        decimal(bytes, record.bytes),
        decimal(sent_bytes, record.sent_bytes),
        threads,
        threads,
        context.url.as_bytes(),
        decimal(latency, millis(record.latency_us)),
        decimal(idle, 0),
        decimal(connect, millis(record.connect_us)),
    ] {
        row.push_field(field);
    }
    writer.write_byte_record(row)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context() -> CellContext {
        CellContext::new(
            2,
            "with, \"quotes\"\nand a line",
            safe_url("http://127.0.0.1:8080", "/execute", &[]),
            UNIX_EPOCH + Duration::from_millis(1_700_000_000_000),
        )
    }

    fn record() -> Record {
        Record {
            start_us: 1_500,
            elapsed_us: 12_999,
            latency_us: 11_000,
            connect_us: 0,
            bytes: 321,
            sent_bytes: 40,
            worker: 6,
            threads: 8,
            status: 200,
            success: true,
            error_code: "",
            error_message: None,
        }
    }

    fn render(record: &Record) -> String {
        let mut writer = csv::Writer::from_writer(Vec::new());
        write_row(&mut writer, &context(), record, &mut RowScratch::default()).unwrap();
        String::from_utf8(writer.into_inner().unwrap()).unwrap()
    }

    #[test]
    fn ok_row_has_jmeter_fields() {
        assert_eq!(
            render(&record()),
            "1700000000001,12,\"with, \"\"quotes\"\" and a line\",200,OK,cell 2 2-7,text,true,,321,40,8,8,http://127.0.0.1:8080/execute,11,0,0\n"
        );
    }

    #[test]
    fn refused_row_names_java_exception() {
        let refused = Record {
            status: 0,
            success: false,
            latency_us: 0,
            bytes: 0,
            error_code: "connection_refused",
            error_message: Some("Connection refused (os error 111)".into()),
            ..record()
        };
        let row = render(&refused);
        assert!(
            row.contains(",Non HTTP response code: org.apache.http.conn.HttpHostConnectException,Non HTTP response message: Connect to 127.0.0.1:8080 failed: Connection refused,"),
            "{row}"
        );
        assert!(row.contains(",,false,,0,40,"), "{row}");
    }

    #[test]
    fn unknown_error_keeps_message_on_one_line() {
        let failed = Record {
            status: 0,
            success: false,
            error_code: "something_new",
            error_message: Some("first\r\nsecond".into()),
            ..record()
        };
        let row = render(&failed);
        assert!(
            row.contains("Non HTTP response code: java.io.IOException,Non HTTP response message: first second,"),
            "{row}"
        );
        assert_eq!(row.lines().count(), 1);
    }

    #[test]
    fn scratch_follows_changing_rows() {
        let refused = Record {
            status: 0,
            success: false,
            error_code: "connection_refused",
            ..record()
        };
        let forbidden = Record {
            status: 403,
            success: false,
            worker: 0,
            ..record()
        };
        let mut writer = csv::Writer::from_writer(Vec::new());
        let mut scratch = RowScratch::default();
        for row in [&record(), &refused, &record(), &forbidden] {
            write_row(&mut writer, &context(), row, &mut scratch).unwrap();
        }
        let text = String::from_utf8(writer.into_inner().unwrap()).unwrap();
        let codes: Vec<String> = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(text.as_bytes())
            .records()
            .map(|row| row.unwrap()[3].to_string())
            .collect();
        assert_eq!(
            codes,
            [
                "200",
                "Non HTTP response code: org.apache.http.conn.HttpHostConnectException",
                "200",
                "403"
            ]
        );
        assert!(text.lines().nth(2).unwrap().contains(",200,OK,cell 2 2-7,"));
        assert!(
            text.lines()
                .nth(3)
                .unwrap()
                .contains(",403,Forbidden,cell 2 2-1,")
        );
    }

    #[test]
    fn url_loses_credentials() {
        let secrets = ["s3cret-value".to_string()];
        assert_eq!(
            safe_url(
                "https://user:pw@api.example.test:8443/",
                "/x/s3cret-value?access_token=abc&page=2",
                &secrets
            ),
            "https://api.example.test:8443/x/[redacted]?access_token=[redacted]&page=2"
        );
    }

    #[test]
    fn decimal_writes_extremes() {
        let mut buffer = [0; 20];
        assert_eq!(decimal(&mut buffer, 0), b"0");
        assert_eq!(decimal(&mut buffer, u64::MAX), b"18446744073709551615");
    }
}
