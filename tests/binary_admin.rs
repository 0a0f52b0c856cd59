//! The admin's side, through the real `relaygate` binary: `check` (explain one decision under
//! both profiles), `config check` (the documented pitfalls, with fixes), `import-exo` (the
//! tenant's own PowerShell output to configuration), and audit mode with `report`.

mod support;
use support::*;

#[test]
fn check_names_the_november_2023_change_when_it_is_what_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "");
    let args = [
        "check",
        "--config",
        &config,
        "--ip",
        "203.0.113.10",
        "--mail-from",
        "app@example.net",
        "--header-from",
        "App <app@contoso.com>",
        "--rcpt",
        "bob@example.org",
    ];
    let (status, out, err) = relaygate(&args);
    assert_eq!(
        status, 1,
        "refused under exo-2023 (the config's profile):\n{out}{err}"
    );
    assert!(
        out.contains("OnPrem by IP (OnPremises): SenderIPAddresses 203.0.113.0/24: matched"),
        "{out}"
    );
    assert!(
        out.contains("condition 2  held: connector \"OnPrem by IP\" matched the IP address"),
        "{out}"
    );
    assert!(
        out.contains("1b: the P1 domain example.net is not an accepted domain"),
        "{out}"
    );
    assert!(
        out.contains("held by 1c: the P2 (From:) domain contoso.com"),
        "{out}"
    );
    assert!(
        out.contains("550 5.7.64 TenantAttribution; Relay Access Denied [gate.contoso.com "),
        "{out}"
    );
    assert!(out.contains("refused at the end of DATA"), "{out}");
    let side: Vec<&str> = out
        .lines()
        .skip_while(|l| *l != "Side by side")
        .take(6)
        .collect();
    assert!(
        side[1].contains("exo-2023") && side[1].contains("exo-legacy"),
        "{out}"
    );
    let row = |step: &str| {
        side.iter()
            .find(|l| l.trim_start().starts_with(step))
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .unwrap_or_default()
    };
    assert_eq!(
        row("condition 1"),
        "condition 1 failed 1c contoso.com <- differs",
        "{out}"
    );
    assert_eq!(
        row("<bob@example.org>"),
        "<bob@example.org> 550 5.7.64 accepted (relay) <- differs",
        "{out}"
    );
    assert_eq!(
        row("condition 2"),
        "condition 2 by ip \"OnPrem by IP\" by ip \"OnPrem by IP\"",
        "{out}"
    );
    assert!(
        out.contains("The November 2023 change is what makes the difference"),
        "{out}"
    );
    assert!(
        out.contains("Fix (exo-2023): the From: header (contoso.com) no longer counts"),
        "{out}"
    );

    // One profile only: the exit status follows it.
    let mut legacy = args.to_vec();
    legacy.extend(["--profile", "exo-legacy"]);
    let (status, out, _) = relaygate(&legacy);
    assert_eq!(status, 0, "{out}");
    assert!(
        !out.contains("exo-2023"),
        "only the profile asked for, and no exo-2023 fix:\n{out}"
    );
    assert!(!out.contains("November 2023 change is what"), "{out}");

    let mut json = args.to_vec();
    json.push("--json");
    let (status, out, _) = relaygate(&json);
    assert_eq!(status, 1);
    let v: serde_json::Value = serde_json::from_str(&out).expect("--json prints JSON");
    assert_eq!(v["profiles"]["exo-2023"]["verdict"], "refused 550 5.7.64");
    assert_eq!(v["profiles"]["exo-legacy"]["verdict"], "accepted");
    assert_eq!(v["profiles"]["exo-legacy"]["condition1_branch"], "1c");
    assert_eq!(v["profiles"]["exo-2023"]["connector"], "OnPrem by IP");
    assert_eq!(v["broken_by_november_2023"], true);
    assert_eq!(v["exit_status"], 1);
}

