//! `volley probe`: sends one request per variant, built as the runner builds it, and prints
//! both sides of each exchange, so that a 401 or a 403 can be explained before a load run.
//!
//! Credentials never reach the output. The authentication header, headers whose name looks
//! like a credential, and every known secret value (the scenario's secrets and the access
//! token) are printed as `[redacted]` wherever they appear, in stdout and in error messages.

use std::fmt::Write as _;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use rand::SeedableRng;
use rand::rngs::SmallRng;
use serde_json::{Map, Value};

use crate::auth::AuthProvider;
use crate::commands::{EXIT_FAILURE, EXIT_INVALID};
use crate::engine::{self, transport::Endpoint};
use crate::report::run_json::{self, REDACTED};
use crate::scenario::{Auth, CompiledVariant, Plan};
use crate::template::RenderContext;
use crate::units::format_duration;

/// The maximum number of body bytes printed per request or response. Longer bodies are cut
/// with a note.
pub const BODY_DISPLAY_LIMIT: usize = 64 * 1024;

/// Authorization schemes whose name is printed before `[redacted]`. Any other value of a
/// hidden header is replaced whole, because its first word may be part of the credential.
const KNOWN_SCHEMES: [&str; 5] = ["Basic", "Bearer", "Digest", "DPoP", "Negotiate"];

/// Sends one request per selected variant and prints each exchange to stdout.
///
/// `only` limits the probe to the variant of that name. Returns the exit code: 0 when every
/// request got a response (of any status), 1 when the target, the token request or a probe
/// request failed, and 2 when `only` names no variant.
pub async fn run(plan: &Plan, only: Option<&str>) -> u8 {
    let variants = match select_variants(plan, only) {
        Ok(variants) => variants,
        Err(message) => {
            eprintln!("error: {message}");
            return EXIT_INVALID;
        }
    };
    crate::init_crypto();
    let target = match engine::start_target(plan).await {
        Ok(target) => target,
        Err(error) => {
            eprintln!("error: {error:#}");
            return EXIT_FAILURE;
        }
    };
    let code = probe_target(plan, &variants, &target.base_url).await;
    if let Some(server) = target.mock {
        server.shutdown().await;
    }
    code
}

/// Returns the variants to probe: all of them, or the one named `only`.
fn select_variants<'a>(
    plan: &'a Plan,
    only: Option<&str>,
) -> Result<Vec<&'a CompiledVariant>, String> {
    let Some(name) = only else {
        return Ok(plan.variants.iter().collect());
    };
    match plan.variants.iter().find(|variant| variant.name == name) {
        Some(variant) => Ok(vec![variant]),
        None => {
            let names: Vec<&str> = plan
                .variants
                .iter()
                .map(|variant| variant.name.as_str())
                .collect();
            Err(format!(
                "unknown variant \"{name}\": use one of {}",
                names.join(", ")
            ))
        }
    }
}

