//! README.md's "Configuration reference" against `relaygate config show`: every default the
//! tables give is the value the gate runs with, every key the gate prints is documented, and
//! every documented key exists. A default changed in code and not in the README (or a key added
//! without a row) fails here.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use support::{relaygate, repo};

/// What a row's "default" cell says.
#[derive(Debug, Clone, PartialEq)]
enum Documented {
    /// A TOML value in backticks: `config show` must print exactly it when the file leaves the
    /// key out.
    Value(toml::Value),
    /// "required", "(smtp) required": the file must set it, so there is nothing to fill in.
    Required,
    /// "absent" or words ("host of `address`"): without the key in the file, nothing is printed.
    NoValue,
}

/// `(section, key)`: `server.listen` is `("server", "listen")`; an array of tables
/// (`[[inbound_connectors]]`) is its name.
type Key = (String, String);

fn readme_reference() -> String {
    let readme = std::fs::read_to_string(repo().join("README.md")).expect("README.md");
    let start = readme
        .find("\n## Configuration reference\n")
        .expect("README.md has a Configuration reference");
    let rest = &readme[start + 1..];
    let end = rest[3..].find("\n## ").map_or(rest.len(), |i| i + 3);
    rest[..end].to_string()
}

/// The cells of a table row, without the outer pipes.
fn cells(line: &str) -> Vec<&str> {
    let inner = line.trim().trim_start_matches('|').trim_end_matches('|');
    inner.split('|').map(str::trim).collect()
}

fn documented_default(cell: &str) -> Documented {
    let literal = cell
        .strip_prefix('`')
        .and_then(|c| c.strip_suffix('`'))
        .filter(|c| !c.contains('`'));
    if let Some(literal) = literal {
        let table: toml::Table = toml::from_str(&format!("v = {literal}"))
            .unwrap_or_else(|e| panic!("default `{literal}` is not a TOML value: {e}"));
        return Documented::Value(table["v"].clone());
    }
    if cell.contains("required") {
        Documented::Required
    } else {
        Documented::NoValue
    }
}

/// Every key the reference tables document, with its default.
fn documented(reference: &str) -> BTreeMap<Key, Documented> {
    let mut keys = BTreeMap::new();
    let mut section: Option<String> = None;
    let mut has_default_column = false;
    for line in reference.lines() {
        if let Some(heading) = line.strip_prefix("### ") {
            let name = heading.split('`').nth(1).unwrap_or("");
            section = Some(name.trim_matches(|c| c == '[' || c == ']').to_string());
            continue;
        }
        if !line.starts_with('|') || line.starts_with("|---") {
            continue;
        }
        let row = cells(line);
        if row[0] == "key" {
            has_default_column = row.get(1) == Some(&"default");
            continue;
        }
        let section = section
            .clone()
            .unwrap_or_else(|| panic!("a table row before any [section] heading: {line}"));
        assert!(
            has_default_column,
            "[{section}]: the table has no default column"
        );
        let default = documented_default(row[1]);
        for key in row[0].split(',') {
            let key = key.trim().trim_matches('`').to_string();
            let previous = keys.insert((section.clone(), key.clone()), default.clone());
            assert!(previous.is_none(), "{section}.{key} is documented twice");
        }
    }
    keys
}

/// Every `(section, key)` of a TOML document, with its value; for an array of tables, the
/// first table's. A table inside a section is a section of its own (`[tenants.policy]` is
/// `tenants.policy`), except a tenant's accepted domains, connectors and upstream, which are
/// documented once, as the top-level sections of the same name.
fn flatten(document: &toml::Table) -> BTreeMap<Key, toml::Value> {
    let mut out = BTreeMap::new();
    for (section, value) in document {
        assert!(
            as_tables(value).is_some(),
            "top-level key {section} = {value} is not a section"
        );
        flatten_section(section, value, &mut out);
    }
    out
}

/// The tables of a section: a table, or a non-empty array of them.
fn as_tables(value: &toml::Value) -> Option<Vec<&toml::Table>> {
    match value {
        toml::Value::Table(t) => Some(vec![t]),
        toml::Value::Array(a) if !a.is_empty() && a.iter().all(toml::Value::is_table) => {
            Some(a.iter().filter_map(toml::Value::as_table).collect())
        }
        _ => None,
    }
}

