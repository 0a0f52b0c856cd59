//! `relaygate import-exo`: Exchange Online's `Get-InboundConnector` / `Get-AcceptedDomain` JSON
//! into relaygate's `[[accepted_domains]]` and `[[inbound_connectors]]` TOML.
//!
//! The admin runs, in PowerShell with the ExchangeOnlineManagement module,
//! `Get-InboundConnector | ConvertTo-Json -Depth 5` and `Get-AcceptedDomain | ConvertTo-Json`,
//! and hands the two texts to an [`Importer`] (or, as literal text, to [`import`]). Only [`run`]
//! opens files and prints, so that the translation can be tested on literal text.
//!
//! Each input is read as a stream ([`input`], decoding whatever PowerShell wrote it in in
//! [`encoding`]), each object into its cmdlet's typed struct ([`exchange`]), translated
//! ([`domain`], [`connector`], against the gate's own checks in [`checks`]) and its table written
//! ([`output`]) as soon as it is read.
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

use serde_json::Value;
use std::collections::HashSet;
use std::io::{self, Read};
use std::path::PathBuf;
use std::process::ExitCode;

mod checks;
mod connector;
mod domain;
mod encoding;
mod exchange;
mod input;
mod notes;
mod output;
#[cfg(test)]
mod tests;

pub use notes::{Note, NoteKind};

/// Name of the first input in messages.
const CONNECTORS: &str = "Get-InboundConnector";
/// Name of the second input in messages.
const DOMAINS: &str = "Get-AcceptedDomain";

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
    /// serde could not fill the object's struct although every field takes any JSON: not
    /// expected, but reported rather than assumed away.
    #[error("{input} output: {object} cannot be read: {message}")]
    Unreadable {
        input: &'static str,
        object: String,
        message: String,
    },
}

/// Which input and object an error is about: `entry 3` until the object's name is read, then
/// the name.
struct Ctx {
    input: &'static str,
    object: String,
}

impl Ctx {
    fn entry(input: &'static str, n: usize) -> Ctx {
        Ctx {
            input,
            object: format!("entry {n}"),
        }
    }

    fn named(&mut self, name: &str) {
        self.object = format!("{name:?}");
    }

    /// A property the object cannot do without: absent or null is an error, and so is a value
    /// in no form it takes (`expected` says which forms).
    fn required<T: Clone>(
        &self,
        property: &'static str,
        printed: &Option<exchange::Printed<T>>,
        expected: &'static str,
    ) -> Result<T, ImportError> {
        match printed {
            None => Err(ImportError::MissingProperty {
                input: self.input,
                object: self.object.clone(),
                property,
            }),
            Some(p) => self.known(property, p, expected),
        }
    }

    /// A property with a default: absent or null is `None`; a value in no form it takes is an
    /// error.
    fn optional<T: Clone>(
        &self,
        property: &'static str,
        printed: &Option<exchange::Printed<T>>,
        expected: &'static str,
    ) -> Result<Option<T>, ImportError> {
        printed
            .as_ref()
            .map(|p| self.known(property, p, expected))
            .transpose()
    }

    fn known<T: Clone>(
        &self,
        property: &'static str,
        printed: &exchange::Printed<T>,
        expected: &'static str,
    ) -> Result<T, ImportError> {
        printed
            .value
            .clone()
            .ok_or_else(|| self.invalid(property, &printed.json, expected))
    }

    fn invalid(&self, property: &'static str, json: &Value, expected: &'static str) -> ImportError {
        ImportError::InvalidValue {
            input: self.input,
            object: self.object.clone(),
            property,
            value: json.to_string(),
            expected,
        }
    }
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
    /// The domains written so far (a second one would make the configuration refuse to load).
    domains: HashSet<String>,
    /// The lower-cased connector names written so far (likewise).
    connectors: HashSet<String>,
    /// Written under `[[tenants]]` (`--tenant NAME`): the tables are `[[tenants.…]]`.
    under_tenant: bool,
}

impl Default for Importer {
    fn default() -> Self {
        Importer::new()
    }
}

impl Importer {
    pub fn new() -> Importer {
        let mut toml = String::new();
        output::comment(
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
            under_tenant: false,
        }
    }

    /// An import for one tenant of a gate with several: a `[[tenants]]` block named `name`, the
    /// accepted domains and connectors under it (`[[tenants.accepted_domains]]`, ...).
    pub fn for_tenant(name: &str) -> Importer {
        let mut importer = Importer::new();
        output::tenant_header(&mut importer.toml, name);
        importer.under_tenant = true;
        importer
    }

    /// `Get-AcceptedDomain | ConvertTo-Json` output.
    pub fn accepted_domains(
        &mut self,
        input: impl Read,
        mut on_note: impl FnMut(Note),
    ) -> Result<(), ImportError> {
        let Importer {
            toml,
            domains,
            under_tenant,
            ..
        } = self;
        input::each_object(DOMAINS, input, &mut |n, object| {
            domain::accepted_domain(object, n, domains)?.write(toml, *under_tenant, &mut on_note);
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
            toml,
            connectors,
            under_tenant,
            ..
        } = self;
        input::each_object(CONNECTORS, input, &mut |n, object| {
            connector::inbound_connector(object, n, connectors)?.write(
                toml,
                *under_tenant,
                &mut on_note,
            );
            Ok(())
        })
    }

    /// The TOML: the header comment, then every table in the order read.
    pub fn finish(self) -> String {
        self.toml
    }
}

/// `relaygate import-exo`: the TOML on standard output, notes on standard error. With
/// `tenant`, the tables go under a `[[tenants]]` block of that name.
pub fn run(
    inbound_connectors: Option<PathBuf>,
    accepted_domains: Option<PathBuf>,
    tenant: Option<String>,
) -> ExitCode {
    if inbound_connectors.is_none() && accepted_domains.is_none() {
        eprintln!("relaygate: give --inbound-connectors and/or --accepted-domains");
        return ExitCode::from(2);
    }
    let mut importer = match tenant.as_deref() {
        None => Importer::new(),
        Some(name)
            if name.trim().is_empty()
                || name.trim() != name
                || name.chars().any(|c| c.is_control() || c == '"') =>
        {
            eprintln!("relaygate: --tenant {name:?}: a tenant name must be non-empty, without surrounding spaces, quotes or control characters (as [[tenants]] name)");
            return ExitCode::from(2);
        }
        Some(name) => Importer::for_tenant(name),
    };
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
        let input = io::BufReader::with_capacity(
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
