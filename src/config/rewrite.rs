//! `[[rewrite]]`: the rules that set a flow's envelope sender at the gate
//! ([`crate::policy::rewrite`]), as written and validated.

use super::tenant::certificate_name;
use super::values::{domain_name, invalid, quoted};
use super::ConfigError;
use crate::policy::rewrite::{RewriteRule, SenderPattern};
use serde::{Deserialize, Serialize};

/// One `[[rewrite]]` table. Every client condition that is given must hold; absent means any.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RewriteConfig {
    /// Client addresses or CIDR ranges, IPv4 or IPv6. Default: any client.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub client_ips: Vec<String>,
    /// Names of the client's trusted certificate, `name` or `*.domain`. Default: any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub client_certificate_names: Vec<String>,
    /// Users authenticated on a submission listener. Default: any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub client_users: Vec<String>,
    /// P1 senders, `app@example.net` or `*@example.net`. Default: every sender but the null one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub senders: Vec<String>,
    /// Whether the rule also matches the null sender (`MAIL FROM:<>`). Default false.
    #[serde(default)]
    pub null_sender: bool,
    /// The envelope sender the upstream gets instead. Required.
    pub new_sender: String,
}

impl RewriteConfig {
    pub(super) fn validate(&self, key: &str) -> Result<RewriteRule, ConfigError> {
        let mut client_ips = Vec::new();
        for (i, v) in self.client_ips.iter().enumerate() {
            client_ips.push(client_ip(&format!("{key}.client_ips[{i}]"), v)?);
        }
        let mut client_certificate_names = Vec::new();
        for (i, v) in self.client_certificate_names.iter().enumerate() {
            client_certificate_names.push(certificate_name(
                &format!("{key}.client_certificate_names[{i}]"),
                v,
            )?);
        }
        for (i, u) in self.client_users.iter().enumerate() {
            if u.trim().is_empty() {
                return Err(invalid(
                    format!("{key}.client_users[{i}]"),
                    quoted(u),
                    "must not be empty",
                ));
            }
        }
        let mut senders = Vec::new();
        for (i, v) in self.senders.iter().enumerate() {
            senders.push(sender(&format!("{key}.senders[{i}]"), v)?);
        }
        let new_sender = address(&format!("{key}.new_sender"), &self.new_sender).map_err(|e| {
            match e {
                ConfigError::Invalid { key, value, reason } if value == "\"\"" => {
                    ConfigError::Invalid {
                        key,
                        value,
                        reason: format!("{reason}: the envelope sender the upstream gets instead, an address in an accepted domain"),
                    }
                }
                e => e,
            }
        })?;
        Ok(RewriteRule {
            client_ips,
            client_certificate_names,
            client_users: self.client_users.clone(),
            senders,
            null_sender: self.null_sender,
            new_sender: format!("{}@{}", new_sender.0, new_sender.1),
        })
    }
}

/// Validate each rule, keeping their order (first match wins).
pub(super) fn validate(rules: &[RewriteConfig]) -> Result<Vec<RewriteRule>, ConfigError> {
    rules
        .iter()
        .enumerate()
        .map(|(i, r)| r.validate(&format!("rewrite[{i}]")))
        .collect()
}

fn client_ip(key: &str, value: &str) -> Result<ipnet::IpNet, ConfigError> {
    let v = value.trim();
    let parsed = if v.contains('/') {
        v.parse::<ipnet::IpNet>().ok().map(|n| n.trunc())
    } else {
        v.parse::<std::net::IpAddr>().ok().map(ipnet::IpNet::from)
    };
    parsed.ok_or_else(|| invalid(key, quoted(value), "is not an IP address or CIDR range"))
}

/// `local@domain`: the local part printable ASCII without `<>@` or spaces, the domain a domain
/// name (normalised).
fn address(key: &str, value: &str) -> Result<(String, String), ConfigError> {
    let Some((local, domain)) = value.trim().rsplit_once('@') else {
        return Err(invalid(
            key,
            quoted(value),
            "is not an address (local@domain)",
        ));
    };
    if local.is_empty()
        || !local
            .chars()
            .all(|c| c.is_ascii_graphic() && !matches!(c, '<' | '>' | '@'))
    {
        return Err(invalid(
            key,
            quoted(value),
            "is not an address (local@domain): the local part must be printable ASCII without <, > or @",
        ));
    }
    Ok((local.to_string(), domain_name(key, domain)?))
}

fn sender(key: &str, value: &str) -> Result<SenderPattern, ConfigError> {
    if value.trim() == "<>" || value.trim().is_empty() {
        return Err(invalid(
            key,
            quoted(value),
            "the null sender is matched with null_sender = true, not in senders",
        ));
    }
    match value.trim().strip_prefix("*@") {
        Some(domain) => Ok(SenderPattern::Domain(domain_name(key, domain)?)),
        None => {
            let (local, domain) = address(key, value)?;
            Ok(SenderPattern::Address(crate::policy::normalise_address(
                &local, &domain,
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(toml_text: &str) -> Result<RewriteRule, String> {
        let c: RewriteConfig = toml::from_str(toml_text).map_err(|e| e.to_string())?;
        c.validate("rewrite[0]").map_err(|e| e.to_string())
    }

    #[test]
    fn a_rule_is_read_with_normalised_patterns() {
        let r = rule(
            r#"client_ips = ["192.0.2.7/24", "2001:db8::1"]
client_certificate_names = ["*.Fabrikam.com"]
senders = ["CRM@Example.net", "*@Apps.Example.org"]
new_sender = "crm@Contoso.com""#,
        )
        .unwrap();
        assert_eq!(r.client_ips[0].to_string(), "192.0.2.0/24");
        assert_eq!(
            r.senders,
            vec![
                SenderPattern::Address("crm@example.net".into()),
                SenderPattern::Domain("apps.example.org".into())
            ]
        );
        assert_eq!(r.new_sender, "crm@contoso.com");
        assert!(!r.null_sender);
    }

    #[test]
    fn bad_values_are_refused_with_their_key() {
        for (text, key) in [
            (r#"new_sender = "contoso.com""#, "rewrite[0].new_sender"),
            (r#"new_sender = """#, "rewrite[0].new_sender"),
            (r#"new_sender = "<a>@contoso.com""#, "rewrite[0].new_sender"),
            (
                "senders = [\"<>\"]\nnew_sender = \"a@contoso.com\"",
                "rewrite[0].senders[0]",
            ),
            (
                "client_ips = [\"192.0.2.300\"]\nnew_sender = \"a@contoso.com\"",
                "rewrite[0].client_ips[0]",
            ),
            (
                "client_certificate_names = [\"mail.*.com\"]\nnew_sender = \"a@contoso.com\"",
                "rewrite[0].client_certificate_names[0]",
            ),
        ] {
            let e = rule(text).unwrap_err();
            assert!(e.contains(key), "{text}: {e}");
        }
        assert!(rule("senders = [\"<>\"]\nnew_sender = \"a@contoso.com\"")
            .unwrap_err()
            .contains("null_sender = true"));
    }
}
