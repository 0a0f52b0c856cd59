//! `relaygate import-exo`: Exchange Online's `Get-InboundConnector` / `Get-AcceptedDomain` JSON
//! into relaygate's `[[accepted_domains]]` and `[[inbound_connectors]]` TOML.
//!
//! The admin runs, in PowerShell with the ExchangeOnlineManagement module,
//! `Get-InboundConnector | ConvertTo-Json -Depth 5` and `Get-AcceptedDomain | ConvertTo-Json`,
//! and hands the two texts to an [`Importer`] (or, as literal text, to [`import`]). The module
//! does no file I/O and no printing, so that the translation can be tested on literal text; the
//! CLI opens the files and prints.
//!
//! Inputs are read as streams: the top-level array is deserialized element by element and each
//! object translated as soon as it is read, so memory holds one object's JSON tree at a time
//! (an 82 MB export parsed whole into a `serde_json::Value` tree took more than ten times its
//! size). Whatever PowerShell wrote the text in (UTF-16 from Windows PowerShell's `Out-File`,
//! UTF-8 with or without a byte order mark) is decoded on the way, in [`encoding`].
//!
//! The gate only mirrors the tenant if the import says what it could not carry over, so every
//! property of every object ends up in exactly one of three places:
//!
//! * translated into a TOML key (the properties the gate's schema names);
//! * an [`NoteKind::Ignored`] note: metadata, or a setting with no bearing on which mail is
//!   accepted or relayed, or a mail-flow setting left at its default value (null, false, empty:
//!   a default changes nothing, so nothing is lost; it is still noted so that the notes account
//!   for the whole input);
//! * an [`NoteKind::Unsupported`] note: a setting that changes mail flow in Exchange Online and
//!   that relaygate cannot represent, a value the gate's configuration would refuse (which
//!   Exchange Online refuses too, or never produces), or a property this module does not know.
//!
//! The TOML must load as it is, so a value the gate would refuse is never written: it is left
//! out with a note, and when what remains of an object cannot stand (an OnPremises connector
//! with neither an IPv4 address nor a certificate name left) the whole object is left out, with
//! a note. The notes about an object are also written as `#` comment lines right above its
//! table (Ignored ones grouped by reason on one line, so that twenty metadata properties do not
//! bury the one line that matters), so the file explains itself.
//!
//! Input errors ([`ImportError`]) are reserved for text that is not what the two cmdlets print
//! (not JSON, a value of the wrong JSON type, no `Name` or `DomainName`, an enum value Exchange
//! does not have): importing such text could only produce a guess.

use crate::policy::ConnectorType;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::HashSet;
use std::fmt;
use std::io::{self, BufRead, Read};
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

mod encoding;

/// Name of the first input in messages.
const CONNECTORS: &str = "Get-InboundConnector";
/// Name of the second input in messages.
const DOMAINS: &str = "Get-AcceptedDomain";

/// Comment lines are wrapped to this width, so the file reads well in an editor.
const COMMENT_WIDTH: usize = 100;

/// The result of an import: the TOML to add to a configuration, and what was not carried over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Import {
    /// `[[accepted_domains]]` then `[[inbound_connectors]]` tables, each preceded by comment
    /// lines naming its source object and its notes. Loads when appended to a configuration
    /// without tables of those names.
    pub toml: String,
    /// Every property not translated, in input order (domains first, then connectors).
    pub notes: Vec<Note>,
}

impl Import {
    /// Some property changes mail flow in Exchange Online in a way the TOML does not: the gate
    /// will not decide exactly as Exchange Online would until an admin has looked.
    pub fn has_unsupported(&self) -> bool {
        self.notes.iter().any(|n| n.kind == NoteKind::Unsupported)
    }
}

/// One property (or one entry of a multi-valued property) that was not translated as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// The connector's `Name`, or the accepted domain's `DomainName` (what identifies it in the
    /// TOML).
    pub object: String,
    /// The property name as the input spells it.
    pub property: String,
    /// The value as compact JSON (strings quoted), for a multi-valued property the one entry.
    pub value: String,
    pub kind: NoteKind,
    /// Why, and what the TOML holds instead.
    pub reason: String,
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} = {} ({}): {}",
            self.object, self.property, self.value, self.kind, self.reason
        )
    }
}

/// How much a note matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoteKind {
    /// Metadata, a setting with no bearing on relay, or a mail-flow setting at its default.
    Ignored,
    /// Affects mail flow but relaygate cannot represent it, or a value Exchange Online itself
    /// would refuse; the gate will differ from Exchange Online here.
    Unsupported,
}

impl fmt::Display for NoteKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NoteKind::Ignored => "ignored",
            NoteKind::Unsupported => "unsupported",
        })
    }
}

/// Why an input was refused. Each names the input (the cmdlet) and, past the top level, the
/// object: its name when known, else its position (`entry 3`, counting from 1).
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{input} output cannot be read: {source}")]
    Read {
        input: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("{input} output is not JSON: {message}")]
    NotJson {
        input: &'static str,
        message: String,
    },
    #[error("{input} output is {found}, not a JSON object or an array of objects")]
    NotObjectOrArray {
        input: &'static str,
        found: &'static str,
    },
    #[error("{input} output: an object that starts with a \"value\" array must be Windows PowerShell's {{\"value\": [...], \"Count\": n}} wrapper, with no other property")]
    NotWrapper { input: &'static str },
    #[error("{input} output: entry {index} is {found}, not an object")]
    EntryNotObject {
        input: &'static str,
        index: usize,
        found: &'static str,
    },
    #[error("{input} output: {object} has no {property}")]
    MissingProperty {
        input: &'static str,
        object: String,
        property: &'static str,
    },
    #[error("{input} output: {object}: {property} = {value}: expected {expected}")]
    InvalidValue {
        input: &'static str,
        object: String,
        property: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("{input} output: {object} has the property {property} twice (spellings differ only in case)")]
    DuplicateProperty {
        input: &'static str,
        object: String,
        property: String,
    },
}

/// Translate the two cmdlets' JSON output, given as text. Either may be absent; empty text or
/// JSON `null` (what `ConvertTo-Json` prints for no objects) is no objects.
pub fn import(
    inbound_connectors: Option<&str>,
    accepted_domains: Option<&str>,
) -> Result<Import, ImportError> {
    let mut notes = Vec::new();
    let mut importer = Importer::new();
    if let Some(text) = accepted_domains {
        importer.accepted_domains(text.as_bytes(), |n| notes.push(n))?;
    }
    if let Some(text) = inbound_connectors {
        importer.inbound_connectors(text.as_bytes(), |n| notes.push(n))?;
    }
    Ok(Import {
        toml: importer.finish(),
        notes,
    })
}

/// An import read from streams: each object is translated, and its table written, as soon as
/// it is read. Give the accepted domains first, so that their tables come first as in
/// [`import`]; every note goes to the caller's `on_note` as it is made, so that a caller that
/// only counts most of them does not keep them.
pub struct Importer {
    toml: String,
    /// The domains emitted so far (a second one would make the configuration refuse to load).
    domains: HashSet<String>,
    /// The lower-cased connector names emitted so far (likewise).
    connectors: HashSet<String>,
}

impl Default for Importer {
    fn default() -> Self {
        Importer::new()
    }
}

impl Importer {
    pub fn new() -> Importer {
        let mut toml = String::new();
        comment(
            &mut toml,
            "Accepted domains and inbound connectors imported from Exchange Online \
             (Get-AcceptedDomain, Get-InboundConnector) by `relaygate import-exo`. The comment \
             lines above each table say which of that object's properties were not imported, \
             and why.",
        );
        Importer {
            toml,
            domains: HashSet::new(),
            connectors: HashSet::new(),
        }
    }

    /// `Get-AcceptedDomain | ConvertTo-Json` output.
    pub fn accepted_domains(
        &mut self,
        input: impl Read,
        mut on_note: impl FnMut(Note),
    ) -> Result<(), ImportError> {
        let Importer { toml, domains, .. } = self;
        each_object(DOMAINS, input, &mut |n, map| {
            accepted_domain(map, n, domains)?.write(toml, &mut on_note);
            Ok(())
        })
    }

    /// `Get-InboundConnector | ConvertTo-Json -Depth 5` output.
    pub fn inbound_connectors(
        &mut self,
        input: impl Read,
        mut on_note: impl FnMut(Note),
    ) -> Result<(), ImportError> {
        let Importer {
            toml, connectors, ..
        } = self;
        each_object(CONNECTORS, input, &mut |n, map| {
            inbound_connector(map, n, connectors)?.write(toml, &mut on_note);
            Ok(())
        })
    }

    /// The TOML: the header comment, then every table in the order read.
    pub fn finish(self) -> String {
        self.toml
    }
}

// ---------------------------------------------------------------------------------------------
// Reading the JSON
// ---------------------------------------------------------------------------------------------

/// What is done with each object of an input: `(its position from 1, the object)`.
type EachObject<'a> = dyn FnMut(usize, &Map<String, Value>) -> Result<(), ImportError> + 'a;

/// Hand every object of one input to `each` as it is read: a lone object (what `ConvertTo-Json`
/// prints for one), an array, or Windows PowerShell 5.1's `{"value": [...], "Count": n}`
/// wrapper around an array; `null` and empty text are no objects.
fn each_object(
    input: &'static str,
    text: impl Read,
    each: &mut EachObject<'_>,
) -> Result<(), ImportError> {
    let read_error = |source| ImportError::Read { input, source };
    let mut text = io::BufReader::new(encoding::utf8(text).map_err(read_error)?);
    if !skip_whitespace(&mut text).map_err(read_error)? {
        return Ok(());
    }
    let mut objects = Objects {
        input,
        count: 0,
        each,
        failed: None,
    };
    let mut json = serde_json::Deserializer::from_reader(text);
    let read = (&mut objects)
        .deserialize(&mut json)
        .and_then(|()| json.end());
    match (read, objects.failed) {
        (_, Some(e)) => Err(e),
        (Ok(()), None) => Ok(()),
        (Err(e), None) if e.is_io() => Err(read_error(e.into())),
        (Err(e), None) => Err(ImportError::NotJson {
            input,
            message: e.to_string(),
        }),
    }
}

