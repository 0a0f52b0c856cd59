//! Delivery status notifications (RFC 3461): what a client asks for in its MAIL parameters
//! (`RET`, `ENVID`) and RCPT parameters (`NOTIFY`, `ORCPT`), checked at parse time
//! ([`check`]), carried with the envelope, and written again for an upstream that offers DSN.
//!
//! Exchange Online offers DSN on its MX and takes these parameters; the gate does the same and
//! passes them on, rebuilt from the parsed values (never the client's words), when the upstream
//! offers DSN too. When it does not, they are dropped, as Exchange Online's own relays do with
//! a next hop that lacks DSN, and the transaction event says which ([`Dropped`]).

mod check;

pub use check::check;

use super::xtext;
use smtp_proto::{MailFrom, RcptTo};
use std::fmt;

/// `RET`: what a notification returns of the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ret {
    Full,
    Hdrs,
}

impl Ret {
    pub fn as_str(self) -> &'static str {
        match self {
            Ret::Full => "FULL",
            Ret::Hdrs => "HDRS",
        }
    }
}

/// The DSN parameters of MAIL.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MailDsn {
    pub ret: Option<Ret>,
    /// `ENVID`, decoded: printable US-ASCII, at most 100 characters.
    pub envid: Option<String>,
}

impl MailDsn {
    /// The DSN parameters of a MAIL command that passed [`check`].
    pub fn of(from: &MailFrom<String>) -> MailDsn {
        let ret = if from.flags & smtp_proto::MAIL_RET_FULL != 0 {
            Some(Ret::Full)
        } else if from.flags & smtp_proto::MAIL_RET_HDRS != 0 {
            Some(Ret::Hdrs)
        } else {
            None
        };
        MailDsn {
            ret,
            envid: from.env_id.clone(),
        }
    }

    /// The parameters for the upstream's MAIL, each after a space; empty when there are none.
    pub fn parameters(&self) -> String {
        let mut out = String::new();
        if let Some(ret) = self.ret {
            out.push_str(" RET=");
            out.push_str(ret.as_str());
        }
        if let Some(envid) = &self.envid {
            out.push_str(" ENVID=");
            out.push_str(&xtext::encode(envid));
        }
        out
    }
}

/// `NOTIFY`: when the recipient's notifications are wanted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notify {
    Never,
    On {
        success: bool,
        failure: bool,
        delay: bool,
    },
}

impl fmt::Display for Notify {
    /// RFC 3461's keywords, in its order: `NEVER`, or `SUCCESS,FAILURE,DELAY` as asked.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (success, failure, delay) = match *self {
            Notify::Never => return f.write_str("NEVER"),
            Notify::On {
                success,
                failure,
                delay,
            } => (success, failure, delay),
        };
        let words: Vec<&str> = [(success, "SUCCESS"), (failure, "FAILURE"), (delay, "DELAY")]
            .into_iter()
            .filter_map(|(on, word)| on.then_some(word))
            .collect();
        f.write_str(&words.join(","))
    }
}

/// The DSN parameters of one RCPT.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RcptDsn {
    pub notify: Option<Notify>,
    /// `ORCPT`'s address (its type is `rfc822`), decoded: printable US-ASCII.
    pub orcpt: Option<String>,
}

impl RcptDsn {
    /// The DSN parameters of a RCPT command that passed [`check`].
    pub fn of(to: &RcptTo<String>) -> RcptDsn {
        let has = |flag: u64| to.flags & flag != 0;
        let notify = if has(smtp_proto::RCPT_NOTIFY_NEVER) {
            Some(Notify::Never)
        } else {
            let (success, failure, delay) = (
                has(smtp_proto::RCPT_NOTIFY_SUCCESS),
                has(smtp_proto::RCPT_NOTIFY_FAILURE),
                has(smtp_proto::RCPT_NOTIFY_DELAY),
            );
            (success || failure || delay).then_some(Notify::On {
                success,
                failure,
                delay,
            })
        };
        RcptDsn {
            notify,
            orcpt: to.orcpt.clone(),
        }
    }

    /// The parameters for the upstream's RCPT, each after a space; empty when there are none.
    pub fn parameters(&self) -> String {
        let mut out = String::new();
        if let Some(notify) = self.notify {
            out.push_str(&format!(" NOTIFY={notify}"));
        }
        if let Some(orcpt) = &self.orcpt {
            out.push_str(" ORCPT=rfc822;");
            out.push_str(&xtext::encode(orcpt));
        }
        out
    }
}

