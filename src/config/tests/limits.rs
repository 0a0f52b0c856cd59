//! Bounds: every `*_secs` setting, `log.level`, listeners that cannot both be bound.

use super::{check, refused};
use crate::config::server::listeners_conflict;
use crate::config::Config;

/// Every `*_secs` key, in the section it belongs to.
const SECONDS_KEYS: [(&str, &str); 11] = [
    ("server", "command_timeout_secs"),
    ("server", "data_timeout_secs"),
    ("server", "tls_handshake_timeout_secs"),
    ("server", "session_timeout_secs"),
    ("server", "proxy_header_timeout_secs"),
    ("server", "shutdown_grace_secs"),
    ("upstream", "connect_timeout_secs"),
    ("upstream", "reply_timeout_secs"),
    ("upstream", "data_end_timeout_secs"),
    ("upstream", "pool_idle_timeout_secs"),
    ("admin", "probe_interval_secs"),
];

/// The base configuration, with an `[admin]` section, and `section.key = value`.
fn with_seconds(section: &str, key: &str, value: u64) -> String {
    let line = |s: &str| {
        if s == section {
            format!("{key} = {value}\n")
        } else {
            String::new()
        }
    };
    format!(
        "[server]\nhostname = \"gate.contoso.com\"\n{}[upstream]\nkind = \"directory\"\npath = \"out\"\n{}[admin]\nlisten = \"127.0.0.1:9025\"\n{}",
        line("server"),
        line("upstream"),
        line("admin"),
    )
}

#[test]
fn every_seconds_setting_is_at_most_one_day() {
    for (section, key) in SECONDS_KEYS {
        for value in [86_401, i64::MAX as u64] {
            let text = with_seconds(section, key, value);
            let e = match Config::parse(&text).unwrap().validate() {
                Ok(_) => panic!("{section}.{key} = {value} accepted"),
                Err(e) => e.to_string(),
            };
            assert_eq!(
                e,
                format!("configuration key {section}.{key} = {value}: must be at most 86400 seconds (one day)")
            );
        }
        let text = with_seconds(section, key, 86_400);
        let settings = Config::parse(&text).unwrap().validate();
        assert!(settings.is_ok(), "{section}.{key} = 86400 refused");
    }
}

#[test]
fn smtp_upstream_seconds_are_bounded_too() {
    let text = "[server]\n[upstream]\nkind = \"smtp\"\naddress = \"127.0.0.1:25\"\ntls = \"none\"\nreply_timeout_secs = 9223372036854775807\n";
    let e = Config::parse(text).unwrap().validate().err().unwrap();
    assert!(
        e.to_string()
            .contains("upstream.reply_timeout_secs = 9223372036854775807: must be at most"),
        "{e}"
    );
}

#[test]
fn a_misspelt_log_level_is_refused_with_the_levels() {
    for (value, culprit) in [
        ("inf", "inf"),
        ("relaygate=debug,inf", "inf"),
        ("relaygate=verbose", "verbose"),
        // A bare target enables everything for it and silences the rest.
        ("relaygate", "relaygate"),
        ("relaygate=", ""),
    ] {
        let e = refused(&format!("[log]\nlevel = {value:?}\n"));
        assert_eq!(
            e,
            format!(
                "configuration key log.level = {value:?}: names {culprit:?}, which is not a level: each comma-separated directive must be a level or target=level, and the levels are trace, debug, info, warn, error and off"
            )
        );
    }
    let e = refused("[log]\nlevel = \" , \"\n");
    assert!(
        e.starts_with("configuration key log.level = \" , \": is empty"),
        "{e}"
    );
    // What the levels allow but EnvFilter does not parse.
    let e = refused("[log]\nlevel = \"relaygate[=info\"\n");
    assert!(
        e.starts_with("configuration key log.level = \"relaygate[=info\": "),
        "{e}"
    );
    for ok in [
        "info",
        "WARN",
        "Off",
        "relaygate=debug,info",
        "relaygate::transaction=info,warn",
        "relaygate[session]=trace,error",
        "relaygate=debug,",
    ] {
        let s = check(&format!("[log]\nlevel = {ok:?}\n"));
        assert!(s.is_ok(), "{ok}: {:?}", s.err());
    }
}

#[test]
fn listeners_conflict_on_the_same_port_and_an_overlapping_address() {
    let conflict = |a: &str, b: &str| listeners_conflict(a.parse().unwrap(), b.parse().unwrap());
    for (a, b) in [
        ("127.0.0.1:25", "127.0.0.1:25"),
        ("0.0.0.0:25", "127.0.0.1:25"),
        ("[::]:25", "0.0.0.0:25"),
        ("[::]:25", "127.0.0.1:25"),
        ("[::]:25", "[::1]:25"),
        ("[::ffff:127.0.0.1]:25", "127.0.0.1:25"),
    ] {
        assert!(conflict(a, b) && conflict(b, a), "{a} {b}");
    }
    for (a, b) in [
        ("127.0.0.1:25", "127.0.0.1:26"),
        ("127.0.0.1:25", "127.0.0.2:25"),
        // 0.0.0.0 is IPv4 only.
        ("0.0.0.0:25", "[::1]:25"),
        // Port 0 asks the system for a free port each time.
        ("127.0.0.1:0", "127.0.0.1:0"),
    ] {
        assert!(!conflict(a, b) && !conflict(b, a), "{a} {b}");
    }
}

#[test]
fn a_listener_that_conflicts_with_another_is_refused() {
    let text = "[server]\nlisten = [\"127.0.0.1:2525\", \"[::1]:2525\", \"127.0.0.1:2525\"]\n[upstream]\nkind = \"directory\"\npath = \"out\"\n";
    let e = Config::parse(text).unwrap().validate().err().unwrap();
    assert_eq!(
        e.to_string(),
        "configuration key server.listen[2] = 127.0.0.1:2525: conflicts with server.listen[0] = 127.0.0.1:2525: both cannot be bound (the same port, and the same address or an unspecified one covering the other)"
    );
    let text = "[server]\nlisten = [\"0.0.0.0:2525\"]\n[upstream]\nkind = \"directory\"\npath = \"out\"\n[admin]\nlisten = \"127.0.0.1:2525\"\n";
    let e = Config::parse(text).unwrap().validate().err().unwrap();
    assert_eq!(
        e.to_string(),
        "configuration key admin.listen = 127.0.0.1:2525: conflicts with server.listen[0] = 0.0.0.0:2525: both cannot be bound (the same port, and the same address or an unspecified one covering the other)"
    );
    let ok = text.replace("127.0.0.1:2525", "127.0.0.1:9025");
    assert!(Config::parse(&ok).unwrap().validate().is_ok());
}
