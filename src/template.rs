//! Compiled `{{placeholder}}` templates for request bodies, paths and header values.
//!
//! A template is parsed once into segments, so rendering a request costs a few copies and
//! never a parse. Scenario variables are resolved at compile time and become literal text;
//! only data-row columns and the built-ins below are looked up per request:
//!
//! | placeholder | value |
//! | --- | --- |
//! | `{{row.COLUMN}}` | the current data row's value in COLUMN, as written in the file |
//! | `{{NAME}}` | the scenario variable NAME (from `[vars]`) |
//! | `{{uuid}}` | a random UUID v4 |
//! | `{{seq}}` | a number unique to each request of a cell, counting from 0 |
//! | `{{worker}}` | the index of the worker sending the request, from 0 |
//! | `{{now_ms}}` | the Unix time in milliseconds |
//! | `{{random_int(A,B)}}` | a random integer from A to B inclusive |
//! | `{{pad(N)}}` | N `x` characters, to grow a payload by a known size |
//!
//! Values go in verbatim. Append `| json` to a row or variable placeholder
//! (`{{row.queue | json}}`) to escape it for use inside a JSON string, so a value with a
//! quote or a backslash keeps the body valid JSON.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::BufMut;
use rand::Rng;
use rand::rngs::SmallRng;
use thiserror::Error;

/// The largest `pad(N)` accepted, so a typo cannot ask for gigabytes per request.
pub const MAX_PAD: usize = 64 * 1024 * 1024;

/// A template that failed to compile.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum TemplateError {
    /// `{{` without a matching `}}`.
    #[error("unclosed placeholder at byte {offset}: close it with }}}}")]
    Unclosed {
        /// Byte offset of the opening braces.
        offset: usize,
    },
    /// A name that is neither a variable, a column nor a built-in.
    #[error("unknown placeholder {{{{{name}}}}}: use one of {valid}")]
    Unknown {
        /// The name between the braces.
        name: String,
        /// The names that would have been accepted.
        valid: String,
    },
    /// `{{row.X}}` where the data file has no column X, or there is no data file.
    #[error("unknown column in {{{{row.{column}}}}}: {hint}")]
    UnknownColumn {
        /// The column asked for.
        column: String,
        /// Which columns exist, or that a `[data]` file is missing.
        hint: String,
    },
    /// A built-in called with arguments it cannot use.
    #[error("invalid arguments in {{{{{call}}}}}: {hint}")]
    BadArguments {
        /// The whole placeholder text.
        call: String,
        /// What to write instead.
        hint: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Column(usize),
    JsonColumn(usize),
    Uuid,
    Seq,
    Worker,
    NowMs,
    RandomInt(i64, i64),
    Pad(usize),
}

/// A template compiled against the scenario variables and the data file's columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    segments: Vec<Segment>,
    literal_len: usize,
}

/// Per-request values a template may need.
pub struct RenderContext<'a> {
    /// The current data row, in the data file's column order (empty without a data file).
    pub row: &'a [String],
    /// The request's sequence number within the cell.
    pub seq: u64,
    /// The index of the worker sending the request.
    pub worker: u32,
    /// The worker's own random generator.
    pub rng: &'a mut SmallRng,
}

const BUILT_INS: [&str; 6] = [
    "uuid",
    "seq",
    "worker",
    "now_ms",
    "random_int(A,B)",
    "pad(N)",
];

impl Template {
    /// Compiles `text` against the scenario variables and the data columns.
    pub fn compile(
        text: &str,
        vars: &BTreeMap<String, String>,
        columns: Option<&[String]>,
    ) -> Result<Template, TemplateError> {
        let mut segments = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        let mut consumed = 0;
        while let Some(start) = rest.find("{{") {
            literal.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after.find("}}").ok_or(TemplateError::Unclosed {
                offset: consumed + start,
            })?;
            let name = after[..end].trim();
            match compile_placeholder(name, vars, columns)? {
                Segment::Literal(text) => literal.push_str(&text),
                segment => {
                    if !literal.is_empty() {
                        segments.push(Segment::Literal(std::mem::take(&mut literal)));
                    }
                    segments.push(segment);
                }
            }
            consumed += start + 2 + end + 2;
            rest = &after[end + 2..];
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            segments.push(Segment::Literal(literal));
        }
        let literal_len = segments
            .iter()
            .map(|segment| match segment {
                Segment::Literal(text) => text.len(),
                Segment::Pad(count) => *count,
                _ => 0,
            })
            .sum();
        Ok(Template {
            segments,
            literal_len,
        })
    }