/// Fetches the token, then sends and prints each variant's request against `base_url`.
async fn probe_target(plan: &Plan, variants: &[&CompiledVariant], base_url: &str) -> u8 {
    let scenario = &plan.scenario;
    let insecure = scenario.target.insecure;
    if insecure {
        eprintln!("warning: target.insecure is on, so TLS certificates are not checked");
    }
    let endpoint = match Endpoint::from_url(base_url, insecure) {
        Ok(endpoint) => endpoint,
        Err(message) => {
            eprintln!("error: {message}");
            return EXIT_FAILURE;
        }
    };
    print!("{}", describe_setup(plan, base_url));

    let auth = match AuthProvider::start(&scenario.auth, base_url).await {
        Ok(auth) => auth,
        Err(error) => {
            // AuthError leaves credentials out; scrubbing guards against a secret in the URL.
            let redaction = Redaction::new(&scenario.auth, None);
            eprintln!("error: {}", redaction.scrub(&error.to_string()));
            return EXIT_FAILURE;
        }
    };
    let auth_header = auth
        .header()
        .map(|(name, receiver)| (name, receiver.borrow().clone()));
    let redaction = Redaction::new(&scenario.auth, auth_header.as_ref());
    if let Some((_, value)) = &auth_header {
        print!("{}", describe_token(value, SystemTime::now()));
    }

    let timeout = scenario.load.timeout.0;
    let client = match build_client(insecure, timeout) {
        Ok(client) => client,
        Err(error) => {
            eprintln!("error: cannot create the HTTP client: {error}");
            return EXIT_FAILURE;
        }
    };
    let mut unsent = 0;
    for (index, variant) in variants.iter().enumerate() {
        let request = render_request(plan, variant, endpoint.authority(), auth_header.as_ref());
        let mut out = format!(
            "\n=== variant {} of {}: {} ===\n",
            index + 1,
            variants.len(),
            variant.name
        );
        let url = format!("{base_url}{}", request.path);
        format_request(&mut out, &request, &url, &redaction);
        print!("{out}");
        match send(&client, &request, &url).await {
            Ok(response) => {
                let mut out = String::new();
                format_response(&mut out, &response, &redaction);
                print!("{out}");
            }
            Err(failure) => {
                let message = failure.describe(timeout);
                eprintln!(
                    "error: variant \"{}\": {}",
                    variant.name,
                    redaction.scrub(&message)
                );
                println!("\n(no response: {})", redaction.scrub(&message));
                unsent += 1;
            }
        }
    }
    // Closing the pooled connections first lets the embedded mock shut down at once.
    drop(client);
    drop(auth);
    if unsent > 0 {
        eprintln!(
            "error: {unsent} of {} probe requests could not be sent",
            variants.len()
        );
        return EXIT_FAILURE;
    }
    0
}

/// Describes the target, the data row and the authentication method, one line each.
fn describe_setup(plan: &Plan, base_url: &str) -> String {
    let scenario = &plan.scenario;
    let redaction = Redaction::new(&scenario.auth, None);
    let mut out = format!(
        "probe of {} (scenario \"{}\")\n",
        plan.path.display(),
        scenario.name
    );
    if scenario.target.url == "embedded" {
        let _ = writeln!(out, "target: {base_url} (embedded mock)");
    } else {
        let _ = writeln!(out, "target: {}", redaction.scrub(base_url));
    }
    if let (Some(data), Some(spec)) = (&plan.data, &scenario.data) {
        let _ = writeln!(
            out,
            "data: row 1 of {} from {}",
            data.len(),
            spec.file.display()
        );
    }
    let auth = match &scenario.auth {
        Auth::None => "none".to_string(),
        Auth::Bearer { .. } => "a fixed bearer token (auth.token)".to_string(),
        Auth::Header { name, .. } => format!("the header {name} (auth.value)"),
        Auth::OAuth2ClientCredentials {
            token_url,
            client_id,
            scope,
            ..
        } => {
            let url = token_url.replace("{target}", base_url);
            let scope = scope
                .as_ref()
                .map(|scope| format!(", scope \"{scope}\""))
                .unwrap_or_default();
            redaction.scrub(&format!(
                "OAuth2 client credentials, client_id \"{client_id}\"{scope}, token from {url}"
            ))
        }
    };
    let _ = writeln!(out, "auth: {auth}");
    out
}

/// Describes the access token in an authentication header value without printing it: the
/// claims of a JWT, or a note that the token is opaque. Returns "" for a non-Bearer value.
fn describe_token(value: &HeaderValue, now: SystemTime) -> String {
    let Some(token) = bearer_token(value) else {
        return String::new();
    };
    match decode_jwt_claims(token) {
        Some(claims) => format!(
            "access token: a JWT; its claims, decoded without checking the signature:\n{}",
            describe_claims(&claims, now)
        ),
        None => "access token: opaque (not a JWT), so there are no claims to show\n".to_string(),
    }
}

/// Returns the token of a `Bearer` header value.
fn bearer_token(value: &HeaderValue) -> Option<&str> {
    let text = value.to_str().ok()?;
    let (scheme, token) = text.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
        .filter(|token| !token.is_empty())
}

/// Decodes the payload of a JWT in JWS compact form, without checking its signature.
///
/// Returns `None` unless the token has three dot-separated parts and the first two are
/// base64url-encoded JSON objects. The signature part may be empty, as in unsigned tokens.
pub fn decode_jwt_claims(token: &str) -> Option<Map<String, Value>> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(_signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    decode_json_object(header)?;
    decode_json_object(payload)
}

