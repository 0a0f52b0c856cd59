//! `[log]`: the format of the log and which events it keeps.

use super::keyword::{self, Keyword};
use super::values::{invalid, quoted};
use super::ConfigError;
use serde::{Deserialize, Serialize};

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, which `relaygate report` reads.
    Json,
}

impl Keyword for LogFormat {
    const ALL: &'static [Self] = &[LogFormat::Text, LogFormat::Json];
    fn word(self) -> &'static str {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    }
}

pub const fn default_log_format() -> LogFormat {
    LogFormat::Text
}

pub const fn default_log_level() -> &'static str {
    "info"
}

/// `[log]` as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `"text"` or `"json"`. Default `"text"`.
    #[serde(with = "keyword")]
    pub format: LogFormat,
    /// tracing filter: comma-separated directives, each a level or `target=level`
    /// (`"relaygate=debug,warn"`), checked by [`log_level`]. `RUST_LOG` overrides it. Default
    /// `"info"`.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: default_log_format(),
            level: default_log_level().to_string(),
        }
    }
}

/// The levels a `log.level` directive may name (any case).
const LOG_LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];

/// `log.level`: EnvFilter takes any word it does not know for a target name, so a misspelt
/// level (`"inf"`) would enable one target nobody has and silence every log. Every
/// comma-separated directive must therefore be a level or `target[span{field}]=level` with one
/// of [`LOG_LEVELS`]; EnvFilter itself then refuses any other syntax error.
pub(super) fn log_level(value: &str) -> Result<(), ConfigError> {
    const ACCEPTED: &str = "each comma-separated directive must be a level or target=level, and \
                            the levels are trace, debug, info, warn, error and off";
    let directives: Vec<&str> = value
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .collect();
    if directives.is_empty() {
        return Err(invalid(
            "log.level",
            quoted(value),
            format!("is empty: {ACCEPTED}"),
        ));
    }
    for directive in directives {
        let level = directive
            .rsplit_once('=')
            .map_or(directive, |(_, l)| l.trim());
        if !LOG_LEVELS.iter().any(|l| l.eq_ignore_ascii_case(level)) {
            return Err(invalid(
                "log.level",
                quoted(value),
                format!("names {level:?}, which is not a level: {ACCEPTED}"),
            ));
        }
    }
    tracing_subscriber::EnvFilter::try_new(value)
        .map(|_| ())
        .map_err(|e| invalid("log.level", quoted(value), format!("is not a filter: {e}")))
}
