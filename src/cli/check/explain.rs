//! The walk through the rules for one transaction, computed once for both renderings.

use super::Facts;
use crate::config::{PolicyDefaults, Settings};
use crate::policy::enforcement;
use crate::policy::wording;
use crate::policy::{
    self, domain_of, suggest_fix, Attribution, Comparison, Condition1, ConnectorType, Evaluation,
    HeaderSender, Profile, RecipientVerdict, ReversePath, SessionFacts, Tenant, Verdict,
};
use crate::session::SessionId;
use crate::wire::reply::exo_suffix;
use std::time::SystemTime;

/// The whole explanation, computed once and rendered as text or JSON.
pub struct Explanation<'a> {
    pub(super) settings: &'a Settings,
    pub(super) facts: &'a Facts,
    /// The profiles to show, in order.
    pub(super) profiles: Vec<Profile>,
    /// The transaction judged with its header block known: the verdicts shown.
    pub(super) comparison: Comparison,
    /// The same judged at RCPT time, before the header block: when a refusal is answered
    /// depends on what the gate knew then.
    at_rcpt: Comparison,
    fix: Option<String>,
    /// The profile whose verdict decides the exit status.
    pub(super) deciding: Profile,
    suffix: String,
    /// The tenant the transaction is attributed to (given with `--tenant`, or found from the
    /// facts as the session finds it); `None` when no tenant is.
    pub(super) attribution: Option<Attribution>,
    /// What an unattributed transaction is judged against: a tenant with nothing accepted.
    nobody: Tenant,
}

impl<'a> Explanation<'a> {
    /// `profile`: show only this one; `None`: both, and the exit status follows the profile the
    /// configuration enforces. `tenant`: the index of the tenant given with `--tenant`; `None`:
    /// the tenant is attributed from the facts, as the session does.
    pub fn new(
        settings: &'a Settings,
        facts: &'a Facts,
        profile: Option<Profile>,
        tenant: Option<usize>,
    ) -> Self {
        let tenants = &settings.tenants;
        let session = SessionFacts {
            peer_ip: facts.peer_ip,
            certificate_names: &facts.certificate_names,
            tls: facts.tls,
            submitter: facts.submitter(),
        };
        let p1 = ReversePath::of_address(&facts.mail_from);
        let p2 = HeaderSender::of_address(facts.header_from.as_deref());
        let comparison =
            Comparison::evaluate_among(tenants, tenant, &session, p1, p2, &facts.recipients);
        let at_rcpt = Comparison::evaluate_among(
            tenants,
            tenant,
            &session,
            p1,
            HeaderSender::NotYetKnown,
            &facts.recipients,
        );
        let attribution = comparison.exo_2023.attribution;
        let nobody = Tenant::default();
        let judged_by = attribution.map_or(&nobody, |a| &tenants[a.tenant].policy.tenant);
        let fix = suggest_fix(judged_by, &session, p1, p2, &comparison.exo_2023);
        let rule = rule(settings, attribution);
        Explanation {
            settings,
            facts,
            profiles: match profile {
                Some(p) => vec![p],
                None => vec![Profile::Exo2023, Profile::ExoLegacy],
            },
            comparison,
            at_rcpt,
            fix,
            deciding: profile.unwrap_or(rule.profile),
            suffix: exo_suffix(
                &settings.server.hostname,
                SystemTime::now(),
                SessionId::new(),
            ),
            attribution,
            nobody,
        }
    }

    /// The tenant's name and how it was found, for the `tenant` line: `None` when the gate
    /// serves its one unnamed tenant (nothing to say).
    pub(super) fn tenant_text(&self) -> Option<String> {
        if !self.settings.named_tenants() {
            return None;
        }
        Some(match self.attribution {
            Some(a) => format!(
                "{} (by {})",
                self.settings.tenants[a.tenant].name(),
                a.by.as_str()
            ),
            None => format!(
                "none: {}",
                wording::NO_TENANT.trim_start_matches("no tenant: ")
            ),
        })
    }

    /// 0 when every recipient is accepted under the deciding profile, 1 otherwise.
    pub fn exit_status(&self) -> u8 {
        match self.comparison.get(self.deciding).verdict() {
            Verdict::Accepted => 0,
            Verdict::Refused(_) | Verdict::Undecided => 1,
        }
    }

