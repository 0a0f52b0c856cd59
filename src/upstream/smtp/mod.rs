//! The SMTP client leg, driven command by command.
//!
//! SMTP client crates abort on the first refused RCPT and want the whole message in memory, so
//! the gate speaks the client side itself: it needs each recipient's own reply and a streamed
//! DATA. Commands are rebuilt from parsed values, never copied from the client. Every reply is
//! checked against its command ([`Expect`]); any trouble drops the connection, so a connection
//! that comes back to the pool is always between transactions and in step.

mod ahead;
mod bdat;
mod pipelined;
mod text;

use super::connection::{Capabilities, Connection, Expect};
use super::open::{self, Route};
use super::pool::Pool;
use super::{format_path, Envelope, Follows, Stage, UpstreamError, UpstreamReply};
use crate::config::SmtpUpstreamSettings;
use crate::wire::data::DotStuffer;
use crate::wire::dsn::RcptDsn;
use bdat::Bdat;
use std::sync::Arc;
use std::time::Duration;

/// A pooled connection idle longer than this is checked with NOOP before reuse.
const POOL_CHECK_AFTER: Duration = Duration::from_secs(2);

/// What every SMTP leg of one configuration shares.
pub(super) struct SmtpShared {
    pub(super) settings: Arc<SmtpUpstreamSettings>,
    pub(super) helo_name: String,
    pub(super) pool: Pool<Connection>,
    pub(super) route: Route,
    /// The upstream once answered the NOOP behind a message sent ahead out of turn, or not at
    /// all: no envelope goes ahead to it any more ([`ahead`]).
    pub(super) ahead_distrusted: std::sync::atomic::AtomicBool,
}

/// One client session's SMTP upstream.
pub struct SmtpLeg {
    shared: Arc<SmtpShared>,
    conn: Option<Connection>,
    /// The connection came from the pool, or is held from an earlier transaction of this
    /// session: either sat idle and may have been closed by the upstream meanwhile.
    reused: bool,
    in_transaction: bool,
    stuffer: DotStuffer,
    wbuf: Vec<u8>,
    /// With DATA: whether the text so far ends with CRLF (else one goes before the final dot).
    last_text_ended_crlf: bool,
    /// The message in progress goes as BDAT chunks (the upstream offers CHUNKING).
    bdat: Option<Bdat>,
    /// With DATA: DATA was written and its answer not read yet, so the text is held, not sent
    /// (the answer is read while the text is already coming in: [`text`]).
    awaiting_354: bool,
    /// With DATA: the upstream refused DATA. This is the message's verdict, and its text is
    /// discarded. (Boxed: every session holds a leg, and a refusal is rare.)
    data_refusal: Option<Box<UpstreamReply>>,
    /// The upstream accepted a recipient in the transaction in progress.
    any_accepted: bool,
    /// DATA went with the last RCPT and the upstream answered 354; the message has not
    /// started yet ([`pipelined`]). (A refusal then waits in `data_refusal`.)
    data_go_ahead: bool,
    /// MAIL and the sole RCPT went out with their replies not read: they are read with the
    /// message's ([`ahead`]).
    envelope_ahead: bool,
}

impl SmtpLeg {
    pub(super) fn new(shared: Arc<SmtpShared>) -> SmtpLeg {
        SmtpLeg {
            shared,
            conn: None,
            reused: false,
            in_transaction: false,
            stuffer: DotStuffer::default(),
            wbuf: Vec::new(),
            last_text_ended_crlf: true,
            bdat: None,
            awaiting_354: false,
            data_refusal: None,
            any_accepted: false,
            data_go_ahead: false,
            envelope_ahead: false,
        }
    }

    fn reply_timeout(&self) -> Duration {
        self.shared.settings.reply_timeout
    }

    /// A new connection through greeting, EHLO and STARTTLS as configured.
    pub(super) async fn connect(shared: &SmtpShared) -> Result<Connection, UpstreamError> {
        open::connect(shared).await
    }

