//! TOML text to [`Config`]: every refusal names the key it is about by its full path
//! (`inbound_connectors[1].connector_type`, `server.listen[1]`), and says where in the file it is.

use super::values::invalid;
use super::{keyword, Config, ConfigError};

/// Why the text is not a configuration.
#[derive(Debug)]
pub(super) enum Refusal {
    /// A keyword spelled wrong: refused like any value validation refuses (`configuration key
    /// policy.mode = "x": must be "enforce" or "audit"`), so that the message, and the fix
    /// `config check` gives for it, do not depend on which stage caught it.
    Value(ConfigError),
    /// Not TOML, or not this file's shape (an unknown or missing key, a value of the wrong
    /// type): the key, why, and the line and column.
    Shape(String),
}

/// Parse `text` into the file's structs; nothing is checked beyond the shape and the keywords.
pub(super) fn decode(text: &str) -> Result<Config, Refusal> {
    serde_path_to_error::deserialize(toml::Deserializer::new(text)).map_err(|e| {
        // An empty path (a syntax error) would print as ".".
        let key = e.path().iter().next().map(|_| e.path().to_string());
        let error = e.into_inner();
        // toml's messages run over lines ("invalid array\nexpected `]`"); a refusal is one line.
        let reason = error.message().trim_end().replace('\n', ": ");
        let written = error
            .span()
            .and_then(|span| text.get(span))
            .map(str::trim)
            .filter(|w| !w.is_empty());
        if let (Some(key), Some(value), true) =
            (&key, written, reason.starts_with(keyword::REFUSAL))
        {
            return Refusal::Value(invalid(key.as_str(), value, reason));
        }
        let at = error
            .span()
            .map(|span| format!(" ({})", location(text, span.start)))
            .unwrap_or_default();
        Refusal::Shape(match key {
            Some(key) => format!("{key}: {reason}{at}"),
            None => format!("{reason}{at}"),
        })
    })
}

/// `line L, column C` of byte `offset`, both from 1, the column in characters.
fn location(text: &str, offset: usize) -> String {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    format!("line {line}, column {column}")
}