fn decode_json_object(part: &str) -> Option<Map<String, Value>> {
    // RFC 7515 leaves the padding out, but some issuers keep it.
    let bytes = URL_SAFE_NO_PAD.decode(part.trim_end_matches('=')).ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        Value::Object(map) => Some(map),
        _ => None,
    }
}

/// Formats the claims that most often explain a 401 or 403: `iss`, `aud`, the scope, the
/// organization or tenant claims, and `exp` as RFC 3339 with the seconds left from `now`.
pub fn describe_claims(claims: &Map<String, Value>, now: SystemTime) -> String {
    let mut lines: Vec<(&str, String)> = Vec::new();
    for name in ["iss", "aud"] {
        lines.push((name, claims.get(name).map_or_else(absent, claim_text)));
    }

    let scope = ["scope", "scp", "scopes"]
        .iter()
        .find_map(|name| claims.get(*name).map(|value| (*name, value)));
    match scope {
        Some((name, value)) => lines.push((name, claim_text(value))),
        None => lines.push(("scope", absent())),
    }

    let lines_before_org = lines.len();
    for (name, value) in claims.iter().filter(|(name, _)| is_org_claim(name)) {
        lines.push((name, claim_text(value)));
    }
    if lines.len() == lines_before_org {
        lines.push(("org", "(no organization or tenant claim)".to_string()));
    }

    lines.push((
        "exp",
        claims
            .get("exp")
            .map_or_else(absent, |exp| describe_expiry(exp, now)),
    ));

    // Values start in one column, one space after the longest name and its colon.
    let width = lines.iter().map(|(name, _)| name.len()).max().unwrap_or(0) + 2;
    let mut out = String::new();
    for (name, value) in lines {
        let _ = writeln!(out, "  {:<width$}{value}", format!("{name}:"));
    }
    out
}

fn absent() -> String {
    "(absent)".to_string()
}

/// Returns whether a claim names an organization or tenant. Issuers spell it `org`,
/// `org_id`, `orgId`, `organization`, `tenant_id` or, in Microsoft Entra ID, `tid`.
fn is_org_claim(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    name.contains("org") || name.contains("tenant") || name == "tid"
}

/// Formats a claim value: strings as they are, lists of strings separated by spaces (the
/// separator of the OAuth `scope` parameter), anything else as JSON.
fn claim_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Array(items) if items.iter().all(Value::is_string) => items
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(" "),
        other => other.to_string(),
    }
}

/// Formats an `exp` claim (seconds since the Unix epoch) as RFC 3339 with the time left.
fn describe_expiry(exp: &Value, now: SystemTime) -> String {
    let Some(seconds) = exp
        .as_i64()
        .or_else(|| exp.as_f64().map(|value| value as i64))
    else {
        return format!("{exp} (not a number of seconds)");
    };
    let Some(at) = u64::try_from(seconds)
        .ok()
        .and_then(|seconds| UNIX_EPOCH.checked_add(Duration::from_secs(seconds)))
    else {
        return format!("{seconds} (before 1970)");
    };
    let now_seconds = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs() as i64);
    let left = seconds - now_seconds;
    let relative = if left >= 0 {
        format!("in {left} s")
    } else {
        format!("expired {} s ago", -left)
    };
    format!("{} ({relative})", humantime::format_rfc3339_seconds(at))
}

/// A request rendered for one variant.
struct ProbeRequest {
    method: http::Method,
    /// The rendered path and query.
    path: String,
    headers: HeaderMap,
    body: Vec<u8>,
    /// Headers left out because their rendered value cannot be sent, as the runner does.
    dropped_headers: Vec<HeaderName>,
}

