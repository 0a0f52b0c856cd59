//! Exchange Online's objects as `ConvertTo-Json` prints them, in typed structs: one per cmdlet,
//! a field for each property the gate has a key for, and every other property kept, spelled as
//! the input spells it, for the notes.
//!
//! PowerShell's property names are case-insensitive (`$c.senderipaddresses` is
//! `$c.SenderIPAddresses`), and JSON edited by hand or written by other tools does not always
//! keep Exchange's spelling, while serde matches names exactly. So before serde sees an object,
//! a name that differs from a mapped property's only in case is given Exchange's spelling
//! ([`read`]), and every other name goes to the struct's `#[serde(flatten)] other` untouched.
//! That is preferred to a `Deserialize` that lower-cases every key because the notes quote each
//! property the gate does not map as the input spells it.
//!
//! No field refuses a value: a value in none of the forms a property takes is kept as printed
//! ([`Printed::value`] is `None`), and the translation refuses it, naming the object (serde's
//! errors carry only text, and an object's `Name` may come after the faulty property).

use super::{Ctx, ImportError};
use crate::policy::ConnectorType;
use serde::de::{DeserializeOwned, Deserializer};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashSet};

/// One `Get-AcceptedDomain` object.
#[derive(Debug, Deserialize)]
pub(super) struct AcceptedDomain {
    #[serde(rename = "DomainName")]
    pub domain_name: Option<Printed<SmtpDomain>>,
    #[serde(rename = "DomainType")]
    pub domain_type: Option<Printed<AcceptedDomainType>>,
    #[serde(rename = "MatchSubDomains")]
    pub match_sub_domains: Option<Printed<bool>>,
    /// Every other property, by name as spelled (so in the order of those names).
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

/// One `Get-InboundConnector` object.
#[derive(Debug, Deserialize)]
pub(super) struct InboundConnector {
    #[serde(rename = "Name")]
    pub name: Option<Printed<ConnectorName>>,
    #[serde(rename = "ConnectorType")]
    pub connector_type: Option<Printed<ConnectorType>>,
    #[serde(rename = "Enabled")]
    pub enabled: Option<Printed<bool>>,
    #[serde(rename = "SenderIPAddresses")]
    pub sender_ip_addresses: Option<MultiValued<IpRange>>,
    #[serde(rename = "TlsSenderCertificateName")]
    pub tls_sender_certificate_name: Option<Printed<TlsCertificate>>,
    /// `null` is a list of no domains, written as `sender_domains = []`; only an absent
    /// property leaves the gate's default (any domain). serde's `Option` reads both as `None`.
    #[serde(rename = "SenderDomains", default, deserialize_with = "present")]
    pub sender_domains: Option<MultiValued<AddressSpace>>,
    #[serde(rename = "RestrictDomainsToIPAddresses")]
    pub restrict_domains_to_ip_addresses: Option<Printed<bool>>,
    #[serde(rename = "RestrictDomainsToCertificate")]
    pub restrict_domains_to_certificate: Option<Printed<bool>>,
    #[serde(rename = "RequireTls")]
    pub require_tls: Option<Printed<bool>>,
    /// Every other property, by name as spelled (so in the order of those names).
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

/// A cmdlet's object.
pub(super) trait Object: DeserializeOwned {
    /// The properties it has a field for, spelled as Exchange prints them (as the fields'
    /// `rename`s): the names matched without case.
    const MAPPED: &'static [&'static str];
}

impl Object for AcceptedDomain {
    const MAPPED: &'static [&'static str] = &["DomainName", "DomainType", "MatchSubDomains"];
}

impl Object for InboundConnector {
    const MAPPED: &'static [&'static str] = &[
        "Name",
        "ConnectorType",
        "Enabled",
        "SenderIPAddresses",
        "TlsSenderCertificateName",
        "SenderDomains",
        "RestrictDomainsToIPAddresses",
        "RestrictDomainsToCertificate",
        "RequireTls",
    ];
}

/// One object of `ctx.input` as its struct. Refused only when two property names differ only in
/// case: either could be the one Exchange meant.
pub(super) fn read<T: Object>(ctx: &Ctx, object: Map<String, Value>) -> Result<T, ImportError> {
    let mut lower = HashSet::with_capacity(object.len());
    for name in object.keys() {
        if !lower.insert(name.to_ascii_lowercase()) {
            return Err(ImportError::DuplicateProperty {
                input: ctx.input,
                object: ctx.object.clone(),
                property: name.clone(),
            });
        }
    }
    let misspelled = |name: &String| {
        T::MAPPED
            .iter()
            .any(|m| m.eq_ignore_ascii_case(name) && m != name)
    };
    // Rebuilt only when some name needs Exchange's spelling: most exports have it already.
    let object = if object.keys().any(misspelled) {
        object
            .into_iter()
            .map(
                |(name, value)| match T::MAPPED.iter().find(|m| m.eq_ignore_ascii_case(&name)) {
                    Some(mapped) => (mapped.to_string(), value),
                    None => (name, value),
                },
            )
            .collect()
    } else {
        object
    };
    // Every field takes any JSON, so this fails only if serde itself does.
    serde_json::from_value(Value::Object(object)).map_err(|e| ImportError::Unreadable {
        input: ctx.input,
        object: ctx.object.clone(),
        message: e.to_string(),
    })
}

