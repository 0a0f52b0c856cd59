//! Settings whose value is one word from a fixed list (`mode = "audit"`,
//! `connector_type = "OnPremises"`): typed in the file format, spelled exactly as Exchange and the
//! README spell them, and refused with the whole list when misspelt.
//!
//! serde's derived enums would refuse a misspelling in the parser's words ("unknown variant
//! `Onpremises`, expected ..."); the gate has always answered `configuration key
//! inbound_connectors[0].connector_type = "Onpremises": must be "OnPremises" or "Partner"`, which
//! `config check` turns into a fix. Every keyword field is therefore (de)serialized through this
//! module (`#[serde(with = "keyword")]`), which also covers the policy engine's own types without
//! putting serde into the engine.

use crate::policy::{ConnectorType, DomainType, Profile};
use serde::{de, Deserialize, Deserializer, Serializer};

/// A setting spelled as one word from a fixed list.
pub trait Keyword: Sized + Copy + PartialEq + 'static {
    /// Every value, in the order a refusal lists them.
    const ALL: &'static [Self];

    /// The value as the file spells it.
    fn word(self) -> &'static str;
}

/// How every keyword refusal begins; [`super::decode`] tells a refused keyword (reported like
/// any other refused value, with its key) from a file that is not the right shape by it.
pub(super) const REFUSAL: &str = "must be ";

/// `must be "a" or "b"`, `must be "a", "b" or "c"`.
pub fn refusal<T: Keyword>() -> String {
    let words: Vec<String> = T::ALL.iter().map(|v| format!("{:?}", v.word())).collect();
    match words.split_last() {
        Some((last, rest)) if !rest.is_empty() => {
            format!("{REFUSAL}{} or {last}", rest.join(", "))
        }
        _ => format!("{REFUSAL}{}", words.join("")),
    }
}

/// The value `word` spells, if any.
pub fn from_word<T: Keyword>(word: &str) -> Option<T> {
    T::ALL.iter().copied().find(|v| v.word() == word)
}

/// `#[serde(with = "keyword")]`: writes the word.
pub fn serialize<T: Keyword, S: Serializer>(value: &T, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(value.word())
}

/// `#[serde(with = "keyword")]`: reads a string (anything else gets serde's "invalid type") and
/// refuses a word that is not in the list with [`refusal`].
pub fn deserialize<'de, T: Keyword, D: Deserializer<'de>>(deserializer: D) -> Result<T, D::Error> {
    let word = String::deserialize(deserializer)?;
    from_word(&word).ok_or_else(|| de::Error::custom(refusal::<T>()))
}

/// `#[serde(with = "keyword::optional")]`: an optional keyword (a `[tenants.policy]` key that
/// may leave the top-level `[policy]`'s value in force), refused the same way when misspelt.
pub mod optional {
    use super::{from_word, refusal, Keyword};
    use serde::{de, Deserialize, Deserializer, Serializer};

    pub fn serialize<T: Keyword, S: Serializer>(
        value: &Option<T>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(v) => serializer.serialize_str(v.word()),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, T: Keyword, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<T>, D::Error> {
        let word = String::deserialize(deserializer)?;
        from_word(&word)
            .map(Some)
            .ok_or_else(|| de::Error::custom(refusal::<T>()))
    }
}

impl Keyword for Profile {
    const ALL: &'static [Self] = &[Profile::Exo2023, Profile::ExoLegacy];
    fn word(self) -> &'static str {
        self.as_str()
    }
}

impl Keyword for DomainType {
    const ALL: &'static [Self] = &[DomainType::Authoritative, DomainType::InternalRelay];
    fn word(self) -> &'static str {
        match self {
            DomainType::Authoritative => "Authoritative",
            DomainType::InternalRelay => "InternalRelay",
        }
    }
}

impl Keyword for ConnectorType {
    const ALL: &'static [Self] = &[ConnectorType::OnPremises, ConnectorType::Partner];
    fn word(self) -> &'static str {
        self.as_str()
    }
}
