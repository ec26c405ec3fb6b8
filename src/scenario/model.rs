//! The scenario file's structure, as serde reads it. Every table rejects unknown keys.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::data::RowOrder;
use crate::engine::stages::StageSpec;
use crate::mock::MockConfig;
use crate::thresholds::ThresholdSpec;
use crate::units::{Rate, TextDuration};

/// A whole scenario file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Names the report folder and the run.
    pub name: String,
    /// Scenario variables, usable as `{{NAME}}` in the request and the variants.
    #[serde(default)]
    pub vars: BTreeMap<String, String>,
    /// Where requests go.
    pub target: Target,
    /// How requests authenticate.
    #[serde(default)]
    pub auth: Auth,
    /// The base request that every variant starts from.
    pub request: RequestSpec,
    /// Optional CSV rows for `{{row.COLUMN}}` placeholders.
    pub data: Option<DataSpec>,
    /// Payload variants to compare; without any, the base request runs as variant `default`.
    #[serde(default, rename = "variant")]
    pub variants: Vec<Variant>,
    /// The load to apply.
    pub load: Load,
    /// Pass criteria for every cell: metric name to `"OP VALUE"`.
    #[serde(default)]
    pub thresholds: BTreeMap<String, ThresholdSpec>,
}

/// The `[target]` table.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// The base URL, or `embedded` to start the built-in mock.
    pub url: String,
    /// Settings of the embedded mock; only read when `url = "embedded"`.
    pub mock: Option<MockConfig>,
    /// Accept any TLS certificate (prints a warning).
    #[serde(default)]
    pub insecure: bool,
}

/// The `[auth]` table.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Auth {
    /// No authentication.
    #[default]
    None,
    /// A fixed bearer token.
    Bearer {
        /// The token, usually `${NAME}` from the environment.
        token: String,
    },
    /// An arbitrary header, such as an API key.
    Header {
        /// The header name.
        name: String,
        /// The header value, usually `${NAME}` from the environment.
        value: String,
    },
    /// OAuth2 client credentials: one token, fetched once, shared and refreshed before expiry.
    #[serde(rename = "oauth2-client-credentials")]
    OAuth2ClientCredentials {
        /// The token endpoint; `{target}` stands for the target URL.
        token_url: String,
        /// The client id.
        client_id: String,
        /// The client secret, usually `${NAME}` from the environment.
        client_secret: String,
        /// Optional `scope` form field.
        scope: Option<String>,
    },
}

/// The `[request]` table.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RequestSpec {
    /// The HTTP method.
    #[serde(default = "default_method")]
    pub method: String,
    /// The path and query, appended to the target URL; may hold placeholders.
    pub path: String,
    /// Headers; values may hold placeholders.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The body; may hold placeholders.
    #[serde(default)]
    pub body: String,
}

fn default_method() -> String {
    "POST".to_string()
}

/// The `[data]` table.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DataSpec {
    /// The CSV file, relative to the scenario file.
    pub file: PathBuf,
    /// `sequential` or `random`.
    #[serde(default)]
    pub order: RowOrder,
    /// Seed for `random` order and the `random_int` placeholder.
    #[serde(default)]
    pub seed: u64,
}

/// One `[[variant]]`: overrides of the base request.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Variant {
    /// Names the variant in reports.
    pub name: String,
    /// Replaces the base body.
    pub body: Option<String>,
    /// Added to the base headers, replacing any of the same name.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Replaces the base path.
    pub path: Option<String>,
    /// Thresholds of this variant; they replace the scenario's for the same metric.
    #[serde(default)]
    pub thresholds: BTreeMap<String, ThresholdSpec>,
}

/// The two load models.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Model {
    /// A fixed number of workers, each sending back to back.
    #[default]
    Closed,
    /// A fixed arrival rate, whatever happened to earlier requests.
    Open,
}

/// What the open model does with a request that falls due while every slot is busy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnSaturation {
    /// Send it late and measure its latency from the due time.
    #[default]
    Queue,
    /// Skip it and count it as dropped.
    Drop,
}

/// What a worker does after a 429 response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum On429 {
    /// Count the 429 and move on.
    #[default]
    Count,
    /// Wait as `Retry-After` asks (or back off exponentially from 1 s), then send again.
    RetryAfter,
}

/// One value or a list of values, so `concurrency = 8` and `concurrency = [1, 8]` both work.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum OneOrMany<T> {
    /// A single value.
    One(T),
    /// A list of values, one cell each.
    Many(Vec<T>),
}

impl<T: Clone> OneOrMany<T> {
    /// Returns the values as a list.
    pub fn to_vec(&self) -> Vec<T> {
        match self {
            OneOrMany::One(value) => vec![value.clone()],
            OneOrMany::Many(values) => values.clone(),
        }
    }
}