#[test]
fn check_shows_condition_1_even_when_condition_2_fails_and_legacy_refuses_at_data() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "");
    // 198.51.100.9 matches no connector; the P1 domain is accepted all the same.
    let (status, out, _) = relaygate(&[
        "check",
        "--config",
        &config,
        "--ip",
        "198.51.100.9",
        "--mail-from",
        "app@contoso.com",
        "--rcpt",
        "bob@example.org",
    ]);
    assert_eq!(status, 1, "{out}");
    assert!(
        out.contains("condition 1  held by 1b: the P1 (MAIL FROM) domain contoso.com"),
        "{out}"
    );
    assert!(
        out.contains("(but condition 2 failed, so relay is not authorised)"),
        "{out}"
    );
    assert!(
        out.contains("condition 2  failed: no enabled OnPremises connector"),
        "{out}"
    );

    // With reject_stage = "rcpt", exo-2023 refuses at RCPT, exo-legacy only after the header
    // (the From: might still attribute the message).
    let config = write_config(dir.path(), "");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace("[tls]", "[policy]\nreject_stage = \"rcpt\"\n\n[tls]"),
    )
    .unwrap();
    let (_, out, _) = relaygate(&[
        "check",
        "--config",
        &config,
        "--ip",
        "203.0.113.10",
        "--mail-from",
        "app@example.net",
        "--header-from",
        "app@example.net",
        "--rcpt",
        "bob@example.org",
    ]);
    let stages: Vec<&str> = out
        .lines()
        .filter(|l| l.contains("RCPT <bob@example.org>"))
        .collect();
    assert_eq!(stages.len(), 2, "{out}");
    assert!(stages[0].ends_with("refused at RCPT TO"), "{out}");
    assert!(stages[1].ends_with("refused at the end of DATA"), "{out}");
}

#[test]
fn check_verifies_a_certificate_file_against_the_client_ca() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "");
    let base = |cert: &str| {
        relaygate(&[
            "check",
            "--config",
            &config,
            "--ip",
            "198.51.100.7",
            "--cert",
            cert,
            "--mail-from",
            "<>",
            "--rcpt",
            "bob@example.org",
        ])
    };
    let (status, out, err) = base(&cert("client-mail.contoso.com.pem"));
    assert_eq!(status, 0, "{out}{err}");
    assert!(
        out.contains("mail.contoso.com (trusted by tls.client_ca)"),
        "{out}"
    );
    assert!(
        out.contains("held by 1a: connector \"OnPrem by certificate\""),
        "{out}"
    );
    let (status, out, _) = base(&cert("client-selfsigned.pem"));
    assert_eq!(status, 1, "{out}");
    assert!(out.contains("NOT trusted"), "{out}");
    assert!(
        out.contains("condition 2  failed: no enabled OnPremises connector matched"),
        "{out}"
    );
}

#[test]
fn check_usage_and_configuration_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "");
    let common = ["--ip", "203.0.113.10", "--mail-from", "a@contoso.com"];
    let mut no_rcpt = vec!["check", "--config", &config];
    no_rcpt.extend(common);
    assert_eq!(relaygate(&no_rcpt).0, 2, "--rcpt is required");
    let mut bad_profile = no_rcpt.clone();
    bad_profile.extend(["--rcpt", "b@example.org", "--profile", "exo-2019"]);
    assert_eq!(relaygate(&bad_profile).0, 2);
    let mut missing = vec![
        "check",
        "--config",
        "/nonexistent/relaygate.toml",
        "--rcpt",
        "b@example.org",
    ];
    missing.extend(common);
    let (status, _, err) = relaygate(&missing);
    assert_eq!(status, 2);
    assert!(err.contains("cannot read configuration"), "{err}");
}

#[test]
fn config_check_warns_about_the_documented_pitfalls_with_fixes() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        r#"
[[accepted_domains]]
domain = "fabrikam.com"

[[inbound_connectors]]
name = "Relay by host certificate"
connector_type = "OnPremises"
tls_sender_certificate_name = "smtp.fabrikam.com"
restrict_domains_to_certificate = true

[[inbound_connectors]]
name = "Mail hosts"
connector_type = "OnPremises"
tls_sender_certificate_name = "*.mail.contoso.com"

