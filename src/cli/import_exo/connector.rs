//! One `Get-InboundConnector` object into one `[[inbound_connectors]]` table.

use super::checks::{certificate, sender_domain, sender_ip, Certificate};
use super::exchange::{
    self, AddressSpace, InboundConnector, IpRange, MultiValued, Printed, TlsCertificate,
};
use super::notes::{note, note_other, Note, NoteKind, CONNECTOR_OTHER};
use super::output::{Block, GateTable, InboundConnectorTable};
use super::{Ctx, ImportError, CONNECTORS};
use crate::policy::ConnectorType;
use serde_json::{Map, Value};
use std::collections::HashSet;

/// The `n`th object. `seen`: the lower-cased names written so far (the gate refuses two
/// connectors of one name).
pub(super) fn inbound_connector(
    object: Map<String, Value>,
    n: usize,
    seen: &mut HashSet<String>,
) -> Result<Block, ImportError> {
    let mut ctx = Ctx::entry(CONNECTORS, n);
    let c: InboundConnector = exchange::read(&ctx, object)?;
    let name = ctx.required("Name", &c.name, "a non-empty string")?.0;
    ctx.named(&name);
    let connector_type = ctx.required(
        "ConnectorType",
        &c.connector_type,
        "OnPremises or Partner (or 1 or 2)",
    )?;
    let flag = |property: &'static str, printed: &Option<Printed<bool>>, default: bool| {
        ctx.optional(property, printed, "true or false")
            .map(|b| b.unwrap_or(default))
    };
    let enabled = flag("Enabled", &c.enabled, true)?;
    let restrict_ip = flag(
        "RestrictDomainsToIPAddresses",
        &c.restrict_domains_to_ip_addresses,
        false,
    )?;
    let restrict_cert = flag(
        "RestrictDomainsToCertificate",
        &c.restrict_domains_to_certificate,
        false,
    )?;
    let require_tls = flag("RequireTls", &c.require_tls, false)?;

    let object = name.as_str();
    let mut notes = Vec::new();
    let ips = sender_ip_addresses(c.sender_ip_addresses.as_ref(), object, &mut notes);
    let certificate_name =
        tls_sender_certificate_name(c.tls_sender_certificate_name.as_ref(), object, &mut notes);
    let sender_domains = c
        .sender_domains
        .as_ref()
        .map(|domains| sender_domains(domains, object, &mut notes));

    let header = format!("{CONNECTORS} {name:?}");
    let mut left_out =
        |property: &str, printed: &Value, reason: &str| -> Result<Block, ImportError> {
            notes.push(note(
                object,
                property,
                printed,
                NoteKind::Unsupported,
                reason,
            ));
            note_other(&c.other, object, CONNECTOR_OTHER, &mut notes);
            Ok(Block::left_out(header.clone(), std::mem::take(&mut notes)))
        };
    if connector_type == ConnectorType::OnPremises && ips.is_empty() && certificate_name.is_none() {
        let printed = c.connector_type.as_ref().map_or(&Value::Null, |p| &p.json);
        return left_out(
            "ConnectorType",
            printed,
            "an OnPremises connector needs a sender IP address or a certificate name relaygate \
             can take, and none is left: the connector is left out, so mail it would accept in \
             Exchange Online is not attributed to the organisation by relaygate",
        );
    }
    if !seen.insert(name.to_ascii_lowercase()) {
        return left_out(
            "Name",
            &Value::String(name.clone()),
            "another connector has this name (compared without case): the connector is left out",
        );
    }

    let table = InboundConnectorTable {
        name: name.clone(),
        connector_type,
        enabled,
        sender_ip_addresses: ips,
        tls_sender_certificate_name: certificate_name,
        sender_domains,
        restrict_domains_to_ip_addresses: restrict_ip,
        restrict_domains_to_certificate: restrict_cert,
        require_tls,
    };
    let table = settings_that_differ(table, object, &mut notes);
    note_other(&c.other, object, CONNECTOR_OTHER, &mut notes);
    Ok(Block {
        header,
        notes,
        table: Some(GateTable::InboundConnector(table)),
    })
}

/// `SenderIPAddresses`: the entries the gate takes; a note for each other one.
fn sender_ip_addresses(
    printed: Option<&MultiValued<IpRange>>,
    object: &str,
    notes: &mut Vec<Note>,
) -> Vec<String> {
    let entries = printed.map_or(&[][..], |m| m.0.as_slice());
    let form = "not an address in a form relaygate reads; the entry is left out";
    taken(entries, "SenderIPAddresses", form, object, notes, |r| {
        sender_ip(&r.0)
    })
}