/// Skips leading whitespace; `false` when nothing else follows.
fn skip_whitespace(text: &mut impl BufRead) -> io::Result<bool> {
    loop {
        let available = text.fill_buf()?;
        if available.is_empty() {
            return Ok(false);
        }
        match available.iter().position(|b| !b.is_ascii_whitespace()) {
            Some(i) => {
                text.consume(i);
                return Ok(true);
            }
            None => {
                let n = available.len();
                text.consume(n);
            }
        }
    }
}

/// The top level of one input, as a serde visitor: each object goes to `each` as soon as it is
/// read, so only one object's JSON tree is in memory at a time.
struct Objects<'a, 'b> {
    input: &'static str,
    /// Objects handed to `each` so far.
    count: usize,
    each: &'a mut EachObject<'b>,
    /// Why reading stopped when it was not the JSON itself (serde errors carry only text).
    failed: Option<ImportError>,
}

impl Objects<'_, '_> {
    fn stop<E: de::Error>(&mut self, e: ImportError) -> E {
        let message = e.to_string();
        self.failed = Some(e);
        E::custom(message)
    }

    fn object<E: de::Error>(&mut self, map: &Map<String, Value>) -> Result<(), E> {
        self.count += 1;
        (self.each)(self.count, map).map_err(|e| self.stop(e))
    }

    /// One element of the array of objects.
    fn entry<E: de::Error>(&mut self, v: Value) -> Result<(), E> {
        match v {
            Value::Object(map) => self.object(&map),
            other => {
                let e = ImportError::EntryNotObject {
                    input: self.input,
                    index: self.count + 1,
                    found: json_kind(&other),
                };
                Err(self.stop(e))
            }
        }
    }

    fn entries<'de, A: SeqAccess<'de>>(&mut self, mut seq: A) -> Result<(), A::Error> {
        while let Some(v) = seq.next_element::<Value>()? {
            self.entry(v)?;
        }
        Ok(())
    }

    fn not_object<E: de::Error>(&mut self, found: &'static str) -> Result<(), E> {
        let e = ImportError::NotObjectOrArray {
            input: self.input,
            found,
        };
        Err(self.stop(e))
    }
}

impl<'de> DeserializeSeed<'de> for &mut Objects<'_, '_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for &mut Objects<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object or an array of objects")
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.not_object("a boolean")
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.not_object("a number")
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.not_object("a number")
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.not_object("a number")
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        self.not_object("a string")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        self.entries(seq)
    }

    /// A lone object, or the wrapper. Windows PowerShell prints the wrapper's `value` first:
    /// then its array is read element by element like a top-level one, and only `Count` may
    /// follow. Otherwise the object is read whole and checked for the wrapper as before.
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut object = Map::new();
        if let Some(first) = map.next_key::<String>()? {
            let value = if first.eq_ignore_ascii_case("value") {
                map.next_value_seed(ValueOrEntries(&mut *self))?
            } else {
                Some(map.next_value::<Value>()?)
            };
            while let Some((k, v)) = map.next_entry::<String, Value>()? {
                object.insert(k, v);
            }
            match value {
                Some(v) => {
                    object.insert(first, v);
                }
                None if object.len() == 1
                    && object.keys().all(|k| k.eq_ignore_ascii_case("count")) =>
                {
                    return Ok(());
                }
                None => {
                    let e = ImportError::NotWrapper { input: self.input };
                    return Err(self.stop(e));
                }
            }
        }
        match value_count_wrapper(object) {
            Ok(array) => array.into_iter().try_for_each(|v| self.entry(v)),
            Err(object) => self.object(&object),
        }
    }
}

/// The value of an object's leading `value` property: an array goes entry by entry to the
/// objects (`None`); anything else comes back whole.
struct ValueOrEntries<'a, 'b, 'c>(&'a mut Objects<'b, 'c>);

impl<'de> DeserializeSeed<'de> for ValueOrEntries<'_, '_, '_> {
    type Value = Option<Value>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Option<Value>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueOrEntries<'_, '_, '_> {
    type Value = Option<Value>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Option<Value>, A::Error> {
        self.0.entries(seq).map(|()| None)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Option<Value>, A::Error> {
        Value::deserialize(de::value::MapAccessDeserializer::new(map)).map(Some)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Option<Value>, E> {
        Ok(Some(Value::Null))
    }

    fn visit_bool<E: de::Error>(self, b: bool) -> Result<Option<Value>, E> {
        Ok(Some(Value::Bool(b)))
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<Option<Value>, E> {
        Ok(Some(Value::from(n)))
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<Option<Value>, E> {
        Ok(Some(Value::from(n)))
    }

    fn visit_f64<E: de::Error>(self, n: f64) -> Result<Option<Value>, E> {
        Ok(Some(Value::from(n)))
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Option<Value>, E> {
        Ok(Some(Value::String(s.to_owned())))
    }
}

/// `{"value": [...], "Count": n}` and nothing else: the array; otherwise the object back.
fn value_count_wrapper(map: Map<String, Value>) -> Result<Vec<Value>, Map<String, Value>> {
    let is_wrapper = map.len() == 2
        && map.keys().any(|k| k.eq_ignore_ascii_case("count"))
        && map
            .iter()
            .any(|(k, v)| k.eq_ignore_ascii_case("value") && v.is_array());
    if !is_wrapper {
        return Err(map);
    }
    match map
        .into_iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("value"))
    {
        Some((_, Value::Array(array))) => Ok(array),
        _ => unreachable!("checked above"),
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A value as it appears in a note: compact JSON.
fn show(v: &Value) -> String {
    v.to_string()
}

/// Null, false, empty string, empty list or empty object: what Exchange prints for a setting
/// nobody set.
fn is_default(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(m) => m.is_empty(),
        Value::Number(_) => false,
    }
}

/// The properties of one object, looked up case-insensitively; what is taken is translated,
/// the rest is noted.
struct Props<'a> {
    entries: Vec<(&'a str, &'a Value)>,
    taken: Vec<bool>,
}

impl<'a> Props<'a> {
    /// `Err(name)`: two property names differ only in case, so a lookup would be ambiguous.
    fn new(map: &'a Map<String, Value>) -> Result<Self, String> {
        let mut lower = HashSet::new();
        for k in map.keys() {
            if !lower.insert(k.to_ascii_lowercase()) {
                return Err(k.clone());
            }
        }
        Ok(Props {
            entries: map.iter().map(|(k, v)| (k.as_str(), v)).collect(),
            taken: vec![false; map.len()],
        })
    }

    fn take(&mut self, name: &str) -> Option<&'a Value> {
        let i = self
            .entries
            .iter()
            .position(|(k, _)| k.eq_ignore_ascii_case(name))?;
        self.taken[i] = true;
        Some(self.entries[i].1)
    }

    /// The properties not taken, as `(name as spelled, value)`.
    fn rest(&self) -> impl Iterator<Item = (&'a str, &'a Value)> + '_ {
        self.entries
            .iter()
            .zip(&self.taken)
            .filter(|(_, taken)| !**taken)
            .map(|(e, _)| *e)
    }
}

/// Which input and object a value error is about.
struct Ctx {
    input: &'static str,
    object: String,
}

impl Ctx {
    fn invalid(
        &self,
        property: &'static str,
        value: &Value,
        expected: &'static str,
    ) -> ImportError {
        ImportError::InvalidValue {
            input: self.input,
            object: self.object.clone(),
            property,
            value: show(value),
            expected,
        }
    }
}

/// A boolean property; PowerShell sometimes prints booleans as `"True"`/`"False"`.
fn boolean(
    props: &mut Props<'_>,
    ctx: &Ctx,
    name: &'static str,
) -> Result<Option<bool>, ImportError> {
    match props.take(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(Value::String(s)) if s.trim().eq_ignore_ascii_case("true") => Ok(Some(true)),
        Some(Value::String(s)) if s.trim().eq_ignore_ascii_case("false") => Ok(Some(false)),
        Some(v) => Err(ctx.invalid(name, v, "true or false")),
    }
}

/// An enum property as its name (any case) or its number (`ConvertTo-Json` prints a .NET enum
/// as its number unless told `-EnumsAsStrings`), as JSON number or numeric string.
fn enum_value<T: Copy>(v: &Value, table: &[(&str, u64, T)]) -> Option<T> {
    let by_number = |n: u64| table.iter().find(|e| e.1 == n).map(|e| e.2);
    match v {
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

/// A string field of a nested object, by case-insensitive name.
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

/// One entry of a multi-valued property: its text, or the JSON it came as when it has no text
/// form this module knows.
enum Entry<'a> {
    Text(String, Value),
    Other(&'a Value),
}

/// The entries of a multi-valued property printed as an array, a single string (one value, or
/// the comma-separated form Exchange stores some lists in), or null; `object` reads an entry
/// printed as an object.
fn entries<'a>(v: &'a Value, object: fn(&Map<String, Value>) -> Option<String>) -> Vec<Entry<'a>> {
    let one = |e: &'a Value| match e {
        Value::String(s) => Entry::Text(s.clone(), e.clone()),
        Value::Object(m) => match object(m) {
            Some(s) => Entry::Text(s, e.clone()),
            None => Entry::Other(e),
        },
        other => Entry::Other(other),
    };
    match v {
        Value::Null => Vec::new(),
        Value::String(s) => s
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| Entry::Text(s.to_string(), Value::String(s.to_string())))
            .collect(),
        Value::Array(a) => a.iter().map(one).collect(),
        other => vec![one(other)],
    }
}

// ---------------------------------------------------------------------------------------------
// What the gate accepts: src/config.rs's own checks, with the reasons worded for an import
// ---------------------------------------------------------------------------------------------

/// A DNS domain name as `[[accepted_domains]] domain` takes it, normalised: the gate's own
/// check, so what is imported is what loads.
fn domain_name(value: &str) -> Option<String> {
    crate::config::domain_name("", value).ok()
}

/// `TlsSenderCertificateName` in the host-name form: `host.name` or `*.host.name`.
fn certificate_host(value: &str) -> Option<String> {
    crate::config::certificate_name("", value.trim())
        .ok()
        .map(|name| name.to_string())
}

const IPV4_ONLY: &str = "relaygate, like Exchange Online, takes only IPv4 addresses and CIDR \
                         ranges from /24 to /32; the entry is left out";