[[inbound_connectors]]
name = "Second IP connector"
connector_type = "OnPremises"
sender_ip_addresses = ["203.0.113.128/25"]
"#,
    );
    let (status, out, err) = relaygate(&["config", "check", "--config", &config]);
    assert_eq!(status, 0, "warnings only:\n{out}{err}");
    let expect = [
        // *.domain
        "warning: inbound_connectors[1] \"OnPrem by certificate\": tls_sender_certificate_name = \"*.contoso.com\" matches the certificate of every host under contoso.com",
        // IP-only: NDRs cannot relay
        "warning: inbound_connectors[0] \"OnPrem by IP\": is IP-only: mail through it relays only with an accepted P1 (MAIL FROM) domain, so null-sender NDRs",
        // certificate name not accepted, subdomain of an accepted parent
        "smtp.fabrikam.com is not an accepted domain, although its parent fabrikam.com is",
        "fix: add [[accepted_domains]] domain = \"smtp.fabrikam.com\"",
        // Partner-only setting on an OnPremises connector
        "restrict_domains_to_certificate set on an OnPremises connector",
        // a wildcard under another wildcard matches the same certificates
        "inbound_connectors[1] \"OnPrem by certificate\" and inbound_connectors[3] \"Mail hosts\": overlap (tls_sender_certificate_name)",
        // overlap
        "inbound_connectors[0] \"OnPrem by IP\" and inbound_connectors[4] \"Second IP connector\": overlap (sender_ip_addresses)",
    ];
    for e in expect {
        assert!(out.contains(e), "missing {e:?} in:\n{out}");
    }
    assert!(
        out.lines().filter(|l| l.starts_with("  fix: ")).count() >= 6,
        "{out}"
    );
    assert!(out.contains("0 error(s)"), "{out}");

    // An error: what Exchange Online itself refuses stops the gate, with the fix.
    std::fs::write(
        &config,
        std::fs::read_to_string(&config)
            .unwrap()
            .replace("203.0.113.128/25", "2001:db8::/64"),
    )
    .unwrap();
    let (status, out, _) = relaygate(&["config", "check", "--config", &config]);
    assert_eq!(status, 1, "{out}");
    assert!(
        out.contains("error: inbound_connectors[4].sender_ip_addresses[0]"),
        "{out}"
    );
    assert!(out.contains("is IPv6"), "{out}");
    assert!(out.contains("fix: list the IPv4 addresses"), "{out}");
}

#[test]
fn config_check_reports_a_misspelt_log_level_as_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "");
    std::fs::write(
        &config,
        std::fs::read_to_string(&config)
            .unwrap()
            .replace("format = \"json\"", "format = \"json\"\nlevel = \"inf\""),
    )
    .unwrap();
    let (status, out, err) = relaygate_bounded(&["config", "check", "--config", &config]);
    assert_eq!(status, 1, "{out}{err}");
    assert!(
        out.contains("error: log.level: configuration key log.level = \"inf\": names \"inf\", which is not a level: each comma-separated directive must be a level or target=level, and the levels are trace, debug, info, warn, error and off"),
        "{out}"
    );
    assert!(out.contains("1 error(s)"), "{out}");
}

#[test]
fn the_shipped_configuration_has_no_errors() {
    let (status, out, err) = relaygate(&["config", "check", "--config", "config/relaygate.toml"]);
    assert_eq!(status, 0, "{out}{err}");
    // The two warnings README.md shows: the demo keeps an IP flow and a wildcard certificate.
    assert!(
        out.ends_with("config/relaygate.toml: 0 error(s), 2 warning(s)\n"),
        "{out}"
    );
    assert!(out.contains("\"OnPrem by IP\": is IP-only"), "{out}");
    assert!(
        out.contains("= \"*.contoso.com\" matches the certificate of every host"),
        "{out}"
    );
}

