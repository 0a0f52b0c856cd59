//! The shipped examples (config/examples/*.json): the documented run, in every encoding
//! PowerShell writes.

use super::*;
use crate::cli::import_exo::notes::{AT_DEFAULT, METADATA, UNKNOWN};
use crate::policy::{CertificateName, ConnectorType, DomainType, SenderDomain};

#[test]
fn shipped_examples_import_and_load() {
    let import = import(
        Some(include_str!(
            "../../../../config/examples/Get-InboundConnector.json"
        )),
        Some(include_str!(
            "../../../../config/examples/Get-AcceptedDomain.json"
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
    let tenant = &settings.tenants[0].policy.tenant;

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
    // plus the note about a value (the IPv6 entry); each domain prints 39, 3 translated and 36
    // noted.
    assert_eq!(
        import.notes.len(),
        4 * 31 + 1 + 3 * 36,
        "{:#?}",
        import.notes
    );
}

#[test]
fn what_any_powershell_writes_imports_the_same() {
    let connectors = include_str!("../../../../config/examples/Get-InboundConnector.json");
    let domains = include_str!("../../../../config/examples/Get-AcceptedDomain.json");
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
fn shipped_examples_print_exactly_the_documented_toml() {
    let import = import(
        Some(include_str!(
            "../../../../config/examples/Get-InboundConnector.json"
        )),
        Some(include_str!(
            "../../../../config/examples/Get-AcceptedDomain.json"
        )),
    )
    .unwrap();
    // Byte for byte: a change of toml_edit's formatting, or of a comment, shows here first.
    assert_eq!(import.toml, include_str!("shipped-examples.toml"));
}