/// One `SenderIPAddresses` entry: `Ok(as written)` or `Err(reason)`.
fn sender_ip(text: &str) -> Result<String, String> {
    let v = text.trim();
    if v.contains('-') {
        return Err(format!("an address range (a-b): {IPV4_ONLY}"));
    }
    if v.contains('(') {
        return Err(format!("an address with a netmask, a(mask): {IPV4_ONLY}"));
    }
    let net = if v.contains('/') {
        v.parse::<ipnet::IpNet>().ok()
    } else {
        v.parse::<IpAddr>().ok().map(ipnet::IpNet::from)
    };
    match net {
        None => Err(format!("not an IP address or CIDR range: {IPV4_ONLY}")),
        Some(ipnet::IpNet::V6(_)) => Err(format!("IPv6: {IPV4_ONLY}")),
        Some(ipnet::IpNet::V4(n)) if n.prefix_len() < 24 => Err(format!(
            "a /{} range is larger than /24: {IPV4_ONLY}",
            n.prefix_len()
        )),
        // The gate's own check decides; the cases above only word the reason for an import.
        Some(ipnet::IpNet::V4(_)) => crate::config::sender_ip_address("", v)
            .map(|_| v.to_string())
            .map_err(|e| e.to_string()),
    }
}

/// One `SenderDomains` entry. Exchange prints these as address spaces, `smtp:*;1`
/// (`type:domain;cost`): the type must be SMTP, the cost means nothing to the gate.
fn sender_domain(text: &str) -> Result<String, String> {
    let mut v = text.trim();
    if let Some((kind, rest)) = v.split_once(':') {
        if !kind.trim().eq_ignore_ascii_case("smtp") {
            return Err(format!(
                "a {} address space, not SMTP: relaygate matches SMTP domains only; the entry is \
                 left out",
                kind.trim()
            ));
        }
        v = rest;
    }
    if let Some((domain, cost)) = v.rsplit_once(';') {
        if cost.trim().is_empty() || cost.trim().parse::<u32>().is_ok() {
            v = domain;
        }
    }
    let v = v.trim();
    let parsed = if v == "*" {
        Some("*".to_string())
    } else {
        certificate_host(v)
    };
    parsed.ok_or_else(|| {
        "not \"*\", a domain or \"*.\" and a domain (letters, digits and hyphens; IDNs in \
         punycode): relaygate cannot match it; the entry is left out"
            .to_string()
    })
}