#[test]
fn import_exo_turns_the_example_tenant_into_configuration_that_loads() {
    let (status, toml, notes) = relaygate(&[
        "import-exo",
        "--inbound-connectors",
        "config/examples/Get-InboundConnector.json",
        "--accepted-domains",
        "config/examples/Get-AcceptedDomain.json",
    ]);
    // The example includes a value relaygate cannot take: reported, exit status 1.
    assert_eq!(status, 1, "{toml}{notes}");
    assert!(notes.contains("(unsupported): "), "{notes}");
    assert!(toml.contains("[[inbound_connectors]]") && toml.contains("[[accepted_domains]]"));
    assert!(
        toml.contains("tls_sender_certificate_name = \"*.contoso.com\""),
        "{toml}"
    );
    // What it printed is configuration the gate takes.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("imported.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nhostname = \"{HOSTNAME}\"\n{}{toml}",
            directory_upstream(dir.path())
        ),
    )
    .unwrap();
    let (status, out, err) = relaygate(&["config", "check", "--config", config.to_str().unwrap()]);
    assert!(out.contains("0 error(s)"), "{out}{err}");
    assert_eq!(status, 0);
    let (status, _, err) = relaygate(&["import-exo", "--accepted-domains", "/nonexistent.json"]);
    assert_eq!(status, 2, "{err}");
}

