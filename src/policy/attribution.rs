//! One gate, many tenants: which tenant a transaction belongs to (message center MC1226222,
//! February 2026).
//!
//! An on-premises Exchange in front of several Microsoft 365 tenants sends them all through the
//! same OnPremises connectors. Exchange Online assigns such a message to a tenant by, in order,
//! the domain on the TLS certificate the sender presented, the P1 (`MAIL FROM`) domain, then the
//! `RCPT TO` domain; that tenant's own rules then decide, exactly as for a single tenant. In a
//! transaction assigned to one tenant, recipients of another get `452 4.5.3 Too many
//! recipients`, so the sender splits the message. Everything here is pure, like the rest of the
//! engine: the tenants and the facts in, a tenant (by its index) out.
//!
//! With one tenant (every file without `[[tenants]]`) that tenant is always the transaction's,
//! whatever the facts: nothing changes for a single tenant.

use super::{
    authorize_relay, domain_of, judge_recipient, CertificateName, Comparison, ConnectorType,
    Evaluation, HeaderSender, Profile, RecipientVerdict, Rejection, RelayDecision, RelayDenial,
    ReversePath, SessionFacts, Tenant,
};

/// What made a transaction a tenant's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttributedBy {
    /// The gate serves one tenant: every transaction is its.
    OnlyTenant,
    /// A trusted certificate name is an accepted domain of the tenant, or lies under the
    /// accepted domain of one of its `*.` certificate connectors.
    Certificate,
    /// The P1 (`MAIL FROM`) domain is an accepted domain of the tenant.
    EnvelopeSender,
    /// The first recipient that is in a tenant's accepted domain.
    Recipient,
    /// Named by the admin (`relaygate check --tenant`), not found from the facts.
    Given,
}

impl AttributedBy {
    /// The log's, `check`'s and the examples' word for it.
    pub fn as_str(self) -> &'static str {
        match self {
            AttributedBy::OnlyTenant => "only tenant",
            AttributedBy::Certificate => "certificate",
            AttributedBy::EnvelopeSender => "P1",
            AttributedBy::Recipient => "recipient",
            AttributedBy::Given => "given",
        }
    }
}

/// The tenant of a transaction: its index among the configured tenants, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attribution {
    pub tenant: usize,
    pub by: AttributedBy,
}

/// The tenant whose accepted domains cover `domain`. At most one does: the configuration
/// refuses a domain accepted by two tenants, as Exchange Online does.
pub fn tenant_of_domain<T: AsRef<Tenant>>(tenants: &[T], domain: &str) -> Option<usize> {
    tenants
        .iter()
        .position(|t| t.as_ref().accepted_domain(domain).is_some())
}

/// Whether a trusted certificate name points at `tenant`: it is one of its accepted domains,
/// or it matches one of its enabled `*.` OnPremises certificate connectors whose domain is
/// accepted (`mail.contoso.com` under `*.contoso.com`).
pub fn certificate_points_at(tenant: &Tenant, name: &str) -> bool {
    tenant.accepted_domain(name).is_some()
        || tenant.inbound_connectors.iter().any(|c| {
            c.enabled
                && c.connector_type == ConnectorType::OnPremises
                && matches!(&c.tls_sender_certificate_name,
                    Some(w @ CertificateName::Wildcard(base))
                        if w.matches(name) && tenant.accepted_domain(base).is_some())
        })
}

/// The tenant the sender shows, known once `MAIL FROM` is: by the certificate when its names
/// point at exactly one tenant, else by the P1 domain. `None`: the first recipient decides.
pub fn attribute_sender<T: AsRef<Tenant>>(
    tenants: &[T],
    certificate_names: &[String],
    reverse_path: ReversePath<'_>,
) -> Option<Attribution> {
    if tenants.len() == 1 {
        return Some(Attribution {
            tenant: 0,
            by: AttributedBy::OnlyTenant,
        });
    }
    let mut by_certificate = (0..tenants.len()).filter(|&i| {
        certificate_names
            .iter()
            .any(|n| certificate_points_at(tenants[i].as_ref(), n))
    });
    // Names pointing at two tenants (two SANs) attribute nothing: the P1 domain decides.
    if let (Some(tenant), None) = (by_certificate.next(), by_certificate.next()) {
        return Some(Attribution {
            tenant,
            by: AttributedBy::Certificate,
        });
    }
    match reverse_path {
        ReversePath::Domain(p1) => tenant_of_domain(tenants, p1).map(|tenant| Attribution {
            tenant,
            by: AttributedBy::EnvelopeSender,
        }),
        ReversePath::Null => None,
    }
}

