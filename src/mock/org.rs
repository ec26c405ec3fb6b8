//! The organization rule of execute requests, and a JSON scan that finds the body's `org_id`
//! without building a `serde_json::Value` of the whole body.

use std::fmt;

use axum::http::{HeaderMap, StatusCode};
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::app::ApiError;
use super::client::ClientConfig;

/// Header that names the organization a request acts for.
const ORG_HEADER: &str = "x-genesys-org-id";

/// The `org_id` member of an execute body, as far as the organization rule needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BodyOrg {
    /// The body is valid JSON but not an object.
    NotObject,
    /// The body is an object without `org_id`.
    Missing,
    /// `org_id` is a string.
    Text(String),
    /// `org_id` is not a string. The value names its JSON type.
    NotText(&'static str),
}

/// Checks that `body` is one valid JSON value and returns its `org_id` member.
pub(crate) fn scan_body(body: &[u8]) -> Result<BodyOrg, serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    match deserializer.deserialize_any(TopLevelVisitor) {
        Ok(org) => {
            deserializer.end()?;
            Ok(org)
        }
        // A data error means the top level is not an object, which the visitor stops at
        // before reading the rest, so the whole body still needs a syntax check.
        Err(error) if error.is_data() => {
            serde_json::from_slice::<IgnoredAny>(body)?;
            Ok(BodyOrg::NotObject)
        }
        Err(error) => Err(error),
    }
}

/// Applies the organization rule and returns the organization the request acts for.
///
/// The target is the `x-genesys-org-id` header, or the client's home organization without
/// it. The client must be allowed to act for the target, and when `require_body_org_id` is
/// on, the body's `org_id` must name the target.
pub(crate) fn check_org<'a>(
    client: &'a ClientConfig,
    headers: &'a HeaderMap,
    body_org: &BodyOrg,
    require_body_org_id: bool,
) -> Result<&'a str, ApiError> {
    let forbidden =
        |message: String| ApiError::new(StatusCode::FORBIDDEN, "not.authorized", message);
    let (target, source) = match headers.get(ORG_HEADER) {
        Some(value) => {
            let value = value
                .to_str()
                .map_err(|_| forbidden(format!("the {ORG_HEADER} header is not valid text")))?;
            (value.trim(), "the x-genesys-org-id header")
        }
        None => (client.home_org.as_str(), "the client's home organization"),
    };
    if !client.may_act_for(target) {
        return Err(forbidden(format!(
            "client \"{}\" may not act for organization {target}",
            client.id
        )));
    }
    if !require_body_org_id {
        return Ok(target);
    }
    match body_org {
        BodyOrg::Text(org_id) if org_id.eq_ignore_ascii_case(target) => Ok(target),
        BodyOrg::Text(org_id) => Err(forbidden(format!(
            "the body's org_id {org_id} does not match organization {target} ({source})"
        ))),
        BodyOrg::Missing | BodyOrg::NotObject => Err(forbidden(format!(
            "the request body has no org_id: send a JSON object with \"org_id\": \"{target}\" \
             ({source})"
        ))),
        BodyOrg::NotText(kind) => Err(forbidden(format!(
            "the body's org_id is {kind}, not a string naming organization {target}"
        ))),
    }
}

/// Reads the top-level object, keeping only `org_id`. Other top-level values are rejected
/// with a data error.
struct TopLevelVisitor;

impl<'de> Visitor<'de> for TopLevelVisitor {
    type Value = BodyOrg;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<BodyOrg, A::Error> {
        let mut org = BodyOrg::Missing;
        while let Some(OrgIdKey(is_org_id)) = map.next_key()? {
            if is_org_id {
                org = map.next_value::<OrgValue>()?.0;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(org)
    }
}

/// An object key, reduced to whether it is `org_id`, so that keys need no allocation.
struct OrgIdKey(bool);

impl<'de> de::Deserialize<'de> for OrgIdKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;

        impl Visitor<'_> for KeyVisitor {
            type Value = OrgIdKey;

            fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
                formatter.write_str("an object key")
            }

            fn visit_str<E: de::Error>(self, key: &str) -> Result<OrgIdKey, E> {
                Ok(OrgIdKey(key == "org_id"))
            }
        }

        deserializer.deserialize_str(KeyVisitor)
    }
}

/// The value of `org_id`, whatever its JSON type.
struct OrgValue(BodyOrg);

impl<'de> de::Deserialize<'de> for OrgValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(OrgValueVisitor)
    }
}

struct OrgValueVisitor;

impl<'de> Visitor<'de> for OrgValueVisitor {
    type Value = OrgValue;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("any JSON value")
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<OrgValue, E> {
        Ok(OrgValue(BodyOrg::Text(value.to_string())))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<OrgValue, E> {
        Ok(OrgValue(BodyOrg::NotText("a boolean")))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<OrgValue, E> {
        Ok(OrgValue(BodyOrg::NotText("a number")))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<OrgValue, E> {
        Ok(OrgValue(BodyOrg::NotText("a number")))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<OrgValue, E> {
        Ok(OrgValue(BodyOrg::NotText("a number")))
    }

    fn visit_unit<E: de::Error>(self) -> Result<OrgValue, E> {
        Ok(OrgValue(BodyOrg::NotText("null")))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<OrgValue, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(OrgValue(BodyOrg::NotText("an array")))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<OrgValue, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(OrgValue(BodyOrg::NotText("an object")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_finds_org_id() {
        let cases: [(&str, BodyOrg); 9] = [
            (
                r#"{"org_id":"a","x":[1,{"org_id":"b"}]}"#,
                BodyOrg::Text("a".into()),
            ),
            (r#"{"x":{"org_id":"b"}}"#, BodyOrg::Missing),
            (
                r#"{"org_\u0069d":"esc\"aped"}"#,
                BodyOrg::Text("esc\"aped".into()),
            ),
            (r#"{"org_id":5}"#, BodyOrg::NotText("a number")),
            (r#"{"org_id":null}"#, BodyOrg::NotText("null")),
            (r#"{"org_id":{"a":[]}}"#, BodyOrg::NotText("an object")),
            ("[1, 2]", BodyOrg::NotObject),
            ("\"text\"", BodyOrg::NotObject),
            (" {} \n", BodyOrg::Missing),
        ];
        for (body, expected) in cases {
            assert_eq!(scan_body(body.as_bytes()).unwrap(), expected, "{body}");
        }
    }

    #[test]
    fn scan_rejects_invalid_json() {
        let cases = [
            "",
            "{",
            "{\"org_id\":\"a\"",
            "[1,",
            "{} {}",
            "{\"a\":1,}",
            "\u{ff}",
        ];
        for body in cases {
            let error = scan_body(body.as_bytes()).unwrap_err();
            assert!(!error.is_data(), "{body}: {error}");
        }
    }

    #[test]
    fn scan_matches_serde_json_on_validity() {
        let cases = [
            "{}",
            "[]",
            "1",
            "true",
            "{\"a\":[1,2,{\"b\":null}]}",
            "{\"a\" 1}",
            "[}",
        ];
        for body in cases {
            let reference = serde_json::from_slice::<serde_json::Value>(body.as_bytes()).is_ok();
            assert_eq!(scan_body(body.as_bytes()).is_ok(), reference, "{body}");
        }
    }
}
