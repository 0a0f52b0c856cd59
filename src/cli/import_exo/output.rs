//! Writing the TOML. Each source object becomes a block: `#` comment lines naming it and its
//! notes, then its table, which toml_edit writes (the comments are the table's decor), so that
//! every key and string is valid TOML by construction. A block is written as soon as its object
//! is translated, so memory holds the TOML text, not a document tree of every table.

use super::notes::{Note, NoteKind};
use crate::policy::{ConnectorType, DomainType};
use std::fmt::Write as _;
use toml_edit::{Array, ArrayOfTables, DocumentMut, Item, Table, Value};

/// Comment lines are wrapped to this width, so the file reads well in an editor.
const COMMENT_WIDTH: usize = 100;

/// `[[accepted_domains]]` as the gate reads it.
pub(super) struct AcceptedDomainTable {
    pub domain: String,
    pub domain_type: DomainType,
    pub match_subdomains: bool,
}

/// `[[inbound_connectors]]` as the gate reads it.
pub(super) struct InboundConnectorTable {
    pub name: String,
    pub connector_type: ConnectorType,
    pub enabled: bool,
    pub sender_ip_addresses: Vec<String>,
    pub tls_sender_certificate_name: Option<String>,
    /// `None` leaves the key out, so that the gate's default (`["*"]`) applies.
    pub sender_domains: Option<Vec<String>>,
    pub restrict_domains_to_ip_addresses: bool,
    pub restrict_domains_to_certificate: bool,
    pub require_tls: bool,
}

pub(super) enum GateTable {
    AcceptedDomain(AcceptedDomainTable),
    InboundConnector(InboundConnectorTable),
}

impl GateTable {
    /// The array of tables it belongs to, and the table, keys in the order of the
    /// configuration reference.
    fn toml(&self) -> (&'static str, Table) {
        let mut t = Table::new();
        match self {
            GateTable::AcceptedDomain(d) => {
                let domain_type = match d.domain_type {
                    DomainType::Authoritative => "Authoritative",
                    DomainType::InternalRelay => "InternalRelay",
                };
                t.insert("domain", string(&d.domain));
                t.insert("domain_type", string(domain_type));
                t.insert("match_subdomains", toml_edit::value(d.match_subdomains));
                ("accepted_domains", t)
            }
            GateTable::InboundConnector(c) => {
                t.insert("name", string(&c.name));
                t.insert("connector_type", string(c.connector_type.as_str()));
                t.insert("enabled", toml_edit::value(c.enabled));
                t.insert("sender_ip_addresses", array(&c.sender_ip_addresses));
                if let Some(name) = &c.tls_sender_certificate_name {
                    t.insert("tls_sender_certificate_name", string(name));
                }
                if let Some(domains) = &c.sender_domains {
                    t.insert("sender_domains", array(domains));
                }
                let restrict_ip = c.restrict_domains_to_ip_addresses;
                t.insert(
                    "restrict_domains_to_ip_addresses",
                    toml_edit::value(restrict_ip),
                );
                let restrict_cert = c.restrict_domains_to_certificate;
                t.insert(
                    "restrict_domains_to_certificate",
                    toml_edit::value(restrict_cert),
                );
                t.insert("require_tls", toml_edit::value(c.require_tls));
                ("inbound_connectors", t)
            }
        }
    }
}

/// A TOML basic string, on one line (`"`, with escapes). toml_edit's own choice would be a
/// literal string (`'`) for a value with a `"` in it, and a multi-line one for a value with a
/// newline; one form for every value keeps each line of the file a comment, a header or a key,
/// and the output what it was before toml_edit wrote it. toml_write (toml_edit's own writer)
/// escapes it; toml_edit parses it back, which keeps that form.
fn basic_string(s: &str) -> Value {
    use toml_write::ToTomlValue;
    let basic = toml_write::TomlStringBuilder::new(s)
        .as_basic()
        .to_toml_value();
    match basic.parse::<Value>() {
        Ok(mut v) => {
            v.decor_mut().clear();
            v
        }
        // Not expected: toml_write writes what toml_edit reads. The value itself still holds.
        Err(_) => Value::from(s),
    }
}