fn flatten_section(section: &str, value: &toml::Value, out: &mut BTreeMap<Key, toml::Value>) {
    let section = match section {
        "tenants.accepted_domains" | "tenants.inbound_connectors" | "tenants.upstream" => {
            &section["tenants.".len()..]
        }
        other => other,
    };
    for table in as_tables(value).unwrap_or_default().into_iter().rev() {
        for (key, v) in table {
            if section == "tenants" && as_tables(v).is_some() {
                flatten_section(&format!("tenants.{key}"), v, out);
            } else {
                out.insert((section.to_string(), key.clone()), v.clone());
            }
        }
    }
}

/// Whether a documented section belongs to `[[tenants]]` alone.
fn tenant_section(section: &str) -> bool {
    section == "tenants" || section.starts_with("tenants.")
}

/// `relaygate config show --config <text>`, parsed.
fn config_show(text: &str) -> toml::Table {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("relaygate.toml");
    std::fs::write(&path, text).unwrap();
    let (status, stdout, stderr) =
        relaygate(&["config", "show", "--config", path.to_str().unwrap()]);
    assert_eq!(status, 0, "{stdout}{stderr}");
    toml::from_str(&stdout).unwrap_or_else(|e| panic!("{e}\n---\n{stdout}"))
}

/// Only what the reference calls required (one of the two upstream kinds), in every section.
const MINIMAL: &str = r#"
[server]
[tls]
certificate = "certs/gate.pem"
private_key = "certs/gate.key"
[[accepted_domains]]
domain = "contoso.com"
[[inbound_connectors]]
name = "OnPrem"
connector_type = "OnPremises"
[upstream]
kind = "smtp"
address = "contoso-com.mail.protection.outlook.com:25"
[[rewrite]]
new_sender = "app@contoso.com"
[admin]
listen = "127.0.0.1:9025"
[submission]
"#;

/// Only what is required, with one tenant: its name, domain, connector and upstream.
const MINIMAL_TENANTS: &str = r#"
[server]
[[tenants]]
name = "contoso"
[[tenants.accepted_domains]]
domain = "contoso.com"
[[tenants.inbound_connectors]]
name = "OnPrem"
connector_type = "OnPremises"
[tenants.upstream]
kind = "smtp"
address = "contoso-com.mail.protection.outlook.com:25"
"#;

/// Every key a tenant has of its own (its sections' keys are those of the top-level ones).
const EVERY_KEY_TENANTS: &str = r#"
[[tenants]]
name = "contoso"
[tenants.policy]
profile = "exo-legacy"
mode = "audit"
reject_stage = "rcpt"
reject_direct_send = true
other_tenant_domains = ["fabrikam.com"]
[tenants.upstream]
kind = "directory"
path = "out"
"#;

/// Every key set, those without a default too.
const EVERY_KEY: &str = r#"
[server]
hostname = "gate.contoso.com"
listen = ["[::1]:2525"]
max_message_size = 1048576
max_recipients = 10
command_timeout_secs = 60
data_timeout_secs = 60
tls_handshake_timeout_secs = 5
session_timeout_secs = 600
max_header_size = 65536
max_line_length = 4096
max_connections = 10
max_connections_per_ip = 2
shutdown_grace_secs = 0
proxy_protocol = true
proxy_trusted_networks = ["10.0.0.0/8"]
proxy_header_timeout_secs = 2
[tls]
certificate = "certs/gate.pem"
private_key = "certs/gate.key"
client_ca = "certs/ca.pem"
[policy]
profile = "exo-legacy"
mode = "audit"
reject_stage = "rcpt"
reject_direct_send = true
other_tenant_domains = ["fabrikam.com"]
[[accepted_domains]]
domain = "contoso.com"
domain_type = "InternalRelay"
match_subdomains = true
recipients = ["a@contoso.com"]
[[inbound_connectors]]
name = "Partner"
connector_type = "Partner"
enabled = false
sender_ip_addresses = ["192.0.2.0/24"]
tls_sender_certificate_name = "mail.fabrikam.com"
sender_domains = ["fabrikam.com"]
restrict_domains_to_ip_addresses = true
restrict_domains_to_certificate = true
require_tls = true
[upstream]
kind = "smtp"
address = "contoso-com.mail.protection.outlook.com:25"
tls = "opportunistic"
tls_server_name = "mail.protection.outlook.com"
ca = "certs/ca.pem"
client_certificate = "certs/gate.pem"
client_private_key = "certs/gate.key"
path = "out"
connect_timeout_secs = 5
reply_timeout_secs = 60
data_end_timeout_secs = 60
pool_max_idle = 0
pool_idle_timeout_secs = 5
chunking = false
answer_sole_recipient_early = false
[[rewrite]]
client_ips = ["192.0.2.0/24"]
client_certificate_names = ["*.fabrikam.com"]
client_users = ["scanner"]
senders = ["*@example.net"]
null_sender = true
new_sender = "app@contoso.com"
[admin]
listen = "127.0.0.1:9025"
probe_interval_secs = 5
[submission]
listen = ["[::1]:587"]
implicit_tls_listen = ["[::1]:465"]
users_file = "/etc/relaygate/users.toml"
[log]
format = "json"
level = "debug"
"#;