/// The DSN parameters a transaction lost on the way to an upstream without DSN: `RET` with its
/// value (it says how much of the message a notification would have carried), the others by
/// name only (their values are the client's words; the log has the envelope already).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dropped {
    ret: Option<Ret>,
    envid: bool,
    notify: bool,
    orcpt: bool,
}

impl Dropped {
    /// MAIL went to the upstream without these.
    pub fn mail(&mut self, dsn: &MailDsn) {
        self.ret = self.ret.or(dsn.ret);
        self.envid |= dsn.envid.is_some();
    }

    /// A RCPT went to the upstream without these.
    pub fn rcpt(&mut self, dsn: &RcptDsn) {
        self.notify |= dsn.notify.is_some();
        self.orcpt |= dsn.orcpt.is_some();
    }
}

impl fmt::Display for Dropped {
    /// `RET=HDRS ENVID NOTIFY ORCPT`, or empty when nothing was dropped.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ret = self.ret.map(|r| format!("RET={}", r.as_str()));
        let words: Vec<&str> = [
            ret.as_deref(),
            self.envid.then_some("ENVID"),
            self.notify.then_some("NOTIFY"),
            self.orcpt.then_some("ORCPT"),
        ]
        .into_iter()
        .flatten()
        .collect();
        f.write_str(&words.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::command::parse_command;
    use smtp_proto::Request;

    fn mail(line: &str) -> MailDsn {
        match parse_command(format!("{line}\r\n").as_bytes()) {
            Ok(Request::Mail { from }) => MailDsn::of(&from),
            other => panic!("{line}: {other:?}"),
        }
    }

    fn rcpt(line: &str) -> RcptDsn {
        match parse_command(format!("{line}\r\n").as_bytes()) {
            Ok(Request::Rcpt { to }) => RcptDsn::of(&to),
            other => panic!("{line}: {other:?}"),
        }
    }

    #[test]
    fn mail_parameters_are_rebuilt_in_canonical_form() {
        let dsn = mail("MAIL FROM:<a@contoso.com> envid=Q+2BID+20x ret=hdrs");
        assert_eq!(dsn.ret, Some(Ret::Hdrs));
        assert_eq!(dsn.envid.as_deref(), Some("Q+ID x"));
        assert_eq!(dsn.parameters(), " RET=HDRS ENVID=Q+2BID+20x");
        assert_eq!(mail("MAIL FROM:<a@contoso.com>").parameters(), "");
        assert_eq!(
            mail("MAIL FROM:<> RET=FULL").parameters(),
            " RET=FULL",
            "the null sender may ask too"
        );
    }

    #[test]
    fn rcpt_parameters_are_rebuilt_in_canonical_form() {
        let dsn =
            rcpt("RCPT TO:<b@example.org> ORCPT=RFC822;b+2Bx@example.org NOTIFY=delay,success");
        assert_eq!(
            dsn.notify,
            Some(Notify::On {
                success: true,
                failure: false,
                delay: true
            })
        );
        assert_eq!(dsn.orcpt.as_deref(), Some("b+x@example.org"));
        assert_eq!(
            dsn.parameters(),
            " NOTIFY=SUCCESS,DELAY ORCPT=rfc822;b+2Bx@example.org"
        );
        assert_eq!(
            rcpt("RCPT TO:<b@example.org> NOTIFY=NEVER").parameters(),
            " NOTIFY=NEVER"
        );
        assert_eq!(rcpt("RCPT TO:<b@example.org>").parameters(), "");
    }

    #[test]
    fn dropped_names_each_parameter_once() {
        let mut dropped = Dropped::default();
        assert_eq!(dropped.to_string(), "");
        dropped.mail(&mail("MAIL FROM:<a@contoso.com> RET=HDRS ENVID=x"));
        dropped.rcpt(&rcpt("RCPT TO:<b@example.org> NOTIFY=NEVER"));
        dropped.rcpt(&rcpt(
            "RCPT TO:<c@example.org> NOTIFY=FAILURE ORCPT=rfc822;c@example.org",
        ));
        assert_eq!(dropped.to_string(), "RET=HDRS ENVID NOTIFY ORCPT");
        let mut only_notify = Dropped::default();
        only_notify.mail(&MailDsn::default());
        only_notify.rcpt(&rcpt("RCPT TO:<b@example.org> NOTIFY=SUCCESS"));
        assert_eq!(only_notify.to_string(), "NOTIFY");
    }
}