/// Renders `variant` for data row 0, `seq` 0 and worker 0, and adds the headers the runner
/// adds: `Host` first, then the variant's headers, then the authentication header.
///
/// This follows `engine::worker::build_request` step by step, down to the order in which
/// the body, the path and the headers draw random values. The end-to-end tests compare
/// what the mock receives from `volley probe` and from `volley run`.
fn render_request(
    plan: &Plan,
    variant: &CompiledVariant,
    host: &HeaderValue,
    auth: Option<&(HeaderName, HeaderValue)>,
) -> ProbeRequest {
    let row: &[String] = plan.data.as_ref().map_or(&[], |data| data.row(0));
    // Worker 0's generator is seeded with the plan's seed unchanged.
    let mut rng = SmallRng::seed_from_u64(plan.seed);
    let mut context = RenderContext {
        row,
        seq: 0,
        worker: 0,
        rng: &mut rng,
    };
    let mut body = Vec::new();
    variant.body.render_into(&mut body, &mut context);
    let path = variant.path.render_to_string(&mut context);

    let mut headers = HeaderMap::new();
    headers.insert(header::HOST, host.clone());
    let mut dropped_headers = Vec::new();
    for (name, template) in &variant.headers {
        // The runner appends constant values, which it prepares once per cell, and inserts
        // rendered ones. Keeping both paths makes repeated header names come out the same.
        if let Some(text) = template.as_constant() {
            match HeaderValue::from_str(text) {
                Ok(value) => {
                    headers.append(name.clone(), value);
                }
                Err(_) => dropped_headers.push(name.clone()),
            }
        } else {
            let mut value = Vec::new();
            template.render_into(&mut value, &mut context);
            match HeaderValue::from_bytes(&value) {
                Ok(value) => {
                    headers.insert(name.clone(), value);
                }
                Err(_) => dropped_headers.push(name.clone()),
            }
        }
    }
    if let Some((name, value)) = auth {
        headers.insert(name.clone(), value.clone());
    }
    ProbeRequest {
        method: variant.method.clone(),
        path,
        headers,
        body,
        dropped_headers,
    }
}

/// Builds the probe's client to match the runner's transport: direct connections (no proxy
/// from the environment), no redirects followed, HTTP/1.1 and the same TLS setting.
fn build_client(insecure: bool, timeout: Duration) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .tls_danger_accept_invalid_certs(insecure)
        .timeout(timeout)
        .build()
}

/// A response with at most [`BODY_DISPLAY_LIMIT`] body bytes read.
struct ProbeResponse {
    version: http::Version,
    status: http::StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
    /// Whether the body went on past the bytes kept; the rest is not read.
    cut: bool,
    elapsed: Duration,
}

/// The reason a probe request got no response.
enum SendFailure {
    /// The rendered path is not a valid request target.
    InvalidPath { path: String },
    /// The client failed to connect, send or read.
    Transport { url: String, error: reqwest::Error },
}

impl SendFailure {
    /// Describes the failure with the URL; `timeout` is the limit that applied.
    fn describe(&self, timeout: Duration) -> String {
        match self {
            SendFailure::InvalidPath { path } => format!(
                "the rendered path \"{path}\" is not a valid request target, so a run \
                 sends / in its place; check request.path and the data values it uses"
            ),
            SendFailure::Transport { url, error } => {
                if error.is_timeout() {
                    return format!(
                        "request to {url} failed: no complete response within {}; \
                         raise load.timeout or check that the server is up",
                        format_duration(timeout)
                    );
                }
                let cause = innermost_cause(error);
                if error.is_connect() {
                    format!(
                        "request to {url} failed to connect: {cause}; \
                         check target.url and that the server is up"
                    )
                } else {
                    format!("request to {url} failed: {cause}")
                }
            }
        }
    }
}

/// Returns the message of the deepest error in the source chain, such as the operating
/// system's "Connection refused", which is more specific than reqwest's own wording.
fn innermost_cause(error: &reqwest::Error) -> String {
    let mut cause: &dyn std::error::Error = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string()
}

async fn send(
    client: &reqwest::Client,
    request: &ProbeRequest,
    url: &str,
) -> Result<ProbeResponse, SendFailure> {
    if http::Uri::try_from(request.path.as_str()).is_err() {
        return Err(SendFailure::InvalidPath {
            path: request.path.clone(),
        });
    }
    let transport = |error| SendFailure::Transport {
        url: url.to_string(),
        error,
    };
    let started = Instant::now();
    let mut response = client
        .request(request.method.clone(), url)
        .headers(request.headers.clone())
        .body(request.body.clone())
        .send()
        .await
        .map_err(transport)?;
    let mut body = Vec::new();
    let mut cut = false;
    while let Some(chunk) = response.chunk().await.map_err(transport)? {
        let room = BODY_DISPLAY_LIMIT - body.len();
        if chunk.len() > room {
            body.extend_from_slice(&chunk[..room]);
            cut = true;
            break;
        }
        body.extend_from_slice(&chunk);
    }
    Ok(ProbeResponse {
        version: response.version(),
        status: response.status(),
        headers: response.headers().clone(),
        body,
        cut,
        elapsed: started.elapsed(),
    })
}

