//! `Get-InboundConnector` objects into `[[inbound_connectors]]`.

use super::*;
use crate::policy::{CertificateName, ConnectorType, SenderDomain};

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
fn duplicate_connector_names_are_left_out_with_a_note() {
    let import = connectors(
        r#"[{"Name": "Relay", "ConnectorType": "OnPremises", "SenderIPAddresses": ["192.0.2.1"]},
            {"Name": "relay", "ConnectorType": "OnPremises", "SenderIPAddresses": ["192.0.2.2"]}]"#,
    );
    assert_eq!(load(&import).policy.tenant.inbound_connectors.len(), 1);
    unsupported(&import, "relay", "Name");
}

#[test]
fn require_tls_is_imported_without_a_note_on_either_connector_type() {
    let import = connectors(
        r#"[{"Name": "partner", "ConnectorType": "Partner", "RequireTls": true,
             "SenderDomains": ["smtp:partner.example;1"]},
            {"Name": "hybrid", "ConnectorType": "OnPremises", "RequireTls": true,
             "SenderIPAddresses": ["192.0.2.1"]}]"#,
    );
    let c = load(&import).policy.tenant.inbound_connectors;
    // Enforced on the Partner connector, informational on the OnPremises one: in both cases
    // what Exchange Online does, so nothing for the admin to look at.
    assert!(c[0].require_tls && c[1].require_tls);
    for connector in ["partner", "hybrid"] {
        assert!(
            find(&import, connector, "RequireTls").is_empty(),
            "{connector}"
        );
    }
    assert!(!import.has_unsupported(), "{:#?}", import.notes);
}
