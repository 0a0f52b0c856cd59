//! `import-exo --tenant NAME`: the tables under a `[[tenants]]` block that loads as that
//! tenant, beside another one.

use super::*;

fn import_for(name: &str) -> String {
    let mut importer = Importer::for_tenant(name);
    importer
        .accepted_domains(
            r#"{"DomainName": "tailspin.example", "DomainType": "Authoritative"}"#.as_bytes(),
            |_| {},
        )
        .unwrap();
    importer
        .inbound_connectors(
            r#"{"Name": "Tailspin relay", "ConnectorType": "OnPremises", "TlsSenderCertificateName": "*.tailspin.example"}"#
                .as_bytes(),
            |_| {},
        )
        .unwrap();
    importer.finish()
}

#[test]
fn a_tenant_import_is_a_tenants_block_that_loads_as_that_tenant() {
    let toml = import_for("Tailspin EU");
    assert!(
        toml.contains("\n[[tenants]]\nname = \"Tailspin EU\"\n"),
        "{toml}"
    );
    assert!(toml.contains("\n[[tenants.accepted_domains]]\n"), "{toml}");
    assert!(
        toml.contains("\n[[tenants.inbound_connectors]]\n"),
        "{toml}"
    );
    assert!(!toml.contains("\n[[accepted_domains]]"), "{toml}");
    let text =
        format!("[server]\n{toml}\n[tenants.upstream]\nkind = \"directory\"\npath = \"out\"\n");
    let config = Config::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(config.tenants.len(), 1);
    let t = &config.tenants[0];
    assert_eq!(t.name, "Tailspin EU");
    assert_eq!(t.accepted_domains[0].domain, "tailspin.example");
    assert_eq!(t.inbound_connectors[0].name, "Tailspin relay");
    assert!(
        t.upstream.path.is_some(),
        "[tenants.upstream] after the tables is the tenant's"
    );
    let settings = config.validate().unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(settings.tenants[0].name(), "Tailspin EU");
}
