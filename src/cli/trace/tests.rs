use super::*;
use crate::policy::enforcement::Mode;
use crate::policy::{Profile, RecordedVerdict};
use crate::record::{list_text, FlowRecord};

fn record(session: &str, p1: &str, message_id: &str) -> TransactionRecord {
    TransactionRecord {
        session: session.into(),
        tenant: String::new(),
        user: String::new(),
        listener: "relay".into(),
        peer: "192.0.2.10:50312".into(),
        helo: "scanner".into(),
        tls: "none".into(),
        certificate_names: "[]".into(),
        certificate_trusted: false,
        p1: p1.into(),
        rewritten_to: String::new(),
        p2: "scanner@contoso.com".into(),
        recipients: list_text(&["Bob@Example.org=accepted (relay)"]),
        size: 512,
        profile: Profile::Exo2023,
        mode: Mode::Audit,
        relay: "relay not authorized".into(),
        branch: "2 by ip; 1 failed: neither certificate domain nor sender domain is accepted"
            .into(),
        condition1_by: "none".into(),
        connector: "OnPrem by IP".into(),
        reply: "250 2.6.0 Queued mail for delivery".into(),
        enforce_would_reply: "550 5.7.64 TenantAttribution; Relay Access Denied".into(),
        dsn_dropped: String::new(),
        message_id: message_id.into(),
        upstream_reply: format!(
            "250 2.6.0 {message_id} [InternalId=42, Hostname=AM0PR01MB0001.eurprd01.prod.exchangelabs.com] Queued mail for delivery"
        ),
        flow: FlowRecord {
            identity: "ip 192.0.2.10".into(),
            p1_domain: "example.net".into(),
            p2_domain: "contoso.com".into(),
            exo_2023: RecordedVerdict::Refused {
                code: 550,
                enhanced: "5.7.64".into(),
            },
            exo_legacy: RecordedVerdict::Accepted,
            broken_by_november_2023: true,
            fix: "the From: header (contoso.com) no longer counts".into(),
        },
    }
}

fn line(r: &TransactionRecord) -> String {
    let mut v = serde_json::to_value(r).unwrap();
    v["target"] = TARGET.into();
    v["timestamp"] = "2026-11-30T20:00:00.000000Z".into();
    v["message"] = "transaction".into();
    v.to_string()
}

fn log() -> String {
    [
        "not json at all".to_string(),
        r#"{"target":"relaygate::server","message":"listening"}"#.to_string(),
        line(&record(
            "AAAA000000000001",
            "scanner@example.net",
            "<one@app.contoso.com>",
        )),
        line(&record(
            "AAAA000000000002",
            "other@contoso.com",
            "<two@app.contoso.com>",
        )),
    ]
    .join("\n")
}

fn traced(key: &str) -> (usize, String) {
    let mut out = Vec::new();
    let n = trace(log().as_bytes(), &Key::new(key), &mut out).unwrap();
    (n, String::from_utf8(out).unwrap())
}

#[test]
fn a_message_id_finds_its_transaction_with_or_without_angle_brackets() {
    for key in ["<one@app.contoso.com>", "one@app.contoso.com"] {
        let (n, out) = traced(key);
        assert_eq!(n, 1, "{key}: {out}");
        assert!(
            out.contains("transaction AAAA000000000001 at 2026-11-30T20:00:00"),
            "{out}"
        );
        assert!(!out.contains("AAAA000000000002"), "{out}");
    }
}

#[test]
fn a_session_id_or_an_address_finds_transactions() {
    assert_eq!(traced("aaaa000000000002").0, 1);
    assert_eq!(traced("SCANNER@example.net").0, 1);
    // The From: address and a recipient are in both.
    assert_eq!(traced("scanner@contoso.com").0, 2);
    assert_eq!(traced("<bob@example.org>").0, 2);
    assert_eq!(traced("nobody@example.org").0, 0);
    assert_eq!(traced("").0, 0);
}

#[test]
fn the_story_has_who_how_the_decision_under_both_profiles_and_the_upstream_reply() {
    let (_, out) = traced("<one@app.contoso.com>");
    for expected in [
        "connected       192.0.2.10:50312 on the relay listener, HELO scanner, TLS none",
        "certificate     none",
        "identified as   ip 192.0.2.10",
        "connector       OnPrem by IP",
        "P1 MAIL FROM    <scanner@example.net>",
        "Message-ID      <one@app.contoso.com>",
        "recipient       Bob@Example.org=accepted (relay)",
        "decision        relay not authorized (exo-2023, audit mode): 2 by ip; 1 failed",
        "attributed by   none",
        "exo-2023        refused 550 5.7.64",
        "exo-legacy      accepted  <- broken by the November 2023 change",
        "enforce would   550 5.7.64",
        "upstream said   250 2.6.0 <one@app.contoso.com> [InternalId=42,",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }
}

#[test]
fn control_characters_from_the_log_are_not_printed() {
    let mut r = record("AAAA000000000003", "x@example.net", "<evil@x>");
    r.helo = "a\u{1b}[2Jb".into();
    let mut out = Vec::new();
    let n = trace(line(&r).as_bytes(), &Key::new("<evil@x>"), &mut out).unwrap();
    assert_eq!(n, 1);
    let out = String::from_utf8(out).unwrap();
    assert!(
        !out.contains('\u{1b}') && out.contains("HELO a?[2Jb"),
        "{out}"
    );
}

#[test]
fn an_event_from_before_condition1_by_existed_is_traced_without_that_line() {
    let mut v = serde_json::from_str::<serde_json::Value>(&line(&record(
        "AAAA000000000004",
        "x@example.net",
        "<old@x>",
    )))
    .unwrap();
    v.as_object_mut().unwrap().remove("condition1_by");
    let mut out = Vec::new();
    let n = trace(v.to_string().as_bytes(), &Key::new("<old@x>"), &mut out).unwrap();
    assert_eq!(n, 1);
    let out = String::from_utf8(out).unwrap();
    assert!(!out.contains("attributed by"), "{out}");
    assert!(out.contains("exo-2023        refused 550 5.7.64"), "{out}");
}