fn format_request(out: &mut String, request: &ProbeRequest, url: &str, redaction: &Redaction) {
    let _ = writeln!(out, "> {} {}", request.method, redaction.scrub(url));
    format_headers(out, "> ", &request.headers, redaction);
    if !request.headers.contains_key(header::ACCEPT) {
        // NOTE: reqwest always sends `accept: */*` when the request has no Accept header,
        // and offers no way to turn that off, so this one header differs from a run.
        let _ = writeln!(
            out,
            "> accept: */* (added by the probe's client; a run sends none)"
        );
    }
    if let Some(sent) = normalized_target(url).filter(|sent| *sent != request.path) {
        // NOTE: reqwest parses the URL, which resolves `.` and `..` segments and
        // percent-encodes some characters, while a run sends the rendered path as it is.
        let _ = writeln!(
            out,
            "> (the probe's client sends the path as {}; a run sends it as rendered)",
            redaction.scrub(&sent)
        );
    }
    for name in &request.dropped_headers {
        let _ = writeln!(
            out,
            "> (left out: {name}, whose rendered value an HTTP header cannot carry)"
        );
    }
    out.push('\n');
    let cut = request.body.len() > BODY_DISPLAY_LIMIT;
    let printed = &request.body[..request.body.len().min(BODY_DISPLAY_LIMIT)];
    // The request body is printed as sent, not re-indented, so it shows the exact bytes.
    format_body(out, printed, cut, false, redaction);
    if cut {
        let _ = writeln!(
            out,
            "[request body cut at {BODY_DISPLAY_LIMIT} of {} bytes]",
            request.body.len()
        );
    } else if !request.body.is_empty() {
        let _ = writeln!(out, "({} bytes)", request.body.len());
    }
}

/// Returns the path and query that reqwest sends for `url`, after its URL parsing.
fn normalized_target(url: &str) -> Option<String> {
    let parsed = reqwest::Url::parse(url).ok()?;
    Some(match parsed.query() {
        Some(query) => format!("{}?{query}", parsed.path()),
        None => parsed.path().to_string(),
    })
}

fn format_response(out: &mut String, response: &ProbeResponse, redaction: &Redaction) {
    let reason = response.status.canonical_reason().unwrap_or_default();
    let _ = writeln!(
        out,
        "\n< {:?} {} {reason} (in {} ms)",
        response.version,
        response.status.as_u16(),
        response.elapsed.as_millis()
    );
    format_headers(out, "< ", &response.headers, redaction);
    out.push('\n');
    format_body(out, &response.body, response.cut, true, redaction);
    if response.cut {
        let announced = response
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok())
            .map(|length| format!("of {length} "))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "[response body cut at {BODY_DISPLAY_LIMIT} {announced}bytes; the rest was not read]"
        );
    }
}

fn format_headers(out: &mut String, prefix: &str, headers: &HeaderMap, redaction: &Redaction) {
    for (name, value) in headers {
        let _ = writeln!(
            out,
            "{prefix}{name}: {}",
            redaction.header_value(name, value)
        );
    }
}

/// Appends a body as text: re-indented when `indent` is set and it is complete JSON, a
/// placeholder when empty or binary. Set `cut` when the bytes end mid-way through the body.
fn format_body(out: &mut String, body: &[u8], cut: bool, indent: bool, redaction: &Redaction) {
    if body.is_empty() {
        out.push_str("(empty body)\n");
        return;
    }
    let text = match std::str::from_utf8(body) {
        Ok(text) => text,
        // A cut may split the last character; print the complete ones before it.
        Err(error) if cut && error.error_len().is_none() => {
            std::str::from_utf8(&body[..error.valid_up_to()]).unwrap_or_default()
        }
        Err(_) => {
            let _ = writeln!(out, "({} bytes of binary data, not shown)", body.len());
            return;
        }
    };
    let indented = if indent && !cut {
        indent_json(text)
    } else {
        None
    };
    let text = redaction.scrub(indented.as_deref().unwrap_or(text));
    out.push_str(&text);
    if !text.ends_with('\n') {
        out.push('\n');
    }
}