    /// Returns the text when the template has no per-request placeholder.
    pub fn as_constant(&self) -> Option<&str> {
        match self.segments.as_slice() {
            [] => Some(""),
            [Segment::Literal(text)] => Some(text),
            _ => None,
        }
    }

    /// Returns whether any placeholder reads the data row.
    pub fn uses_row(&self) -> bool {
        self.segments
            .iter()
            .any(|segment| matches!(segment, Segment::Column(_) | Segment::JsonColumn(_)))
    }

    /// Returns the expected rendered length in bytes: the literal text and the padding plus
    /// room for the placeholders' values, so one reservation usually fits the whole render.
    pub fn size_hint(&self) -> usize {
        self.literal_len + 64
    }

    /// Appends the rendered text to `out`, a `Vec<u8>` or a `BytesMut` that a worker reuses.
    pub fn render_into<B: BufMut>(&self, out: &mut B, context: &mut RenderContext<'_>) {
        for segment in &self.segments {
            match segment {
                Segment::Literal(text) => out.put_slice(text.as_bytes()),
                Segment::Column(index) => {
                    if let Some(value) = context.row.get(*index) {
                        out.put_slice(value.as_bytes());
                    }
                }
                Segment::JsonColumn(index) => {
                    if let Some(value) = context.row.get(*index) {
                        escape_json_into(out, value);
                    }
                }
                Segment::Uuid => {
                    let uuid = uuid::Builder::from_random_bytes(context.rng.random()).into_uuid();
                    let mut buffer = uuid::Uuid::encode_buffer();
                    out.put_slice(uuid.hyphenated().encode_lower(&mut buffer).as_bytes());
                }
                Segment::Seq => write_number(out, context.seq),
                Segment::Worker => write_number(out, u64::from(context.worker)),
                Segment::NowMs => {
                    let millis = SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .map_or(0, |elapsed| elapsed.as_millis());
                    write_number(out, u64::try_from(millis).unwrap_or(u64::MAX));
                }
                Segment::RandomInt(low, high) => {
                    let value = context.rng.random_range(*low..=*high);
                    if value < 0 {
                        out.put_u8(b'-');
                    }
                    write_number(out, value.unsigned_abs());
                }
                Segment::Pad(count) => out.put_bytes(b'x', *count),
            }
        }
    }

    /// Renders into a new string; meant for tests, probes and one-off requests.
    pub fn render_to_string(&self, context: &mut RenderContext<'_>) -> String {
        let mut out = Vec::with_capacity(self.size_hint());
        self.render_into(&mut out, context);
        String::from_utf8_lossy(&out).into_owned()
    }
}

