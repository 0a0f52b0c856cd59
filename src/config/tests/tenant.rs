//! `[[accepted_domains]]` and `[[inbound_connectors]]`: refused where Exchange Online refuses them.

use super::{check, refused};
use crate::policy::CertificateName;

#[test]
fn ipv6_sender_ip_address_is_refused_like_exchange_online() {
    let e = refused(
        "[[inbound_connectors]]\nname = \"c\"\nconnector_type = \"OnPremises\"\nsender_ip_addresses = [\"2001:db8::/64\"]\n",
    );
    assert!(
        e.contains("inbound_connectors[0].sender_ip_addresses[0] = \"2001:db8::/64\""),
        "{e}"
    );
    assert!(e.contains("IPv6") && e.contains("Exchange Online"), "{e}");
}

#[test]
fn ranges_larger_than_slash_24_are_refused() {
    let e = refused(
        "[[inbound_connectors]]\nname = \"c\"\nconnector_type = \"OnPremises\"\nsender_ip_addresses = [\"10.0.0.0/16\"]\n",
    );
    assert!(e.contains("/16 range is larger than /24"), "{e}");
    let e = refused(
        "[[inbound_connectors]]\nname = \"c\"\nconnector_type = \"OnPremises\"\nsender_ip_addresses = [\"10.0.0.1-10.0.0.9\"]\n",
    );
    assert!(e.contains("ranges (a-b)"), "{e}");
}

#[test]
fn single_addresses_and_slash_24_to_32_are_accepted() {
    let s = check(
        "[[inbound_connectors]]\nname = \"c\"\nconnector_type = \"OnPremises\"\nsender_ip_addresses = [\"203.0.113.7\", \"198.51.100.0/24\", \"192.0.2.9/32\"]\n",
    )
    .unwrap();
    let nets: Vec<String> = s.tenants[0].policy.tenant.inbound_connectors[0]
        .sender_ip_addresses
        .iter()
        .map(|n| n.to_string())
        .collect();
    assert_eq!(nets, ["203.0.113.7/32", "198.51.100.0/24", "192.0.2.9/32"]);
}

#[test]
fn certificate_name_forms() {
    let ok = |v: &str| {
        check(&format!(
            "[[inbound_connectors]]\nname = \"c\"\nconnector_type = \"OnPremises\"\ntls_sender_certificate_name = \"{v}\"\n"
        ))
        .map(|s| s.tenants[0].policy.tenant.inbound_connectors[0].tls_sender_certificate_name.clone())
    };
    assert_eq!(
        ok("Mail.Contoso.com.").unwrap(),
        Some(CertificateName::Exact("mail.contoso.com".into()))
    );
    assert_eq!(
        ok("*.contoso.com").unwrap(),
        Some(CertificateName::Wildcard("contoso.com".into()))
    );
    for bad in [
        "mail.*.contoso.com",
        "*contoso.com",
        "*.*.contoso.com",
        "contoso..com",
        "-x.com",
    ] {
        assert!(ok(bad).is_err(), "{bad} accepted");
    }
}

#[test]
fn match_subdomains_only_with_internal_relay() {
    let e = refused("[[accepted_domains]]\ndomain = \"contoso.com\"\nmatch_subdomains = true\n");
    assert!(
        e.contains("accepted_domains[0].match_subdomains") && e.contains("InternalRelay"),
        "{e}"
    );
    check("[[accepted_domains]]\ndomain = \"fabrikam.com\"\ndomain_type = \"InternalRelay\"\nmatch_subdomains = true\n")
        .unwrap();
}

#[test]
fn on_premises_connector_needs_an_ip_or_a_certificate_name() {
    let e = refused("[[inbound_connectors]]\nname = \"empty\"\nconnector_type = \"OnPremises\"\n");
    assert!(
        e.contains("needs sender_ip_addresses or tls_sender_certificate_name"),
        "{e}"
    );
}
