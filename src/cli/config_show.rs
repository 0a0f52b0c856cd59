//! `relaygate config show`: the effective configuration, the file with every default filled in,
//! as TOML the gate reads back to the same configuration.
//!
//! It parses (unknown keys, wrong types and misspelt keywords are refused, as `serve` would) but
//! does not validate: no certificate or private key is read, so showing a configuration needs
//! none of the key's permissions. `relaygate config check` validates.

use crate::config::{Config, ConfigError};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Why nothing was shown.
#[derive(Debug, thiserror::Error)]
pub enum ShowError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Only a file-format type that TOML cannot hold would do this: a bug, not an admin's error.
    #[error("cannot write the configuration as TOML: {0}")]
    Toml(#[from] toml::ser::Error),
}

/// What `config show` prints first, so that its output says what it is when saved to a file.
const HEADER: &str = "# The effective configuration: every key, with its default where the file \
                      leaves it out (relaygate config show).\n";

/// `config` as TOML, every key written out.
pub fn render(config: &Config) -> Result<String, toml::ser::Error> {
    Ok(format!("{HEADER}{}", toml::to_string(config)?))
}

/// The effective configuration of the file at `path`.
pub fn show(path: &Path) -> Result<String, ShowError> {
    Ok(render(&Config::load(path)?)?)
}

/// `relaygate config show`: print it; exit status 2 when the file cannot be read or parsed.
pub fn run(config: PathBuf) -> ExitCode {
    match show(&config) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("relaygate: {e}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every key that has no default set, so that nothing is left out of the output.
    const EVERY_KEY: &str = r#"
[server]
[tls]
certificate = "certs/gate.pem"
private_key = "certs/gate.key"
client_ca = "certs/ca.pem"
[policy]
other_tenant_domains = ["fabrikam.com"]
[[accepted_domains]]
domain = "contoso.com"
recipients = ["a@contoso.com"]
[[inbound_connectors]]
name = "OnPrem by certificate"
connector_type = "OnPremises"
tls_sender_certificate_name = "*.contoso.com"
sender_ip_addresses = ["192.0.2.0/24"]
[[inbound_connectors]]
name = "Partner"
connector_type = "Partner"
sender_domains = ["fabrikam.com", "*.fabrikam.com"]
[upstream]
kind = "smtp"
address = "contoso-com.mail.protection.outlook.com:25"
tls = "opportunistic"
tls_server_name = "mail.protection.outlook.com"
ca = "certs/ca.pem"
client_certificate = "certs/gate.pem"
client_private_key = "certs/gate.key"
path = "out"
[admin]
listen = "[::1]:9025"
[log]
format = "json"
"#;

    fn round_trip(text: &str) -> (Config, String) {
        let config = Config::parse(text).expect("parses");
        let shown = render(&config).expect("renders");
        let again = Config::parse(&shown).unwrap_or_else(|e| panic!("{e}\n---\n{shown}"));
        assert_eq!(again, config, "{shown}");
        (config, shown)
    }

    #[test]
    fn the_output_parses_back_to_the_same_configuration() {
        round_trip(EVERY_KEY);
        round_trip("[server]\n[upstream]\nkind = \"directory\"\npath = \"out\"\n");
        let (_, shown) = round_trip(
            "[server]\n[[tenants]]\nname = \"contoso\"\n[tenants.policy]\nmode = \"audit\"\n[[tenants.accepted_domains]]\ndomain = \"contoso.com\"\n[tenants.upstream]\nkind = \"directory\"\npath = \"out\"\n",
        );
        // A tenant's policy shows what the file sets: the rest is the top-level [policy]'s.
        assert!(
            shown.contains("[tenants.policy]\nmode = \"audit\"\n\n"),
            "{shown}"
        );
        assert!(
            !shown.contains("\n[upstream]") && !shown.contains("\naccepted_domains = "),
            "{shown}"
        );
        for file in ["config/relaygate.toml", "config/container.toml"] {
            let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
            let shown = show(&path).unwrap_or_else(|e| panic!("{file}: {e}"));
            assert_eq!(
                Config::parse(&shown).unwrap(),
                Config::load(&path).unwrap(),
                "{file}"
            );
        }
    }

    #[test]
    fn defaults_the_file_leaves_out_are_written_out() {
        let (_, shown) = round_trip("[server]\n[upstream]\nkind = \"directory\"\npath = \"out\"\n");
        assert!(shown.starts_with(HEADER), "{shown}");
        for line in [
            "hostname = \"relaygate.localdomain\"",
            "listen = [\"127.0.0.1:2525\"]",
            "command_timeout_secs = 300",
            "profile = \"exo-2023\"",
            "reject_stage = \"data\"",
            "tls = \"required\"",
            "data_end_timeout_secs = 600",
            "format = \"text\"",
            "level = \"info\"",
        ] {
            assert!(shown.lines().any(|l| l == line), "{line} missing:\n{shown}");
        }
        // Absent sections stay absent: a [tls] or [admin] written out would change what runs.
        assert!(
            !shown.contains("[tls]") && !shown.contains("[admin]"),
            "{shown}"
        );
    }

    #[test]
    fn a_file_the_gate_would_refuse_is_not_shown() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("relaygate.toml");
        std::fs::write(&path, "[server]\n[upstream]\nkind = \"smpt\"\n").unwrap();
        let e = show(&path).err().unwrap().to_string();
        assert_eq!(
            e,
            "configuration key upstream.kind = \"smpt\": must be \"smtp\" or \"directory\""
        );
    }
}
