//! Settings of the mock server, read from `volley mock` flags or a scenario's `[target.mock]`
//! table, and their validation.

use std::net::SocketAddr;
use std::time::Duration;

use clap::ArgAction;
use serde::{Deserialize, Serialize};

use super::client::ClientConfig;
use super::{DEMO_ACTION, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_HOME_ORG, DEMO_SUB_ORG};
use crate::units::{Rate, TextDuration};

const DEFAULT_LISTEN: &str = "127.0.0.1:8089";
const DEFAULT_RATE_LIMIT: &str = "300/60s";
const DEFAULT_TOKEN_LIFETIME: &str = "86400s";
const DEFAULT_BODY_LIMIT: u64 = 512_000;
const DEFAULT_HEADER_READ_TIMEOUT: &str = "10s";
/// The demo client in `--client` syntax, kept in step with the DEMO_* constants by the test
/// `default_client_matches_demo_constants`.
const DEFAULT_CLIENT: &str = "demo-client:demo-secret:11111111-1111-4111-8111-111111111111:\
                              22222222-2222-4222-8222-222222222222";

/// Settings of the mock server, shared by `volley mock` flags and a scenario's `[target.mock]`.
///
/// Every field has a default, so an empty table or no flags gives a working demo server.
#[derive(Debug, Clone, PartialEq, clap::Args, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MockConfig {
    /// Address and port to listen on. Port 0 picks a free port.
    #[arg(long, value_name = "ADDR:PORT", default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,

    /// Requests allowed per access token, as N/PERIOD: a burst of N, then one more every
    /// PERIOD/N.
    #[arg(long, value_name = "N/PERIOD", default_value = DEFAULT_RATE_LIMIT)]
    pub rate_limit: Rate,

    /// Added delay of execute responses: 200 and 403 get all of it, 429 the base and jitter.
    #[command(flatten)]
    pub latency: LatencyConfig,

    /// Whether an execute body must carry `org_id` naming the target organization (the
    /// x-genesys-org-id header, or the client's home organization without that header).
    #[arg(long, value_name = "BOOL", action = ArgAction::Set, default_value_t = true)]
    pub require_body_org_id: bool,

    /// Lifetime of an access token (a duration such as 3600s, at least 1s).
    #[arg(long, value_name = "DURATION", default_value = DEFAULT_TOKEN_LIFETIME)]
    pub token_lifetime: TextDuration,

    /// Maximum request body size in bytes. Larger execute bodies get 413.
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_BODY_LIMIT)]
    pub body_limit: u64,

    /// Seed of the random draws for latency jitter and faults. The same seed and the same
    /// request order give the same delays and faults.
    #[arg(long, value_name = "U64", default_value_t = 0)]
    pub seed: u64,

    /// Share of execute requests that get a 500 response, from 0 to 1.
    #[arg(long, value_name = "SHARE", default_value_t = 0.0)]
    pub error_rate: f64,

    /// Share of execute requests whose connection is reset with no response, from 0 to 1.
    #[arg(long, value_name = "SHARE", default_value_t = 0.0)]
    pub reset_rate: f64,

    /// Period of response stalls (a duration such as 10s, or 0s for no stalls). Responses
    /// other than /mock/* that are due in the first --stall-for of a period wait until it
    /// ends.
    #[arg(long, value_name = "DURATION", default_value = "0s")]
    pub stall_every: TextDuration,

    /// Length of each response stall (a duration, shorter than --stall-every).
    #[arg(long, value_name = "DURATION", default_value = "0s")]
    pub stall_for: TextDuration,

    /// Time a client gets to send the request headers, after which the connection is closed,
    /// and then the request body, after which the response is 408 (a duration such as 10s).
    #[arg(long, value_name = "DURATION", default_value = DEFAULT_HEADER_READ_TIMEOUT)]
    pub header_read_timeout: TextDuration,

    /// OAuth client allowed to get tokens, as ID:SECRET:HOME_ORG[:ORG,ORG...]. The client may
    /// act for its home organization and the listed ones. Repeat the flag for more clients.
    #[arg(
        long = "client",
        value_name = "ID:SECRET:HOME_ORG[:ORGS]",
        default_value = DEFAULT_CLIENT
    )]
    pub clients: Vec<ClientConfig>,

    /// Data action id that execute requests may name. Repeat the flag for more actions.
    #[arg(long = "action", value_name = "ID", default_value = DEMO_ACTION)]
    pub actions: Vec<String>,
}