    /// A connection for the next transaction: a pooled one that is still in step (and, after
    /// a while idle, still answers NOOP), else a new one.
    async fn conn(&mut self) -> Result<&mut Connection, UpstreamError> {
        if self.conn.is_none() {
            self.reused = false;
            let wait = self.reply_timeout();
            while let Some((mut c, idle)) = self.shared.pool.take() {
                // Anything the upstream sent while the connection sat idle (a stray line, its
                // close) means it cannot carry a transaction. One idle for a while may have
                // been dropped without a word: NOOP tells. A recently used one is tried
                // directly (MAIL is retried on a new connection if it turns out dead).
                if c.ensure_in_step(Stage::Reuse).is_err() {
                    continue;
                }
                if idle < POOL_CHECK_AFTER
                    || matches!(c.command("NOOP", Expect::Completion, wait, Stage::Noop).await, Ok(r) if r.code == 250)
                {
                    self.conn = Some(c);
                    self.reused = true;
                    break;
                }
            }
        }
        if self.conn.is_none() {
            self.conn = Some(Self::connect(&self.shared).await?);
        }
        Ok(self.conn.as_mut().expect("just connected"))
    }

    /// Run commands (several only when the upstream offers PIPELINING); on trouble the
    /// connection is dropped so the next transaction starts clean.
    async fn exchange(
        &mut self,
        lines: &[String],
        stage: Stage,
    ) -> Result<Vec<UpstreamReply>, UpstreamError> {
        let wait = self.reply_timeout();
        let c = self.conn().await?;
        let last = match lines.last() {
            Some(l) if l == "DATA" => Expect::StartInput,
            _ => Expect::Completion,
        };
        let r = c.group(lines, Expect::Completion, last, wait, stage).await;
        self.settle(r, stage)
    }

    /// Drop the connection after trouble or a 421 (the upstream is closing: for the client
    /// that is trouble, not a verdict).
    fn settle(
        &mut self,
        r: Result<Vec<UpstreamReply>, UpstreamError>,
        stage: Stage,
    ) -> Result<Vec<UpstreamReply>, UpstreamError> {
        let closing = r
            .as_ref()
            .ok()
            .and_then(|replies| replies.iter().find(|reply| reply.code == 421))
            .map(UpstreamReply::summary);
        if r.is_err() || closing.is_some() {
            self.conn = None;
            self.in_transaction = false;
        }
        match closing {
            Some(reply) => Err(UpstreamError::Refused { stage, reply }),
            None => r,
        }
    }

    async fn exchange_one(
        &mut self,
        line: String,
        stage: Stage,
    ) -> Result<UpstreamReply, UpstreamError> {
        let mut replies = self.exchange(&[line], stage).await?;
        Ok(replies.remove(0))
    }