/// A property's value: as printed (`json`, which the notes and errors quote) and, when it is in a
/// form `T` reads, what it means.
#[derive(Debug)]
pub(super) struct Printed<T> {
    pub json: Value,
    pub value: Option<T>,
}

impl<T: Form> Printed<T> {
    fn new(json: Value) -> Printed<T> {
        Printed {
            value: T::read(&json),
            json,
        }
    }
}

impl<'de, T: Form> Deserialize<'de> for Printed<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Value::deserialize(d).map(Printed::new)
    }
}

/// A multi-valued property, entry by entry. Exchange prints one as an array, as its one value,
/// as one string of comma-separated values (the form it stores some lists in), or as null.
#[derive(Debug)]
pub(super) struct MultiValued<T>(pub Vec<Printed<T>>);

impl<'de, T: Form> Deserialize<'de> for MultiValued<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(MultiValued(match Value::deserialize(d)? {
            Value::Null => Vec::new(),
            Value::String(s) => s
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| Printed::new(Value::String(s.to_string())))
                .collect(),
            Value::Array(entries) => entries.into_iter().map(Printed::new).collect(),
            one => vec![Printed::new(one)],
        }))
    }
}

/// A property that is present, even as null (see `InboundConnector::sender_domains`).
fn present<'de, D: Deserializer<'de>, T: Form>(d: D) -> Result<Option<MultiValued<T>>, D::Error> {
    MultiValued::deserialize(d).map(Some)
}

/// A .NET type as `ConvertTo-Json` prints it: what a value of it means, from each JSON form it
/// comes in.
pub(super) trait Form: Sized {
    /// `None`: in no form this type is printed in.
    fn read(json: &Value) -> Option<Self>;
}

/// A boolean; PowerShell sometimes prints one as `"True"` or `"False"`.
impl Form for bool {
    fn read(json: &Value) -> Option<bool> {
        match json {
            Value::Bool(b) => Some(*b),
            Value::String(s) if s.trim().eq_ignore_ascii_case("true") => Some(true),
            Value::String(s) if s.trim().eq_ignore_ascii_case("false") => Some(false),
            _ => None,
        }
    }
}

/// An enum value as its name (any case) or its number (`ConvertTo-Json` prints a .NET enum as its
/// number unless told `-EnumsAsStrings`), as a JSON number or a numeric string.
fn enum_value<T: Copy>(json: &Value, table: &[(&str, u64, T)]) -> Option<T> {
    let by_number = |n: u64| table.iter().find(|e| e.1 == n).map(|e| e.2);
    match json {
        Value::Number(n) => by_number(n.as_u64()?),
        Value::String(s) => {
            let s = s.trim();
            match s.parse::<u64>() {
                Ok(n) => by_number(n),
                Err(_) => table
                    .iter()
                    .find(|e| e.0.eq_ignore_ascii_case(s))
                    .map(|e| e.2),
            }
        }
        _ => None,
    }
}

/// Exchange's `AcceptedDomainType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AcceptedDomainType {
    Authoritative,
    ExternalRelay,
    InternalRelay,
}

/// `AcceptedDomainType` by name and number.
///
/// Source of the numbers: the declaration of
/// `Microsoft.Exchange.Data.Directory.SystemConfiguration.AcceptedDomainType` in decompiled
/// Exchange Server assemblies (GitHub `PiratesRE/exchange_diff`,
/// `Microsoft.Exchange.Data.Directory/Data/Directory/SystemConfiguration/AcceptedDomainType.cs`):
/// the members `Authoritative, ExternalRelay, InternalRelay` carry no explicit values, so they
/// are 0, 1 and 2, and `AcceptedDomain.DomainType` casts the stored integer to the enum.
/// Microsoft's reference page "AcceptedDomainType enumeration" (learn.microsoft.com, ff340752)
/// lists the same members in the same order, without numbers. Those are Exchange Server
/// sources; that Exchange Online's REST-based module prints the same numbers is assumed, not
/// observed.
const DOMAIN_TYPES: &[(&str, u64, AcceptedDomainType)] = &[
    ("Authoritative", 0, AcceptedDomainType::Authoritative),
    ("ExternalRelay", 1, AcceptedDomainType::ExternalRelay),
    ("InternalRelay", 2, AcceptedDomainType::InternalRelay),
];

impl Form for AcceptedDomainType {
    fn read(json: &Value) -> Option<Self> {
        enum_value(json, DOMAIN_TYPES)
    }
}

