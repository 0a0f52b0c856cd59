//! `[[tenants]]`: several tenants in one file, each with its own policy and upstream, and what
//! is refused (a top-level tenant section beside them, a domain or name used twice).

use super::*;

const SERVER: &str = "[server]\nhostname = \"gate.contoso.com\"\n";

fn tenant(name: &str, domain: &str, extra: &str) -> String {
    format!(
        r#"
[[tenants]]
name = "{name}"
{extra}
[[tenants.accepted_domains]]
domain = "{domain}"
[[tenants.inbound_connectors]]
name = "OnPrem"
connector_type = "OnPremises"
sender_ip_addresses = ["192.0.2.0/24"]
[tenants.upstream]
kind = "directory"
path = "out/{name}"
"#
    )
}

fn load(text: &str) -> Result<Settings, String> {
    Config::parse(text)?.validate().map_err(|e| e.to_string())
}

fn refused(text: &str) -> String {
    match load(text) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e,
    }
}

#[test]
fn each_tenant_has_its_own_domains_upstream_and_policy_over_the_top_level_defaults() {
    let text = format!(
        "{SERVER}[policy]\nreject_stage = \"rcpt\"\nmode = \"audit\"\n{}{}",
        tenant("contoso", "contoso.com", ""),
        tenant(
            "tailspin",
            "tailspin.example",
            "[tenants.policy]\nmode = \"enforce\"\nprofile = \"exo-legacy\"\n"
        )
    );
    let s = load(&text).unwrap();
    assert_eq!(s.tenants.len(), 2);
    let (a, b) = (&s.tenants[0], &s.tenants[1]);
    assert_eq!((a.name(), b.name()), ("contoso", "tailspin"));
    assert_eq!(a.policy.tenant.accepted_domains[0].domain, "contoso.com");
    assert_eq!(
        b.policy.tenant.accepted_domains[0].domain,
        "tailspin.example"
    );
    assert_eq!((a.policy.mode, b.policy.mode), (Mode::Audit, Mode::Enforce));
    assert_eq!(b.policy.reject_stage, RejectStage::Rcpt, "inherited");
    assert_eq!(
        (a.policy.profile, b.policy.profile),
        (Profile::Exo2023, Profile::ExoLegacy)
    );
    let paths: Vec<String> = s
        .tenants
        .iter()
        .map(|t| match &t.upstream {
            UpstreamSettings::Directory { path } => path.display().to_string(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(paths, ["out/contoso", "out/tailspin"]);
    assert!(s.named_tenants());
}

#[test]
fn a_file_without_tenants_is_one_unnamed_tenant() {
    let s = check("").unwrap();
    assert_eq!(s.tenants.len(), 1);
    assert_eq!(s.tenants[0].name(), "");
    assert!(!s.named_tenants());
}

#[test]
fn a_top_level_tenant_section_beside_tenants_is_refused_by_its_key() {
    let t = tenant("contoso", "contoso.com", "");
    for (extra, key) in [
        ("[[accepted_domains]]\ndomain = \"x.example\"\n", "accepted_domains"),
        (
            "[[inbound_connectors]]\nname = \"C\"\nconnector_type = \"OnPremises\"\nsender_ip_addresses = [\"192.0.2.1\"]\n",
            "inbound_connectors",
        ),
        ("[upstream]\nkind = \"directory\"\npath = \"out\"\n", "upstream"),
    ] {
        let e = refused(&format!("{SERVER}{extra}{t}"));
        assert!(
            e.starts_with(&format!("configuration key {key}: is not allowed beside [[tenants]]")),
            "{e}"
        );
    }
}

#[test]
fn a_domain_accepted_by_two_tenants_is_refused() {
    let e = refused(&format!(
        "{SERVER}{}{}",
        tenant("contoso", "contoso.com", ""),
        tenant("tailspin", "Contoso.com.", "")
    ));
    assert!(
        e.starts_with("configuration key tenants[1].accepted_domains[0].domain = \"contoso.com\": is also accepted by tenant \"contoso\""),
        "{e}"
    );
    // A subdomain of another tenant's InternalRelay domain with MatchSubDomains is accepted
    // by both, too.
    let relay = tenant("fabrikam", "fabrikam.com", "").replace(
        "domain = \"fabrikam.com\"",
        "domain = \"fabrikam.com\"\ndomain_type = \"InternalRelay\"\nmatch_subdomains = true",
    );
    let e = refused(&format!(
        "{SERVER}{relay}{}",
        tenant("sales", "sales.fabrikam.com", "")
    ));
    assert!(e.contains("is also accepted by tenant \"fabrikam\""), "{e}");
}

#[test]
fn two_tenants_of_one_name_are_refused() {
    let e = refused(&format!(
        "{SERVER}{}{}",
        tenant("contoso", "contoso.com", ""),
        tenant("Contoso", "tailspin.example", "")
    ));
    assert_eq!(
        e,
        "configuration key tenants[1].name = \"Contoso\": is the name of another tenant"
    );
}

#[test]
fn a_tenants_own_values_are_refused_under_its_key() {
    let bad = tenant("tailspin", "tailspin.example", "").replace("192.0.2.0/24", "10.0.0.0/8");
    let e = refused(&format!(
        "{SERVER}{}{bad}",
        tenant("contoso", "contoso.com", "")
    ));
    assert!(
        e.starts_with("configuration key tenants[1].inbound_connectors[0].sender_ip_addresses[0] = \"10.0.0.0/8\""),
        "{e}"
    );
    let e = refused(&format!(
        "{SERVER}{}",
        tenant(
            "contoso",
            "contoso.com",
            "[tenants.policy]\nmode = \"observe\"\n"
        )
    ));
    assert_eq!(
        e,
        "configuration key tenants[0].policy.mode = \"observe\": must be \"enforce\" or \"audit\""
    );
}

#[test]
fn every_tenant_needs_its_upstream_and_a_single_tenant_file_its_upstream() {
    let t = tenant("contoso", "contoso.com", "");
    let cut = &t[..t.find("[tenants.upstream]").unwrap()];
    let e = refused(&format!("{SERVER}{cut}"));
    assert!(e.contains("tenants[0]: missing field `upstream`"), "{e}");
    let e = refused(SERVER);
    assert!(
        e.starts_with("configuration key upstream: is missing"),
        "{e}"
    );
}