    /// Open the transaction with its first recipient: MAIL and RCPT in one round trip when the
    /// upstream offers PIPELINING (RFC 2920). Returns MAIL's reply and, if MAIL was accepted,
    /// RCPT's. `follows`: what the client sent right behind this RCPT: DATA ends the group
    /// where it may ([`pipelined`]); DATA or BDAT lets the envelope go ahead where it may
    /// ([`ahead`]).
    pub async fn mail_rcpt(
        &mut self,
        env: &Envelope,
        address: &str,
        dsn: &RcptDsn,
        follows: Follows,
    ) -> Result<(UpstreamReply, Option<UpstreamReply>), UpstreamError> {
        self.forget_data_answer();
        self.any_accepted = false;
        if self.in_transaction || self.envelope_ahead {
            // An upstream transaction this leg never ended (the session's transaction moved to
            // another tenant's leg, say): never start another on top of it.
            self.abort();
        }
        if let Some(c) = &self.conn {
            // Held from this session's last transaction: it sat idle while the client took
            // its time. Idle longer than a pooled connection may be, it is dropped as an
            // expired pooled one is (a firewall between may have forgotten it without a word,
            // and MAIL would then wait out the reply timeout). Otherwise the upstream may
            // still have closed it (Exchange Online drops idle connections) or said something
            // meanwhile: like a pooled one, it gets MAIL again on a new connection if it turns
            // out dead, as nothing of this transaction is out.
            if c.last_reply.elapsed() >= self.shared.settings.pool_idle_timeout {
                self.conn = None;
            } else {
                self.reused = true;
            }
        }
        let mut failovers = 0;
        // Built again for each connection: after a failover the next server may offer other
        // extensions (PIPELINING, SIZE, DSN, SMTPUTF8) than the one that failed.
        let (mut replies, rcpt, with_data) = loop {
            let caps = self.conn().await?.caps;
            if env.smtputf8 && !caps.smtputf8 {
                // RFC 6531 section 3.2: a relay must not pass such a message to a server
                // without SMTPUTF8. A permanent answer, like Exchange's own.
                let r = UpstreamReply::local(553, "5.6.7 The upstream does not support SMTPUTF8");
                return Ok((r, None));
            }
            let (mut lines, rcpt) = self.mail_lines(env, address, dsn, caps);
            let via = self.conn.as_ref().and_then(|c| c.via.clone());
            // Failover at MAIL only to another address: the same server again would most
            // likely fail the same way, and a single upstream keeps its old behaviour.
            let elsewhere = via
                .as_ref()
                .is_some_and(|t| open::has_alternative(&self.shared, t.addr));
            // Not on a new connection that could still fail over at MAIL: trouble there would
            // come back with the message's reply, too late to try the next address.
            let ahead = follows != Follows::Nothing
                && !env.binary_mime
                && (self.reused || !elsewhere)
                && self.may_send_ahead(caps);
            let with_data =
                follows == Follows::Data && !env.binary_mime && self.data_may_join(caps);
            if with_data {
                lines.push("DATA".into());
            }
            let sent = if ahead {
                self.send_ahead(&lines).await.map(|()| Vec::new())
            } else {
                self.exchange(&lines, Stage::Mail).await
            };
            match sent {
                // A pooled connection the upstream had closed or spoiled meanwhile, or (on a
                // new connection) an address failing at MAIL: nothing of this transaction is
                // committed yet, so once more on a new connection, which skips that address.
                Err(e) if mail_may_retry(&e, self.reused, elsewhere, failovers) => {
                    if let (false, Some(target)) = (self.reused, &via) {
                        open::failed(target, &e);
                        failovers += 1;
                    }
                    self.conn = Some(Self::connect(&self.shared).await?);
                    self.reused = false;
                }
                other => break (other?, rcpt, with_data),
            }
        };
        if replies.is_empty() {
            // Sent ahead: the replies come with the message's.
            self.in_transaction = true;
            self.any_accepted = true;
            self.envelope_ahead = true;
            return Ok(ahead::provisional());
        }
        let data_reply = if with_data { replies.pop() } else { None };
        let mail_reply = replies.remove(0);
        self.in_transaction = mail_reply.is_positive();
        if !mail_reply.is_positive() {
            // A pipelined RCPT after a refused MAIL only says "need MAIL"; MAIL's reply counts.
            if let Some(data) = data_reply {
                self.note_data_answer(data)?;
            }
            return Ok((mail_reply, None));
        }
        let rcpt_reply = match replies.pop() {
            Some(r) => r,
            None => self.exchange_one(rcpt, Stage::Rcpt).await?,
        };
        self.any_accepted |= rcpt_reply.is_positive();
        if let Some(data) = data_reply {
            self.note_data_answer(data)?;
        }
        Ok((mail_reply, Some(rcpt_reply)))
    }

    /// MAIL (and RCPT with it when the upstream offers PIPELINING), for a connection that
    /// offers `caps`; and the RCPT command on its own.
    fn mail_lines(
        &self,
        env: &Envelope,
        address: &str,
        dsn: &RcptDsn,
        caps: Capabilities,
    ) -> (Vec<String>, String) {
        let mut mail = format!("MAIL FROM:{}", format_path(&env.mail_from));
        if let (Some(size), true) = (env.size, caps.size) {
            mail.push_str(&format!(" SIZE={size}"));
        }
        if env.binary_mime && self.takes_binary_mime(caps) {
            mail.push_str(" BODY=BINARYMIME");
        } else if env.eight_bit && caps.eight_bit_mime {
            mail.push_str(" BODY=8BITMIME");
        }
        if env.smtputf8 {
            mail.push_str(" SMTPUTF8");
        }
        // Without DSN upstream the parameters are dropped (the session logs which).
        if caps.dsn {
            mail.push_str(&env.dsn.parameters());
        }
        let rcpt = rcpt_command(address, dsn, caps.dsn);
        let lines = if caps.pipelining {
            vec![mail, rcpt.clone()]
        } else {
            vec![mail]
        };
        (lines, rcpt)
    }