fn write_number<B: BufMut>(out: &mut B, value: u64) {
    let mut digits = [0u8; 20];
    let mut position = digits.len();
    let mut rest = value;
    loop {
        position -= 1;
        digits[position] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    out.put_slice(&digits[position..]);
}

/// Appends `value` escaped as the inside of a JSON string.
fn escape_json_into<B: BufMut>(out: &mut B, value: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for character in value.chars() {
        match character {
            '"' => out.put_slice(b"\\\""),
            '\\' => out.put_slice(b"\\\\"),
            '\n' => out.put_slice(b"\\n"),
            '\r' => out.put_slice(b"\\r"),
            '\t' => out.put_slice(b"\\t"),
            control if u32::from(control) < 0x20 => {
                let code = u32::from(control) as usize;
                out.put_slice(b"\\u00");
                out.put_slice(&[HEX[code >> 4], HEX[code & 0xf]]);
            }
            other => {
                let mut buffer = [0u8; 4];
                out.put_slice(other.encode_utf8(&mut buffer).as_bytes());
            }
        }
    }
}

fn compile_placeholder(
    name: &str,
    vars: &BTreeMap<String, String>,
    columns: Option<&[String]>,
) -> Result<Segment, TemplateError> {
    if let Some((inner, filter)) = name.split_once('|') {
        return compile_filtered(name, inner.trim(), filter.trim(), vars, columns);
    }
    if let Some(column) = name.strip_prefix("row.") {
        return compile_column(column, columns);
    }
    if let Some(value) = vars.get(name) {
        return Ok(Segment::Literal(value.clone()));
    }
    match name {
        "uuid" => return Ok(Segment::Uuid),
        "seq" => return Ok(Segment::Seq),
        "worker" => return Ok(Segment::Worker),
        "now_ms" => return Ok(Segment::NowMs),
        _ => {}
    }
    if let Some(arguments) = call_arguments(name, "random_int") {
        return compile_random_int(name, arguments);
    }
    if let Some(arguments) = call_arguments(name, "pad") {
        return compile_pad(name, arguments);
    }
    Err(unknown(name, vars, columns))
}

fn compile_filtered(
    call: &str,
    inner: &str,
    filter: &str,
    vars: &BTreeMap<String, String>,
    columns: Option<&[String]>,
) -> Result<Segment, TemplateError> {
    if filter != "json" {
        return Err(TemplateError::BadArguments {
            call: call.to_string(),
            hint: format!("unknown filter \"{filter}\"; the only filter is json"),
        });
    }
    match compile_placeholder(inner, vars, columns)? {
        Segment::Column(index) => Ok(Segment::JsonColumn(index)),
        Segment::Literal(text) => {
            let mut escaped = Vec::new();
            escape_json_into(&mut escaped, &text);
            Ok(Segment::Literal(
                String::from_utf8(escaped).expect("escaping keeps UTF-8"),
            ))
        }
        _ => Err(TemplateError::BadArguments {
            call: call.to_string(),
            hint: "| json applies to row columns and variables only".to_string(),
        }),
    }
}

fn compile_column(column: &str, columns: Option<&[String]>) -> Result<Segment, TemplateError> {
    let Some(columns) = columns else {
        return Err(TemplateError::UnknownColumn {
            column: column.to_string(),
            hint: "the scenario has no [data] file; add one with this column".to_string(),
        });
    };
    columns
        .iter()
        .position(|candidate| candidate == column)
        .map(Segment::Column)
        .ok_or_else(|| TemplateError::UnknownColumn {
            column: column.to_string(),
            hint: format!("the data file's columns are {}", columns.join(", ")),
        })
}

fn call_arguments<'a>(text: &'a str, function: &str) -> Option<&'a str> {
    text.strip_prefix(function)?
        .trim_start()
        .strip_prefix('(')?
        .strip_suffix(')')
}

fn compile_random_int(call: &str, arguments: &str) -> Result<Segment, TemplateError> {
    let bad = |hint: &str| TemplateError::BadArguments {
        call: call.to_string(),
        hint: hint.to_string(),
    };
    let (low, high) = arguments
        .split_once(',')
        .ok_or_else(|| bad("write random_int(A,B) with two integers, such as random_int(1,100)"))?;
    let low: i64 = low
        .trim()
        .parse()
        .map_err(|_| bad("A must be an integer, such as random_int(1,100)"))?;
    let high: i64 = high
        .trim()
        .parse()
        .map_err(|_| bad("B must be an integer, such as random_int(1,100)"))?;
    if low > high {
        return Err(bad("A must not be greater than B"));
    }
    Ok(Segment::RandomInt(low, high))
}

fn compile_pad(call: &str, arguments: &str) -> Result<Segment, TemplateError> {
    let count: usize = arguments
        .trim()
        .parse()
        .map_err(|_| TemplateError::BadArguments {
            call: call.to_string(),
            hint: "write pad(N) with a whole number of bytes, such as pad(1024)".to_string(),
        })?;
    if count > MAX_PAD {
        return Err(TemplateError::BadArguments {
            call: call.to_string(),
            hint: format!("pad takes at most {MAX_PAD} bytes"),
        });
    }
    Ok(Segment::Pad(count))
}