    /// The attributed tenant, whose rules judge the transaction (a tenant with nothing in it
    /// when none is).
    pub(super) fn tenant(&self) -> &Tenant {
        self.attribution.map_or(&self.nobody, |a| {
            &self.settings.tenants[a.tenant].policy.tenant
        })
    }

    pub(super) fn accepted_text(&self, domain: &str) -> String {
        match self.tenant().accepted_domain(domain) {
            Some(a) if a.domain == policy::normalise(domain) => {
                format!("an accepted domain ({:?})", a.domain_type)
            }
            Some(a) => format!(
                "accepted through {} ({:?}, MatchSubDomains)",
                a.domain, a.domain_type
            ),
            None => "not an accepted domain".to_string(),
        }
    }

    /// One line per inbound connector: does it match this sender, and by what.
    pub(super) fn connectors(&self) -> Vec<(String, String)> {
        self.tenant()
            .inbound_connectors
            .iter()
            .map(|c| {
                let kind = c.connector_type.as_str();
                let by_ip = c.matches_ip(self.facts.peer_ip);
                let by_cert = c.matches_certificate(&self.facts.certificate_names);
                let what = if !c.enabled {
                    "disabled: matches nothing".to_string()
                } else if c.connector_type == ConnectorType::Partner {
                    let mut what = "Partner: never authorises relay".to_string();
                    if c.require_tls {
                        let p1 = ReversePath::of_address(&self.facts.mail_from);
                        what.push_str("; ");
                        what.push_str(&wording::require_tls_sentence(
                            &c.name,
                            c.covers_sender(p1),
                            self.facts.tls,
                        ));
                    }
                    what
                } else {
                    let mut parts = Vec::new();
                    if !c.sender_ip_addresses.is_empty() {
                        let list: Vec<String> = c
                            .sender_ip_addresses
                            .iter()
                            .map(|n| n.to_string())
                            .collect();
                        parts.push(format!(
                            "SenderIPAddresses {}: {}",
                            list.join(", "),
                            if by_ip { "matched" } else { "no match" }
                        ));
                    }
                    if let Some(name) = &c.tls_sender_certificate_name {
                        let result = if by_cert {
                            "matched"
                        } else if self.facts.certificate_names.is_empty() {
                            "no trusted certificate presented"
                        } else {
                            "no match"
                        };
                        parts.push(format!("TlsSenderCertificateName {name}: {result}"));
                    }
                    if parts.is_empty() {
                        "neither SenderIPAddresses nor TlsSenderCertificateName: matches nothing"
                            .to_string()
                    } else {
                        parts.join("; ")
                    }
                };
                (format!("{} ({kind})", c.name), what)
            })
            .collect()
    }

    pub(super) fn condition2(&self, e: &Evaluation) -> String {
        wording::condition2_sentence(e.relay.condition2())
    }

    /// Why each branch of condition 1 held or not, under `profile`.
    /// Condition 1 judged on its own: the engine stops at a failed condition 2, the admin
    /// still wants to know whether the sender would be attributed.
    pub(super) fn condition1_held(&self, profile: Profile) -> Option<Condition1> {
        let session = SessionFacts {
            peer_ip: self.facts.peer_ip,
            certificate_names: &self.facts.certificate_names,
            tls: self.facts.tls,
            submitter: self.facts.submitter(),
        };
        policy::condition1(
            self.tenant(),
            profile,
            &session,
            ReversePath::of_address(&self.facts.mail_from),
            HeaderSender::of_address(self.facts.header_from.as_deref()),
        )
    }

