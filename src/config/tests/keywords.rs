//! The file's shape and its keywords: what the parser refuses, and how the refusal names the key.

use super::{check, refused, BASE};
use crate::config::keyword::{self, Keyword};
use crate::config::{Config, ConfigError, LogFormat, Mode, RejectStage, UpstreamKind, UpstreamTls};
use crate::policy::{ConnectorType, DomainType, Profile};

#[test]
fn unknown_keys_and_bad_enums_are_refused() {
    let e = Config::parse(&format!("{BASE}\n[policy]\nprofle = \"exo-2023\"\n"))
        .err()
        .unwrap();
    assert!(
        e.starts_with("policy.profle: unknown field `profle`, expected one of `profile`, "),
        "{e}"
    );
    assert!(e.ends_with(" (line 9, column 1)"), "{e}");
    let e = refused("[policy]\nprofile = \"exo-2019\"\n");
    assert_eq!(
        e,
        "configuration key policy.profile = \"exo-2019\": must be \"exo-2023\" or \"exo-legacy\""
    );
    let e = refused("[[inbound_connectors]]\nname = \"c\"\nconnector_type = \"Onpremises\"\nsender_ip_addresses = [\"192.0.2.1\"]\n");
    assert_eq!(
        e,
        "configuration key inbound_connectors[0].connector_type = \"Onpremises\": must be \"OnPremises\" or \"Partner\""
    );
}

/// Each keyword key, a line setting it to `{}`, and the refusal today's validation gave.
const KEYWORD_KEYS: [(&str, &str, &str); 8] = [
    (
        "policy.profile",
        "[policy]\nprofile = {}\n",
        "must be \"exo-2023\" or \"exo-legacy\"",
    ),
    (
        "policy.mode",
        "[policy]\nmode = {}\n",
        "must be \"enforce\" or \"audit\"",
    ),
    (
        "policy.reject_stage",
        "[policy]\nreject_stage = {}\n",
        "must be \"data\" or \"rcpt\"",
    ),
    (
        "accepted_domains[0].domain_type",
        "[[accepted_domains]]\ndomain = \"contoso.com\"\ndomain_type = {}\n",
        "must be \"Authoritative\" or \"InternalRelay\"",
    ),
    (
        "inbound_connectors[0].connector_type",
        "[[inbound_connectors]]\nname = \"c\"\nconnector_type = {}\nsender_ip_addresses = [\"192.0.2.1\"]\n",
        "must be \"OnPremises\" or \"Partner\"",
    ),
    (
        "upstream.kind",
        "",
        "must be \"smtp\" or \"directory\"",
    ),
    (
        "upstream.tls",
        "",
        "must be \"required\", \"opportunistic\" or \"none\"",
    ),
    ("log.format", "[log]\nformat = {}\n", "must be \"text\" or \"json\""),
];

/// A valid configuration with `key` set to `value` (TOML).
fn with_keyword(key: &str, lines: &str, value: &str) -> String {
    match key {
        "upstream.kind" => format!("[server]\n[upstream]\nkind = {value}\npath = \"out\"\n"),
        "upstream.tls" => {
            format!("[server]\n[upstream]\nkind = \"directory\"\npath = \"out\"\ntls = {value}\n")
        }
        _ => format!("{BASE}\n{}", lines.replace("{}", value)),
    }
}

#[test]
fn a_misspelt_keyword_is_refused_naming_the_key_the_value_and_the_words() {
    for (key, lines, reason) in KEYWORD_KEYS {
        let e = match Config::parse(&with_keyword(key, lines, "\"Bogus\"")) {
            Ok(_) => panic!("{key} = \"Bogus\" accepted"),
            Err(e) => e,
        };
        assert_eq!(e, format!("configuration key {key} = \"Bogus\": {reason}"));
        // Case matters, as it always has: Exchange's spellings are exact.
        let word = reason.split('"').nth(1).unwrap();
        let shouted = format!("{:?}", word.to_uppercase());
        assert!(
            Config::parse(&with_keyword(key, lines, &shouted)).is_err(),
            "{key} = {shouted} accepted"
        );
    }
}