/// Indents JSON text by two spaces per level, or returns `None` when it is not valid JSON.
///
/// Key order and the spelling of numbers stay as the server sent them, which a round trip
/// through `serde_json::Value` would not keep (it sorts keys and rewrites numbers).
fn indent_json(text: &str) -> Option<String> {
    serde_json::from_str::<serde::de::IgnoredAny>(text).ok()?;
    let mut out = String::with_capacity(text.len() * 2);
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    let mut chars = text.chars().peekable();
    let new_line = |out: &mut String, depth: usize| {
        out.push('\n');
        out.push_str(&"  ".repeat(depth));
    };
    while let Some(character) = chars.next() {
        if in_string {
            out.push(character);
            if escaped {
                escaped = false;
            } else if character == '\\' {
                escaped = true;
            } else if character == '"' {
                in_string = false;
            }
            continue;
        }
        match character {
            '"' => {
                in_string = true;
                out.push('"');
            }
            '{' | '[' => {
                out.push(character);
                while chars.next_if(|next| next.is_whitespace()).is_some() {}
                // Empty objects and arrays stay on one line.
                if let Some(close) = chars.next_if(|next| matches!(next, '}' | ']')) {
                    out.push(close);
                } else {
                    depth += 1;
                    new_line(&mut out, depth);
                }
            }
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                new_line(&mut out, depth);
                out.push(character);
            }
            ',' => {
                out.push(',');
                new_line(&mut out, depth);
            }
            ':' => out.push_str(": "),
            whitespace if whitespace.is_whitespace() => {}
            other => out.push(other),
        }
    }
    Some(out)
}

/// The redaction rules: which header values carry credentials, and the known secret values.
struct Redaction {
    /// Secret values, replaced wherever they appear.
    secrets: Vec<String>,
    /// The authentication provider's header, hidden whatever its name.
    auth_header: Option<HeaderName>,
}

impl Redaction {
    /// Collects the scenario's secrets and, when given, the authentication header's value
    /// and the token inside it.
    fn new(auth: &Auth, header: Option<&(HeaderName, HeaderValue)>) -> Redaction {
        let mut secrets = run_json::secrets(auth);
        if let Some((_, value)) = header {
            let text = String::from_utf8_lossy(value.as_bytes()).into_owned();
            if let Some(token) = bearer_token(value) {
                secrets.push(token.to_string());
            }
            secrets.push(text);
        }
        secrets.retain(|secret| !secret.is_empty());
        // Longer values first, so that a secret inside another is not replaced piecemeal.
        secrets.sort_by_key(|secret| std::cmp::Reverse(secret.len()));
        Redaction {
            secrets,
            auth_header: header.map(|(name, _)| name.clone()),
        }
    }

    /// Replaces every known secret value in `text` with `[redacted]`.
    ///
    /// NOTE: only copies spelled exactly as configured are found. A server that echoes a
    /// secret JSON-escaped or percent-encoded would get that copy printed.
    fn scrub(&self, text: &str) -> String {
        let mut text = text.to_string();
        for secret in &self.secrets {
            if text.contains(secret.as_str()) {
                text = text.replace(secret.as_str(), REDACTED);
            }
        }
        text
    }

    /// Returns whether a header's whole value is hidden.
    fn hides(&self, name: &HeaderName) -> bool {
        if self.auth_header.as_ref() == Some(name)
            || name == header::AUTHORIZATION
            || name == header::PROXY_AUTHORIZATION
        {
            return true;
        }
        // A challenge names the scheme and the error, never a credential, and explains a 401.
        if name == header::WWW_AUTHENTICATE || name == header::PROXY_AUTHENTICATE {
            return false;
        }
        run_json::looks_secret(name.as_str())
    }