fn string(s: &str) -> Item {
    Item::Value(basic_string(s))
}

fn array(items: &[String]) -> Item {
    Item::Value(Value::Array(
        items.iter().map(|s| basic_string(s)).collect::<Array>(),
    ))
}

/// One source object: the comment lines about it, then its table (absent when left out).
pub(super) struct Block {
    /// `Get-InboundConnector "name"`: which object the comments are about.
    pub header: String,
    pub notes: Vec<Note>,
    pub table: Option<GateTable>,
}

impl Block {
    pub(super) fn left_out(header: String, notes: Vec<Note>) -> Block {
        Block {
            header,
            notes,
            table: None,
        }
    }

    /// Append the block to `out` after a blank line, and hand over its notes. `under_tenant`:
    /// the table belongs to the `[[tenants]]` block above (`[[tenants.accepted_domains]]`).
    pub(super) fn write(
        self,
        out: &mut String,
        under_tenant: bool,
        on_note: &mut impl FnMut(Note),
    ) {
        let comments = self.comments();
        match &self.table {
            // Comments alone are no TOML value: there is nothing for toml_edit to write.
            None => out.push_str(&comments),
            Some(table) => {
                let (array_name, mut table) = table.toml();
                table.decor_mut().set_prefix(comments);
                let mut tables = ArrayOfTables::new();
                tables.push(table);
                let mut doc = DocumentMut::new();
                if under_tenant {
                    // An implicit `tenants` table: only `[[tenants.<array>]]` is written, which
                    // TOML adds to the last `[[tenants]]`.
                    let mut tenant = Table::new();
                    tenant.set_implicit(true);
                    tenant.insert(array_name, Item::ArrayOfTables(tables));
                    doc.insert("tenants", Item::Table(tenant));
                } else {
                    doc.insert(array_name, Item::ArrayOfTables(tables));
                }
                // Writing to a String cannot fail.
                let _ = write!(out, "{doc}");
            }
        }
        self.notes.into_iter().for_each(on_note);
    }

    /// A blank line, the source line, each Unsupported note on its own line (they are what an
    /// admin must read), then the Ignored ones grouped by reason (`Ignored: A, B. Reason.`).
    fn comments(&self) -> String {
        let mut out = String::from("\n");
        match self.table {
            Some(_) => comment(&mut out, &self.header),
            None => comment(
                &mut out,
                &format!("{}: NOT IMPORTED (see below)", self.header),
            ),
        }
        for n in self
            .notes
            .iter()
            .filter(|n| n.kind == NoteKind::Unsupported)
        {
            let line = format!(
                "Unsupported: {} = {}: {}",
                n.property,
                shorten(&n.value),
                n.reason
            );
            comment(&mut out, &line);
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
            comment(
                &mut out,
                &format!("Ignored: {}. {reason}.", names.join(", ")),
            )
        }
        out
    }
}

/// `[[tenants]]` with `name`, and a comment on what the admin adds to it: its upstream.
pub(super) fn tenant_header(out: &mut String, name: &str) {
    let mut table = Table::new();
    let mut prefix = String::from("\n");
    comment(
        &mut prefix,
        "One tenant of a gate in front of several (MC1226222). Add its [tenants.upstream] \
         (required: this tenant's mail leaves with this tenant's own client certificate) and, if \
         it differs from the top-level [policy], its [tenants.policy].",
    );
    table.decor_mut().set_prefix(prefix);
    table.insert("name", string(name));
    let mut tables = ArrayOfTables::new();
    tables.push(table);
    let mut doc = DocumentMut::new();
    doc.insert("tenants", Item::ArrayOfTables(tables));
    // Writing to a String cannot fail.
    let _ = write!(out, "{doc}");
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
/// Control characters, which TOML does not allow in comments, become spaces (toml_edit writes
/// decor as it is given).
pub(super) fn comment(out: &mut String, text: &str) {
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