/// `TenantConnectorType` by name and number.
///
/// Source of the numbers: the declaration of `Microsoft.Exchange.Data.TenantConnectorType` in
/// decompiled Exchange Server assemblies (GitHub `PiratesRE/exchange_diff`,
/// `Microsoft.Exchange.Data/TenantConnectorType.cs`; the same in `evilashz/exchange-server-27065`):
/// `OnPremises = 1, Partner`, so Partner is 2; `TenantInboundConnector.ConnectorType` stores
/// `(int)value`. There is no 0. As for [`DOMAIN_TYPES`], these are Exchange Server sources and
/// Exchange Online printing the same numbers is assumed, not observed.
const CONNECTOR_TYPES: &[(&str, u64, ConnectorType)] = &[
    ("OnPremises", 1, ConnectorType::OnPremises),
    ("Partner", 2, ConnectorType::Partner),
];

impl Form for ConnectorType {
    fn read(json: &Value) -> Option<Self> {
        enum_value(json, CONNECTOR_TYPES)
    }
}

/// A connector's `Name`: a string with something in it.
#[derive(Debug, Clone)]
pub(super) struct ConnectorName(pub String);

impl Form for ConnectorName {
    fn read(json: &Value) -> Option<Self> {
        match json {
            Value::String(s) if !s.trim().is_empty() => Some(ConnectorName(s.clone())),
            _ => None,
        }
    }
}

/// An accepted domain's `DomainName` (`SmtpDomainWithSubdomains`): its text, or the text of the
/// object it may be printed as (see [`domain_object`]).
#[derive(Debug, Clone)]
pub(super) struct SmtpDomain(pub String);

impl Form for SmtpDomain {
    fn read(json: &Value) -> Option<Self> {
        match json {
            Value::String(s) => Some(SmtpDomain(s.clone())),
            Value::Object(m) => domain_object(m).map(SmtpDomain),
            _ => None,
        }
    }
}

/// A `SenderIPAddresses` entry (`IPRange`): its text, or an object's `Expression`.
#[derive(Debug, Clone)]
pub(super) struct IpRange(pub String);

impl Form for IpRange {
    fn read(json: &Value) -> Option<Self> {
        match json {
            Value::String(s) => Some(IpRange(s.clone())),
            Value::Object(m) => str_field(m, "Expression").map(IpRange),
            _ => None,
        }
    }
}

/// A `SenderDomains` entry (`AddressSpace`, `type:domain;cost`): its text, or the text of the
/// object it may be printed as (see [`domain_object`]).
#[derive(Debug, Clone)]
pub(super) struct AddressSpace(pub String);

impl Form for AddressSpace {
    fn read(json: &Value) -> Option<Self> {
        match json {
            Value::String(s) => Some(AddressSpace(s.clone())),
            Value::Object(m) => domain_object(m).map(AddressSpace),
            _ => None,
        }
    }
}

/// `TlsSenderCertificateName` (`TlsCertificate`): its text, or the text of the object it may be
/// printed as (see [`certificate_object`]).
#[derive(Debug, Clone)]
pub(super) struct TlsCertificate(pub String);

impl Form for TlsCertificate {
    fn read(json: &Value) -> Option<Self> {
        match json {
            Value::String(s) => Some(TlsCertificate(s.clone())),
            Value::Object(m) => certificate_object(m).map(TlsCertificate),
            _ => None,
        }
    }
}

/// A field of a nested object, by case-insensitive name.
fn field<'a>(map: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    map.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

fn str_field(map: &Map<String, Value>, name: &str) -> Option<String> {
    field(map, name).and_then(Value::as_str).map(str::to_string)
}

/// The text form of an `AddressSpace` or `SmtpDomainWithSubdomains` printed as an object
/// (`Address`, or `Domain` plus `IncludeSubDomains`, and for an address space its `Type`).
fn domain_object(map: &Map<String, Value>) -> Option<String> {
    let address = str_field(map, "Address").or_else(|| {
        let domain = str_field(map, "Domain")?;
        let subdomains = field(map, "IncludeSubDomains").and_then(Value::as_bool) == Some(true);
        Some(if subdomains && !domain.starts_with("*.") {
            format!("*.{domain}")
        } else {
            domain
        })
    })?;
    match str_field(map, "Type") {
        Some(t) if !t.eq_ignore_ascii_case("smtp") => Some(format!("{t}:{address}")),
        _ => Some(address),
    }
}

/// The text of a `TlsSenderCertificateName` printed as an object: a `TlsCertificate`
/// (`TlsCertificateName`), an `SmtpX509Identifier` (`CertificateIssuer`, `CertificateSubject`)
/// or an `SmtpDomainWithSubdomains`.
fn certificate_object(map: &Map<String, Value>) -> Option<String> {
    if let Some(inner) = field(map, "TlsCertificateName") {
        return match inner {
            Value::String(s) => Some(s.clone()),
            Value::Object(m) => certificate_object(m),
            _ => None,
        };
    }
    if let Some(subject) = str_field(map, "CertificateSubject") {
        let issuer = str_field(map, "CertificateIssuer").unwrap_or_default();
        let issuer = if issuer.is_empty() {
            String::new()
        } else {
            format!("<I>{issuer}")
        };
        return Some(format!("{issuer}<S>{subject}"));
    }
    domain_object(map)
}