#[test]
fn import_exo_reads_what_windows_powershell_out_file_writes() {
    // Windows PowerShell 5.1's Out-File (and >) write UTF-16 LE with a byte order mark.
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec!["import-exo".to_string()];
    for (option, example) in [
        ("--inbound-connectors", "Get-InboundConnector.json"),
        ("--accepted-domains", "Get-AcceptedDomain.json"),
    ] {
        let text = std::fs::read_to_string(repo().join("config/examples").join(example)).unwrap();
        let utf16: Vec<u8> = "\u{feff}"
            .encode_utf16()
            .chain(text.encode_utf16())
            .flat_map(u16::to_le_bytes)
            .collect();
        let path = dir.path().join(example);
        std::fs::write(&path, utf16).unwrap();
        args.push(option.to_string());
        args.push(path.display().to_string());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (status, toml, err) = relaygate_bounded(&args);
    let (expected_status, expected_toml, _) = relaygate_bounded(&[
        "import-exo",
        "--inbound-connectors",
        "config/examples/Get-InboundConnector.json",
        "--accepted-domains",
        "config/examples/Get-AcceptedDomain.json",
    ]);
    assert_eq!(status, expected_status, "{err}");
    assert_eq!(toml, expected_toml, "{err}");
}

#[test]
fn require_tls_on_a_partner_connector_is_imported_then_explained_by_check() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("connectors.json");
    let partner = r#"{"Name": "Woodgrove", "ConnectorType": "Partner", "RequireTls": true,
                      "SenderDomains": ["smtp:woodgrovebank.com;1"]}"#;
    std::fs::write(&json, partner).unwrap();
    let (status, toml, notes) =
        relaygate(&["import-exo", "--inbound-connectors", json.to_str().unwrap()]);
    assert_eq!(
        status, 0,
        "enforced as in Exchange Online, nothing to report:\n{notes}"
    );
    assert!(!notes.contains("RequireTls"), "{notes}");
    assert!(toml.contains("require_tls = true"), "{toml}");
    let config = write_config(dir.path(), &format!("\n{toml}"));
    let check = |extra: &[&str]| {
        let args = ["check", "--config", &config, "--ip", "198.51.100.9"];
        let envelope = [
            "--mail-from",
            "ap@woodgrovebank.com",
            "--rcpt",
            "alice@contoso.com",
        ];
        relaygate(&[&args[..], &envelope, extra].concat())
    };
    let (status, out, err) = check(&["--no-tls"]);
    assert_eq!(status, 1, "{out}{err}");
    assert!(
        out.contains("  TLS              no TLS: given with --no-tls"),
        "{out}"
    );
    assert!(
        out.contains("Woodgrove (Partner): Partner: never authorises relay; RequireTls: NOT met"),
        "{out}"
    );
    assert!(out.contains("refused at RCPT TO"), "{out}");
    assert!(
        out.contains("454 4.7.0 Failed to establish appropriate TLS channel: Access Denied [gate.contoso.com "),
        "{out}"
    );
    assert!(
        out.contains("Fix (exo-2023): Partner connector \"Woodgrove\" requires TLS"),
        "{out}"
    );
    let (_, out, _) = check(&["--no-tls", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("--json prints JSON");
    assert_eq!(v["tls"], false);
    assert_eq!(v["profiles"]["exo-legacy"]["verdict"], "refused 454 4.7.0");
    // The gate offers STARTTLS ([tls]): without --no-tls the sender is taken to use it.
    let (status, out, _) = check(&[]);
    assert_eq!(status, 0, "{out}");
    assert!(
        out.contains("  TLS              under TLS (STARTTLS): assumed"),
        "{out}"
    );
    // A certificate comes only with STARTTLS.
    let (status, _, err) = check(&["--no-tls", "--cert-name", "mx.woodgrovebank.com"]);
    assert_eq!(status, 2, "{err}");
}

#[test]
#[cfg_attr(
    not(feature = "peers"),
    ignore = "needs swaks: cargo test --features peers (scripts/test.sh)"
)]
fn audit_mode_forwards_everything_and_report_puts_what_november_2023_broke_first() {
    let gate = start_with("127.0.0.0/24", "\n[policy]\nmode = \"audit\"\n");
    // A flow that passes, one that only the From: header used to attribute, and an NDR.
    let flows: [&[&str]; 3] = [
        &["--from", "app@contoso.com", "--to", "bob@example.org"],
        &[
            "--from",
            "scanner@example.net",
            "--header",
            "From: scanner@contoso.com",
            "--to",
            "bob@example.org",
        ],
        &[
            "--from",
            "<>",
            "--header",
            "From: postmaster@contoso.com",
            "--to",
            "bob@example.org",
        ],
    ];
    for (i, args) in flows.iter().enumerate() {
        for _ in 0..=i {
            let (ok, text) = swaks(&gate, args);
            assert!(ok, "audit mode forwards everything:\n{text}");
        }
    }
    assert_eq!(stored(gate.out.path()).len(), 6);
    let mut events = Vec::new();
    eventually("six transaction events", || {
        events = gate
            .events()
            .into_iter()
            .filter(|v| v["message"] == "transaction")
            .collect();
        events.len() == 6
    });
    let scanner = events
        .iter()
        .find(|e| e["p1"] == "scanner@example.net")
        .unwrap();
    assert_eq!(scanner["mode"], "audit");
    assert_eq!(scanner["exo_2023"], "refused 550 5.7.64");
    assert_eq!(scanner["exo_legacy"], "accepted");
    assert_eq!(scanner["broken_by_november_2023"], true);
    assert_eq!(scanner["identity"], "ip 127.0.0.1");
    assert_eq!(scanner["p1_domain"], "example.net");
    assert_eq!(scanner["p2_domain"], "contoso.com");
    assert!(scanner["fix"]
        .as_str()
        .unwrap()
        .contains("From: header (contoso.com) no longer counts"));
    assert!(
        scanner["reply"].as_str().unwrap().starts_with("250 "),
        "{scanner}"
    );

    let log = gate.dir.path().join("relaygate.log");
    let html = gate.dir.path().join("report.html");
    let (status, out, err) = relaygate(&[
        "report",
        log.to_str().unwrap(),
        "--html",
        html.to_str().unwrap(),
    ]);
    assert_eq!(status, 1, "some flow breaks under exo-2023:\n{out}{err}");
    let rows: Vec<&str> = out.lines().filter(|l| l.contains("ip 127.0.0.1")).collect();
    assert_eq!(rows.len(), 3, "{out}");
    // Broken by the change first (the NDR, 3 transactions, then the scanner, 2); the healthy
    // flow last.
    assert!(
        rows[0].contains("<>") && rows[0].contains("(3 of 3)"),
        "{out}"
    );
    assert!(
        rows[1].contains("example.net") && rows[1].contains("(2 of 2)"),
        "{out}"
    );
    assert!(
        rows[2].contains("contoso.com") && !rows[2].contains("refused"),
        "{out}"
    );
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(
        page.contains("<svg") && page.contains("class=\"refused\""),
        "{page}"
    );
}
