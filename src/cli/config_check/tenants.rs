//! The pitfalls of one gate in front of several tenants, as message center MC1226222 (February
//! 2026) names them. The one about a certificate connector whose name is not an accepted
//! domain of its tenant is said with the connector's own warning (`tenant_warnings`); this is
//! the one that needs all tenants at once: the same sending address on OnPremises connectors of
//! two tenants.

use super::{Finding, Severity};
use crate::config::Settings;
use crate::policy::{ConnectorType, InboundConnector};

/// Enabled OnPremises connectors of different tenants whose `sender_ip_addresses` overlap:
/// mail from that address is attributed by the certificate, the P1 or the recipient domain
/// alone, so it works only as long as those happen to name the right tenant.
pub(super) fn warnings(settings: &Settings) -> Vec<Finding> {
    let on_premises: Vec<(usize, usize, &InboundConnector)> = settings
        .tenants
        .iter()
        .enumerate()
        .flat_map(|(t, tenant)| {
            tenant
                .policy
                .tenant
                .inbound_connectors
                .iter()
                .enumerate()
                .filter(|(_, c)| c.enabled && c.connector_type == ConnectorType::OnPremises)
                .map(move |(i, c)| (t, i, c))
        })
        .collect();
    let mut out = Vec::new();
    for (a, &(t, i, c)) in on_premises.iter().enumerate() {
        for &(u, j, d) in on_premises.iter().skip(a + 1).filter(|(u, ..)| *u != t) {
            let shared = c.sender_ip_addresses.iter().find_map(|n| {
                d.sender_ip_addresses
                    .iter()
                    .find(|m| n.contains(&m.network()) || m.contains(&n.network()))
                    .map(|m| {
                        if n.prefix_len() >= m.prefix_len() {
                            *n
                        } else {
                            *m
                        }
                    })
            });
            let Some(shared) = shared else { continue };
            let (x, y) = (settings.tenants[t].name(), settings.tenants[u].name());
            out.push(Finding {
                severity: Severity::Warning,
                subject: format!(
                    "tenants[{t}].inbound_connectors[{i}] \"{}\" and tenants[{u}].inbound_connectors[{j}] \"{}\"",
                    c.name, d.name
                ),
                problem: format!(
                    "both cover {shared} (tenants \"{x}\" and \"{y}\"): an IP address does not tell the tenants apart, so mail from it is attributed only by its certificate, its P1 domain or its first recipient (MC1226222), and a null-sender NDR without a certificate belongs to neither"
                ),
                fix: format!(
                    "have the server present one client certificate per tenant, named in an accepted domain of that tenant, with a certificate connector in each (e.g. tls_sender_certificate_name = \"mail.<an accepted domain of {x}>\"), or send each tenant's mail from its own address"
                ),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::cli::config_check::{warnings, Finding};
    use crate::config::Config;

    fn tenant(name: &str, domain: &str, certificate: &str) -> String {
        format!(
            r#"
[[tenants]]
name = "{name}"
[[tenants.accepted_domains]]
domain = "{domain}"
[[tenants.inbound_connectors]]
name = "{name} by IP"
connector_type = "OnPremises"
sender_ip_addresses = ["192.0.2.0/24"]
[[tenants.inbound_connectors]]
name = "{name} by certificate"
connector_type = "OnPremises"
tls_sender_certificate_name = "{certificate}"
[tenants.upstream]
kind = "directory"
path = "out/{name}"
"#
        )
    }

    fn findings(tenants: &str) -> Vec<Finding> {
        let text = format!("[server]\n{tenants}");
        let config = Config::parse(&text).unwrap();
        let settings = config.validate().unwrap();
        warnings(&config, &settings)
    }

    #[test]
    fn the_same_address_on_connectors_of_two_tenants_is_warned_about() {
        let f = findings(&format!(
            "{}{}",
            tenant("contoso", "contoso.com", "*.contoso.com"),
            tenant("tailspin", "tailspin.example", "*.tailspin.example")
                .replace("192.0.2.0/24", "192.0.2.25")
        ));
        let shared: Vec<&Finding> = f
            .iter()
            .filter(|f| {
                f.problem.contains("MC1226222") && f.problem.contains("both cover 192.0.2.25/32")
            })
            .collect();
        assert_eq!(shared.len(), 1, "{f:#?}");
        assert_eq!(
            shared[0].subject,
            "tenants[0].inbound_connectors[0] \"contoso by IP\" and tenants[1].inbound_connectors[0] \"tailspin by IP\""
        );
    }

    #[test]
    fn a_certificate_name_that_is_no_accepted_domain_of_its_tenant_is_warned_about_as_mc1226222() {
        let f = findings(&format!(
            "{}{}",
            tenant("contoso", "contoso.com", "*.contoso.com"),
            tenant("tailspin", "tailspin.example", "relay.tailspin.example")
                .replace("192.0.2.0/24", "198.51.100.0/24")
        ));
        let about: Vec<&Finding> = f
            .iter()
            .filter(|f| {
                f.subject == "tenants[1].inbound_connectors[1] \"tailspin by certificate\""
                    && f.problem.contains("MC1226222")
            })
            .collect();
        assert_eq!(about.len(), 1, "{f:#?}");
        assert!(
            about[0].problem.contains("relay.tailspin.example"),
            "{:?}",
            about[0]
        );
        assert!(
            !f.iter().any(|f| f.problem.contains("both cover")),
            "disjoint addresses: {f:#?}"
        );
    }
}
