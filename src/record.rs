//! The transaction record: the one event the gate logs per transaction, as a type.
//!
//! The session builds a [`TransactionRecord`] and [emits](TransactionRecord::emit) it; `relaygate
//! report` deserialises the [`FlowRecord`] part of each JSON line back with serde. One type on
//! both sides means a field renamed here is renamed for both, and the round-trip test below
//! fails if the emitted event and the type ever disagree.
//!
//! It is emitted through `tracing` field by field rather than as one serialised JSON value:
//! `tracing`'s JSON formatter can only nest a value as an escaped string, which would bury every
//! field a log reader or `jq` looks for; and the text log would show one unreadable blob. Field
//! by field, the JSON line has the same top-level names it always had and the text log keeps its
//! `key=value` form. The price is that `tracing` records strings, numbers and booleans only, so
//! the two lists (`certificate_names`, `recipients`) are kept as their text.

use crate::policy::enforcement::Mode;
use crate::policy::{Profile, RecordedVerdict};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The `tracing` target of the transaction event: what `relaygate report` looks for.
pub const TARGET: &str = "relaygate::transaction";

/// One transaction, as logged (field names are the log's; the README documents them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransactionRecord {
    /// The session id, as in the reply suffix `[host time id]`.
    pub session: String,
    /// The tenant the transaction was attributed to (`[[tenants]] name`); empty when the gate
    /// has one unnamed tenant or no tenant was attributed. Absent from older logs, so optional
    /// when read.
    #[serde(default)]
    pub tenant: String,
    /// The user the client authenticated as on a submission listener; empty on the relay
    /// listener. Absent from older logs, so optional when read.
    #[serde(default)]
    pub user: String,
    /// The listener the session came from: `relay`, `submission` or `submission-implicit-tls`.
    /// Absent from older logs, so optional when read.
    #[serde(default)]
    pub listener: String,
    pub peer: String,
    pub helo: String,
    /// The TLS version and cipher, or `none`.
    pub tls: String,
    /// The client certificate's names as a list (`["mail.contoso.com"]`), trusted or not.
    pub certificate_names: String,
    pub certificate_trusted: bool,
    /// The envelope sender as the client gave it.
    pub p1: String,
    /// The envelope sender a `[[rewrite]]` rule set instead (what the policy judged and the
    /// upstream got); empty when none applied. Absent from older logs.
    #[serde(default)]
    pub rewritten_to: String,
    pub p2: String,
    /// Each recipient with its outcome, as a list (`["bob@example.org=550 5.7.64"]`).
    pub recipients: String,
    pub size: u64,
    pub profile: Profile,
    pub mode: Mode,
    /// [`crate::policy::wording::relay`].
    pub relay: String,
    /// [`crate::policy::wording::relay_branch`].
    pub branch: String,
    /// [`crate::policy::wording::condition1_by`]: `certificate domain`, `P1 domain`, `P2
    /// domain`, `SMTP AUTH` or `none`. Absent from older logs, so optional when read.
    #[serde(default)]
    pub condition1_by: String,
    pub connector: String,
    /// The reply line the client got.
    pub reply: String,
    /// In audit mode, what enforce mode would have answered instead; else empty.
    pub enforce_would_reply: String,
    /// The DSN parameters the upstream got the transaction without, because it does not offer
    /// DSN ([`crate::wire::dsn::Dropped`]: `RET=HDRS ENVID NOTIFY ORCPT`); else empty. Absent
    /// from older logs, so optional when read.
    #[serde(default)]
    pub dsn_dropped: String,
    /// The message's `Message-ID` header as the client wrote it (bounded, printable:
    /// [`crate::wire::header::message_id`]); empty when it had none or the transaction ended
    /// before its header. Message Trace searches by it. Absent from older logs.
    #[serde(default)]
    pub message_id: String,
    /// The upstream's final reply to the message, as received (lines joined by ` / `): Exchange
    /// Online's `250 2.6.0 <message-id> [InternalId=..., Hostname=...] ... Queued mail for
    /// delivery` names the server that has it. Empty when the upstream never answered the
    /// message (refused at the gate, or the upstream failed). Absent from older logs.
    #[serde(default)]
    pub upstream_reply: String,
    #[serde(flatten)]
    pub flow: FlowRecord,
}

/// What an audit needs of a transaction: the flow it belongs to and its verdict under both
/// profiles. `relaygate report` reads only this, so logs of older gates (or other tools) that
/// have these fields are reports too.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowRecord {
    /// [`crate::policy::wording::identity`].
    pub identity: String,
    /// The P1 domain, normalised; empty for the null sender.
    pub p1_domain: String,
    /// The P2 domain, normalised; empty when there was no `From:` address.
    pub p2_domain: String,
    pub exo_2023: RecordedVerdict,
    pub exo_legacy: RecordedVerdict,
    /// Derived from the two verdicts; absent from hand-made logs, so optional when read.
    #[serde(default)]
    pub broken_by_november_2023: bool,
    /// [`crate::policy::suggest_fix`] for exo-2023, or empty.
    #[serde(default)]
    pub fix: String,
}

