//! One `Get-AcceptedDomain` object into one `[[accepted_domains]]` table.

use super::checks::domain_name;
use super::exchange::{self, AcceptedDomain, AcceptedDomainType};
use super::notes::{note, note_other, NoteKind, DOMAIN_OTHER};
use super::output::{AcceptedDomainTable, Block, GateTable};
use super::{Ctx, ImportError, DOMAINS};
use crate::policy::DomainType;
use serde_json::{Map, Value};
use std::collections::HashSet;

/// The `n`th object. `seen`: the domains written so far (a second one would make the
/// configuration refuse to load).
pub(super) fn accepted_domain(
    object: Map<String, Value>,
    n: usize,
    seen: &mut HashSet<String>,
) -> Result<Block, ImportError> {
    let mut ctx = Ctx::entry(DOMAINS, n);
    let d: AcceptedDomain = exchange::read(&ctx, object)?;
    let raw = ctx
        .required("DomainName", &d.domain_name, "a domain name")?
        .0;
    ctx.named(&raw);
    let domain_type = ctx
        .optional(
            "DomainType",
            &d.domain_type,
            "Authoritative, ExternalRelay or InternalRelay (or 0, 1 or 2)",
        )?
        .unwrap_or(AcceptedDomainType::Authoritative);
    let mut match_subdomains = ctx
        .optional("MatchSubDomains", &d.match_sub_domains, "true or false")?
        .unwrap_or(false);

    let object = raw.as_str();
    let header = format!("{DOMAINS} {raw:?}");
    let left_out = |reason: &str| -> Result<Block, ImportError> {
        let printed = Value::String(raw.clone());
        let mut notes = vec![note(
            object,
            "DomainName",
            &printed,
            NoteKind::Unsupported,
            reason,
        )];
        note_other(&d.other, object, DOMAIN_OTHER, &mut notes);
        Ok(Block::left_out(header.clone(), notes))
    };
    let Some(domain) = domain_name(&raw) else {
        return left_out(
            "not a domain name relaygate takes (letters, digits and hyphens; IDNs in punycode, \
             xn--; no wildcard): the domain is left out",
        );
    };
    if !seen.insert(domain.clone()) {
        return left_out("listed twice: the domain is left out the second time");
    }
    let mut notes = Vec::new();
    let domain_type = match domain_type {
        AcceptedDomainType::Authoritative => DomainType::Authoritative,
        AcceptedDomainType::InternalRelay => DomainType::InternalRelay,
        AcceptedDomainType::ExternalRelay => {
            // For relay attribution an ExternalRelay domain is an accepted domain like any
            // other; what sets it apart is delivery, which the gate does not do. InternalRelay
            // is the gate's type for "accepted, recipients not known here" (no 5.4.1).
            let printed = d.domain_type.as_ref().map_or(&Value::Null, |p| &p.json);
            notes.push(note(
                object,
                "DomainType",
                printed,
                NoteKind::Unsupported,
                "Exchange Online has no ExternalRelay domains (only Exchange Server does). For \
                 relay attribution it is an accepted domain all the same, so it is imported as \
                 domain_type = \"InternalRelay\": accepted, with no recipient filtering",
            ));
            DomainType::InternalRelay
        }
    };
    if match_subdomains && domain_type == DomainType::Authoritative {
        notes.push(note(
            object,
            "MatchSubDomains",
            &Value::Bool(true),
            NoteKind::Unsupported,
            "only InternalRelay domains may match subdomains (Exchange Online refuses it too): \
             imported as match_subdomains = false",
        ));
        match_subdomains = false;
    }
    note_other(&d.other, object, DOMAIN_OTHER, &mut notes);
    Ok(Block {
        header,
        notes,
        table: Some(GateTable::AcceptedDomain(AcceptedDomainTable {
            domain,
            domain_type,
            match_subdomains,
        })),
    })
}