/// The entries of a multi-valued property that `take` accepts; for each other one (unreadable,
/// `form`, or refused with a reason) a note, so nothing is dropped silently.
fn taken<T>(
    entries: &[Printed<T>],
    property: &str,
    form: &str,
    object: &str,
    notes: &mut Vec<Note>,
    take: impl Fn(&T) -> Result<String, String>,
) -> Vec<String> {
    let mut kept = Vec::new();
    for entry in entries {
        let reason = match entry.value.as_ref().map(&take) {
            Some(Ok(value)) => {
                kept.push(value);
                continue;
            }
            Some(Err(reason)) => reason,
            None => form.to_string(),
        };
        notes.push(note(
            object,
            property,
            &entry.json,
            NoteKind::Unsupported,
            reason,
        ));
    }
    kept
}

/// `TlsSenderCertificateName`: the certificate name the gate takes, if any; a note when it is
/// not taken as it is. Null and empty are no name.
fn tls_sender_certificate_name(
    printed: Option<&Printed<TlsCertificate>>,
    object: &str,
    notes: &mut Vec<Note>,
) -> Option<String> {
    let printed = printed?;
    let unsupported = |reason: String| {
        let property = "TlsSenderCertificateName";
        note(
            object,
            property,
            &printed.json,
            NoteKind::Unsupported,
            reason,
        )
    };
    let unusable = |reason: &str| {
        unsupported(format!(
            "{reason}: relaygate cannot match it; the key is left out"
        ))
    };
    match &printed.value {
        Some(TlsCertificate(text)) if text.trim().is_empty() => None,
        Some(TlsCertificate(text)) => match certificate(text) {
            Certificate::Host(host) => Some(host),
            Certificate::SubjectCommonName(cn) => {
                notes.push(unsupported(format!(
                    "the X.509 form pins the issuer and the whole subject; relaygate matches \
                     certificate names only, so it takes the subject's CN, {cn:?}, and checks \
                     neither the issuer nor the rest of the subject"
                )));
                Some(cn)
            }
            Certificate::Unusable(reason) => {
                notes.push(unusable(reason));
                None
            }
        },
        None => {
            notes.push(unusable("not in a form relaygate reads"));
            None
        }
    }
}

/// `SenderDomains`: the entries the gate takes; a note for each other one.
fn sender_domains(
    printed: &MultiValued<AddressSpace>,
    object: &str,
    notes: &mut Vec<Note>,
) -> Vec<String> {
    let form = "not an address space in a form relaygate reads; the entry is left out";
    taken(&printed.0, "SenderDomains", form, object, notes, |a| {
        sender_domain(&a.0)
    })
}

/// The settings Exchange Online and the gate apply differently: a note for each, and the
/// table as the gate must have it.
fn settings_that_differ(
    mut t: InboundConnectorTable,
    object: &str,
    notes: &mut Vec<Note>,
) -> InboundConnectorTable {
    let mut unsupported = |property, reason| {
        notes.push(note(
            object,
            property,
            &Value::Bool(true),
            NoteKind::Unsupported,
            reason,
        ))
    };
    // The restrictions are Partner settings: on an OnPremises connector Exchange Online ignores
    // them, and so does the gate, but whoever set them probably expects an effect.
    if t.connector_type == ConnectorType::OnPremises {
        for (property, set) in [
            (
                "RestrictDomainsToIPAddresses",
                t.restrict_domains_to_ip_addresses,
            ),
            (
                "RestrictDomainsToCertificate",
                t.restrict_domains_to_certificate,
            ),
        ] {
            if set {
                unsupported(
                    property,
                    "a Partner-only setting: Exchange Online ignores it on an OnPremises \
                     connector, and so does relaygate; kept as written",
                );
            }
        }
    }
    // The gate refuses a restriction with nothing to restrict to; Exchange Online refuses it
    // too, so this happens only when the addresses or the name were left out above.
    if t.restrict_domains_to_ip_addresses && t.sender_ip_addresses.is_empty() {
        unsupported(
            "RestrictDomainsToIPAddresses",
            "no sender IP address relaygate can take is left to restrict to: imported as \
             false, so relaygate does not restrict this connector's sender domains by address",
        );
        t.restrict_domains_to_ip_addresses = false;
    }
    if t.restrict_domains_to_certificate && t.tls_sender_certificate_name.is_none() {
        unsupported(
            "RestrictDomainsToCertificate",
            "no certificate name relaygate can take is left to restrict to: imported as false, \
             so relaygate does not restrict this connector's sender domains by certificate",
        );
        t.restrict_domains_to_certificate = false;
    }
    // RequireTls needs no note: on a Partner connector the gate enforces it as Exchange Online
    // does (454 4.7.0 without TLS), and on an OnPremises connector both treat it as
    // informational (the Hybrid Configuration Wizard sets it there).
    t
}
