//! `[upstream] address`: one `host:port` or a list of them, each checked, each verified against
//! its own host name; the string form stays valid and is shown as written.

use crate::config::{Config, Settings, UpstreamSettings};

fn with_address(address: &str, extra: &str) -> Result<Settings, String> {
    let text = format!(
        "[server]\nhostname = \"gate.contoso.com\"\n[upstream]\nkind = \"smtp\"\ntls = \"none\"\naddress = {address}\n{extra}"
    );
    Config::parse(&text)?.validate().map_err(|e| e.to_string())
}

fn addresses(s: &Settings) -> Vec<(String, String)> {
    match &s.tenants[0].upstream {
        UpstreamSettings::Smtp(s) => s
            .addresses
            .iter()
            .map(|a| (a.address.clone(), a.tls_server_name.to_str().into_owned()))
            .collect(),
        UpstreamSettings::Directory { .. } => panic!("smtp expected"),
    }
}

#[test]
fn a_single_address_is_still_a_string() {
    let s = with_address("\"contoso-com.mail.protection.outlook.com:25\"", "").unwrap();
    assert_eq!(
        addresses(&s),
        [(
            "contoso-com.mail.protection.outlook.com:25".to_string(),
            "contoso-com.mail.protection.outlook.com".to_string()
        )]
    );
}

#[test]
fn a_list_keeps_its_order_and_each_host_is_its_own_tls_name() {
    let s = with_address("[\"a.example:25\", \"[2001:db8::1]:587\"]", "").unwrap();
    assert_eq!(
        addresses(&s),
        [
            ("a.example:25".to_string(), "a.example".to_string()),
            ("[2001:db8::1]:587".to_string(), "2001:db8::1".to_string()),
        ]
    );
    let named = with_address(
        "[\"10.0.0.1:25\", \"10.0.0.2:25\"]",
        "tls_server_name = \"mail.protection.outlook.com\"\n",
    )
    .unwrap();
    assert!(addresses(&named)
        .iter()
        .all(|(_, name)| name == "mail.protection.outlook.com"));
}

#[test]
fn an_empty_list_or_a_bad_entry_is_refused_by_name() {
    let e = with_address("[]", "").err().expect("refused");
    assert!(e.contains("upstream.address"), "{e}");
    let e = with_address("[\"a.example:25\", \"b.example\"]", "")
        .err()
        .expect("refused");
    assert!(
        e.contains("upstream.address") && e.contains("b.example"),
        "{e}"
    );
}

#[test]
fn config_show_keeps_the_form_it_was_written_in() {
    for (written, shown) in [
        ("\"a.example:25\"", "address = \"a.example:25\""),
        (
            "[\"a.example:25\", \"b.example:25\"]",
            "address = [\"a.example:25\", \"b.example:25\"]",
        ),
    ] {
        let text = format!(
            "[server]\nhostname = \"gate.contoso.com\"\n[upstream]\nkind = \"smtp\"\ntls = \"none\"\naddress = {written}\n"
        );
        let config = Config::parse(&text).unwrap();
        let out = crate::cli::config_show::render(&config).unwrap();
        assert!(out.contains(shown), "{out}");
    }
}
