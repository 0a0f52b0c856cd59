//! The cmdlets' objects as typed structs: names matched without case, values in every form
//! Exchange prints them, and every other property kept as spelled.

use super::*;
use crate::cli::import_exo::exchange::{
    read, AcceptedDomain, AcceptedDomainType, Form, InboundConnector, Object,
};
use crate::policy::ConnectorType;
use serde_json::{json, Map};

fn object(json: Value) -> Map<String, Value> {
    match json {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

/// Every mapped property, spelled `spell(name)`, with a value of the right form.
fn spelled<T: Object>(spell: fn(&str) -> String, value: fn(&str) -> Value) -> Map<String, Value> {
    T::MAPPED.iter().map(|m| (spell(m), value(m))).collect()
}

fn connector_value(name: &str) -> Value {
    match name {
        "Name" => json!("c"),
        "ConnectorType" => json!("Partner"),
        "SenderIPAddresses" => json!(["192.0.2.1"]),
        "TlsSenderCertificateName" => json!("mail.example"),
        "SenderDomains" => json!(["smtp:*;1"]),
        _ => json!(true),
    }
}

#[test]
fn every_mapped_connector_property_is_read_in_any_case() {
    for spell in [
        str::to_ascii_lowercase,
        str::to_ascii_uppercase,
        str::to_string,
    ] {
        let ctx = Ctx::entry(CONNECTORS, 1);
        let map = spelled::<InboundConnector>(spell, connector_value);
        let c: InboundConnector = read(&ctx, map).unwrap();
        assert!(c.other.is_empty(), "{:?}", c.other.keys());
        assert_eq!(c.name.unwrap().value.unwrap().0, "c");
        assert_eq!(
            c.connector_type.unwrap().value,
            Some(ConnectorType::Partner)
        );
        assert_eq!(c.sender_ip_addresses.unwrap().0.len(), 1);
        assert_eq!(
            c.tls_sender_certificate_name.unwrap().value.unwrap().0,
            "mail.example"
        );
        assert_eq!(c.sender_domains.unwrap().0.len(), 1);
        for flag in [
            c.enabled,
            c.restrict_domains_to_ip_addresses,
            c.restrict_domains_to_certificate,
            c.require_tls,
        ] {
            assert_eq!(flag.unwrap().value, Some(true));
        }
    }
}

#[test]
fn every_mapped_domain_property_is_read_in_any_case() {
    let value = |name: &str| match name {
        "DomainName" => json!("a.example"),
        "DomainType" => json!(2),
        _ => json!("True"),
    };
    for spell in [
        str::to_ascii_lowercase,
        str::to_ascii_uppercase,
        str::to_string,
    ] {
        let ctx = Ctx::entry(DOMAINS, 1);
        let d: AcceptedDomain = read(&ctx, spelled::<AcceptedDomain>(spell, value)).unwrap();
        assert!(d.other.is_empty(), "{:?}", d.other.keys());
        assert_eq!(d.domain_name.unwrap().value.unwrap().0, "a.example");
        assert_eq!(
            d.domain_type.unwrap().value,
            Some(AcceptedDomainType::InternalRelay)
        );
        assert_eq!(d.match_sub_domains.unwrap().value, Some(true));
    }
}

#[test]
fn unmapped_properties_are_kept_as_spelled_in_the_order_of_their_names() {
    let ctx = Ctx::entry(CONNECTORS, 1);
    let map = object(json!({"Name": "c", "zeta": 1, "OrganizationalUnitRoot": 2,
                            "OrganizationId": {"x": [3]}, "Comment": null}));
    let c: InboundConnector = read(&ctx, map).unwrap();
    let other: Vec<_> = c
        .other
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    assert_eq!(
        other,
        [
            ("Comment", Value::Null),
            ("OrganizationId", json!({"x": [3]})),
            ("OrganizationalUnitRoot", json!(2)),
            ("zeta", json!(1)),
        ]
    );
}

#[test]
fn a_name_spelled_twice_is_refused_naming_the_later_spelling() {
    let ctx = Ctx::entry(CONNECTORS, 4);
    let map = object(json!({"Foo": 1, "FOO": 2, "Name": "c"}));
    let e = read::<InboundConnector>(&ctx, map).unwrap_err();
    assert_eq!(
        e.to_string(),
        "Get-InboundConnector output: entry 4 has the property Foo twice (spellings differ only in case)"
    );
}

#[test]
fn enums_are_read_as_names_or_numbers_and_nothing_else() {
    for (json, expected) in [
        (json!("onpremises"), Some(ConnectorType::OnPremises)),
        (json!(" Partner "), Some(ConnectorType::Partner)),
        (json!(1), Some(ConnectorType::OnPremises)),
        (json!("2"), Some(ConnectorType::Partner)),
        (json!(0), None),
        (json!(-1), None),
        (json!(1.5), None),
        (json!("Hybrid"), None),
        (json!(true), None),
    ] {
        assert_eq!(ConnectorType::read(&json), expected, "{json}");
    }
    assert_eq!(
        AcceptedDomainType::read(&json!(1)),
        Some(AcceptedDomainType::ExternalRelay)
    );
}

#[test]
fn booleans_are_read_as_json_or_powershell_text() {
    for (json, expected) in [
        (json!(true), Some(true)),
        (json!("False"), Some(false)),
        (json!(" TRUE "), Some(true)),
        (json!(1), None),
        (json!("yes"), None),
    ] {
        assert_eq!(bool::read(&json), expected, "{json}");
    }
}

#[test]
fn null_sender_domains_is_present_and_empty_absent_is_none() {
    let ctx = Ctx::entry(CONNECTORS, 1);
    let null: InboundConnector =
        read(&ctx, object(json!({"Name": "c", "SenderDomains": null}))).unwrap();
    assert!(null.sender_domains.is_some_and(|d| d.0.is_empty()));
    let absent: InboundConnector = read(&ctx, object(json!({"Name": "c"}))).unwrap();
    assert!(absent.sender_domains.is_none());
}

#[test]
fn multi_valued_properties_keep_each_entry_as_printed() {
    let ctx = Ctx::entry(CONNECTORS, 1);
    let map = object(json!({
        "SenderIPAddresses": " 192.0.2.1, ,192.0.2.2 ",
        "SenderDomains": [{"Address": "a.example", "Type": "smtp"}, 5],
    }));
    let c: InboundConnector = read(&ctx, map).unwrap();
    let ips: Vec<_> = c.sender_ip_addresses.unwrap().0;
    let ips: Vec<_> = ips.iter().map(|p| p.json.clone()).collect();
    assert_eq!(ips, [json!("192.0.2.1"), json!("192.0.2.2")]);
    let domains = c.sender_domains.unwrap().0;
    assert_eq!(domains[0].value.as_ref().unwrap().0, "a.example");
    assert_eq!(
        domains[0].json,
        json!({"Address": "a.example", "Type": "smtp"})
    );
    assert!(domains[1].value.is_none());
    assert_eq!(domains[1].json, json!(5));
}
