use super::*;

fn rule(new_sender: &str) -> RewriteRule {
    RewriteRule {
        client_ips: Vec::new(),
        client_certificate_names: Vec::new(),
        client_users: Vec::new(),
        senders: Vec::new(),
        null_sender: false,
        new_sender: new_sender.into(),
    }
}

fn client<'a>(ip: &str, names: &'a [String], user: Option<&'a str>) -> RewriteClient<'a> {
    RewriteClient {
        ip: ip.parse().unwrap(),
        certificate_names: names,
        user,
    }
}

const NONE: &[String] = &[];

#[test]
fn a_client_ip_range_matches_only_clients_inside_it_also_ipv4_mapped() {
    let mut r = rule("app@contoso.com");
    r.client_ips = vec!["192.0.2.0/28".parse().unwrap()];
    assert!(r.matches(&client("192.0.2.9", NONE, None), "app@example.net"));
    assert!(r.matches(&client("::ffff:192.0.2.9", NONE, None), "app@example.net"));
    assert!(!r.matches(&client("192.0.2.99", NONE, None), "app@example.net"));
}

#[test]
fn a_client_certificate_name_matches_exact_and_wildcard_names() {
    let mut r = rule("app@contoso.com");
    r.client_certificate_names = vec![CertificateName::Wildcard("fabrikam.com".into())];
    let names = vec!["relay.fabrikam.com".to_string()];
    assert!(r.matches(&client("198.51.100.1", &names, None), "x@fabrikam.com"));
    assert!(!r.matches(&client("198.51.100.1", NONE, None), "x@fabrikam.com"));
    r.client_certificate_names = vec![CertificateName::Exact("mail.fabrikam.com".into())];
    assert!(!r.matches(&client("198.51.100.1", &names, None), "x@fabrikam.com"));
}

#[test]
fn a_client_user_matches_only_that_authenticated_user() {
    let mut r = rule("scanner@contoso.com");
    r.client_users = vec!["scanner".into()];
    assert!(r.matches(&client("192.0.2.1", NONE, Some("scanner")), "a@example.net"));
    assert!(!r.matches(&client("192.0.2.1", NONE, Some("crm")), "a@example.net"));
    assert!(!r.matches(&client("192.0.2.1", NONE, None), "a@example.net"));
}

#[test]
fn senders_match_addresses_and_whole_domains_without_regard_to_case() {
    let mut r = rule("app@contoso.com");
    r.senders = vec![
        SenderPattern::Address("crm@example.net".into()),
        SenderPattern::Domain("apps.example.org".into()),
    ];
    let c = client("192.0.2.1", NONE, None);
    assert!(r.matches(&c, "CRM@Example.NET"));
    assert!(r.matches(&c, "anything@APPS.example.org"));
    assert!(!r.matches(&c, "other@example.net"));
    assert!(!r.matches(&c, "x@sub.apps.example.org"));
}

#[test]
fn the_null_sender_is_never_rewritten_without_null_sender_true() {
    let c = client("192.0.2.1", NONE, None);
    // No senders: every sender but the null sender.
    let r = rule("postmaster@contoso.com");
    assert!(r.matches(&c, "app@example.net"));
    assert!(!r.matches(&c, ""));
    let mut r = rule("postmaster@contoso.com");
    r.senders = vec![SenderPattern::Domain("example.net".into())];
    assert!(!r.matches(&c, ""));
}

#[test]
fn null_sender_true_alone_matches_only_the_null_sender_and_adds_to_senders() {
    let c = client("192.0.2.1", NONE, None);
    let mut r = rule("postmaster@contoso.com");
    r.null_sender = true;
    assert!(r.matches(&c, ""));
    assert!(!r.matches(&c, "app@example.net"));
    r.senders = vec![SenderPattern::Address("app@example.net".into())];
    assert!(r.matches(&c, ""));
    assert!(r.matches(&c, "app@example.net"));
    assert!(!r.matches(&c, "other@example.net"));
}

#[test]
fn the_first_matching_rule_wins_and_every_condition_must_hold() {
    let mut specific = rule("crm@contoso.com");
    specific.client_ips = vec!["192.0.2.0/24".parse().unwrap()];
    specific.senders = vec![SenderPattern::Address("crm@example.net".into())];
    let catch_all = rule("noreply@contoso.com");
    let rules = [specific, catch_all];
    let inside = client("192.0.2.5", NONE, None);
    let outside = client("203.0.113.5", NONE, None);
    let new =
        |c: &RewriteClient<'_>, p1: &str| rewrite(&rules, c, p1).map(|r| r.new_sender.as_str());
    assert_eq!(new(&inside, "crm@example.net"), Some("crm@contoso.com"));
    assert_eq!(
        new(&outside, "crm@example.net"),
        Some("noreply@contoso.com")
    );
    assert_eq!(
        new(&inside, "other@example.net"),
        Some("noreply@contoso.com")
    );
    assert_eq!(new(&inside, ""), None);
    assert_eq!(rewrite(&[], &inside, "crm@example.net"), None);
}