/// The tenant a recipient attributes a transaction the sender did not attribute.
pub fn attribute_recipient<T: AsRef<Tenant>>(
    tenants: &[T],
    recipient: &str,
) -> Option<Attribution> {
    let domain = domain_of(recipient)?;
    tenant_of_domain(tenants, domain).map(|tenant| Attribution {
        tenant,
        by: AttributedBy::Recipient,
    })
}

/// The relay decision of a transaction attributed to `attributed` (none: [`RelayDenial::NoTenant`]).
pub fn authorize_relay_among<T: AsRef<Tenant>>(
    tenants: &[T],
    attributed: Option<usize>,
    profile: Profile,
    session: &SessionFacts<'_>,
    reverse_path: ReversePath<'_>,
    header_sender: HeaderSender<'_>,
) -> RelayDecision {
    match attributed {
        Some(i) => authorize_relay(
            tenants[i].as_ref(),
            profile,
            session,
            reverse_path,
            header_sender,
        ),
        None => RelayDecision::Denied(RelayDenial::NoTenant),
    }
}

/// The verdict for one recipient of a transaction attributed to `attributed`: another tenant's
/// recipient gets 452 4.5.3; the rest are judged by the attributed tenant's own rules. A
/// transaction no tenant is attributed to is relay nobody authorised (5.7.64).
pub fn judge_recipient_among<T: AsRef<Tenant>>(
    tenants: &[T],
    attributed: Option<usize>,
    session: &SessionFacts<'_>,
    reverse_path: ReversePath<'_>,
    relay: &RelayDecision,
    recipient: &str,
) -> RecipientVerdict {
    let Some(own) = attributed else {
        return RecipientVerdict::Reject(Rejection::RelayAccessDenied(RelayDenial::NoTenant));
    };
    let owner = domain_of(recipient).and_then(|d| tenant_of_domain(tenants, d));
    match owner {
        Some(other) if other != own => RecipientVerdict::Reject(Rejection::OtherTenantRecipient {
            tenant: tenants[other].as_ref().name.clone(),
        }),
        _ => judge_recipient(
            tenants[own].as_ref(),
            session,
            reverse_path,
            relay,
            recipient,
        ),
    }
}

/// A whole transaction among several tenants under `profile`, judged as the session judges it
/// recipient by recipient: attributed to the `given` tenant, else by the sender if it can be;
/// otherwise a recipient that belongs to no tenant is refused (5.7.64, nobody's relay) until one
/// that does attributes the transaction to its tenant.
pub fn evaluate_among<T: AsRef<Tenant>, S: AsRef<str>>(
    tenants: &[T],
    given: Option<usize>,
    profile: Profile,
    session: &SessionFacts<'_>,
    reverse_path: ReversePath<'_>,
    header_sender: HeaderSender<'_>,
    recipients: &[S],
) -> Evaluation {
    let relay_of = |a: Option<Attribution>| {
        authorize_relay_among(
            tenants,
            a.map(|a| a.tenant),
            profile,
            session,
            reverse_path,
            header_sender,
        )
    };
    let mut attribution = match given {
        Some(tenant) => Some(Attribution {
            tenant,
            by: AttributedBy::Given,
        }),
        None => attribute_sender(tenants, session.certificate_names, reverse_path),
    };
    let mut relay = relay_of(attribution);
    let mut judged = Vec::with_capacity(recipients.len());
    for r in recipients {
        let r = r.as_ref();
        if attribution.is_none() {
            attribution = attribute_recipient(tenants, r);
            if attribution.is_some() {
                relay = relay_of(attribution);
            }
        }
        let verdict = judge_recipient_among(
            tenants,
            attribution.map(|a| a.tenant),
            session,
            reverse_path,
            &relay,
            r,
        );
        judged.push((r.to_string(), verdict));
    }
    Evaluation {
        profile,
        relay,
        recipients: judged,
        attribution,
    }
}

impl Comparison {
    /// The same transaction among several tenants under both profiles (see [`evaluate_among`]).
    pub fn evaluate_among<T: AsRef<Tenant>, S: AsRef<str>>(
        tenants: &[T],
        given: Option<usize>,
        session: &SessionFacts<'_>,
        reverse_path: ReversePath<'_>,
        header_sender: HeaderSender<'_>,
        recipients: &[S],
    ) -> Comparison {
        let one = |profile| {
            evaluate_among(
                tenants,
                given,
                profile,
                session,
                reverse_path,
                header_sender,
                recipients,
            )
        };
        Comparison {
            exo_2023: one(Profile::Exo2023),
            exo_legacy: one(Profile::ExoLegacy),
        }
    }
}

/// The tenant an evaluation was attributed to, by name, for the log and `check`: empty when
/// none was, or when the gate has only its one unnamed tenant.
pub fn tenant_name<T: AsRef<Tenant>>(tenants: &[T], attribution: Option<Attribution>) -> &str {
    attribution.map_or("", |a| tenants[a.tenant].as_ref().name.as_str())
}