    /// A further recipient; `follows` as for [`SmtpLeg::mail_rcpt`] (only DATA counts here).
    pub async fn rcpt(
        &mut self,
        address: &str,
        dsn: &RcptDsn,
        follows: Follows,
    ) -> Result<UpstreamReply, UpstreamError> {
        if !self.in_transaction {
            // The upstream transaction this recipient would join is gone: a new MAIL here
            // would carry only the recipients from now on.
            return Err(UpstreamError::Dropped(Stage::Rcpt));
        }
        if let Some(refusal) = self.settle_envelope().await? {
            // The client was told 250 for a recipient sent ahead that the upstream refused
            // (it pipelined DATA, then added a recipient after all): the transaction cannot
            // carry what the client was told, so it goes no further.
            self.abort();
            return Err(UpstreamError::Refused {
                stage: Stage::Rcpt,
                reply: refusal.summary(),
            });
        }
        self.forget_data_answer();
        let line = rcpt_command(address, dsn, self.offers_dsn());
        let caps = self.conn.as_ref().map(|c| c.caps).unwrap_or_default();
        let with_data = follows == Follows::Data && self.data_may_join(caps);
        let mut lines = vec![line];
        if with_data {
            lines.push("DATA".into());
        }
        let mut replies = self.exchange(&lines, Stage::Rcpt).await?;
        let data_reply = if with_data { replies.pop() } else { None };
        let reply = replies.remove(0);
        self.any_accepted |= reply.is_positive();
        if let Some(data) = data_reply {
            self.note_data_answer(data)?;
        }
        Ok(reply)
    }

    /// Whether the connection in use offered DSN.
    pub fn offers_dsn(&self) -> bool {
        self.conn.as_ref().is_some_and(|c| c.caps.dsn)
    }

    /// Whether a `BODY=BINARYMIME` message can go to this upstream: only as BDAT, so it must
    /// offer BINARYMIME and CHUNKING, and `chunking` must be on.
    fn takes_binary_mime(&self, caps: Capabilities) -> bool {
        self.shared.settings.chunking && caps.chunking && caps.binarymime
    }

    pub fn abort(&mut self) {
        // There is no way to cancel DATA in SMTP but to close before the final dot; an upstream
        // then discards what it received.
        self.conn = None;
        self.in_transaction = false;
        self.wbuf.clear();
        self.shrink_wbuf();
        self.bdat = None;
        self.awaiting_354 = false;
        self.data_refusal = None;
        self.data_go_ahead = false;
        self.envelope_ahead = false;
    }

    pub async fn reset(&mut self) {
        if self.awaiting_354 || self.data_accepted_ahead() || self.envelope_ahead {
            // DATA is out: the only way back is to close before the final dot. With the
            // envelope sent ahead its replies are still owed: a transaction ended before its
            // message (rare: the client had already sent DATA) costs the connection.
            self.abort();
            return;
        }
        if self.in_transaction && self.conn.is_some() {
            match self.exchange_one("RSET".into(), Stage::Rset).await {
                Ok(r) if r.code == 250 => {}
                _ => self.conn = None,
            }
        }
        self.in_transaction = false;
        self.forget_data_answer();
    }

    /// The session is over: a connection between transactions and in step goes back to the
    /// pool; any other is closed politely.
    pub async fn quit(&mut self) {
        if let Some(mut c) = self.conn.take() {
            if !self.in_transaction && c.ensure_in_step(Stage::Quit).is_ok() {
                c.rest();
                let since = c.last_reply;
                match self.shared.pool.put(c, since) {
                    None => return,
                    Some(back) => c = back,
                }
            }
            c.close().await;
        }
    }
}

/// Failovers at MAIL per transaction (each on a new connection, which skips the address that
/// failed): bounded, so a transaction never walks an endless list.
const MAX_MAIL_FAILOVERS: usize = 2;

/// Whether MAIL goes again on a new connection: a pooled connection's death (it may simply
/// have been idle too long), or, for a new connection to a configured address, any trouble
/// including the upstream's 421 (that server is closing; another may not be). A 4xx or 5xx
/// reply to MAIL is the upstream's verdict on the sender, passed on as it came.
fn mail_may_retry(e: &UpstreamError, reused: bool, addressed: bool, failovers: usize) -> bool {
    let broken = matches!(
        e,
        UpstreamError::Dropped(_) | UpstreamError::Timeout(_) | UpstreamError::OutOfStep { .. }
    );
    if reused {
        return broken;
    }
    addressed
        && failovers < MAX_MAIL_FAILOVERS
        && (broken || matches!(e, UpstreamError::Refused { .. }))
}

/// `RCPT TO:<path>`, with the recipient's DSN parameters when the upstream offers DSN.
fn rcpt_command(address: &str, dsn: &RcptDsn, offers_dsn: bool) -> String {
    let mut line = format!("RCPT TO:{}", format_path(address));
    if offers_dsn {
        line.push_str(&dsn.parameters());
    }
    line
}
