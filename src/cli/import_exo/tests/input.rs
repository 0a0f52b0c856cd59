//! Reading an input: the shapes `ConvertTo-Json` prints, encodings, streaming, and what is
//! refused as not being cmdlet output.

use super::*;
use std::io::{self, Read};

#[test]
fn single_object_is_accepted() {
    let import = import(
        Some(
            r#"{"Name": "Only", "ConnectorType": "OnPremises", "SenderIPAddresses": "192.0.2.1"}"#,
        ),
        Some(r#"{"DomainName": "contoso.com", "DomainType": "Authoritative"}"#),
    )
    .unwrap();
    let s = load(&import);
    assert_eq!(s.policy.tenant.inbound_connectors.len(), 1);
    assert_eq!(
        s.policy.tenant.inbound_connectors[0].sender_ip_addresses,
        nets(&["192.0.2.1/32"])
    );
    assert_eq!(s.policy.tenant.accepted_domains[0].domain, "contoso.com");
}

#[test]
fn empty_null_and_absent_inputs_are_no_objects() {
    for text in ["", "  \r\n", "null", "\u{feff}[]"] {
        let import = import(Some(text), Some(text)).unwrap();
        assert!(import.notes.is_empty());
        let s = load(&import);
        assert!(s.policy.tenant.inbound_connectors.is_empty());
    }
    load(&import(None, None).unwrap());
}

#[test]
fn windows_powershell_value_count_wrapper_is_unwrapped() {
    let import = domains(
        r#"{"value": [{"DomainName": "a.example"}, {"DomainName": "b.example"}], "Count": 2}"#,
    );
    assert_eq!(load(&import).policy.tenant.accepted_domains.len(), 2);
}

#[test]
fn malformed_utf16_is_an_input_error() {
    let mut bytes = encoded("[{\"DomainName\": \"a.example\"}]", true, Some(false));
    bytes.push(b'x');
    let e = import_bytes(b"", &bytes).unwrap_err();
    assert!(matches!(e, ImportError::Read { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        "Get-AcceptedDomain output cannot be read: invalid UTF-16: the text ends in the middle of a character"
    );
}

#[test]
fn objects_are_translated_as_they_are_read() {
    // The first object's notes arrive before the input fails: it was translated without
    // waiting for the rest of the array.
    let failing = io::Cursor::new(&b"[{\"DomainName\": \"a.example\", \"Foo\": 1},"[..]).chain(
        crate::files::Limited::new(
            io::repeat(b' '),
            crate::files::Limit {
                bytes: 100,
                what: "this test",
            },
        ),
    );
    let mut notes = Vec::new();
    let e = Importer::new()
        .accepted_domains(failing, |n| notes.push(n))
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "Get-AcceptedDomain output cannot be read: larger than 100 bytes, the limit for this test"
    );
    assert_eq!(notes.len(), 1, "{notes:#?}");
    assert_eq!(
        (notes[0].object.as_str(), notes[0].property.as_str()),
        ("a.example", "Foo")
    );
}

#[test]
fn the_wrapper_is_read_in_either_order_and_nothing_else_with_a_leading_value_array() {
    let a_b = r#"[{"DomainName": "a.example"}, {"DomainName": "b.example"}]"#;
    for text in [
        format!(r#"{{"value": {a_b}, "Count": 2}}"#),
        format!(r#"{{"Count": 2, "value": {a_b}}}"#),
        format!(r#"{{"value": {a_b}, "count": 2}}"#),
    ] {
        assert_eq!(domains(&text).toml, domains(a_b).toml, "{text}");
    }
    let e = domains_err(&format!(r#"{{"value": {a_b}, "Count": 2, "Extra": 1}}"#));
    assert!(
        e.contains("must be Windows PowerShell's {\"value\": [...], \"Count\": n} wrapper"),
        "{e}"
    );
    let e = domains_err(&format!(r#"{{"value": {a_b}}}"#));
    assert!(e.contains("wrapper"), "{e}");
    // A leading "value" that is not an array is an ordinary property.
    let import = domains(r#"{"value": {"x": [1]}, "DomainName": "c.example"}"#);
    assert_eq!(
        load(&import).policy.tenant.accepted_domains[0].domain,
        "c.example"
    );
    let note = unsupported(&import, "c.example", "value");
    assert_eq!(note.value, r#"{"x":[1]}"#);
    let e = domains_err(r#"{"value": [{"DomainName": "a.example"}, 7], "Count": 2}"#);
    assert!(e.contains("entry 2 is a number"), "{e}");
}

#[test]
fn byte_order_mark_is_skipped() {
    let import = domains("\u{feff}{\"DomainName\": \"contoso.com\"}");
    assert_eq!(load(&import).policy.tenant.accepted_domains.len(), 1);
}

#[test]
fn input_that_is_not_cmdlet_output_is_refused_naming_input_and_object() {
    let e = domains_err("Get-AcceptedDomain : The term is not recognized");
    assert!(
        e.starts_with("Get-AcceptedDomain output is not JSON"),
        "{e}"
    );
    let e = domains_err("\"contoso.com\"");
    assert!(e.contains("is a string, not a JSON object"), "{e}");
    let e = domains_err(r#"[{"DomainName": "a.example"}, 5]"#);
    assert!(e.contains("entry 2 is a number"), "{e}");
    let e = domains_err(r#"[{"DomainName": "a.example"}, {"Name": "b"}]"#);
    assert!(e.contains("entry 2 has no DomainName"), "{e}");
    let e = import(Some(r#"{"ConnectorType": "Partner"}"#), None)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("Get-InboundConnector output: entry 1 has no Name"),
        "{e}"
    );
    let e = import(Some(r#"{"Name": "n"}"#), None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("\"n\" has no ConnectorType"), "{e}");
    let e = import(
        Some(r#"{"Name": "n", "ConnectorType": "Partner", "Enabled": "maybe"}"#),
        None,
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("\"n\": Enabled = \"maybe\": expected true or false"),
        "{e}"
    );
}

#[test]
fn property_spelled_twice_is_refused() {
    let e = import(
        Some(r#"{"Name": "a", "name": "b", "ConnectorType": "Partner"}"#),
        None,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("entry 1") && e.contains("twice"), "{e}");
}

#[test]
fn property_names_match_case_insensitively() {
    let import = connectors(
        r#"{"name": "lower", "connectortype": "onpremises", "senderipaddresses": ["192.0.2.1"],
            "ENABLED": "False", "requiretls": true}"#,
    );
    let c = load(&import).policy.tenant.inbound_connectors;
    assert_eq!(c[0].name, "lower");
    assert!(!c[0].enabled);
    assert!(import.notes.is_empty(), "{:#?}", import.notes);
}
