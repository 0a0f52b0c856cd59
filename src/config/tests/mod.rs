//! The configuration's tests, one file per concern, sharing the helpers here.

mod keywords;
mod limits;
mod submission;
mod tenant;
mod tenants;
mod tls;
mod upstream_addresses;

use super::*;
use crate::policy::Profile;
use std::net::SocketAddr;
use std::path::Path;

pub(super) const BASE: &str = r#"
[server]
hostname = "gate.contoso.com"
[upstream]
kind = "directory"
path = "out"
"#;

pub(super) fn check(extra: &str) -> Result<Settings, String> {
    let text = format!("{BASE}\n{extra}");
    let config = Config::parse(&text)?;
    config.validate().map_err(|e| e.to_string())
}

pub(super) fn refused(extra: &str) -> String {
    match check(extra) {
        Ok(_) => panic!("accepted:\n{extra}"),
        Err(e) => e,
    }
}

#[test]
fn shipped_default_config_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/relaygate.toml");
    let config = Config::load(&path).expect("parses");
    // Paths in the shipped file are relative to the repository root, which is where
    // cargo runs unit tests.
    let s = config.validate().expect("valid");
    assert_eq!(
        s.server.listen,
        vec!["127.0.0.1:2525".parse::<SocketAddr>().unwrap()]
    );
    assert!(s.tls.is_some());
    assert_eq!(s.tenants[0].policy.profile, Profile::Exo2023);
    assert_eq!(s.tenants[0].policy.reject_stage, RejectStage::Data);
    assert_eq!(s.tenants[0].policy.tenant.inbound_connectors.len(), 2);
    assert!(matches!(
        s.tenants[0].upstream,
        UpstreamSettings::Directory { .. }
    ));
}