/// What became of `TlsSenderCertificateName`.
enum Certificate {
    /// The host-name form, as the gate takes it.
    Host(String),
    /// The X.509 form `<I>issuer<S>subject`: the subject's CN, which the gate takes.
    SubjectCommonName(String),
    /// Nothing the gate can take; the reason.
    Unusable(&'static str),
}

/// Exchange's `TlsCertificate` is a host name (`SmtpDomainWithSubdomains`) or an X.509
/// identifier `<I>issuer<S>subject` (`SmtpX509Identifier`, whose subject CN is
/// `CN=(.*?)($|,)`, the first `CN=` up to a comma). The gate matches certificate names only, so
/// the X.509 form becomes its CN.
fn certificate(text: &str) -> Certificate {
    let t = text.trim();
    let upper = t.to_ascii_uppercase();
    if upper.starts_with("<I>") || upper.starts_with("<S>") {
        let Some(s) = upper.find("<S>") else {
            return Certificate::Unusable("an X.509 identifier without a subject (<S>)");
        };
        let subject = &t[s + 3..];
        let Some(cn) = subject.to_ascii_uppercase().find("CN=") else {
            return Certificate::Unusable("an X.509 identifier whose subject has no CN");
        };
        let cn = subject[cn + 3..].split(',').next().unwrap_or("");
        return match certificate_host(cn.trim().trim_matches('"')) {
            Some(host) => Certificate::SubjectCommonName(host),
            None => Certificate::Unusable(
                "an X.509 identifier whose subject CN is not a host name or \"*.\" and one",
            ),
        };
    }
    match certificate_host(t) {
        Some(host) => Certificate::Host(host),
        None => Certificate::Unusable(
            "not a host name, \"*.\" and one, or an X.509 identifier <I>issuer<S>subject",
        ),
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

// ---------------------------------------------------------------------------------------------
// Properties not translated
// ---------------------------------------------------------------------------------------------

/// What a property that is not translated means for relay.
#[derive(Clone, Copy)]
enum Other {
    /// No bearing on which mail is accepted or relayed, whatever its value.
    Ignored(&'static str),
    /// Changes mail flow in Exchange Online; relaygate cannot represent it. At its default
    /// value (null, false, empty) it changes nothing.
    MailFlow(&'static str),
}

const METADATA: &str = "metadata, no bearing on relay";
const AT_DEFAULT: &str = "a mail-flow setting at its default value, which changes nothing";
const UNKNOWN: &str = "unknown property: relaygate does not know what it does";
const SIGN_IN: &str = "sign-in and federation, no bearing on mail flow";

/// Metadata both cmdlets print (Active Directory bookkeeping, PowerShell remoting, free text).
const COMMON_METADATA: &[&str] = &[
    "Identity",
    "Id",
    "Guid",
    "DistinguishedName",
    "WhenCreated",
    "WhenChanged",
    "WhenCreatedUTC",
    "WhenChangedUTC",
    "ExchangeVersion",
    "ObjectState",
    "IsValid",
    "OrganizationId",
    "OrganizationalUnitRoot",
    "OriginatingServer",
    "ObjectCategory",
    "ObjectClass",
    "PSComputerName",
    "RunspaceId",
    "PSShowComputerName",
    "Comment",
    "AdminDisplayName",
    "ExchangeObjectId",
];

/// `Get-InboundConnector` properties the schema has no key for.
const CONNECTOR_OTHER: &[(&str, Other)] = &[
    (
        "ConnectorSource",
        Other::Ignored("how the connector was created (admin centre, Hybrid Configuration Wizard, migration): metadata"),
    ),
    (
        "TreatMessagesAsInternal",
        Other::MailFlow("Exchange Online treats mail on this connector as internal to the organisation; relaygate has no equivalent"),
    ),
    (
        "CloudServicesMailEnabled",
        Other::MailFlow("hybrid cross-premises headers (X-MS-Exchange-Organization-*) are kept on this connector; relaygate has no equivalent"),
    ),
    (
        "AssociatedAcceptedDomains",
        Other::MailFlow("Exchange Online uses this connector only for mail from these accepted domains; relaygate uses it for every sender, more widely than Exchange Online"),
    ),
    (
        "TrustedOrganizations",
        Other::MailFlow("mail from these other Microsoft 365 organisations is trusted on this connector; relaygate has no equivalent"),
    ),
    (
        "ClientHostNames",
        Other::MailFlow("Exchange Online recognises the sender by host name; relaygate matches by IP address and certificate name only"),
    ),
    (
        "ScanAndDropRecipients",
        Other::MailFlow("Exchange Online scans and drops mail to these recipients; relaygate has no equivalent"),
    ),
    (
        "EFSkipIPs",
        Other::MailFlow("Enhanced Filtering for Connectors; relaygate does no spam filtering"),
    ),
    (
        "EFSkipLastIP",
        Other::MailFlow("Enhanced Filtering for Connectors; relaygate does no spam filtering"),
    ),
    (
        "EFSkipMailGateway",
        Other::MailFlow("Enhanced Filtering for Connectors; relaygate does no spam filtering"),
    ),
    (
        "EFUsers",
        Other::MailFlow("Enhanced Filtering for Connectors; relaygate does no spam filtering"),
    ),
    (
        "EFTestMode",
        Other::MailFlow("Enhanced Filtering for Connectors; relaygate does no spam filtering"),
    ),
];

/// `Get-AcceptedDomain` properties the schema has no key for.
const DOMAIN_OTHER: &[(&str, Other)] = &[
    (
        "Name",
        Other::Ignored("a label; the domain is identified by DomainName"),
    ),
    (
        "Default",
        Other::Ignored("the domain Exchange uses in addresses it creates itself; no bearing on what is accepted or relayed"),
    ),
    (
        "InitialDomain",
        Other::Ignored("the tenant's first .onmicrosoft.com domain; accepted like any other"),
    ),
    (
        "IsCoexistenceDomain",
        Other::Ignored("the hybrid coexistence (.mail.onmicrosoft.com) domain; accepted like any other"),
    ),
    (
        "AddressBookEnabled",
        Other::Ignored("recipient filtering (Directory-Based Edge Blocking, 5.4.1): relaygate applies it only with a `recipients` list, which this export does not carry"),
    ),
    ("PerimeterDuplicateDetected", Other::Ignored(METADATA)),
    ("AuthenticationType", Other::Ignored(SIGN_IN)),
    ("LiveIdInstanceType", Other::Ignored(SIGN_IN)),
    ("FederatedOrganizationLink", Other::Ignored(SIGN_IN)),
    ("PendingFederatedAccountNamespace", Other::Ignored(SIGN_IN)),
    ("PendingFederatedDomain", Other::Ignored(SIGN_IN)),
    ("IsDefaultFederatedDomain", Other::Ignored(SIGN_IN)),
    ("EnableNego2Authentication", Other::Ignored(SIGN_IN)),
    ("DualProvisioningEnabled", Other::Ignored(SIGN_IN)),
    (
        "PendingRemoval",
        Other::MailFlow("the domain is being removed from Exchange Online; relaygate keeps accepting it"),
    ),
    (
        "PendingCompletion",
        Other::MailFlow("the domain is not fully set up in Exchange Online; relaygate accepts it already"),
    ),
    (
        "OutboundOnly",
        Other::MailFlow("Exchange Online accepts no inbound mail for an outbound-only domain; relaygate does"),
    ),
    (
        "CatchAllRecipientID",
        Other::MailFlow("a catch-all recipient; relaygate has no equivalent"),
    ),
    (
        "MailFlowPartner",
        Other::MailFlow("mail for the domain is routed through a partner; relaygate has no equivalent"),
    ),
];

/// A note for every property not taken.
fn note_rest(props: &Props<'_>, object: &str, specific: &[(&str, Other)], notes: &mut Vec<Note>) {
    for (name, value) in props.rest() {
        let (kind, reason) = if COMMON_METADATA.iter().any(|m| m.eq_ignore_ascii_case(name)) {
            (NoteKind::Ignored, METADATA)
        } else {
            match specific.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)) {
                Some((_, Other::Ignored(reason))) => (NoteKind::Ignored, *reason),
                Some((_, Other::MailFlow(_))) if is_default(value) => {
                    (NoteKind::Ignored, AT_DEFAULT)
                }
                Some((_, Other::MailFlow(reason))) => (NoteKind::Unsupported, *reason),
                None => (NoteKind::Unsupported, UNKNOWN),
            }
        };
        notes.push(note(object, name, show(value), kind, reason));
    }
}

fn note(
    object: &str,
    property: &str,
    value: String,
    kind: NoteKind,
    reason: impl Into<String>,
) -> Note {
    Note {
        object: object.to_string(),
        property: property.to_string(),
        value,
        kind,
        reason: reason.into(),
    }
}

// ---------------------------------------------------------------------------------------------
// Accepted domains
// ---------------------------------------------------------------------------------------------

/// Exchange's `AcceptedDomainType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ExoDomainType {
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
const DOMAIN_TYPES: &[(&str, u64, ExoDomainType)] = &[
    ("Authoritative", 0, ExoDomainType::Authoritative),
    ("ExternalRelay", 1, ExoDomainType::ExternalRelay),
    ("InternalRelay", 2, ExoDomainType::InternalRelay),
];

/// One `Get-AcceptedDomain` object. `seen`: the domains emitted so far (a second one would
/// make the configuration refuse to load).
fn accepted_domain(
    map: &Map<String, Value>,
    n: usize,
    seen: &mut HashSet<String>,
) -> Result<Block, ImportError> {
    let mut ctx = Ctx {
        input: DOMAINS,
        object: format!("entry {n}"),
    };
    let mut props = Props::new(map).map_err(|property| ImportError::DuplicateProperty {
        input: DOMAINS,
        object: ctx.object.clone(),
        property,
    })?;
    let raw = match props.take("DomainName") {
        None | Some(Value::Null) => {
            return Err(ImportError::MissingProperty {
                input: DOMAINS,
                object: ctx.object,
                property: "DomainName",
            })
        }
        Some(Value::String(s)) => s.clone(),
        Some(v @ Value::Object(m)) => {
            domain_object(m).ok_or_else(|| ctx.invalid("DomainName", v, "a domain name"))?
        }
        Some(v) => return Err(ctx.invalid("DomainName", v, "a domain name")),
    };
    ctx.object = format!("{raw:?}");
    let domain_type = match props.take("DomainType") {
        None | Some(Value::Null) => ExoDomainType::Authoritative,
        Some(v) => enum_value(v, DOMAIN_TYPES).ok_or_else(|| {
            ctx.invalid(
                "DomainType",
                v,
                "Authoritative, ExternalRelay or InternalRelay (or 0, 1 or 2)",
            )
        })?,
    };
    let mut match_subdomains = boolean(&mut props, &ctx, "MatchSubDomains")?.unwrap_or(false);

    let mut notes = Vec::new();
    let object = raw.as_str();
    let header = format!("{DOMAINS} {raw:?}");
    let Some(domain) = domain_name(&raw) else {
        notes.push(note(
            object,
            "DomainName",
            show(&Value::String(raw.clone())),
            NoteKind::Unsupported,
            "not a domain name relaygate takes (letters, digits and hyphens; IDNs in punycode, \
             xn--; no wildcard): the domain is left out",
        ));
        note_rest(&props, object, DOMAIN_OTHER, &mut notes);
        return Ok(Block::left_out(header, notes));
    };
    if !seen.insert(domain.clone()) {
        notes.push(note(
            object,
            "DomainName",
            show(&Value::String(raw.clone())),
            NoteKind::Unsupported,
            "listed twice: the domain is left out the second time",
        ));
        note_rest(&props, object, DOMAIN_OTHER, &mut notes);
        return Ok(Block::left_out(header, notes));
    }
    let emitted_type = match domain_type {
        ExoDomainType::Authoritative => "Authoritative",
        ExoDomainType::InternalRelay => "InternalRelay",
        ExoDomainType::ExternalRelay => {
            // For relay attribution an ExternalRelay domain is an accepted domain like any
            // other; what sets it apart is delivery, which the gate does not do. InternalRelay
            // is the gate's type for "accepted, recipients not known here" (no 5.4.1).
            notes.push(note(
                object,
                "DomainType",
                show(map_value(map, "DomainType")),
                NoteKind::Unsupported,
                "Exchange Online has no ExternalRelay domains (only Exchange Server does). For \
                 relay attribution it is an accepted domain all the same, so it is imported as \
                 domain_type = \"InternalRelay\": accepted, with no recipient filtering",
            ));
            "InternalRelay"
        }
    };
    if match_subdomains && emitted_type == "Authoritative" {
        notes.push(note(
            object,
            "MatchSubDomains",
            "true".into(),
            NoteKind::Unsupported,
            "only InternalRelay domains may match subdomains (Exchange Online refuses it too): \
             imported as match_subdomains = false",
        ));
        match_subdomains = false;
    }
    note_rest(&props, object, DOMAIN_OTHER, &mut notes);

    let table = format!(
        "[[accepted_domains]]\ndomain = {}\ndomain_type = {}\nmatch_subdomains = {match_subdomains}\n",
        toml_string(&domain),
        toml_string(emitted_type),
    );
    Ok(Block {
        header,
        notes,
        table: Some(table),
    })
}

/// A property's value from the original object (for notes written after translation).
fn map_value<'a>(map: &'a Map<String, Value>, name: &str) -> &'a Value {
    field(map, name).unwrap_or(&Value::Null)
}

// ---------------------------------------------------------------------------------------------
// Inbound connectors
// ---------------------------------------------------------------------------------------------

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

/// One `Get-InboundConnector` object. `seen`: the lower-cased names emitted so far (the gate
/// refuses two connectors of one name).
fn inbound_connector(
    map: &Map<String, Value>,
    n: usize,
    seen: &mut HashSet<String>,
) -> Result<Block, ImportError> {
    let mut ctx = Ctx {
        input: CONNECTORS,
        object: format!("entry {n}"),
    };
    let mut props = Props::new(map).map_err(|property| ImportError::DuplicateProperty {
        input: CONNECTORS,
        object: ctx.object.clone(),
        property,
    })?;
    let name = match props.take("Name") {
        None | Some(Value::Null) => {
            return Err(ImportError::MissingProperty {
                input: CONNECTORS,
                object: ctx.object,
                property: "Name",
            })
        }
        Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
        Some(v) => return Err(ctx.invalid("Name", v, "a non-empty string")),
    };
    ctx.object = format!("{name:?}");
    let connector_type = match props.take("ConnectorType") {
        None | Some(Value::Null) => {
            return Err(ImportError::MissingProperty {
                input: CONNECTORS,
                object: ctx.object,
                property: "ConnectorType",
            })
        }
        Some(v) => enum_value(v, CONNECTOR_TYPES)
            .ok_or_else(|| ctx.invalid("ConnectorType", v, "OnPremises or Partner (or 1 or 2)"))?,
    };
    let enabled = boolean(&mut props, &ctx, "Enabled")?.unwrap_or(true);
    let mut restrict_ip =
        boolean(&mut props, &ctx, "RestrictDomainsToIPAddresses")?.unwrap_or(false);
    let mut restrict_cert =
        boolean(&mut props, &ctx, "RestrictDomainsToCertificate")?.unwrap_or(false);
    let require_tls = boolean(&mut props, &ctx, "RequireTls")?.unwrap_or(false);

    let object = name.as_str();
    let mut notes = Vec::new();

    let mut ips = Vec::new();
    if let Some(v) = props.take("SenderIPAddresses") {
        for entry in entries(v, |m| str_field(m, "Expression")) {
            match entry {
                Entry::Text(text, original) => match sender_ip(&text) {
                    Ok(ip) => ips.push(ip),
                    Err(reason) => notes.push(note(
                        object,
                        "SenderIPAddresses",
                        show(&original),
                        NoteKind::Unsupported,
                        reason,
                    )),
                },
                Entry::Other(v) => notes.push(note(
                    object,
                    "SenderIPAddresses",
                    show(v),
                    NoteKind::Unsupported,
                    "not an address in a form relaygate reads; the entry is left out",
                )),
            }
        }
    }

    let mut certificate_name = None;
    match props.take("TlsSenderCertificateName") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) if s.trim().is_empty() => {}
        Some(v) => {
            let text = match v {
                Value::String(s) => Some(s.clone()),
                Value::Object(m) => certificate_object(m),
                _ => None,
            };
            let unusable = |reason: &str| {
                note(
                    object,
                    "TlsSenderCertificateName",
                    show(v),
                    NoteKind::Unsupported,
                    format!("{reason}: relaygate cannot match it; the key is left out"),
                )
            };
            match text.as_deref().map(certificate) {
                Some(Certificate::Host(host)) => certificate_name = Some(host),
                Some(Certificate::SubjectCommonName(cn)) => {
                    notes.push(note(
                        object,
                        "TlsSenderCertificateName",
                        show(v),
                        NoteKind::Unsupported,
                        format!(
                            "the X.509 form pins the issuer and the whole subject; relaygate \
                             matches certificate names only, so it takes the subject's CN, \
                             {cn:?}, and checks neither the issuer nor the rest of the subject"
                        ),
                    ));
                    certificate_name = Some(cn);
                }
                Some(Certificate::Unusable(reason)) => notes.push(unusable(reason)),
                None => notes.push(unusable("not in a form relaygate reads")),
            }
        }
    }

    let sender_domains = match props.take("SenderDomains") {
        None => None,
        Some(v) => {
            let mut domains = Vec::new();
            for entry in entries(v, domain_object) {
                match entry {
                    Entry::Text(text, original) => match sender_domain(&text) {
                        Ok(d) => domains.push(d),
                        Err(reason) => notes.push(note(
                            object,
                            "SenderDomains",
                            show(&original),
                            NoteKind::Unsupported,
                            reason,
                        )),
                    },
                    Entry::Other(v) => notes.push(note(
                        object,
                        "SenderDomains",
                        show(v),
                        NoteKind::Unsupported,
                        "not an address space in a form relaygate reads; the entry is left out",
                    )),
                }
            }
            Some(domains)
        }
    };

    let header = format!("{CONNECTORS} {name:?}");
    if connector_type == ConnectorType::OnPremises && ips.is_empty() && certificate_name.is_none() {
        notes.push(note(
            object,
            "ConnectorType",
            show(map_value(map, "ConnectorType")),
            NoteKind::Unsupported,
            "an OnPremises connector needs a sender IP address or a certificate name relaygate \
             can take, and none is left: the connector is left out, so mail it would accept in \
             Exchange Online is not attributed to the organisation by relaygate",
        ));
        note_rest(&props, object, CONNECTOR_OTHER, &mut notes);
        return Ok(Block::left_out(header, notes));
    }
    if !seen.insert(name.to_ascii_lowercase()) {
        notes.push(note(
            object,
            "Name",
            show(&Value::String(name.clone())),
            NoteKind::Unsupported,
            "another connector has this name (compared without case): the connector is left out",
        ));
        note_rest(&props, object, CONNECTOR_OTHER, &mut notes);
        return Ok(Block::left_out(header, notes));
    }

    // The restrictions are Partner settings: on an OnPremises connector Exchange Online ignores
    // them, and so does the gate, but whoever set them probably expects an effect.
    for (property, set) in [
        ("RestrictDomainsToIPAddresses", restrict_ip),
        ("RestrictDomainsToCertificate", restrict_cert),
    ] {
        if set && connector_type == ConnectorType::OnPremises {
            notes.push(note(
                object,
                property,
                "true".into(),
                NoteKind::Unsupported,
                "a Partner-only setting: Exchange Online ignores it on an OnPremises connector, \
                 and so does relaygate; kept as written",
            ));
        }
    }
    // The gate refuses a restriction with nothing to restrict to; Exchange Online refuses it
    // too, so this happens only when the addresses or the name were left out above.
    if restrict_ip && ips.is_empty() {
        notes.push(note(
            object,
            "RestrictDomainsToIPAddresses",
            "true".into(),
            NoteKind::Unsupported,
            "no sender IP address relaygate can take is left to restrict to: imported as false, \
             so relaygate does not restrict this connector's sender domains by address",
        ));
        restrict_ip = false;
    }
    if restrict_cert && certificate_name.is_none() {
        notes.push(note(
            object,
            "RestrictDomainsToCertificate",
            "true".into(),
            NoteKind::Unsupported,
            "no certificate name relaygate can take is left to restrict to: imported as false, \
             so relaygate does not restrict this connector's sender domains by certificate",
        ));
        restrict_cert = false;
    }
    if require_tls && connector_type == ConnectorType::Partner {
        notes.push(note(
            object,
            "RequireTls",
            "true".into(),
            NoteKind::Unsupported,
            "Exchange Online rejects mail that arrives on this Partner connector without TLS; \
             relaygate keeps the setting but does not enforce it",
        ));
    }
    note_rest(&props, object, CONNECTOR_OTHER, &mut notes);

    let mut table = String::from("[[inbound_connectors]]\n");
    table += &format!("name = {}\n", toml_string(&name));
    let type_name = match connector_type {
        ConnectorType::OnPremises => "OnPremises",
        ConnectorType::Partner => "Partner",
    };
    table += &format!("connector_type = {}\n", toml_string(type_name));
    table += &format!("enabled = {enabled}\n");
    table += &format!("sender_ip_addresses = {}\n", toml_array(&ips));
    if let Some(c) = &certificate_name {
        table += &format!("tls_sender_certificate_name = {}\n", toml_string(c));
    }
    // Absent from the input: the key is left out and the gate's default (`["*"]`) applies.
    if let Some(d) = &sender_domains {
        table += &format!("sender_domains = {}\n", toml_array(d));
    }
    table += &format!("restrict_domains_to_ip_addresses = {restrict_ip}\n");
    table += &format!("restrict_domains_to_certificate = {restrict_cert}\n");
    table += &format!("require_tls = {require_tls}\n");
    Ok(Block {
        header,
        notes,
        table: Some(table),
    })
}