/// The `[load]` table.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Load {
    /// `closed` or `open`.
    #[serde(default)]
    pub model: Model,
    /// Closed model: worker counts, one cell each.
    pub concurrency: Option<OneOrMany<u32>>,
    /// Open model: arrival rates in requests per second, one cell each.
    pub rate: Option<OneOrMany<f64>>,
    /// Open model: the most requests outstanding at once.
    pub max_in_flight: Option<u32>,
    /// Open model: `queue` or `drop`.
    #[serde(default)]
    pub on_saturation: OnSaturation,
    /// Closed model: workers start evenly over this time.
    #[serde(default)]
    pub ramp_up: TextDuration,
    /// How long each cell sends.
    pub duration: Option<TextDuration>,
    /// How many requests each cell sends; with `duration`, whichever comes first.
    pub iterations: Option<u64>,
    /// Closed model: a cap on all workers together, `N/PERIOD`.
    pub throttle: Option<Rate>,
    /// The pause between cells.
    #[serde(default = "default_pause")]
    pub pause: TextDuration,
    /// Timeout of each request.
    #[serde(default = "default_timeout")]
    pub timeout: TextDuration,
    /// After an interrupt, how long requests in flight may finish before they are cancelled.
    #[serde(default = "default_grace")]
    pub grace: TextDuration,
    /// `count` or `retry-after`.
    #[serde(default)]
    pub on_429: On429,
    /// With `retry-after`: the most retries of one request.
    #[serde(default = "default_max_retries")]
    pub max_retries: u32,
    /// Steps that ramp concurrency (closed) or rate (open) linearly from zero; they replace
    /// `concurrency`, `rate`, `duration` and `ramp_up`, and each variant runs one cell.
    pub stages: Option<Vec<StageSpec>>,
    /// With `retry-after`: the longest wait before one retry; longer requests are cut to it.
    #[serde(default = "default_max_retry_wait")]
    pub max_retry_wait: TextDuration,
}

fn default_grace() -> TextDuration {
    TextDuration(std::time::Duration::from_secs(5))
}

fn default_max_retries() -> u32 {
    3
}

fn default_max_retry_wait() -> TextDuration {
    TextDuration(std::time::Duration::from_secs(60))
}

fn default_pause() -> TextDuration {
    TextDuration(std::time::Duration::from_secs(1))
}

fn default_timeout() -> TextDuration {
    TextDuration(std::time::Duration::from_secs(30))
}

/// A number that `OneOrMany` accepts, with the wording its errors use.
pub trait ListNumber: Sized + Clone {
    /// Describes the expected value, for error messages.
    const EXPECTED: &'static str;
    /// Converts a TOML integer.
    fn from_i64(value: i64) -> Option<Self>;
    /// Converts a TOML float.
    fn from_f64(value: f64) -> Option<Self>;
}

impl ListNumber for u32 {
    const EXPECTED: &'static str = "a whole number of at least 1, or a list such as [1, 8, 32]";

    fn from_i64(value: i64) -> Option<Self> {
        u32::try_from(value).ok()
    }

    fn from_f64(_: f64) -> Option<Self> {
        None
    }
}

impl ListNumber for f64 {
    const EXPECTED: &'static str = "a number of requests per second, or a list such as [50, 100.5]";

    fn from_i64(value: i64) -> Option<Self> {
        Some(value as f64)
    }

    fn from_f64(value: f64) -> Option<Self> {
        Some(value)
    }
}

struct OneOrManyVisitor<T>(std::marker::PhantomData<T>);

impl<'de, T: ListNumber> serde::de::Visitor<'de> for OneOrManyVisitor<T> {
    type Value = OneOrMany<T>;

    fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(T::EXPECTED)
    }

    fn visit_i64<E: serde::de::Error>(self, value: i64) -> Result<Self::Value, E> {
        T::from_i64(value)
            .map(OneOrMany::One)
            .ok_or_else(|| E::custom(format!("invalid value {value}: expected {}", T::EXPECTED)))
    }

    fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<Self::Value, E> {
        self.visit_i64(i64::try_from(value).unwrap_or(i64::MAX))
    }

    fn visit_f64<E: serde::de::Error>(self, value: f64) -> Result<Self::Value, E> {
        T::from_f64(value)
            .map(OneOrMany::One)
            .ok_or_else(|| E::custom(format!("invalid value {value}: expected {}", T::EXPECTED)))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut values = Vec::new();
        while let Some(one) = seq.next_element_seed(OneSeed::<T>(std::marker::PhantomData))? {
            values.push(one);
        }
        Ok(OneOrMany::Many(values))
    }
}

struct OneSeed<T>(std::marker::PhantomData<T>);

impl<'de, T: ListNumber> serde::de::DeserializeSeed<'de> for OneSeed<T> {
    type Value = T;

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<T, D::Error> {
        match deserializer.deserialize_any(OneOrManyVisitor::<T>(std::marker::PhantomData))? {
            OneOrMany::One(value) => Ok(value),
            OneOrMany::Many(_) => Err(serde::de::Error::custom(format!(
                "nested list: expected {}",
                T::EXPECTED
            ))),
        }
    }
}

impl<'de, T: ListNumber> Deserialize<'de> for OneOrMany<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(OneOrManyVisitor(std::marker::PhantomData))
    }
}