fn unknown(
    name: &str,
    vars: &BTreeMap<String, String>,
    columns: Option<&[String]>,
) -> TemplateError {
    let mut valid = String::new();
    for var in vars.keys() {
        let _ = write!(valid, "{var}, ");
    }
    for column in columns.unwrap_or_default() {
        let _ = write!(valid, "row.{column}, ");
    }
    valid.push_str(&BUILT_INS.join(", "));
    TemplateError::Unknown {
        name: name.to_string(),
        valid,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn vars() -> BTreeMap<String, String> {
        BTreeMap::from([("org_id".to_string(), "org-2".to_string())])
    }

    fn columns() -> Vec<String> {
        vec!["customer_id".to_string(), "name".to_string()]
    }

    fn render(template: &Template, row: &[String], seq: u64) -> String {
        let mut rng = SmallRng::seed_from_u64(7);
        template.render_to_string(&mut RenderContext {
            row,
            seq,
            worker: 3,
            rng: &mut rng,
        })
    }

    #[test]
    fn variables_become_literal_text() {
        let template = Template::compile("{\"org_id\": \"{{org_id}}\"}", &vars(), None).unwrap();
        assert_eq!(template.as_constant(), Some("{\"org_id\": \"org-2\"}"));
    }

    #[test]
    fn row_values_render_verbatim() {
        let columns = columns();
        let template = Template::compile(
            "{{ row.customer_id }}|{{row.name}}",
            &vars(),
            Some(&columns),
        )
        .unwrap();
        let row = vec!["007".to_string(), "Smith, \"J\"".to_string()];
        assert_eq!(render(&template, &row, 0), "007|Smith, \"J\"");
        assert!(template.uses_row());
        assert_eq!(template.as_constant(), None);
    }

    #[test]
    fn built_ins_render() {
        let template = Template::compile(
            "{{seq}}-{{worker}}-{{pad(3)}}-{{random_int(5,5)}}",
            &vars(),
            None,
        )
        .unwrap();
        assert_eq!(render(&template, &[], 42), "42-3-xxx-5");
    }

    #[test]
    fn uuid_renders_as_v4() {
        let template = Template::compile("{{uuid}}", &vars(), None).unwrap();
        let text = render(&template, &[], 0);
        let uuid = uuid::Uuid::parse_str(&text).unwrap();
        assert_eq!(uuid.get_version_num(), 4);
    }

    #[test]
    fn now_ms_is_current_time() {
        let template = Template::compile("{{now_ms}}", &vars(), None).unwrap();
        let rendered: u128 = render(&template, &[], 0).parse().unwrap();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis();
        assert!(now.abs_diff(rendered) < 60_000, "{rendered} vs {now}");
    }

    #[test]
    fn unknown_placeholder_lists_valid_names() {
        let columns = columns();
        let error = Template::compile("{{org}}", &vars(), Some(&columns)).unwrap_err();
        let message = error.to_string();
        assert!(message.contains("{{org}}"), "{message}");
        assert!(message.contains("org_id"), "{message}");
        assert!(message.contains("row.customer_id"), "{message}");
        assert!(message.contains("uuid"), "{message}");
    }

    #[test]
    fn unknown_column_names_the_columns() {
        let columns = columns();
        let error = Template::compile("{{row.customer}}", &vars(), Some(&columns)).unwrap_err();
        assert!(error.to_string().contains("customer_id, name"), "{error}");
    }

    #[test]
    fn row_without_data_file_is_rejected() {
        let error = Template::compile("{{row.id}}", &vars(), None).unwrap_err();
        assert!(error.to_string().contains("[data]"), "{error}");
    }

    #[test]
    fn unclosed_placeholder_is_rejected() {
        let error = Template::compile("ab{{seq", &vars(), None).unwrap_err();
        assert_eq!(error, TemplateError::Unclosed { offset: 2 });
    }

    #[test]
    fn bad_built_in_arguments_are_rejected() {
        for text in [
            "{{random_int(9,1)}}",
            "{{random_int(a,1)}}",
            "{{pad(-1)}}",
            "{{pad(1e9)}}",
        ] {
            let error = Template::compile(text, &vars(), None).unwrap_err();
            assert!(
                matches!(error, TemplateError::BadArguments { .. }),
                "{text}: {error}"
            );
        }
    }

    #[test]
    fn json_filter_escapes_values() {
        let columns = columns();
        let template =
            Template::compile("\"{{row.name | json}}\"", &vars(), Some(&columns)).unwrap();
        let row = vec!["1".to_string(), "a \"b\"\\\n".to_string()];
        let rendered = render(&template, &row, 0);
        assert_eq!(rendered, r#""a \"b\"\\\n""#);
        let parsed: String = serde_json::from_str(&rendered).unwrap();
        assert_eq!(parsed, row[1]);
    }

    #[test]
    fn json_filter_on_variables_and_unknown_filters() {
        let template = Template::compile("{{org_id|json}}", &vars(), None).unwrap();
        assert_eq!(template.as_constant(), Some("org-2"));
        let error = Template::compile("{{org_id | upper}}", &vars(), None).unwrap_err();
        assert!(error.to_string().contains("only filter is json"), "{error}");
        let error = Template::compile("{{seq | json}}", &vars(), None).unwrap_err();
        assert!(
            matches!(error, TemplateError::BadArguments { .. }),
            "{error}"
        );
    }

    #[test]
    fn single_braces_stay_literal() {
        let template = Template::compile("{\"a\": {}}", &vars(), None).unwrap();
        assert_eq!(template.as_constant(), Some("{\"a\": {}}"));
    }
}
