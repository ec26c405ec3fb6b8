//! OAuth clients of the mock: their credentials and the organizations they may act for.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// An OAuth client of the mock and the organizations it may act for.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    /// Client id, sent as the user name of HTTP Basic authentication.
    pub id: String,
    /// Client secret, sent as the password of HTTP Basic authentication.
    pub secret: String,
    /// Home (master) organization, which the client may always act for.
    pub home_org: String,
    /// Other organizations the client may act for.
    #[serde(default)]
    pub allowed_orgs: Vec<String>,
}

impl ClientConfig {
    /// Returns whether the client may act for `org` (compared without regard to case, as
    /// organization ids are UUIDs).
    pub fn may_act_for(&self, org: &str) -> bool {
        self.home_org.eq_ignore_ascii_case(org)
            || self
                .allowed_orgs
                .iter()
                .any(|allowed| allowed.eq_ignore_ascii_case(org))
    }
}

impl FromStr for ClientConfig {
    type Err = String;

    /// Parses `ID:SECRET:HOME_ORG[:ORG,ORG...]`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let hint = "write ID:SECRET:HOME_ORG or ID:SECRET:HOME_ORG:ORG1,ORG2";
        let parts: Vec<&str> = text.split(':').collect();
        if !(3..=4).contains(&parts.len()) || parts[..3].iter().any(|part| part.is_empty()) {
            return Err(format!("invalid client \"{text}\": {hint}"));
        }
        let allowed_orgs = match parts.get(3) {
            Some(list) => list
                .split(',')
                .map(str::trim)
                .filter(|org| !org.is_empty())
                .map(String::from)
                .collect(),
            None => Vec::new(),
        };
        Ok(ClientConfig {
            id: parts[0].to_string(),
            secret: parts[1].to_string(),
            home_org: parts[2].to_string(),
            allowed_orgs,
        })
    }
}

impl fmt::Display for ClientConfig {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}:{}:{}", self.id, self.secret, self.home_org)?;
        if !self.allowed_orgs.is_empty() {
            write!(formatter, ":{}", self.allowed_orgs.join(","))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_rejects_missing_parts() {
        for text in ["a:b", "a::c", "a:b:c:d:e"] {
            let error = text.parse::<ClientConfig>().unwrap_err();
            assert!(error.contains(text), "{error}");
        }
    }

    #[test]
    fn client_round_trips_through_text() {
        let text = "a:b:c:d,e";
        let client: ClientConfig = text.parse().unwrap();
        assert_eq!(client.to_string(), text);
        assert!(client.may_act_for("C"));
        assert!(client.may_act_for("e"));
        assert!(!client.may_act_for("f"));
    }
}