#[test]
fn the_readme_says_how_to_see_the_effective_configuration() {
    let reference = readme_reference();
    assert!(
        reference.contains("`relaygate config show")
            && reference.contains("prints the effective configuration"),
        "{reference}"
    );
}

#[test]
fn every_documented_default_is_what_config_show_fills_in() {
    let documented = documented(&readme_reference());
    let single: BTreeMap<Key, Documented> = documented
        .iter()
        .filter(|((section, _), _)| !tenant_section(section))
        .map(|(k, d)| (k.clone(), d.clone()))
        .collect();
    defaults_filled_in(&single, MINIMAL);
    // A tenant's own keys, and its sections' (the top-level ones' keys), in a [[tenants]] file.
    let tenant_sections = ["accepted_domains", "inbound_connectors", "upstream"];
    let tenants: BTreeMap<Key, Documented> = documented
        .into_iter()
        .filter(|((section, _), _)| {
            tenant_section(section) || tenant_sections.contains(&section.as_str())
        })
        .collect();
    defaults_filled_in(&tenants, MINIMAL_TENANTS);
}

/// `config show` of `minimal` fills in exactly the `documented` defaults of its sections.
fn defaults_filled_in(documented: &BTreeMap<Key, Documented>, minimal: &str) {
    let sections: BTreeSet<&str> = documented.keys().map(|(s, _)| s.as_str()).collect();
    let in_scope = |key: &Key| sections.contains(key.0.as_str());
    let written: BTreeMap<Key, toml::Value> = flatten(&toml::from_str(minimal).unwrap())
        .into_iter()
        .filter(|(k, _)| in_scope(k))
        .collect();
    let shown: BTreeMap<Key, toml::Value> = flatten(&config_show(minimal))
        .into_iter()
        .filter(|(k, _)| in_scope(k))
        .collect();
    for (key, default) in documented {
        let (section, name) = key;
        match (default, shown.get(key)) {
            (Documented::Value(v), Some(s)) => {
                assert_eq!(s, v, "{section}.{name}: README says {v}, config show {s}")
            }
            (Documented::Value(v), None) => {
                panic!("{section}.{name}: README says the default is {v}, config show prints none")
            }
            (_, Some(s)) if !written.contains_key(key) => {
                panic!("{section}.{name}: README gives no default, config show fills in {s}")
            }
            _ => {}
        }
    }
    // Nothing is filled in that the README does not give a default for.
    let filled: BTreeSet<&Key> = shown.keys().filter(|k| !written.contains_key(*k)).collect();
    let with_default: BTreeSet<&Key> = documented
        .iter()
        .filter(|(_, d)| matches!(d, Documented::Value(_)))
        .map(|(k, _)| k)
        .collect();
    assert_eq!(filled, with_default);
}

#[test]
fn every_key_config_show_prints_is_documented_and_every_documented_key_exists() {
    let documented: BTreeSet<Key> = documented(&readme_reference()).into_keys().collect();
    // EVERY_KEY only parses if each of its keys exists (unknown keys are refused); config show
    // parses without validating, so one file may hold the top-level tenant and [[tenants]].
    let every_key = format!("{EVERY_KEY}\n{EVERY_KEY_TENANTS}");
    let shown: BTreeSet<Key> = flatten(&config_show(&every_key)).into_keys().collect();
    let undocumented: Vec<_> = shown.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "not in README.md: {undocumented:?}"
    );
    let not_shown: Vec<_> = documented.difference(&shown).collect();
    assert!(
        not_shown.is_empty(),
        "in README.md but not printed for a file that sets every key: {not_shown:?}"
    );
    let written: BTreeSet<Key> = flatten(&toml::from_str(&every_key).unwrap())
        .into_keys()
        .collect();
    assert_eq!(
        written, shown,
        "EVERY_KEY sets every key config show prints"
    );
}
