//! The notes: how each property that is not translated is classified, and how the notes read
//! as comments above their tables.

use super::*;
use crate::cli::import_exo::notes::{note, AT_DEFAULT, METADATA, UNKNOWN};

#[test]
fn metadata_is_ignored_and_unknown_property_is_unsupported() {
    let import = connectors(
        r#"{"Name": "c", "ConnectorType": "OnPremises", "SenderIPAddresses": ["192.0.2.1"],
            "Guid": "5b0e2a1c-7f3d-4c8e-9a61-2d4f8e0b7c13", "WhenChangedUTC": "2024-03-11T09:42:17Z",
            "FrobnicateMail": true}"#,
    );
    load(&import);
    let guid = find(&import, "c", "Guid");
    assert_eq!(
        (guid[0].kind, guid[0].reason.as_str()),
        (NoteKind::Ignored, METADATA)
    );
    assert_eq!(guid[0].value, "\"5b0e2a1c-7f3d-4c8e-9a61-2d4f8e0b7c13\"");
    assert_eq!(unsupported(&import, "c", "FrobnicateMail").reason, UNKNOWN);
    // Ignored ones share one comment line per reason.
    assert!(
        import
            .toml
            .contains("# Ignored: Guid, WhenChangedUTC. Metadata, no bearing on relay.\n"),
        "{}",
        import.toml
    );
}

#[test]
fn mail_flow_setting_is_unsupported_only_when_not_at_its_default() {
    let import = connectors(
        r#"[{"Name": "a", "ConnectorType": "OnPremises", "SenderIPAddresses": ["192.0.2.1"],
             "TreatMessagesAsInternal": false, "EFSkipIPs": [], "ClientHostNames": null},
            {"Name": "b", "ConnectorType": "OnPremises", "SenderIPAddresses": ["192.0.2.2"],
             "TreatMessagesAsInternal": true, "EFSkipIPs": ["192.0.2.9"]}]"#,
    );
    load(&import);
    assert!(find(&import, "a", "TreatMessagesAsInternal")
        .iter()
        .all(|n| n.kind == NoteKind::Ignored && n.reason == AT_DEFAULT));
    assert_eq!(find(&import, "a", "EFSkipIPs")[0].kind, NoteKind::Ignored);
    assert_eq!(
        find(&import, "a", "ClientHostNames")[0].kind,
        NoteKind::Ignored
    );
    unsupported(&import, "b", "TreatMessagesAsInternal");
    assert_eq!(
        unsupported(&import, "b", "EFSkipIPs").value,
        "[\"192.0.2.9\"]"
    );
}

#[test]
fn notes_are_comments_above_their_table() {
    let import = connectors(
        r#"[{"Name": "first", "ConnectorType": "OnPremises", "SenderIPAddresses": ["192.0.2.1"]},
            {"Name": "second", "ConnectorType": "OnPremises", "SenderIPAddresses": ["192.0.2.2", "2001:db8::2"]}]"#,
    );
    let toml = &import.toml;
    let first = toml.find("name = \"first\"").unwrap();
    let note = toml[..toml.find("2001:db8::2").unwrap()]
        .rfind('\n')
        .unwrap()
        + 1;
    let header = toml.find("# Get-InboundConnector \"second\"").unwrap();
    let second = toml.find("name = \"second\"").unwrap();
    assert!(first < header && header < note && note < second, "{toml}");
    // Between the note and its table there is nothing but comments and the header.
    let between = &toml[note..second];
    let not_comments: Vec<_> = between.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(not_comments, ["[[inbound_connectors]]"], "{between}");
}

#[test]
fn toml_strings_are_escaped() {
    let name = "Quote \" backslash \\ newline \n tab \t bell \u{7} del \u{7f} next line \u{85} é";
    let json = serde_json::json!({
        "Name": name, "ConnectorType": "OnPremises", "SenderIPAddresses": ["192.0.2.1"],
        "Comment": "line one\nline two \u{7f}",
    });
    let import = connectors(&json.to_string());
    let c = load(&import).policy.tenant.inbound_connectors;
    assert_eq!(c[0].name, name);
    // One basic string, escaped, on one line (not the literal or multi-line string toml_edit
    // would choose); U+0085 needs no escape in TOML.
    assert!(
        import.toml.contains(
            "name = \"Quote \\\" backslash \\\\ newline \\n tab \\t bell \\u0007 del \\u007F \
             next line \u{85} é\"\n"
        ),
        "{}",
        import.toml
    );
    // Comment lines never break: every line is a comment, blank, a table header or a key.
    for line in import.toml.lines() {
        assert!(
            line.is_empty()
                || line.starts_with('#')
                || line.starts_with("[[")
                || line.contains(" = "),
            "{line:?}"
        );
    }
}

#[test]
fn note_display_reads_as_one_line() {
    let n = note(
        "c",
        "EFSkipIPs",
        &serde_json::json!(["192.0.2.9"]),
        NoteKind::Unsupported,
        "why",
    );
    assert_eq!(
        n.to_string(),
        "c: EFSkipIPs = [\"192.0.2.9\"] (unsupported): why"
    );
}
