//! Configuration text the tests share: the tenants (accepted domains and inbound connectors, as
//! an admin copies them from Exchange Online), `[tls]` on the shipped development certificates,
//! and the `[upstream]` sections. One place, so a newcomer reads each tenant once and every
//! test that names a connector finds it here.

use super::repo;
use std::net::SocketAddr;
use std::path::Path;

/// The hostname every test gate answers with; Exchange Online's reply suffix carries it.
pub const HOSTNAME: &str = "gate.contoso.com";

/// The tenant of the rules document's worked examples, with 127.0.0.1 standing in for the
/// on-premises IP (connector C-IP covers 127.0.0.0/24).
pub const BASELINE_TENANT: &str = r#"
[[accepted_domains]]
domain = "contoso.com"

[[accepted_domains]]
domain = "fabrikam.com"
domain_type = "InternalRelay"
match_subdomains = true

[[inbound_connectors]]
name = "C-IP"
connector_type = "OnPremises"
sender_ip_addresses = ["127.0.0.0/24"]

[[inbound_connectors]]
name = "C-CERT"
connector_type = "OnPremises"
tls_sender_certificate_name = "*.contoso.com"
"#;

/// The same tenant where 127.0.0.1 matches no IP connector: only a certificate can authorise.
pub fn foreign_ip_tenant() -> String {
    BASELINE_TENANT.replace("127.0.0.0/24", "203.0.113.0/24")
}

/// contoso.com accepted, and one OnPremises connector, "OnPrem by IP", for `ip_range`: the
/// smallest tenant that relays (in-process operations tests, the fault simulation).
pub fn ip_tenant(ip_range: &str) -> String {
    format!(
        r#"
[[accepted_domains]]
domain = "contoso.com"

[[inbound_connectors]]
name = "OnPrem by IP"
connector_type = "OnPremises"
sender_ip_addresses = ["{ip_range}"]
"#
    )
}

/// [`ip_tenant`] and a second OnPremises connector, "OnPrem by certificate", for
/// `*.contoso.com`: the tenant of the real binary's tests, whose certificates are the shipped
/// development ones in `certs/`.
pub fn onprem_tenant(ip_range: &str) -> String {
    format!(
        r#"{}
[[inbound_connectors]]
name = "OnPrem by certificate"
connector_type = "OnPremises"
tls_sender_certificate_name = "*.contoso.com"
"#,
        ip_tenant(ip_range)
    )
}

/// A shipped development certificate or key in `certs/` (README, "Development certificates").
pub fn cert(name: &str) -> String {
    repo().join("certs").join(name).display().to_string()
}

/// `[tls]` on the shipped development certificates: the gate's own, and their CA for client
/// certificates (`client-mail.contoso.com.pem` is trusted, `client-selfsigned.pem` is not).
pub fn dev_tls() -> String {
    format!(
        "[tls]\ncertificate = \"{}\"\nprivate_key = \"{}\"\nclient_ca = \"{}\"\n",
        cert("gate.pem"),
        cert("gate.key"),
        cert("ca.pem")
    )
}

/// `[upstream]` that stores each message and its envelope as files in `path`.
pub fn directory_upstream(path: &Path) -> String {
    format!(
        "[upstream]\nkind = \"directory\"\npath = \"{}\"\n",
        path.display()
    )
}

/// `[upstream]` to a plain SMTP server at `addr`, with the gate's default timeouts.
pub fn plain_smtp_upstream(addr: SocketAddr) -> String {
    format!("[upstream]\nkind = \"smtp\"\naddress = \"{addr}\"\ntls = \"none\"\n")
}

/// `[upstream]` for the recording upstream: timeouts of 3 s, so that a silent upstream fails
/// its test in seconds.
pub fn smtp_upstream(addr: SocketAddr) -> String {
    format!(
        "{}reply_timeout_secs = 3\ndata_end_timeout_secs = 3\nconnect_timeout_secs = 3\n",
        plain_smtp_upstream(addr)
    )
}

/// `[upstream]` with STARTTLS in `mode` ("required", "opportunistic"), verified against `ca`
/// for the name `localhost`; timeouts as [`smtp_upstream`].
pub fn tls_upstream(addr: SocketAddr, mode: &str, ca: &Path) -> String {
    format!(
        "[upstream]\nkind = \"smtp\"\naddress = \"{addr}\"\ntls = \"{mode}\"\ntls_server_name = \"localhost\"\nca = \"{}\"\nreply_timeout_secs = 3\ndata_end_timeout_secs = 3\nconnect_timeout_secs = 3\n",
        ca.display()
    )
}

/// Two tenants behind one gate (the rules document's `two-tenants`, with 127.0.0.1 standing in
/// for the on-premises Exchange both tenants' IP connectors list): `contoso` (contoso.com)
/// relaying to the upstream at `contoso`, `tailspin` (tailspin.example) to the one at
/// `tailspin`. `policy` goes into the top-level `[policy]`.
pub fn two_tenants(contoso: SocketAddr, tailspin: SocketAddr, policy: &str) -> String {
    let tenant = |name: &str, domain: &str, up: SocketAddr| {
        format!(
            r#"
[[tenants]]
name = "{name}"

[[tenants.accepted_domains]]
domain = "{domain}"

[[tenants.inbound_connectors]]
name = "{name} by IP"
connector_type = "OnPremises"
sender_ip_addresses = ["127.0.0.0/24"]

[[tenants.inbound_connectors]]
name = "{name} by certificate"
connector_type = "OnPremises"
tls_sender_certificate_name = "*.{domain}"

{}"#,
            smtp_upstream(up).replace("[upstream]", "[tenants.upstream]")
        )
    };
    format!(
        "[policy]\n{policy}\n{}{}",
        tenant("contoso", "contoso.com", contoso),
        tenant("tailspin", "tailspin.example", tailspin)
    )
}