/// Added delay of execute responses: base + a uniform draw from [0, jitter] + per_kib for
/// each KiB of request body. 200 and 403 responses get all of it; a 429 gets the base and
/// jitter only, and earlier rejections none.
#[derive(Debug, Clone, Copy, PartialEq, Default, clap::Args, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LatencyConfig {
    /// Fixed delay of each 200, 403 and 429 execute response (a duration such as 20ms).
    #[arg(
        id = "latency_base",
        long = "latency-base",
        value_name = "DURATION",
        default_value = "0s"
    )]
    pub base: TextDuration,

    /// Maximum random delay added on top of the base, drawn uniformly (a duration).
    #[arg(
        id = "latency_jitter",
        long = "latency-jitter",
        value_name = "DURATION",
        default_value = "0s"
    )]
    pub jitter: TextDuration,

    /// Delay added per KiB (1024 bytes) of request body (a duration such as 0.5ms).
    #[arg(
        id = "latency_per_kib",
        long = "latency-per-kib",
        value_name = "DURATION",
        default_value = "0s"
    )]
    pub per_kib: TextDuration,
}

impl Default for MockConfig {
    fn default() -> Self {
        MockConfig {
            listen: DEFAULT_LISTEN.parse().expect("default listen address"),
            rate_limit: DEFAULT_RATE_LIMIT.parse().expect("default rate limit"),
            latency: LatencyConfig::default(),
            require_body_org_id: true,
            token_lifetime: DEFAULT_TOKEN_LIFETIME.parse().expect("default lifetime"),
            body_limit: DEFAULT_BODY_LIMIT,
            seed: 0,
            error_rate: 0.0,
            reset_rate: 0.0,
            stall_every: TextDuration::default(),
            stall_for: TextDuration::default(),
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT
                .parse()
                .expect("default timeout"),
            clients: vec![ClientConfig {
                id: DEMO_CLIENT_ID.to_string(),
                secret: DEMO_CLIENT_SECRET.to_string(),
                home_org: DEMO_HOME_ORG.to_string(),
                allowed_orgs: vec![DEMO_SUB_ORG.to_string()],
            }],
            actions: vec![DEMO_ACTION.to_string()],
        }
    }
}

impl MockConfig {
    /// Checks the values that parsing alone cannot, and returns an error that names the value
    /// and the fix.
    pub fn validate(&self) -> anyhow::Result<()> {
        validate_share("error_rate", self.error_rate)?;
        validate_share("reset_rate", self.reset_rate)?;
        if self.error_rate + self.reset_rate > 1.0 {
            anyhow::bail!(
                "error_rate ({}) plus reset_rate ({}) is more than 1: lower one of them so that \
                 their sum is at most 1",
                self.error_rate,
                self.reset_rate
            );
        }
        if self.token_lifetime.0 < Duration::from_secs(1) {
            anyhow::bail!(
                "token_lifetime {} is shorter than 1s: set it to at least 1s, such as 3600s",
                self.token_lifetime
            );
        }
        if self.rate_limit.interval().is_zero() {
            anyhow::bail!(
                "rate_limit {} allows more than one request per nanosecond: use a longer period",
                self.rate_limit
            );
        }
        if self.header_read_timeout.0.is_zero() {
            anyhow::bail!("header_read_timeout must be longer than 0s: set it to 10s, for example");
        }
        self.validate_stalls()?;
        self.validate_clients()?;
        if self.actions.iter().all(|action| action.is_empty()) {
            anyhow::bail!(
                "no action is configured: add one with --action ID or actions = [\"ID\"]"
            );
        }
        Ok(())
    }

    fn validate_stalls(&self) -> anyhow::Result<()> {
        let (every, stall) = (self.stall_every.0, self.stall_for.0);
        if every.is_zero() && !stall.is_zero() {
            anyhow::bail!(
                "stall_for {} is set but stall_every is 0s: set stall_every to the stall period, \
                 such as 10s",
                self.stall_for
            );
        }
        if !every.is_zero() && (stall.is_zero() || stall >= every) {
            anyhow::bail!(
                "stall_for {} must be longer than 0s and shorter than stall_every {}, or responses \
                 would never or always be held",
                self.stall_for,
                self.stall_every
            );
        }
        Ok(())
    }