// ---------------------------------------------------------------------------------------------
// Writing the TOML
// ---------------------------------------------------------------------------------------------

/// One source object: the comment lines about it, then its table (absent when left out).
struct Block {
    /// `Get-InboundConnector "name"`: which object the comments are about.
    header: String,
    notes: Vec<Note>,
    table: Option<String>,
}

impl Block {
    fn left_out(header: String, notes: Vec<Note>) -> Block {
        Block {
            header,
            notes,
            table: None,
        }
    }

    /// Append the block to `out` after a blank line, and hand over its notes.
    fn write(self, out: &mut String, on_note: &mut impl FnMut(Note)) {
        out.push('\n');
        self.render(out);
        self.notes.into_iter().for_each(on_note);
    }

    /// The source line, each Unsupported note on its own line (they are what an admin must
    /// read), then the Ignored ones grouped by reason (`Ignored: A, B. Reason.`), then the table.
    fn render(&self, out: &mut String) {
        match self.table {
            Some(_) => comment(out, &self.header),
            None => comment(out, &format!("{}: NOT IMPORTED (see below)", self.header)),
        }
        for n in self
            .notes
            .iter()
            .filter(|n| n.kind == NoteKind::Unsupported)
        {
            comment(
                out,
                &format!(
                    "Unsupported: {} = {}: {}",
                    n.property,
                    shorten(&n.value),
                    n.reason
                ),
            );
        }
        let mut groups: Vec<(&str, Vec<&str>)> = Vec::new();
        for n in self.notes.iter().filter(|n| n.kind == NoteKind::Ignored) {
            match groups.iter_mut().find(|(reason, _)| *reason == n.reason) {
                Some((_, names)) => names.push(&n.property),
                None => groups.push((&n.reason, vec![&n.property])),
            }
        }
        for (reason, names) in groups {
            let mut chars = reason.chars();
            let reason: String = chars
                .next()
                .map(|c| c.to_uppercase().chain(chars).collect())
                .unwrap_or_default();
            comment(out, &format!("Ignored: {}. {reason}.", names.join(", ")))
        }
        if let Some(table) = &self.table {
            out.push_str(table);
        }
    }
}

/// A value in a comment line: at most 120 characters.
fn shorten(value: &str) -> String {
    const MAX: usize = 120;
    if value.chars().count() <= MAX {
        value.to_string()
    } else {
        let mut s: String = value.chars().take(MAX - 3).collect();
        s.push_str("...");
        s
    }
}

/// `# ` comment lines, wrapped at spaces to [`COMMENT_WIDTH`], continuation lines indented.
/// Control characters, which TOML does not allow in comments, become spaces.
fn comment(out: &mut String, text: &str) {
    let text: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let mut line = String::from("#");
    let mut first = true;
    for word in text.split(' ').filter(|w| !w.is_empty()) {
        let fits = line.chars().count() + 1 + word.chars().count() <= COMMENT_WIDTH;
        if !first && !fits {
            out.push_str(&line);
            out.push('\n');
            line = String::from("#  ");
        }
        line.push(' ');
        line.push_str(word);
        first = false;
    }
    out.push_str(&line);
    out.push('\n');
}

/// A TOML basic string: `"` and `\` escaped, control characters as escapes (TOML allows none
/// but tab raw; all are escaped here so the line stays one line).
fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn toml_array(items: &[String]) -> String {
    let items: Vec<String> = items.iter().map(|s| toml_string(s)).collect();
    format!("[{}]", items.join(", "))
}

/// `relaygate import-exo`: the TOML on standard output, notes on standard error.
pub fn run(inbound_connectors: Option<PathBuf>, accepted_domains: Option<PathBuf>) -> ExitCode {
    use crate::cli::import_exo::{Importer, Note, NoteKind};
    if inbound_connectors.is_none() && accepted_domains.is_none() {
        eprintln!("relaygate: give --inbound-connectors and/or --accepted-domains");
        return ExitCode::from(2);
    }
    let mut importer = Importer::new();
    // Unsupported properties change mail flow: each one goes to the terminal. Ignored ones
    // (metadata, defaults) are only counted here, not kept; the TOML's comments list them all.
    let mut unsupported = Vec::new();
    let mut ignored = 0;
    let mut on_note = |n: Note| match n.kind {
        NoteKind::Unsupported => unsupported.push(n),
        NoteKind::Ignored => ignored += 1,
    };
    // Domains first: their tables come first in the TOML.
    for (path, domains) in [(accepted_domains, true), (inbound_connectors, false)] {
        let Some(path) = path else { continue };
        let file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) => {
                eprintln!("relaygate: cannot read {}: {e}", path.display());
                return ExitCode::from(2);
            }
        };
        let input = std::io::BufReader::with_capacity(
            64 * 1024,
            crate::files::Limited::new(file, crate::files::EXCHANGE_EXPORT),
        );
        let read = if domains {
            importer.accepted_domains(input, &mut on_note)
        } else {
            importer.inbound_connectors(input, &mut on_note)
        };
        if let Err(e) = read {
            eprintln!("relaygate: {}: {e}", path.display());
            return ExitCode::from(2);
        }
    }
    // Printed only once every input is read: an error leaves no partial configuration.
    print!("{}", importer.finish());
    for n in &unsupported {
        eprintln!("{n}");
    }
    eprintln!("relaygate import-exo: {ignored} properties ignored (no bearing on relay; listed in the output's comments)");
    if unsupported.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, Settings};
    use crate::policy::{CertificateName, DomainType, SenderDomain};

    const BASE: &str = r#"