#[test]
fn every_word_the_refusal_lists_is_accepted() {
    for (key, lines, reason) in KEYWORD_KEYS {
        for word in reason.split('"').skip(1).step_by(2) {
            let text = with_keyword(key, lines, &format!("{word:?}"));
            let parsed = Config::parse(&text);
            assert!(parsed.is_ok(), "{key} = {word:?}: {:?}", parsed.err());
        }
    }
}

/// The list a keyword type refuses with holds each value once, spelled as the value itself.
fn words_are_distinct_and_round_trip<T: Keyword + std::fmt::Debug>() {
    let words: Vec<&str> = T::ALL.iter().map(|v| v.word()).collect();
    for (v, w) in T::ALL.iter().zip(&words) {
        assert_eq!(keyword::from_word::<T>(w), Some(*v), "{w}");
        assert_eq!(words.iter().filter(|x| *x == w).count(), 1, "{w}");
    }
    assert!(keyword::refusal::<T>().starts_with(keyword::REFUSAL));
}

#[test]
fn every_keyword_type_spells_each_value_once() {
    words_are_distinct_and_round_trip::<Profile>();
    words_are_distinct_and_round_trip::<DomainType>();
    words_are_distinct_and_round_trip::<ConnectorType>();
    words_are_distinct_and_round_trip::<Mode>();
    words_are_distinct_and_round_trip::<RejectStage>();
    words_are_distinct_and_round_trip::<UpstreamKind>();
    words_are_distinct_and_round_trip::<UpstreamTls>();
    words_are_distinct_and_round_trip::<LogFormat>();
}

#[test]
fn shape_errors_name_the_full_key_path_and_the_place() {
    let e = refused("[[inbound_connectors]]\nname = \"a\"\nconnector_type = \"Partner\"\n[[inbound_connectors]]\nname = \"b\"\nconnector_type = \"Partner\"\nsender_ip_address = [\"192.0.2.1\"]\n");
    assert!(
        e.starts_with("inbound_connectors[1].sender_ip_address: unknown field `sender_ip_address`, expected one of `name`, "),
        "{e}"
    );
    let e = Config::parse(
        "[server]\nlisten = [\"127.0.0.1:25\", \"mail\"]\n[upstream]\nkind = \"smtp\"\n",
    )
    .err()
    .unwrap();
    assert_eq!(
        e,
        "server.listen[1]: invalid socket address syntax (line 2, column 27)"
    );
    let e = Config::parse("[server]\nmax_recipients = \"many\"\n[upstream]\nkind = \"smtp\"\n")
        .err()
        .unwrap();
    assert!(
        e.starts_with("server.max_recipients: invalid type: string \"many\", expected usize"),
        "{e}"
    );
    let e = Config::parse("[server]\n[upstream]\npath = \"out\"\n")
        .err()
        .unwrap();
    assert_eq!(e, "upstream: missing field `kind` (line 2, column 1)");
    let e = Config::parse("[server]\nlisten = [\n").err().unwrap();
    assert_eq!(e, "invalid array: expected `]` (line 3, column 1)");
}

#[test]
fn load_reports_a_keyword_like_any_refused_value_and_a_shape_error_with_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("relaygate.toml");
    std::fs::write(&path, format!("{BASE}\n[policy]\nmode = \"observe\"\n")).unwrap();
    match Config::load(&path) {
        Err(ConfigError::Invalid { key, value, reason }) => {
            assert_eq!(
                (key.as_str(), value.as_str(), reason.as_str()),
                (
                    "policy.mode",
                    "\"observe\"",
                    "must be \"enforce\" or \"audit\""
                )
            );
        }
        other => panic!("{other:?}"),
    }
    std::fs::write(&path, format!("{BASE}\n[policy]\nmoed = \"audit\"\n")).unwrap();
    let e = Config::load(&path).err().unwrap();
    assert!(matches!(e, ConfigError::Parse { .. }), "{e:?}");
    assert!(
        e.to_string().starts_with(&format!(
            "configuration {} is not valid: policy.moed: unknown field `moed`",
            path.display()
        )),
        "{e}"
    );
    assert!(check("[policy]\nmode = \"audit\"\n").is_ok());
}
