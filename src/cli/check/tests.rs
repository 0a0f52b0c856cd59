//! `check` with several tenants: it attributes the transaction as the session does and says
//! to which tenant and by what, or judges it as the tenant given with `--tenant`.

use super::*;

fn settings() -> Settings {
    let tenant = |name: &str, domain: &str| {
        format!(
            r#"
[[tenants]]
name = "{name}"
[[tenants.accepted_domains]]
domain = "{domain}"
[[tenants.inbound_connectors]]
name = "{name} by IP"
connector_type = "OnPremises"
sender_ip_addresses = ["203.0.113.0/24"]
[[tenants.inbound_connectors]]
name = "{name} by certificate"
connector_type = "OnPremises"
tls_sender_certificate_name = "*.{domain}"
[tenants.upstream]
kind = "directory"
path = "out/{name}"
"#
        )
    };
    let text = format!(
        "[server]\nhostname = \"gate.contoso.com\"\n{}{}",
        tenant("contoso", "contoso.com"),
        tenant("tailspin", "tailspin.example")
    );
    crate::config::Config::parse(&text)
        .unwrap()
        .validate()
        .unwrap()
}

fn facts(certificate: &[&str], mail_from: &str, rcpts: &[&str]) -> Facts {
    Facts {
        peer_ip: "203.0.113.10".parse().unwrap(),
        certificate_names: certificate.iter().map(|c| c.to_string()).collect(),
        certificate_note: None,
        tls: true,
        tls_note: String::new(),
        mail_from: mail_from.into(),
        header_from: None,
        recipients: rcpts.iter().map(|r| r.to_string()).collect(),
        user: None,
        rewritten_from: None,
    }
}

#[test]
fn check_attributes_the_tenant_like_the_session_and_says_which_and_by_what() {
    let s = settings();
    let f = facts(&["mail.tailspin.example"], "", &["bob@example.org"]);
    let e = Explanation::new(&s, &f, None, None);
    let text = e.render_text();
    assert!(
        text.contains("\n  tenant           tailspin (by certificate)\n"),
        "{text}"
    );
    assert_eq!(e.exit_status(), 0, "{text}");
    let json = e.render_json();
    assert_eq!(json["tenant"], "tailspin");
    assert_eq!(json["attributed_by"], "certificate");
}

#[test]
fn check_tenant_judges_as_the_given_tenant_and_another_tenants_recipient_gets_452() {
    let s = settings();
    let f = facts(&[], "app@contoso.com", &["a@tailspin.example"]);
    let contoso = tenant_index(&s, "contoso").unwrap();
    let e = Explanation::new(&s, &f, None, Some(contoso));
    let text = e.render_text();
    assert!(
        text.contains("tenant           contoso (by given)"),
        "{text}"
    );
    assert!(text.contains("452 4.5.3 Too many recipients ["), "{text}");
    assert_eq!(e.exit_status(), 1);
    let given = Explanation::new(&s, &f, None, Some(tenant_index(&s, "tailspin").unwrap()));
    assert_eq!(given.exit_status(), 0, "{}", given.render_text());
}

#[test]
fn an_unknown_tenant_is_a_usage_error_naming_the_tenants() {
    let e = tenant_index(&settings(), "fabrikam").unwrap_err();
    assert_eq!(
        e,
        "--tenant \"fabrikam\": no such tenant (the configuration has \"contoso\", \"tailspin\")"
    );
}

#[test]
fn nothing_attributes_and_check_says_so() {
    let s = settings();
    let f = facts(&[], "", &["bob@example.org"]);
    let text = Explanation::new(&s, &f, None, None).render_text();
    assert!(
        text.contains("  tenant           none: neither the certificate"),
        "{text}"
    );
    assert!(text.contains("550 5.7.64 TenantAttribution"), "{text}");
}

#[test]
fn check_shows_what_a_rewrite_rule_does_and_judges_the_new_sender() {
    let text = "[server]\nhostname = \"gate.contoso.com\"\n[[accepted_domains]]\ndomain = \"contoso.com\"\n[[inbound_connectors]]\nname = \"OnPrem by IP\"\nconnector_type = \"OnPremises\"\nsender_ip_addresses = [\"203.0.113.0/24\"]\n[upstream]\nkind = \"directory\"\npath = \"out\"\n[[rewrite]]\nclient_ips = [\"203.0.113.0/24\"]\nsenders = [\"*@example.net\"]\nnew_sender = \"app@contoso.com\"\n";
    let s = crate::config::Config::parse(text)
        .unwrap()
        .validate()
        .unwrap();
    let ip = "203.0.113.10".parse().unwrap();
    let (sender, from) = rewritten(&s, ip, &[], None, "crm@example.net".into());
    assert_eq!(sender, "app@contoso.com");
    assert_eq!(from, Some((0, "crm@example.net".to_string())));
    // The null sender is never matched by senders (nor by their absence).
    assert_eq!(
        rewritten(&s, ip, &[], None, String::new()),
        (String::new(), None)
    );
    let mut f = facts(&[], &sender, &["bob@example.org"]);
    f.rewritten_from = from;
    let e = Explanation::new(&s, &f, None, None);
    let out = e.render_text();
    assert!(
        out.contains("P1 as given      <crm@example.net>: rewritten by rewrite[0]"),
        "{out}"
    );
    assert!(out.contains("P1 MAIL FROM     <app@contoso.com>"), "{out}");
    assert_eq!(e.exit_status(), 0, "accepted on the new sender:\n{out}");
    let json = e.render_json();
    assert_eq!(json["mail_from"], "crm@example.net");
    assert_eq!(json["rewritten_to"], "app@contoso.com");
    assert_eq!(json["rewrite_rule"], 0);
}