[server]
hostname = "gate.test"
[upstream]
kind = "directory"
path = "/tmp/relaygate-import-test"
"#;

    /// The import appended to a minimal configuration, loaded and validated as the gate would.
    fn load(import: &Import) -> Settings {
        let text = format!("{BASE}\n{}", import.toml);
        match Config::parse(&text) {
            Ok(config) => config
                .validate()
                .unwrap_or_else(|e| panic!("{e}\n---\n{text}")),
            Err(e) => panic!("{e}\n---\n{text}"),
        }
    }

    fn nets(list: &[&str]) -> Vec<ipnet::Ipv4Net> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    fn connectors(json: &str) -> Import {
        import(Some(json), None).unwrap()
    }

    fn domains(json: &str) -> Import {
        import(None, Some(json)).unwrap()
    }

    fn find<'a>(import: &'a Import, object: &str, property: &str) -> Vec<&'a Note> {
        import
            .notes
            .iter()
            .filter(|n| n.object == object && n.property == property)
            .collect()
    }

    fn unsupported<'a>(import: &'a Import, object: &str, property: &str) -> &'a Note {
        let found = find(import, object, property);
        assert_eq!(found.len(), 1, "{object} {property}: {:#?}", import.notes);
        assert_eq!(found[0].kind, NoteKind::Unsupported, "{:#?}", found[0]);
        found[0]
    }

    #[test]
    fn shipped_examples_import_and_load() {
        let import = import(
            Some(include_str!(
                "../../config/examples/Get-InboundConnector.json"
            )),
            Some(include_str!(
                "../../config/examples/Get-AcceptedDomain.json"
            )),
        )
        .unwrap();
        // The exact TOML the documented example run produces; this is also the load test the
        // brief asks for, spelled out.
        let text = format!("{BASE}\n{}", import.toml);
        let settings = crate::config::Config::parse(&text)
            .unwrap()
            .validate()
            .unwrap();
        let tenant = &settings.policy.tenant;

        let d: Vec<_> = tenant
            .accepted_domains
            .iter()
            .map(|d| (d.domain.as_str(), d.domain_type, d.match_subdomains))
            .collect();
        assert_eq!(
            d,
            [
                ("contoso.com", DomainType::Authoritative, false),
                ("fabrikam.com", DomainType::InternalRelay, true),
                ("contoso.onmicrosoft.com", DomainType::Authoritative, false),
            ]
        );

        let c = &tenant.inbound_connectors;
        assert_eq!(c.len(), 4);
        assert_eq!(c[0].name, "Contoso OnPrem by IP");
        assert_eq!(c[0].connector_type, ConnectorType::OnPremises);
        assert!(c[0].enabled);
        assert_eq!(c[0].sender_ip_addresses, nets(&["203.0.113.0/24"]));
        assert_eq!(c[0].tls_sender_certificate_name, None);
        assert_eq!(c[0].sender_domains, [SenderDomain::Any]);

        assert_eq!(c[1].name, "Contoso OnPrem by certificate");
        assert_eq!(
            c[1].tls_sender_certificate_name,
            Some(CertificateName::Wildcard("contoso.com".into()))
        );
        assert!(c[1].sender_ip_addresses.is_empty());

        assert_eq!(c[2].name, "Woodgrove Bank partner");
        assert_eq!(c[2].connector_type, ConnectorType::Partner);
        assert!(c[2].restrict_domains_to_ip_addresses);
        assert!(!c[2].restrict_domains_to_certificate);
        assert_eq!(
            c[2].sender_ip_addresses,
            nets(&["198.51.100.0/26", "198.51.100.77/32"])
        );
        assert_eq!(
            c[2].sender_domains,
            [
                SenderDomain::Exact("woodgrovebank.com".into()),
                SenderDomain::WithSubdomains("woodgrovebank.com".into())
            ]
        );

        assert_eq!(c[3].name, "Lyon legacy relay");
        assert_eq!(c[3].sender_ip_addresses, nets(&["192.0.2.25/32"]));

        // Exactly these need an admin's eye; everything else is metadata or at its default.
        let mut unsupported: Vec<_> = import
            .notes
            .iter()
            .filter(|n| n.kind == NoteKind::Unsupported)
            .map(|n| (n.object.as_str(), n.property.as_str(), n.value.as_str()))
            .collect();
        unsupported.sort();
        assert_eq!(
            unsupported,
            [
                (
                    "Lyon legacy relay",
                    "AssociatedAcceptedDomains",
                    "[\"contoso.com\"]"
                ),
                (
                    "Lyon legacy relay",
                    "SenderIPAddresses",
                    "\"2001:db8:25::25\""
                ),
                ("Woodgrove Bank partner", "RequireTls", "true"),
            ]
        );
        assert!(import.has_unsupported());
        // Every property the real cmdlets print is known: none is reported as unknown.
        assert!(
            import.notes.iter().all(|n| n.reason != UNKNOWN),
            "{:#?}",
            import
                .notes
                .iter()
                .filter(|n| n.reason == UNKNOWN)
                .collect::<Vec<_>>()
        );
        // Metadata and defaults are accounted for, as Ignored.
        let default = find(&import, "contoso.com", "Default");
        assert_eq!(default.len(), 1);
        assert_eq!(default[0].kind, NoteKind::Ignored);
        assert_eq!(default[0].value, "true");
        let ef = find(&import, "Contoso OnPrem by IP", "EFSkipIPs");
        assert_eq!(
            (ef[0].kind, ef[0].reason.as_str()),
            (NoteKind::Ignored, AT_DEFAULT)
        );
        let guid = find(&import, "Woodgrove Bank partner", "Guid");
        assert_eq!(
            (guid[0].kind, guid[0].reason.as_str()),
            (NoteKind::Ignored, METADATA)
        );
        // Every property is accounted for: each connector prints 40, 9 translated and 31 noted,
        // plus the two notes about values (RequireTls, the IPv6 entry); each domain prints 39,
        // 3 translated and 36 noted.
        assert_eq!(
            import.notes.len(),
            4 * 31 + 2 + 3 * 36,
            "{:#?}",
            import.notes
        );
    }

    #[test]
    fn single_object_is_accepted() {
        let import = import(
            Some(r#"{"Name": "Only", "ConnectorType": "OnPremises", "SenderIPAddresses": "192.0.2.1"}"#),
            Some(r#"{"DomainName": "contoso.com", "DomainType": "Authoritative"}"#),
        )
        .unwrap();
        let s = load(&import);
        assert_eq!(s.policy.tenant.inbound_connectors.len(), 1);
        assert_eq!(
            s.policy.tenant.inbound_connectors[0].sender_ip_addresses,
            nets(&["192.0.2.1/32"])
        );
        assert_eq!(s.policy.tenant.accepted_domains[0].domain, "contoso.com");
    }

    #[test]
    fn empty_null_and_absent_inputs_are_no_objects() {
        for text in ["", "  \r\n", "null", "\u{feff}[]"] {
            let import = import(Some(text), Some(text)).unwrap();
            assert!(import.notes.is_empty());
            let s = load(&import);
            assert!(s.policy.tenant.inbound_connectors.is_empty());
        }
        load(&import(None, None).unwrap());
    }

    #[test]
    fn windows_powershell_value_count_wrapper_is_unwrapped() {
        let import = domains(
            r#"{"value": [{"DomainName": "a.example"}, {"DomainName": "b.example"}], "Count": 2}"#,
        );
        assert_eq!(load(&import).policy.tenant.accepted_domains.len(), 2);
    }

    /// The shipped examples through an [`Importer`], from bytes.
    fn import_bytes(connectors: &[u8], domains: &[u8]) -> Result<Import, ImportError> {
        let mut notes = Vec::new();
        let mut importer = Importer::new();
        importer.accepted_domains(domains, |n| notes.push(n))?;
        importer.inbound_connectors(connectors, |n| notes.push(n))?;
        Ok(Import {
            toml: importer.finish(),
            notes,
        })
    }

    fn encoded(text: &str, bom: bool, utf16: Option<bool>) -> Vec<u8> {
        let text = if bom {
            format!("\u{feff}{text}")
        } else {
            text.to_string()
        };
        match utf16 {
            None => text.into_bytes(),
            Some(big_endian) => text
                .encode_utf16()
                .flat_map(|u| match big_endian {
                    true => u.to_be_bytes(),
                    false => u.to_le_bytes(),
                })
                .collect(),
        }
    }

    #[test]
    fn what_any_powershell_writes_imports_the_same() {
        let connectors = include_str!("../../config/examples/Get-InboundConnector.json");
        let domains = include_str!("../../config/examples/Get-AcceptedDomain.json");
        let expected = import(Some(connectors), Some(domains)).unwrap();
        // UTF-8 with a BOM (-Encoding utf8 in Windows PowerShell), UTF-16 LE with a BOM (its
        // Out-File and > default), UTF-16 BE with one (-Encoding BigEndianUnicode), and both
        // UTF-16 without a BOM.
        for (bom, utf16) in [
            (true, None),
            (true, Some(false)),
            (true, Some(true)),
            (false, Some(false)),
            (false, Some(true)),
        ] {
            let got = import_bytes(
                &encoded(connectors, bom, utf16),
                &encoded(domains, bom, utf16),
            )
            .unwrap_or_else(|e| panic!("bom {bom}, utf16 {utf16:?}: {e}"));
            assert_eq!(got, expected, "bom {bom}, utf16 {utf16:?}");
        }
    }

    #[test]
    fn malformed_utf16_is_an_input_error() {
        let mut bytes = encoded("[{\"DomainName\": \"a.example\"}]", true, Some(false));
        bytes.push(b'x');
        let e = import_bytes(b"", &bytes).unwrap_err();
        assert!(matches!(e, ImportError::Read { .. }), "{e:?}");
        assert_eq!(
            e.to_string(),
            "Get-AcceptedDomain output cannot be read: invalid UTF-16: the text ends in the middle of a character"
        );
    }

    #[test]
    fn objects_are_translated_as_they_are_read() {
        // The first object's notes arrive before the input fails: it was translated without
        // waiting for the rest of the array.
        let failing = io::Cursor::new(&b"[{\"DomainName\": \"a.example\", \"Foo\": 1},"[..]).chain(
            crate::files::Limited::new(
                io::repeat(b' '),
                crate::files::Limit {
                    bytes: 100,
                    what: "this test",
                },
            ),
        );
        let mut notes = Vec::new();
        let e = Importer::new()
            .accepted_domains(failing, |n| notes.push(n))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "Get-AcceptedDomain output cannot be read: larger than 100 bytes, the limit for this test"
        );
        assert_eq!(notes.len(), 1, "{notes:#?}");
        assert_eq!(
            (notes[0].object.as_str(), notes[0].property.as_str()),
            ("a.example", "Foo")
        );
    }

    #[test]
    fn the_wrapper_is_read_in_either_order_and_nothing_else_with_a_leading_value_array() {
        let a_b = r#"[{"DomainName": "a.example"}, {"DomainName": "b.example"}]"#;
        for text in [
            format!(r#"{{"value": {a_b}, "Count": 2}}"#),
            format!(r#"{{"Count": 2, "value": {a_b}}}"#),
            format!(r#"{{"value": {a_b}, "count": 2}}"#),
        ] {
            assert_eq!(domains(&text).toml, domains(a_b).toml, "{text}");
        }
        let e = domains_err(&format!(r#"{{"value": {a_b}, "Count": 2, "Extra": 1}}"#));
        assert!(
            e.contains("must be Windows PowerShell's {\"value\": [...], \"Count\": n} wrapper"),
            "{e}"
        );
        let e = domains_err(&format!(r#"{{"value": {a_b}}}"#));
        assert!(e.contains("wrapper"), "{e}");
        // A leading "value" that is not an array is an ordinary property.
        let import = domains(r#"{"value": {"x": [1]}, "DomainName": "c.example"}"#);
        assert_eq!(
            load(&import).policy.tenant.accepted_domains[0].domain,
            "c.example"
        );
        let note = unsupported(&import, "c.example", "value");
        assert_eq!(note.value, r#"{"x":[1]}"#);
        let e = domains_err(r#"{"value": [{"DomainName": "a.example"}, 7], "Count": 2}"#);
        assert!(e.contains("entry 2 is a number"), "{e}");
    }

    #[test]
    fn byte_order_mark_is_skipped() {
        let import = domains("\u{feff}{\"DomainName\": \"contoso.com\"}");
        assert_eq!(load(&import).policy.tenant.accepted_domains.len(), 1);
    }

    #[test]
    fn numeric_domain_type_is_read() {
        let import = domains(
            r#"[{"DomainName": "a.example", "DomainType": 0},
                {"DomainName": "b.example", "DomainType": 2, "MatchSubDomains": true},
                {"DomainName": "c.example", "DomainType": "2"}]"#,
        );
        let d = load(&import).policy.tenant.accepted_domains;
        assert_eq!(d[0].domain_type, DomainType::Authoritative);
        assert_eq!(d[1].domain_type, DomainType::InternalRelay);
        assert!(d[1].match_subdomains);
        assert_eq!(d[2].domain_type, DomainType::InternalRelay);
        assert!(!import.has_unsupported());
    }

    #[test]
    fn numeric_connector_type_is_read() {
        let import = connectors(
            r#"[{"Name": "a", "ConnectorType": 1, "SenderIPAddresses": ["192.0.2.1"]},
                {"Name": "b", "ConnectorType": 2, "SenderDomains": ["smtp:*;1"]}]"#,
        );
        let c = load(&import).policy.tenant.inbound_connectors;
        assert_eq!(c[0].connector_type, ConnectorType::OnPremises);
        assert_eq!(c[1].connector_type, ConnectorType::Partner);
    }

    #[test]
    fn unknown_enum_values_are_refused() {
        let e = domains_err(r#"{"DomainName": "a.example", "DomainType": 3}"#);
        assert!(
            e.contains("Get-AcceptedDomain")
                && e.contains("\"a.example\"")
                && e.contains("DomainType = 3"),
            "{e}"
        );
        let e = import(Some(r#"{"Name": "c", "ConnectorType": 0}"#), None)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("Get-InboundConnector")
                && e.contains("\"c\"")
                && e.contains("ConnectorType = 0"),
            "{e}"
        );
    }

    #[test]
    fn external_relay_is_imported_as_internal_relay_with_a_note() {
        let import = domains(
            r#"[{"DomainName": "relay.example", "DomainType": "ExternalRelay"},
                {"DomainName": "relay2.example", "DomainType": 1}]"#,
        );
        let d = load(&import).policy.tenant.accepted_domains;
        assert_eq!(d[0].domain_type, DomainType::InternalRelay);
        assert_eq!(d[1].domain_type, DomainType::InternalRelay);
        let n = unsupported(&import, "relay.example", "DomainType");
        assert_eq!(n.value, "\"ExternalRelay\"");
        assert!(n.reason.contains("InternalRelay"), "{}", n.reason);
        assert_eq!(
            unsupported(&import, "relay2.example", "DomainType").value,
            "1"
        );
        // The why is in the file, right above the table.
        let above = import.toml.split("[[accepted_domains]]").next().unwrap();
        assert!(
            above.contains("Unsupported: DomainType = \"ExternalRelay\""),
            "{}",
            import.toml
        );
    }

    #[test]
    fn match_subdomains_on_authoritative_is_reported_and_turned_off() {
        let import = domains(r#"{"DomainName": "contoso.com", "MatchSubDomains": true}"#);
        assert!(!load(&import).policy.tenant.accepted_domains[0].match_subdomains);
        unsupported(&import, "contoso.com", "MatchSubDomains");
    }

    #[test]
    fn domain_the_gate_cannot_take_is_left_out_with_a_note() {
        let import = domains(
            r#"[{"DomainName": "bücher.example"}, {"DomainName": "*"},
                {"DomainName": "Contoso.com."}, {"DomainName": "contoso.com"}]"#,
        );
        let d = load(&import).policy.tenant.accepted_domains;
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].domain, "contoso.com");
        unsupported(&import, "bücher.example", "DomainName");
        unsupported(&import, "*", "DomainName");
        assert!(unsupported(&import, "contoso.com", "DomainName")
            .reason
            .contains("twice"));
        assert!(
            import
                .toml
                .contains("# Get-AcceptedDomain \"*\": NOT IMPORTED"),
            "{}",
            import.toml
        );
    }

    #[test]
    fn ipv6_sender_address_is_reported_not_dropped() {
        let import = connectors(
            r#"{"Name": "dual", "ConnectorType": "OnPremises",
                "SenderIPAddresses": ["192.0.2.1", "2001:db8::/64", "2001:db8::25"]}"#,
        );
        let c = load(&import).policy.tenant.inbound_connectors;
        assert_eq!(c[0].sender_ip_addresses, nets(&["192.0.2.1/32"]));
        let notes = find(&import, "dual", "SenderIPAddresses");
        let values: Vec<_> = notes.iter().map(|n| n.value.as_str()).collect();
        assert_eq!(values, ["\"2001:db8::/64\"", "\"2001:db8::25\""]);
        assert!(notes
            .iter()
            .all(|n| n.kind == NoteKind::Unsupported && n.reason.starts_with("IPv6")));
        assert!(
            import
                .toml
                .contains("# Unsupported: SenderIPAddresses = \"2001:db8::/64\": IPv6"),
            "{}",
            import.toml
        );
    }

    #[test]
    fn ranges_netmasks_and_wide_cidr_are_reported_and_left_out() {
        let import = connectors(
            r#"{"Name": "c", "ConnectorType": "OnPremises",
                "SenderIPAddresses": ["10.0.0.1-10.0.0.9", "10.1.0.0(255.255.255.0)",
                                      "10.2.0.0/16", "not an address", "10.3.0.0/24", 7]}"#,
        );
        let c = load(&import).policy.tenant.inbound_connectors;
        assert_eq!(c[0].sender_ip_addresses, nets(&["10.3.0.0/24"]));
        let reasons: Vec<_> = find(&import, "c", "SenderIPAddresses")
            .iter()
            .map(|n| n.reason.clone())
            .collect();
        assert_eq!(reasons.len(), 5, "{reasons:#?}");
        assert!(reasons[0].starts_with("an address range"));
        assert!(reasons[1].contains("netmask"));
        assert!(reasons[2].contains("/16 range is larger than /24"));
        assert!(reasons[3].starts_with("not an IP address"));
        assert!(reasons[4].starts_with("not an address in a form"));
    }

    #[test]
    fn ip_range_objects_are_read_by_their_expression() {
        let import = connectors(
            r#"{"Name": "c", "ConnectorType": "OnPremises",
                "SenderIPAddresses": [{"Expression": "192.0.2.0/24", "RangeFormat": "CIDR"}]}"#,
        );
        let c = load(&import).policy.tenant.inbound_connectors;
        assert_eq!(c[0].sender_ip_addresses, nets(&["192.0.2.0/24"]));
    }

    #[test]
    fn on_premises_connector_with_nothing_usable_left_is_left_out() {
        let import = connectors(
            r#"[{"Name": "v6 only", "ConnectorType": "OnPremises", "SenderIPAddresses": ["2001:db8::1"],
                 "RestrictDomainsToIPAddresses": true},
                {"Name": "kept", "ConnectorType": "OnPremises", "SenderIPAddresses": "192.0.2.1"}]"#,
        );
        let c = load(&import).policy.tenant.inbound_connectors;
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].name, "kept");
        assert!(unsupported(&import, "v6 only", "ConnectorType")
            .reason
            .contains("connector is left out"));
        assert!(import
            .toml
            .contains("# Get-InboundConnector \"v6 only\": NOT IMPORTED"));
        assert!(!import.toml.contains("name = \"v6 only\""));
    }

    #[test]
    fn restriction_without_anything_left_to_restrict_to_is_turned_off() {
        let import = connectors(
            r#"{"Name": "p", "ConnectorType": "Partner", "SenderIPAddresses": ["2001:db8::1"],
                "TlsSenderCertificateName": "mail.*.example",
                "RestrictDomainsToIPAddresses": true, "RestrictDomainsToCertificate": true}"#,
        );
        let c = load(&import).policy.tenant.inbound_connectors;
        assert!(!c[0].restrict_domains_to_ip_addresses);
        assert!(!c[0].restrict_domains_to_certificate);
        assert_eq!(find(&import, "p", "RestrictDomainsToIPAddresses").len(), 1);
        assert_eq!(find(&import, "p", "RestrictDomainsToCertificate").len(), 1);
        unsupported(&import, "p", "TlsSenderCertificateName");
    }

    #[test]
    fn restriction_on_an_on_premises_connector_is_reported() {
        let import = connectors(
            r#"{"Name": "o", "ConnectorType": "OnPremises", "SenderIPAddresses": ["192.0.2.1"],
                "RestrictDomainsToIPAddresses": true}"#,
        );
        let c = load(&import).policy.tenant.inbound_connectors;
        assert!(c[0].restrict_domains_to_ip_addresses, "kept as written");
        assert!(unsupported(&import, "o", "RestrictDomainsToIPAddresses")
            .reason
            .contains("Partner-only"));
    }

    #[test]
    fn sender_domains_address_space_form_is_stripped() {
        let import = connectors(
            r#"{"Name": "p", "ConnectorType": "Partner",
                "SenderDomains": ["smtp:*;1", "SMTP:Fabrikam.com;5", "*.tailspin.example",
                                  {"Address": "woodgrove.example", "Type": "smtp", "Cost": 1},
                                  "x400:c=US;a= ;p=Contoso;1", "smtp:not a domain;1"]}"#,
        );
        let c = load(&import).policy.tenant.inbound_connectors;
        assert_eq!(
            c[0].sender_domains,
            [
                SenderDomain::Any,
                SenderDomain::Exact("fabrikam.com".into()),
                SenderDomain::WithSubdomains("tailspin.example".into()),
                SenderDomain::Exact("woodgrove.example".into()),
            ]
        );
        let notes = find(&import, "p", "SenderDomains");
        assert_eq!(notes.len(), 2, "{notes:#?}");
        assert!(notes[0].reason.starts_with("a x400 address space"));
    }

    #[test]
    fn sender_domains_as_one_string_is_split() {
        let import = connectors(
            r#"{"Name": "p", "ConnectorType": "Partner", "SenderDomains": "smtp:a.example;1,smtp:b.example;1"}"#,
        );
        let c = load(&import).policy.tenant.inbound_connectors;
        assert_eq!(c[0].sender_domains.len(), 2);
    }

    #[test]
    fn absent_sender_domains_keep_the_gate_default() {
        let import = connectors(r#"{"Name": "p", "ConnectorType": "Partner"}"#);
        assert!(!import.toml.contains("sender_domains"));
        assert_eq!(
            load(&import).policy.tenant.inbound_connectors[0].sender_domains,
            [SenderDomain::Any]
        );
    }

    #[test]
    fn x509_certificate_name_takes_the_subject_cn() {
        let import = connectors(
            r#"[{"Name": "x", "ConnectorType": "OnPremises",
                 "TlsSenderCertificateName": "<I>CN=Contoso Issuing CA 01, DC=contoso, DC=com<S>CN=mail.contoso.com, OU=Messaging, O=Contoso, C=FR"},
                {"Name": "y", "ConnectorType": "OnPremises",
                 "TlsSenderCertificateName": {"TlsCertificateName": {"CertificateSubject": "CN=*.fabrikam.com", "CertificateIssuer": "CN=R3, O=Let's Encrypt"}}}]"#,
        );
        let c = load(&import).policy.tenant.inbound_connectors;
        assert_eq!(
            c[0].tls_sender_certificate_name,
            Some(CertificateName::Exact("mail.contoso.com".into()))
        );
        assert_eq!(
            c[1].tls_sender_certificate_name,
            Some(CertificateName::Wildcard("fabrikam.com".into()))
        );
        assert!(unsupported(&import, "x", "TlsSenderCertificateName")
            .reason
            .contains("issuer"));
        unsupported(&import, "y", "TlsSenderCertificateName");
    }

    #[test]
    fn unrecognised_certificate_name_is_reported_and_left_out() {
        let import = connectors(
            r#"{"Name": "c", "ConnectorType": "OnPremises", "SenderIPAddresses": ["192.0.2.1"],
                "TlsSenderCertificateName": "<I>CN=Some CA<S>O=No Common Name"}"#,
        );
        let c = load(&import).policy.tenant.inbound_connectors;
        assert_eq!(c[0].tls_sender_certificate_name, None);
        assert!(unsupported(&import, "c", "TlsSenderCertificateName")
            .reason
            .contains("no CN"));
        assert!(!import.toml.contains("tls_sender_certificate_name"));
    }

    #[test]
    fn metadata_is_ignored_and_unknown_property_is_unsupported() {
        let import = connectors(
            r#"{"Name": "c", "ConnectorType": "OnPremises", "SenderIPAddresses": ["192.0.2.1"],
                "Guid": "5b0e2a1c-7f3d-4c8e-9a61-2d4f8e0b7c13", "WhenChangedUTC": "2024-03-11T09:42:17Z",
                "FrobnicateMail": true}"#,
        );
        load(&import);
        let guid = find(&import, "c", "Guid");
        assert_eq!(
            (guid[0].kind, guid[0].reason.as_str()),
            (NoteKind::Ignored, METADATA)
        );
        assert_eq!(guid[0].value, "\"5b0e2a1c-7f3d-4c8e-9a61-2d4f8e0b7c13\"");
        assert_eq!(unsupported(&import, "c", "FrobnicateMail").reason, UNKNOWN);
        // Ignored ones share one comment line per reason.
        assert!(
            import
                .toml
                .contains("# Ignored: Guid, WhenChangedUTC. Metadata, no bearing on relay.\n"),
            "{}",
            import.toml
        );
    }

    #[test]
    fn mail_flow_setting_is_unsupported_only_when_not_at_its_default() {
        let import = connectors(
            r#"[{"Name": "a", "ConnectorType": "OnPremises", "SenderIPAddresses": ["192.0.2.1"],
                 "TreatMessagesAsInternal": false, "EFSkipIPs": [], "ClientHostNames": null},
                {"Name": "b", "ConnectorType": "OnPremises", "SenderIPAddresses": ["192.0.2.2"],
                 "TreatMessagesAsInternal": true, "EFSkipIPs": ["192.0.2.9"]}]"#,
        );
        load(&import);
        assert!(find(&import, "a", "TreatMessagesAsInternal")
            .iter()
            .all(|n| n.kind == NoteKind::Ignored && n.reason == AT_DEFAULT));
        assert_eq!(find(&import, "a", "EFSkipIPs")[0].kind, NoteKind::Ignored);
        assert_eq!(
            find(&import, "a", "ClientHostNames")[0].kind,
            NoteKind::Ignored
        );
        unsupported(&import, "b", "TreatMessagesAsInternal");
        assert_eq!(
            unsupported(&import, "b", "EFSkipIPs").value,
            "[\"192.0.2.9\"]"
        );
    }

    #[test]
    fn domain_mail_flow_settings_are_reported() {
        let import = domains(
            r#"{"DomainName": "going.example", "PendingRemoval": true, "OutboundOnly": false,
                "Default": true, "InitialDomain": false}"#,
        );
        load(&import);
        unsupported(&import, "going.example", "PendingRemoval");
        assert_eq!(
            find(&import, "going.example", "OutboundOnly")[0].kind,
            NoteKind::Ignored
        );
        assert_eq!(
            find(&import, "going.example", "Default")[0].kind,
            NoteKind::Ignored
        );
    }

    #[test]
    fn property_names_match_case_insensitively() {
        let import = connectors(
            r#"{"name": "lower", "connectortype": "onpremises", "senderipaddresses": ["192.0.2.1"],
                "ENABLED": "False", "requiretls": true}"#,
        );
        let c = load(&import).policy.tenant.inbound_connectors;
        assert_eq!(c[0].name, "lower");
        assert!(!c[0].enabled);
        assert!(import.notes.is_empty(), "{:#?}", import.notes);
    }

    #[test]
    fn property_spelled_twice_is_refused() {
        let e = import(
            Some(r#"{"Name": "a", "name": "b", "ConnectorType": "Partner"}"#),
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("entry 1") && e.contains("twice"), "{e}");
    }

    #[test]
    fn notes_are_comments_above_their_table() {
        let import = connectors(
            r#"[{"Name": "first", "ConnectorType": "OnPremises", "SenderIPAddresses": ["192.0.2.1"]},
                {"Name": "second", "ConnectorType": "OnPremises", "SenderIPAddresses": ["192.0.2.2", "2001:db8::2"]}]"#,
        );
        let toml = &import.toml;
        let first = toml.find("name = \"first\"").unwrap();
        let note = toml[..toml.find("2001:db8::2").unwrap()]
            .rfind('\n')
            .unwrap()
            + 1;
        let header = toml.find("# Get-InboundConnector \"second\"").unwrap();
        let second = toml.find("name = \"second\"").unwrap();
        assert!(first < header && header < note && note < second, "{toml}");
        // Between the note and its table there is nothing but comments and the header.
        let between = &toml[note..second];
        let not_comments: Vec<_> = between.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(not_comments, ["[[inbound_connectors]]"], "{between}");
    }

    #[test]
    fn toml_strings_are_escaped() {
        let name = "Quote \" backslash \\ newline \n tab \t bell \u{7} del \u{7f} é";
        let json = serde_json::json!({
            "Name": name, "ConnectorType": "OnPremises", "SenderIPAddresses": ["192.0.2.1"],
            "Comment": "line one\nline two \u{7f}",
        });
        let import = connectors(&json.to_string());
        let c = load(&import).policy.tenant.inbound_connectors;
        assert_eq!(c[0].name, name);
        // Comment lines never break: every line is a comment, blank, a table header or a key.
        for line in import.toml.lines() {
            assert!(
                line.is_empty()
                    || line.starts_with('#')
                    || line.starts_with("[[")
                    || line.contains(" = "),
                "{line:?}"
            );
        }
    }

    #[test]
    fn duplicate_connector_names_are_left_out_with_a_note() {
        let import = connectors(
            r#"[{"Name": "Relay", "ConnectorType": "OnPremises", "SenderIPAddresses": ["192.0.2.1"]},
                {"Name": "relay", "ConnectorType": "OnPremises", "SenderIPAddresses": ["192.0.2.2"]}]"#,
        );
        assert_eq!(load(&import).policy.tenant.inbound_connectors.len(), 1);
        unsupported(&import, "relay", "Name");
    }

    fn domains_err(json: &str) -> String {
        import(None, Some(json)).unwrap_err().to_string()
    }

    #[test]
    fn input_that_is_not_cmdlet_output_is_refused_naming_input_and_object() {
        let e = domains_err("Get-AcceptedDomain : The term is not recognized");
        assert!(
            e.starts_with("Get-AcceptedDomain output is not JSON"),
            "{e}"
        );
        let e = domains_err("\"contoso.com\"");
        assert!(e.contains("is a string, not a JSON object"), "{e}");
        let e = domains_err(r#"[{"DomainName": "a.example"}, 5]"#);
        assert!(e.contains("entry 2 is a number"), "{e}");
        let e = domains_err(r#"[{"DomainName": "a.example"}, {"Name": "b"}]"#);
        assert!(e.contains("entry 2 has no DomainName"), "{e}");
        let e = import(Some(r#"{"ConnectorType": "Partner"}"#), None)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("Get-InboundConnector output: entry 1 has no Name"),
            "{e}"
        );
        let e = import(Some(r#"{"Name": "n"}"#), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"n\" has no ConnectorType"), "{e}");
        let e = import(
            Some(r#"{"Name": "n", "ConnectorType": "Partner", "Enabled": "maybe"}"#),
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("\"n\": Enabled = \"maybe\": expected true or false"),
            "{e}"
        );
    }

    #[test]
    fn note_display_reads_as_one_line() {
        let n = note(
            "c",
            "EFSkipIPs",
            "[\"192.0.2.9\"]".into(),
            NoteKind::Unsupported,
            "why",
        );
        assert_eq!(
            n.to_string(),
            "c: EFSkipIPs = [\"192.0.2.9\"] (unsupported): why"
        );
    }
}
