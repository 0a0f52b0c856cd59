//! The explanation as an admin reads it (text) or a script does (JSON).

use super::Explanation;
use crate::policy::wording;
use crate::policy::{domain_of, Evaluation, RelayDecision};
use serde_json::{json, Value};
use std::fmt::Write as _;

impl Explanation<'_> {
    pub fn render_text(&self) -> String {
        let f = self.facts;
        let mut out = String::new();
        let _ = writeln!(out, "Sender");
        if let Some(tenant) = self.tenant_text() {
            let _ = writeln!(out, "  tenant           {tenant}");
        }
        let _ = writeln!(out, "  peer IP          {}", f.peer_ip);
        let _ = writeln!(
            out,
            "  certificate      {}",
            f.certificate_note.as_deref().unwrap_or("none")
        );
        let _ = writeln!(
            out,
            "  TLS              {}: {}",
            wording::tls(f.tls),
            f.tls_note
        );
        let p1 = if f.mail_from.is_empty() {
            "<> (null sender: no domain)".to_string()
        } else {
            match domain_of(&f.mail_from) {
                Some(d) => format!("<{}>: {d} is {}", f.mail_from, self.accepted_text(d)),
                None => format!("<{}>: no domain", f.mail_from),
            }
        };
        if let Some((rule, given)) = &f.rewritten_from {
            let given = if given.is_empty() {
                "<>".to_string()
            } else {
                format!("<{given}>")
            };
            let _ = writeln!(
                out,
                "  P1 as given      {given}: rewritten by rewrite[{rule}] to the sender below, which is judged and sent upstream (the From: header is not changed)"
            );
        }
        let _ = writeln!(out, "  P1 MAIL FROM     {p1}");
        if let Some((user, may_send_as)) = &f.user {
            let send_as = if *may_send_as {
                "its allowed_senders cover the P1: relay authorized as for an authenticated mailbox"
                    .to_string()
            } else {
                format!(
                    "its allowed_senders do not cover the P1: {} at MAIL",
                    crate::policy::send_as_refusal().to_line()
                )
            };
            let _ = writeln!(
                out,
                "  user             authenticated as {user} (SMTP AUTH): {send_as}"
            );
        }
        let p2 = match f.header_from.as_deref() {
            None => "none given".to_string(),
            Some(a) => match domain_of(a) {
                Some(d) => format!("{a}: {d} is {}", self.accepted_text(d)),
                None => format!("{a}: no domain"),
            },
        };
        let _ = writeln!(out, "  P2 From:         {p2}");
        let _ = writeln!(out, "\nInbound connectors");
        let connectors = self.connectors();
        if connectors.is_empty() {
            let _ = writeln!(out, "  (none configured)");
        }
        for (name, what) in connectors {
            let _ = writeln!(out, "  {name}: {what}");
        }
        if self.profiles.len() == 2 {
            out.push_str(&self.side_by_side());
        }
        for &p in &self.profiles {
            let e = self.comparison.get(p);
            let _ = writeln!(out, "\n{}", Self::profile_title(p));
            let _ = writeln!(out, "  condition 2  {}", self.condition2(e));
            let c1 = self.condition1(e);
            let _ = writeln!(out, "  condition 1  {}", c1[0]);
            for l in &c1[1..] {
                let _ = writeln!(out, "             {l}");
            }
            for (i, (address, v)) in e.recipients.iter().enumerate() {
                let (what, line) = self.recipient(p, i, v);
                let _ = writeln!(out, "  RCPT <{address}>  {what}");
                if let Some(line) = line {
                    let _ = writeln!(out, "      {line}");
                }
            }
            let _ = writeln!(out, "  verdict      {}", e.verdict());
        }
        if let Some(note) = self.change_note() {
            let _ = writeln!(out, "\n{note}");
        }
        if let Some(fix) = self.shown_fix() {
            let _ = writeln!(out, "\nFix (exo-2023): {fix}");
        }
        out
    }

    /// The two profiles in two columns, one short cell per step, before the details.
    fn side_by_side(&self) -> String {
        let c2 = |e: &Evaluation| wording::condition2_cell(e.relay.condition2());
        let c1 =
            |e: &Evaluation| wording::condition1_cell(self.condition1_held(e.profile).as_ref());
        let rcpt = wording::recipient_cell;
        let (new, old) = (&self.comparison.exo_2023, &self.comparison.exo_legacy);
        let mut rows = vec![
            ("condition 2".to_string(), c2(new), c2(old)),
            ("condition 1".to_string(), c1(new), c1(old)),
        ];
        for ((address, a), (_, b)) in new.recipients.iter().zip(&old.recipients) {
            rows.push((format!("<{address}>"), rcpt(a), rcpt(b)));
        }
        rows.push((
            "verdict".into(),
            new.verdict().to_string(),
            old.verdict().to_string(),
        ));
        let w0 = rows.iter().map(|r| r.0.len()).max().unwrap_or(0).max(11);
        let w1 = rows.iter().map(|r| r.1.len()).max().unwrap_or(0).max(8);
        let mut out = format!(
            "\nSide by side\n  {:w0$}  {:w1$}  exo-legacy\n",
            "", "exo-2023"
        );
        for (step, a, b) in rows {
            let mark = if a != b { "  <- differs" } else { "" };
            let _ = writeln!(out, "  {step:w0$}  {a:w1$}  {b}{mark}");
        }
        out
    }

    pub fn render_json(&self) -> Value {
        let f = self.facts;
        let profiles: serde_json::Map<String, Value> = self
            .profiles
            .iter()
            .map(|&p| {
                let e = self.comparison.get(p);
                let recipients: Vec<Value> = e
                    .recipients
                    .iter()
                    .enumerate()
                    .map(|(i, (a, v))| {
                        let (what, line) = self.recipient(p, i, v);
                        json!({"address": a, "outcome": what, "reply": line})
                    })
                    .collect();
                let branch1 = match &e.relay {
                    RelayDecision::Authorized { condition1, .. } => Some(condition1.branch()),
                    RelayDecision::Authenticated { .. } => Some("auth"),
                    _ => None,
                };
                let condition2 = e.relay.condition2();
                (
                    p.as_str().to_string(),
                    json!({
                        "relay_authorized": matches!(e.relay, RelayDecision::Authorized { .. } | RelayDecision::Authenticated { .. }),
                        "condition1_branch": branch1,
                        "condition1": self.condition1(e).join("\n"),
                        "condition2_by": condition2.map(|c| c.branch()),
                        "connector": condition2.map(|c| c.connector()),
                        "condition2": self.condition2(e),
                        "recipients": recipients,
                        "verdict": e.verdict().to_string(),
                    }),
                )
            })
            .collect();
        let tenant = self
            .attribution
            .map(|a| self.settings.tenants[a.tenant].name());
        json!({
            "tenant": tenant,
            "attributed_by": self.attribution.map(|a| a.by.as_str()),
            "peer_ip": f.peer_ip.to_string(),
            "certificate_names": f.certificate_names,
            "certificate": f.certificate_note,
            "tls": f.tls,
            "tls_note": f.tls_note,
            "mail_from": f.rewritten_from.as_ref().map_or(&f.mail_from, |(_, given)| given),
            "rewritten_to": f.rewritten_from.as_ref().map(|_| &f.mail_from),
            "rewrite_rule": f.rewritten_from.as_ref().map(|(i, _)| i),
            "header_from": f.header_from,
            "user": f.user.as_ref().map(|(u, _)| u),
            "may_send_as": f.user.as_ref().map(|(_, may)| may),
            "connectors": self.connectors().into_iter().map(|(n, w)| json!({"connector": n, "match": w})).collect::<Vec<_>>(),
            "profiles": Value::Object(profiles),
            "broken_by_november_2023": self.comparison.broken_by_november_2023(),
            "fix": self.shown_fix(),
            "deciding_profile": self.deciding.as_str(),
            "exit_status": self.exit_status(),
        })
    }
}
