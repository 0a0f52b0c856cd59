//! The import, tested on literal text: what it writes must load as the gate's configuration,
//! and every property must be accounted for. Helpers here; the tests by subject in the
//! submodules.

use super::*;
use crate::config::{Config, TenantSettings};

mod connectors;
mod domains;
mod examples;
mod input;
mod notes;
mod objects;
mod tenant;

pub(super) const BASE: &str = r#"
[server]
hostname = "gate.test"
[upstream]
kind = "directory"
path = "/tmp/relaygate-import-test"
"#;

/// The import appended to a minimal configuration, loaded and validated as the gate would: its
/// one tenant.
pub(super) fn load(import: &Import) -> TenantSettings {
    let text = format!("{BASE}\n{}", import.toml);
    match Config::parse(&text) {
        Ok(config) => config
            .validate()
            .map(|mut s| s.tenants.remove(0))
            .unwrap_or_else(|e| panic!("{e}\n---\n{text}")),
        Err(e) => panic!("{e}\n---\n{text}"),
    }
}

pub(super) fn nets(list: &[&str]) -> Vec<ipnet::Ipv4Net> {
    list.iter().map(|n| n.parse().unwrap()).collect()
}

pub(super) fn connectors(json: &str) -> Import {
    import(Some(json), None).unwrap()
}

pub(super) fn domains(json: &str) -> Import {
    import(None, Some(json)).unwrap()
}

pub(super) fn find<'a>(import: &'a Import, object: &str, property: &str) -> Vec<&'a Note> {
    import
        .notes
        .iter()
        .filter(|n| n.object == object && n.property == property)
        .collect()
}

pub(super) fn unsupported<'a>(import: &'a Import, object: &str, property: &str) -> &'a Note {
    let found = find(import, object, property);
    assert_eq!(found.len(), 1, "{object} {property}: {:#?}", import.notes);
    assert_eq!(found[0].kind, NoteKind::Unsupported, "{:#?}", found[0]);
    found[0]
}

pub(super) fn domains_err(json: &str) -> String {
    import(None, Some(json)).unwrap_err().to_string()
}

/// The shipped examples through an [`Importer`], from bytes.
pub(super) fn import_bytes(connectors: &[u8], domains: &[u8]) -> Result<Import, ImportError> {
    let mut notes = Vec::new();
    let mut importer = Importer::new();
    importer.accepted_domains(domains, |n| notes.push(n))?;
    importer.inbound_connectors(connectors, |n| notes.push(n))?;
    Ok(Import {
        toml: importer.finish(),
        notes,
    })
}

pub(super) fn encoded(text: &str, bom: bool, utf16: Option<bool>) -> Vec<u8> {
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
