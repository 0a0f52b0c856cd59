//! `Get-AcceptedDomain` objects into `[[accepted_domains]]`.

use super::*;
use crate::policy::DomainType;

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