    pub(super) fn condition1(&self, e: &Evaluation) -> Vec<String> {
        let mut lines = Vec::new();
        if let Some(c1) = self.condition1_held(e.profile) {
            lines.push(match &c1 {
                Condition1::CertificateDomain {
                    connector,
                    accepted_domain,
                } => format!(
                    "held by 1a: connector \"{connector}\" matched the certificate and its name's domain {accepted_domain} is an accepted domain"
                ),
                Condition1::EnvelopeSender { domain } => {
                    format!("held by 1b: the P1 (MAIL FROM) domain {domain} is {}", self.accepted_text(domain))
                }
                Condition1::HeaderSender { domain } => format!(
                    "held by 1c: the P2 (From:) domain {domain} is {} (exo-legacy only)",
                    self.accepted_text(domain)
                ),
            });
            if e.relay.condition2().is_none() {
                lines.push("  (but condition 2 failed, so relay is not authorised)".to_string());
            }
            return lines;
        }
        lines.push("failed:".into());
        // 1a
        let cert_connectors: Vec<_> = self
            .tenant()
            .inbound_connectors
            .iter()
            .filter(|c| {
                c.connector_type == ConnectorType::OnPremises
                    && c.matches_certificate(&self.facts.certificate_names)
            })
            .collect();
        if cert_connectors.is_empty() {
            lines.push(if self.facts.certificate_names.is_empty() {
                "  1a: no trusted client certificate".to_string()
            } else {
                "  1a: no OnPremises connector's TlsSenderCertificateName matches the certificate"
                    .to_string()
            });
        } else {
            for c in cert_connectors {
                let d = c
                    .tls_sender_certificate_name
                    .as_ref()
                    .map(|n| n.domain())
                    .unwrap_or_default();
                lines.push(format!(
                    "  1a: connector \"{}\" matched the certificate, but {d} is {}",
                    c.name,
                    self.accepted_text(d)
                ));
            }
        }
        // 1b
        lines.push(match domain_of(&self.facts.mail_from) {
            None => "  1b: the P1 is the null sender <>, which has no domain".to_string(),
            Some(d) => format!("  1b: the P1 domain {d} is {}", self.accepted_text(d)),
        });
        // 1c
        let p2 = self.facts.header_from.as_deref().and_then(domain_of);
        lines.push(match (e.profile, p2) {
            (Profile::Exo2023, Some(d)) => format!(
                "  1c: the P2 (From:) domain {d} does not count since 1 November 2023, whether accepted or not"
            ),
            (Profile::Exo2023, None) => {
                "  1c: the From: header does not count since 1 November 2023".to_string()
            }
            (Profile::ExoLegacy, Some(d)) => {
                format!(
                    "  1c: the P2 (From:) domain {d} is {}",
                    self.accepted_text(d)
                )
            }
            (Profile::ExoLegacy, None) => "  1c: no From: header address".to_string(),
        });
        lines
    }

    /// The reply a recipient gets and when, as Exchange Online would answer it.
    /// The answer to the `index`th recipient under `profile` and when it is given, by the
    /// rule the session follows: (what happens, the reply line of a refusal).
    pub(super) fn recipient(
        &self,
        profile: Profile,
        index: usize,
        verdict: &RecipientVerdict,
    ) -> (String, Option<String>) {
        if let Some(accepted) = wording::acceptance_sentence(verdict) {
            return (accepted, None);
        }
        let policy = rule(self.settings, self.attribution);
        let at_rcpt = self
            .at_rcpt
            .get(profile)
            .recipients
            .get(index)
            .map_or(verdict, |(_, v)| v);
        let Some((rejection, when)) = enforcement::refusal(policy.reject_stage, at_rcpt, verdict)
        else {
            return (wording::recipient_cell(verdict), None);
        };
        let mut reply = rejection.reply();
        reply.text.push_str(&self.suffix);
        let audit = !enforcement::refusals_answered(policy.mode);
        (
            wording::refusal_sentence(when, audit),
            Some(reply.to_line()),
        )
    }

    /// The fix is for exo-2023: shown only when that profile is.
    pub(super) fn shown_fix(&self) -> Option<&str> {
        if self.profiles.contains(&Profile::Exo2023) {
            self.fix.as_deref()
        } else {
            None
        }
    }

    pub(super) fn profile_title(p: Profile) -> &'static str {
        match p {
            Profile::Exo2023 => "exo-2023: Exchange Online since 1 November 2023",
            Profile::ExoLegacy => "exo-legacy: Exchange Online before 1 November 2023",
        }
    }

    pub(super) fn change_note(&self) -> Option<&'static str> {
        (self.profiles.len() == 2 && self.comparison.broken_by_november_2023()).then_some(
            "The November 2023 change is what makes the difference: before it, the From: header domain (1c) attributed this message to the tenant; now only the certificate (1a) or the MAIL FROM domain (1b) do.",
        )
    }
}

/// The profile, mode and stage the gate applies to a transaction of this tenant (the top-level
/// `[policy]` for none).
fn rule(settings: &Settings, attribution: Option<Attribution>) -> PolicyDefaults {
    attribution.map_or(settings.defaults, |a| {
        settings.tenants[a.tenant].policy.rule()
    })
}