impl TransactionRecord {
    /// Write the event at INFO. String fields the gate fills from its own words are written
    /// with `%` (bare in the text log), those a client or the configuration controls as
    /// strings (quoted in the text log, so a space cannot fake another field).
    pub fn emit(&self) {
        let f = &self.flow;
        tracing::info!(
            target: TARGET,
            session = %self.session,
            tenant = self.tenant.as_str(),
            user = self.user.as_str(),
            listener = %self.listener,
            peer = %self.peer,
            helo = self.helo.as_str(),
            tls = self.tls.as_str(),
            certificate_names = %self.certificate_names,
            certificate_trusted = self.certificate_trusted,
            p1 = %self.p1,
            rewritten_to = %self.rewritten_to,
            p2 = self.p2.as_str(),
            recipients = %self.recipients,
            size = self.size,
            profile = self.profile.as_str(),
            mode = self.mode.as_str(),
            relay = self.relay.as_str(),
            branch = %self.branch,
            condition1_by = %self.condition1_by,
            connector = %self.connector,
            reply = %self.reply,
            enforce_would_reply = self.enforce_would_reply.as_str(),
            dsn_dropped = %self.dsn_dropped,
            message_id = self.message_id.as_str(),
            upstream_reply = self.upstream_reply.as_str(),
            identity = %f.identity,
            p1_domain = f.p1_domain.as_str(),
            p2_domain = f.p2_domain.as_str(),
            exo_2023 = %f.exo_2023,
            exo_legacy = %f.exo_legacy,
            broken_by_november_2023 = f.broken_by_november_2023,
            fix = f.fix.as_str(),
            "transaction"
        );
    }
}

/// A list of strings as the log shows it: `["a", "b"]`.
pub fn list_text(items: &[impl AsRef<str>]) -> String {
    let items: Vec<&str> = items.iter().map(AsRef::as_ref).collect();
    format!("{items:?}")
}

// The verdict is logged in the words an admin greps for (`refused 550 5.7.64`), so those words
// are its serialised form too.
impl Serialize for RecordedVerdict {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for RecordedVerdict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = std::borrow::Cow::<'de, str>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Captured {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    fn record() -> TransactionRecord {
        TransactionRecord {
            session: "6F1C2D3E4A5B6C7D".into(),
            tenant: "contoso".into(),
            user: "scanner".into(),
            listener: "submission".into(),
            peer: "127.0.0.1:50312".into(),
            helo: "printer contoso".into(),
            tls: "none".into(),
            certificate_names: list_text(&["mail.contoso.com"]),
            certificate_trusted: true,
            p1: "app@example.net".into(),
            rewritten_to: String::new(),
            p2: "app@contoso.com".into(),
            recipients: list_text(&["bob@example.org=550 5.7.64"]),
            size: 2048,
            profile: Profile::Exo2023,
            mode: Mode::Audit,
            relay: "relay not authorized".into(),
            branch: "2 by ip; 1 failed: neither certificate domain nor sender domain is accepted"
                .into(),
            condition1_by: "none".into(),
            connector: "OnPrem by IP".into(),
            reply: "250 2.6.0 Message accepted".into(),
            enforce_would_reply: "550 5.7.64 TenantAttribution; Relay Access Denied".into(),
            dsn_dropped: "RET=HDRS ENVID NOTIFY".into(),
            message_id: "<1234@app.contoso.com>".into(),
            upstream_reply: "250 2.6.0 <1234@app.contoso.com> [InternalId=1, Hostname=AM0PR01MB0001.eurprd01.prod.exchangelabs.com] Queued mail for delivery".into(),
            flow: FlowRecord {
                identity: "certificate mail.contoso.com".into(),
                p1_domain: "example.net".into(),
                p2_domain: "contoso.com".into(),
                exo_2023: RecordedVerdict::Refused {
                    code: 550,
                    enhanced: "5.7.64".into(),
                },
                exo_legacy: RecordedVerdict::Accepted,
                broken_by_november_2023: true,
                fix: "add example.net as an accepted domain".into(),
            },
        }
    }

    #[test]
    fn the_json_event_deserialises_back_into_the_record() {
        let out = Captured::default();
        let writer = out.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_writer(move || writer.clone())
            .finish();
        let sent = record();
        tracing::subscriber::with_default(subscriber, || sent.emit());
        let line = out.text();
        let event: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(event["target"], TARGET);
        assert_eq!(event["exo_2023"], "refused 550 5.7.64");
        assert_eq!(event["mode"], "audit");
        assert_eq!(event["tenant"], "contoso");
        assert_eq!(event["profile"], "exo-2023");
        assert_eq!(event["dsn_dropped"], "RET=HDRS ENVID NOTIFY");
        assert_eq!(event["condition1_by"], "none");
        assert_eq!(event["message_id"], "<1234@app.contoso.com>");
        assert!(event["upstream_reply"]
            .as_str()
            .unwrap()
            .starts_with("250 2.6.0 <1234@app.contoso.com> [InternalId=1,"));
        let read: TransactionRecord = serde_json::from_str(&line).unwrap();
        assert_eq!(read, sent);
    }

    #[test]
    fn the_text_event_quotes_what_a_client_controls() {
        let out = Captured::default();
        let writer = out.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || record().emit());
        let line = out.text();
        assert!(line.contains(" helo=\"printer contoso\" "), "{line}");
        assert!(line.contains(" exo_2023=refused 550 5.7.64 "), "{line}");
        assert!(
            line.contains(" recipients=[\"bob@example.org=550 5.7.64\"] "),
            "{line}"
        );
    }

    #[test]
    fn verdicts_other_than_the_three_forms_are_refused() {
        for bad in ["refused", "refused 550", "refused x 5.7.64", "Accepted", ""] {
            assert!(
                serde_json::from_value::<RecordedVerdict>(bad.into()).is_err(),
                "{bad:?}"
            );
        }
    }
}
