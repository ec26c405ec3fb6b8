//! Units shared by the scenario, the mock and the command line: durations written as text
//! (`"20s"`, `"500ms"`) and rates written as `N/PERIOD` (`"300/60s"`).

use std::fmt;
use std::num::NonZeroU32;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Parses a duration such as `20s`, `1m30s`, `500ms` or `1.5s`.
///
/// A bare number is rejected because its unit would be a guess.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty duration: write a number with a unit, such as 20s or 500ms".into());
    }
    if let Some(seconds) = decimal_seconds(text) {
        return seconds;
    }
    humantime::parse_duration(text).map_err(|error| {
        format!("invalid duration \"{text}\" ({error}): write a number with a unit, such as 20s, 500ms or 2m")
    })
}

/// Accepts the decimal forms humantime does not (`1.5s`, `0.5ms`).
fn decimal_seconds(text: &str) -> Option<Result<Duration, String>> {
    let (number, scale) = if let Some(number) = text.strip_suffix("ms") {
        (number, 1e-3)
    } else if let Some(number) = text.strip_suffix("us") {
        (number, 1e-6)
    } else if let Some(number) = text.strip_suffix('s') {
        (number, 1.0)
    } else {
        return None;
    };
    if !number.contains('.') {
        return None;
    }
    let value: f64 = number.trim().parse().ok()?;
    if !value.is_finite() || value < 0.0 {
        return Some(Err(format!(
            "invalid duration \"{text}\": write a non-negative number with a unit, such as 1.5s"
        )));
    }
    Some(Ok(Duration::from_secs_f64(value * scale)))
}

/// Formats a duration the way [`parse_duration`] reads it back.
pub fn format_duration(duration: Duration) -> String {
    humantime::format_duration(duration)
        .to_string()
        .replace(' ', "")
}

/// A duration read from text in a scenario or on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct TextDuration(pub Duration);

impl FromStr for TextDuration {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        parse_duration(text).map(TextDuration)
    }
}

impl fmt::Display for TextDuration {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&format_duration(self.0))
    }
}

impl<'de> Deserialize<'de> for TextDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl Serialize for TextDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// A rate written as `N/PERIOD`: at most `count` events per `period`, for example `300/60s`.
///
/// `PERIOD` may omit its number (`50/s` is `50/1s`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Events allowed per period.
    pub count: NonZeroU32,
    /// The length of one period, never zero.
    pub period: Duration,
}

impl Rate {
    /// Returns the rate in events per second.
    pub fn per_second(&self) -> f64 {
        f64::from(self.count.get()) / self.period.as_secs_f64()
    }

    /// Returns the time between two events once a burst is spent (`period / count`).
    pub fn interval(&self) -> Duration {
        self.period / self.count.get()
    }
}

impl FromStr for Rate {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let hint = "write N/PERIOD, such as 300/60s or 50/1s";
        let (count, period) = text
            .split_once('/')
            .ok_or_else(|| format!("invalid rate \"{text}\": {hint}"))?;
        let count: u32 = count.trim().parse().map_err(|_| {
            format!("invalid rate \"{text}\": the count \"{count}\" is not a whole number; {hint}")
        })?;
        let count = NonZeroU32::new(count).ok_or_else(|| {
            format!("invalid rate \"{text}\": the count must be at least 1; {hint}")
        })?;
        let period = period.trim();
        let period = if period.starts_with(|c: char| c.is_ascii_digit()) {
            parse_duration(period)
        } else {
            parse_duration(&format!("1{period}"))
        }
        .map_err(|_| {
            format!("invalid rate \"{text}\": the period \"{period}\" is not a duration; {hint}")
        })?;
        if period.is_zero() {
            return Err(format!(
                "invalid rate \"{text}\": the period must be longer than zero; {hint}"
            ));
        }
        Ok(Rate { count, period })
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}/{}", self.count, format_duration(self.period))
    }
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl Serialize for Rate {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Formats a latency for people, picking us, ms or s.
pub fn format_latency_us(micros: f64) -> String {
    if micros < 1_000.0 {
        format!("{micros:.0}us")
    } else if micros < 1_000_000.0 {
        format!("{:.1}ms", micros / 1_000.0)
    } else {
        format!("{:.2}s", micros / 1_000_000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duration_accepts_units() {
        assert_eq!(parse_duration("20s").unwrap(), Duration::from_secs(20));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("0.5ms").unwrap(), Duration::from_micros(500));
    }

    #[test]
    fn duration_rejects_bare_numbers() {
        let error = parse_duration("20").unwrap_err();
        assert!(error.contains("\"20\""), "{error}");
        assert!(error.contains("20s"), "{error}");
    }

    #[test]
    fn duration_rejects_negative_decimal() {
        assert!(parse_duration("-1.5s").is_err());
    }

    #[test]
    fn duration_round_trips_through_format() {
        for text in ["20s", "500ms", "1m 30s", "2h"] {
            let duration = parse_duration(text).unwrap();
            assert_eq!(
                parse_duration(&format_duration(duration)).unwrap(),
                duration
            );
        }
    }

    #[test]
    fn rate_parses_count_and_period() {
        let rate: Rate = "300/60s".parse().unwrap();
        assert_eq!(rate.count.get(), 300);
        assert_eq!(rate.period, Duration::from_secs(60));
        assert_eq!(rate.interval(), Duration::from_millis(200));
        assert!((rate.per_second() - 5.0).abs() < 1e-9);
    }

    #[test]
    fn rate_period_number_is_optional() {
        let rate: Rate = "50/s".parse().unwrap();
        assert_eq!(rate.period, Duration::from_secs(1));
    }

    #[test]
    fn rate_rejects_bad_forms() {
        for text in ["300", "0/1s", "x/1s", "10/0s", "10/abc", "-5/1s"] {
            let error = text.parse::<Rate>().unwrap_err();
            assert!(error.contains(text), "{text}: {error}");
            assert!(error.contains("300/60s"), "{text}: {error}");
        }
    }

    #[test]
    fn latency_picks_a_unit() {
        assert_eq!(format_latency_us(250.0), "250us");
        assert_eq!(format_latency_us(12_340.0), "12.3ms");
        assert_eq!(format_latency_us(2_500_000.0), "2.50s");
    }
}