    fn validate_clients(&self) -> anyhow::Result<()> {
        if self.clients.is_empty() {
            anyhow::bail!(
                "no client is configured: add one with --client ID:SECRET:HOME_ORG or a \
                 [[target.mock.clients]] entry"
            );
        }
        for (index, client) in self.clients.iter().enumerate() {
            if client.id.is_empty() || client.secret.is_empty() || client.home_org.is_empty() {
                anyhow::bail!(
                    "client \"{}\" has an empty id, secret or home_org: fill in all three",
                    client.id
                );
            }
            if self.clients[..index]
                .iter()
                .any(|other| other.id == client.id)
            {
                anyhow::bail!(
                    "client id \"{}\" is configured twice: give each client its own id",
                    client.id
                );
            }
        }
        Ok(())
    }
}

fn validate_share(name: &str, value: f64) -> anyhow::Result<()> {
    if !(0.0..=1.0).contains(&value) {
        anyhow::bail!(
            "{name} {value} is not a share from 0 to 1: write 0.05 for 5 percent of requests"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Wrapper {
        #[command(flatten)]
        config: MockConfig,
    }

    fn parse_flags(flags: &[&str]) -> MockConfig {
        let args = std::iter::once("mock").chain(flags.iter().copied());
        Wrapper::try_parse_from(args).unwrap().config
    }

    #[test]
    fn flag_defaults_match_default_impl() {
        assert_eq!(parse_flags(&[]), MockConfig::default());
    }

    #[test]
    fn default_client_matches_demo_constants() {
        let parsed: ClientConfig = DEFAULT_CLIENT.parse().unwrap();
        assert_eq!(parsed, MockConfig::default().clients[0]);
    }

    #[test]
    fn empty_table_gives_defaults() {
        let config: MockConfig = toml::from_str("").unwrap();
        assert_eq!(config, MockConfig::default());
    }

    #[test]
    fn table_sets_nested_latency() {
        let text = r#"
            rate_limit = "5/1s"
            latency = { base = "20ms", jitter = "5ms", per_kib = "0.5ms" }
            require_body_org_id = false
            [[clients]]
            id = "a"
            secret = "b"
            home_org = "c"
        "#;
        let config: MockConfig = toml::from_str(text).unwrap();
        assert_eq!(config.rate_limit.count.get(), 5);
        assert_eq!(config.latency.base.0, Duration::from_millis(20));
        assert_eq!(config.latency.per_kib.0, Duration::from_micros(500));
        assert!(!config.require_body_org_id);
        assert_eq!(config.clients[0].allowed_orgs, Vec::<String>::new());
    }

    #[test]
    fn table_round_trips_through_toml() {
        let mut config = MockConfig::default();
        config.latency.jitter = "5ms".parse().unwrap();
        config.error_rate = 0.25;
        let text = toml::to_string(&config).unwrap();
        let back: MockConfig = toml::from_str(&text).unwrap();
        assert_eq!(back, config, "{text}");
    }

    #[test]
    fn table_rejects_unknown_field() {
        let error = toml::from_str::<MockConfig>("rate = \"5/1s\"").unwrap_err();
        assert!(error.to_string().contains("rate"), "{error}");
    }

    #[test]
    fn flags_set_every_field() {
        let config = parse_flags(&[
            "--require-body-org-id",
            "false",
            "--latency-base",
            "20ms",
            "--client",
            "a:b:c",
            "--client",
            "d:e:f:g,h",
            "--action",
            "x",
        ]);
        assert!(!config.require_body_org_id);
        assert_eq!(config.latency.base.0, Duration::from_millis(20));
        assert_eq!(config.clients.len(), 2);
        assert_eq!(config.clients[1].allowed_orgs, ["g", "h"]);
        assert_eq!(config.actions, ["x"]);
    }

    /// A change to the default configuration and a text its validation error must contain.
    type InvalidCase = (fn(&mut MockConfig), &'static str);

    #[test]
    fn validate_rejects_bad_values() {
        let cases: [InvalidCase; 6] = [
            (|c| c.error_rate = 1.5, "error_rate 1.5"),
            (|c| c.reset_rate = -0.1, "reset_rate -0.1"),
            (
                |c| c.token_lifetime = "500ms".parse().unwrap(),
                "at least 1s",
            ),
            (|c| c.stall_for = "1s".parse().unwrap(), "stall_every"),
            (|c| c.clients.clear(), "--client"),
            (|c| c.actions.clear(), "--action"),
        ];
        for (change, expected) in cases {
            let mut config = MockConfig::default();
            change(&mut config);
            let error = config.validate().unwrap_err().to_string();
            assert!(error.contains(expected), "{expected}: {error}");
        }
        assert!(MockConfig::default().validate().is_ok());
    }
}