    /// Formats a header value for printing, hidden or scrubbed.
    fn header_value(&self, name: &HeaderName, value: &HeaderValue) -> String {
        let text = String::from_utf8_lossy(value.as_bytes());
        if !self.hides(name) {
            return self.scrub(&text);
        }
        // The scheme shows whether a Bearer or a Basic credential went out.
        match text.split_once(' ') {
            Some((scheme, _))
                if KNOWN_SCHEMES
                    .iter()
                    .any(|known| known.eq_ignore_ascii_case(scheme)) =>
            {
                format!("{scheme} {REDACTED}")
            }
            _ => REDACTED.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(json: &str) -> String {
        URL_SAFE_NO_PAD.encode(json)
    }

    /// Builds an unsigned JWT with the given payload and an arbitrary signature part.
    fn jwt(payload: &str) -> String {
        format!(
            "{}.{}.c2lnbmF0dXJl",
            encode(r#"{"alg":"none","typ":"JWT"}"#),
            encode(payload)
        )
    }

    /// Returns the value printed for the claim `name`, or "" when there is no such line.
    fn claim<'a>(text: &'a str, name: &str) -> &'a str {
        let prefix = format!("{name}:");
        text.lines()
            .find_map(|line| line.trim_start().strip_prefix(prefix.as_str()))
            .map_or("", str::trim)
    }

    fn at(seconds: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(seconds)
    }

    #[test]
    fn jwt_claims_decode_without_verifying() {
        let token = jwt(r#"{"aud":"api://volley","org_id":"org-2","exp":2000000000}"#);
        let claims = decode_jwt_claims(&token).expect("a JWT");
        assert_eq!(claims["aud"], "api://volley");
        assert_eq!(claims["org_id"], "org-2");
        assert_eq!(claims["exp"], 2_000_000_000);
    }

    #[test]
    fn jwt_with_padding_or_empty_signature_decodes() {
        let padded = format!(
            "{}=.{}==.",
            encode(r#"{"alg":"none"}"#),
            encode(r#"{"a":1}"#)
        );
        assert!(decode_jwt_claims(&padded).is_some(), "{padded}");
    }

    #[test]
    fn non_jwt_tokens_are_rejected() {
        let header = encode(r#"{"alg":"none"}"#);
        let payload = encode(r#"{"aud":"x"}"#);
        let cases = [
            "0123456789abcdef0123456789abcdef".to_string(),
            format!("{header}.{payload}"),
            format!("{header}.{payload}.sig.extra.part"),
            format!("{header}.not base64!.sig"),
            format!("{header}.{}.sig", encode("[1, 2]")),
            format!("{}.{payload}.sig", encode("not json")),
        ];
        for token in cases {
            assert!(decode_jwt_claims(&token).is_none(), "{token}");
        }
    }

    #[test]
    fn claims_show_audience_org_scope_and_expiry() {
        let token = jwt(
            r#"{"iss":"https://login.example","aud":["api://a","api://b"],
                "scope":"actions:execute users:read","org":"org-1","tid":"tenant-9",
                "exp":1000003600,"sub":"client-1"}"#,
        );
        let claims = decode_jwt_claims(&token).unwrap();
        let text = describe_claims(&claims, at(1_000_000_000));
        assert_eq!(claim(&text, "iss"), "https://login.example", "{text}");
        assert_eq!(claim(&text, "aud"), "api://a api://b", "{text}");
        assert_eq!(
            claim(&text, "scope"),
            "actions:execute users:read",
            "{text}"
        );
        assert_eq!(claim(&text, "org"), "org-1", "{text}");
        assert_eq!(claim(&text, "tid"), "tenant-9", "{text}");
        assert_eq!(
            claim(&text, "exp"),
            "2001-09-09T02:46:40Z (in 3600 s)",
            "{text}"
        );
        assert!(text.contains("  scope: actions"), "aligned: {text}");
        assert!(text.contains("  iss:   https"), "aligned: {text}");
        assert!(!text.contains("client-1"), "sub is not listed: {text}");
    }

    #[test]
    fn claims_report_expired_and_absent_values() {
        let claims = decode_jwt_claims(&jwt(r#"{"exp":1000000000,"scp":["a","b"]}"#)).unwrap();
        let text = describe_claims(&claims, at(1_000_000_120));
        assert_eq!(
            claim(&text, "exp"),
            "2001-09-09T01:46:40Z (expired 120 s ago)",
            "{text}"
        );
        assert_eq!(claim(&text, "aud"), "(absent)", "{text}");
        assert_eq!(claim(&text, "scp"), "a b", "{text}");
        assert_eq!(
            claim(&text, "org"),
            "(no organization or tenant claim)",
            "{text}"
        );
    }

    #[test]
    fn token_description_never_contains_token() {
        let token = jwt(r#"{"aud":"api://volley","exp":2000000000}"#);
        let value = HeaderValue::from_str(&format!("Bearer {token}")).unwrap();
        let text = describe_token(&value, at(1_999_999_000));
        assert_eq!(claim(&text, "aud"), "api://volley", "{text}");
        assert!(!text.contains(&token), "{text}");
        let opaque = HeaderValue::from_static("Bearer 0123456789abcdef");
        let text = describe_token(&opaque, at(0));
        assert!(text.contains("opaque"), "{text}");
        assert_eq!(
            describe_token(&HeaderValue::from_static("key-1"), at(0)),
            ""
        );
    }

    #[test]
    fn redaction_hides_credential_headers() {
        let auth = Auth::Header {
            name: "x-custom".to_string(),
            value: "s3cret-value".to_string(),
        };
        let header = (
            HeaderName::from_static("x-custom"),
            HeaderValue::from_static("s3cret-value"),
        );
        let redaction = Redaction::new(&auth, Some(&header));
        let value = |name: &'static str, value: &'static str| {
            redaction.header_value(
                &HeaderName::from_static(name),
                &HeaderValue::from_static(value),
            )
        };
        assert_eq!(value("x-custom", "s3cret-value"), REDACTED);
        assert_eq!(value("authorization", "Bearer abc"), "Bearer [redacted]");
        assert_eq!(value("authorization", "abc def"), REDACTED);
        assert_eq!(value("x-api-key", "k1"), REDACTED);
        assert_eq!(value("set-cookie", "session=1"), REDACTED);
        assert_eq!(
            value("www-authenticate", "Bearer error=\"invalid_token\""),
            "Bearer error=\"invalid_token\""
        );
        assert_eq!(value("x-echo", "got s3cret-value"), "got [redacted]");
        assert_eq!(
            value("content-type", "application/json"),
            "application/json"
        );
    }

    #[test]
    fn redaction_scrubs_token_and_client_secret() {
        let auth = Auth::OAuth2ClientCredentials {
            token_url: "{target}/oauth/token".to_string(),
            client_id: "client".to_string(),
            client_secret: "client-secret".to_string(),
            scope: None,
        };
        let header = (
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer tok-123"),
        );
        let redaction = Redaction::new(&auth, Some(&header));
        assert_eq!(
            redaction.scrub("token tok-123, secret client-secret"),
            "token [redacted], secret [redacted]"
        );
    }

    #[test]
    fn normalized_target_resolves_dot_segments() {
        assert_eq!(
            normalized_target("http://127.0.0.1:1/a/../b?q=1").as_deref(),
            Some("/b?q=1")
        );
        assert_eq!(
            normalized_target("http://127.0.0.1:1/x/y").as_deref(),
            Some("/x/y")
        );
    }

    #[test]
    fn json_indents_and_keeps_order() {
        let text = r#"{"b":1.50,"a":[1, {}, []],"s":"x,{\"y\":[]}"}"#;
        let expected = "{\n  \"b\": 1.50,\n  \"a\": [\n    1,\n    {},\n    []\n  ],\n  \"s\": \"x,{\\\"y\\\":[]}\"\n}";
        assert_eq!(indent_json(text).as_deref(), Some(expected));
        assert_eq!(indent_json("{\"a\": "), None);
        assert_eq!(indent_json("plain text"), None);
    }

    #[test]
    fn bodies_show_binary_cut_and_empty() {
        let redaction = Redaction::new(&Auth::None, None);
        let mut out = String::new();
        format_body(&mut out, &[0xff, 0xfe, 0x00], false, true, &redaction);
        assert_eq!(out, "(3 bytes of binary data, not shown)\n");

        let mut out = String::new();
        // "é" is two bytes; cutting after the first must not count as binary.
        format_body(
            &mut out,
            "abé".as_bytes()[..3].as_ref(),
            true,
            true,
            &redaction,
        );
        assert_eq!(out, "ab\n");

        let mut out = String::new();
        format_body(&mut out, b"", false, true, &redaction);
        assert_eq!(out, "(empty body)\n");
    }
}
