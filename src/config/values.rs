//! The checks more than one section shares: how a refusal is worded, the bound on every `*_secs`
//! setting, and what a domain name is.

use super::ConfigError;
use std::fmt;
use std::time::Duration;

/// `configuration key {key} = {value}: {reason}`.
pub(super) fn invalid(
    key: impl Into<String>,
    value: impl fmt::Display,
    reason: impl Into<String>,
) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        value: value.to_string(),
        reason: reason.into(),
    }
}

/// A string value as the refusal shows it: quoted, so that an empty or blank value shows.
pub(super) fn quoted(s: &str) -> String {
    format!("{s:?}")
}

/// The longest any `*_secs` setting may be: one day. No SMTP wait is meaningful beyond that
/// (RFC 5321's longest timeout is 10 minutes), and a bound this low keeps every
/// `Instant + Duration` the gate computes far from overflowing, which panics (in every
/// session, for the session timeout) instead of failing here with the key named.
pub(super) const MAX_SECS: u64 = 86_400;

/// A `*_secs` value: from `min` to [`MAX_SECS`] seconds.
pub(super) fn seconds(key: &str, value: u64, min: u64) -> Result<Duration, ConfigError> {
    if value < min {
        return Err(invalid(
            key,
            value,
            format!("must be at least {min} second"),
        ));
    }
    if value > MAX_SECS {
        return Err(invalid(
            key,
            value,
            format!("must be at most {MAX_SECS} seconds (one day)"),
        ));
    }
    Ok(Duration::from_secs(value))
}

/// A DNS domain name: lower-cased, trailing dot removed, labels of letters, digits and hyphens
/// (punycode for IDNs), 1 to 63 octets each.
pub(crate) fn domain_name(key: &str, value: &str) -> Result<String, ConfigError> {
    let d = crate::policy::normalise(value);
    let bad = |why: &str| invalid(key, quoted(value), why.to_string());
    if d.is_empty() {
        return Err(bad("is empty"));
    }
    if d.len() > 253 {
        return Err(bad("is longer than 253 characters"));
    }
    for label in d.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(bad("has an empty label or one longer than 63 characters"));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            || label.starts_with('-')
            || label.ends_with('-')
        {
            return Err(bad(
                "is not a domain name (letters, digits and hyphens; write IDNs in punycode, xn--)",
            ));
        }
    }
    Ok(d)
}
