//! `relaygate trace LOG KEY`: one message's story, from the JSON decision log.
//!
//! An admin holding a Message Trace result (a `Message-ID`), a reply suffix (the session id in
//! `[host time id]`) or a user's complaint (an address) wants to know what the gate did with
//! that mail: who connected, how the gate identified it, how the sender was attributed (which
//! accepted domain made it the tenant's own mail), what it decided under both profiles and why,
//! and what the upstream answered. Each transaction event already carries all of it in
//! the gate's own words ([`crate::policy::wording`], as logged); this finds the events and lays
//! them out. It does not re-judge them: the configuration may have changed since.
//!
//! The log is streamed with the report's bounded line reader, so memory does not grow with the
//! log. Everything printed comes from the log, which clients influence: control characters are
//! shown as `?`.

use crate::cli::report::{next_line, Line, MAX_SKIPPED_LINE};
use crate::record::{TransactionRecord, TARGET};
use std::io::{self, BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot read the log: {0}")]
    Read(#[source] io::Error),
    #[error("cannot write: {0}")]
    Write(#[source] io::Error),
}

/// What the admin searches by, matched against every event: a `Message-ID` (with or without
/// its angle brackets), a session id, or an address (the P1, the `From:` address or a
/// recipient), the last two case-insensitively as mail systems compare them.
#[derive(Debug, Clone)]
pub struct Key {
    text: String,
}

impl Key {
    pub fn new(text: &str) -> Key {
        Key {
            text: text.trim().to_string(),
        }
    }

    fn bare(&self) -> &str {
        let t = self.text.as_str();
        t.strip_prefix('<')
            .and_then(|t| t.strip_suffix('>'))
            .unwrap_or(t)
    }

    /// Whether `record` is a transaction this key names.
    pub fn matches(&self, record: &TransactionRecord) -> bool {
        let bare = self.bare();
        if bare.is_empty() {
            return false;
        }
        let id = record
            .message_id
            .trim_start_matches('<')
            .trim_end_matches('>');
        (!id.is_empty() && id == bare)
            || record.session.eq_ignore_ascii_case(bare)
            || record.rewritten_to.eq_ignore_ascii_case(bare)
            || addresses(record)
                .iter()
                .any(|a| a.eq_ignore_ascii_case(bare))
    }
}

/// The addresses a transaction names: P1, P2, and each recipient of the logged list.
fn addresses(record: &TransactionRecord) -> Vec<String> {
    let mut all: Vec<String> = [&record.p1, &record.p2]
        .into_iter()
        .filter(|a| !a.is_empty())
        .cloned()
        .collect();
    all.extend(
        recipient_entries(&record.recipients)
            .into_iter()
            .filter_map(|e| e.split_once('=').map(|(a, _)| a.to_string())),
    );
    all
}

/// The logged recipient list (`["bob@example.org=accepted (relay)", ...]`) as its entries.
fn recipient_entries(list: &str) -> Vec<String> {
    serde_json::from_str(list).unwrap_or_default()
}

/// A line of the JSON log that is a transaction event: `tracing`'s own fields around the
/// record's.
#[derive(serde::Deserialize)]
struct LoggedTransaction {
    target: String,
    #[serde(default)]
    timestamp: String,
    #[serde(flatten)]
    record: TransactionRecord,
}

fn parse(line: &[u8]) -> Option<LoggedTransaction> {
    let text = std::str::from_utf8(line).ok()?.trim();
    if !text.starts_with('{') {
        return None;
    }
    let event: LoggedTransaction = serde_json::from_str(text).ok()?;
    (event.target == TARGET).then_some(event)
}

/// Print the story of every transaction in `log` that `key` names; returns how many there
/// were.
pub fn trace(log: impl BufRead, key: &Key, out: &mut impl Write) -> Result<usize, TraceError> {
    let mut log = log;
    let mut line = Vec::new();
    let mut found = 0;
    while let Some(ended) = next_line(&mut log, &mut line).map_err(TraceError::Read)? {
        match ended {
            Line::Kept => {}
            Line::Skipped => continue,
            Line::Endless => {
                return Err(TraceError::Read(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "a line is longer than {} MiB, the limit for a log line: this is not a relaygate log",
                        MAX_SKIPPED_LINE >> 20
                    ),
                )))
            }
        }
        let Some(event) = parse(&line) else { continue };
        if key.matches(&event.record) {
            if found > 0 {
                writeln!(out).map_err(TraceError::Write)?;
            }
            found += 1;
            story(&event.timestamp, &event.record, out).map_err(TraceError::Write)?;
        }
    }
    Ok(found)
}

/// One transaction's story, in the order it happened.
fn story(at: &str, r: &TransactionRecord, out: &mut impl Write) -> io::Result<()> {
    let f = &r.flow;
    let or_none = |s: &str| {
        if s.is_empty() {
            "none".to_string()
        } else {
            shown(s)
        }
    };
    writeln!(out, "transaction {} at {}", shown(&r.session), shown(at))?;
    let listener = if r.listener.is_empty() {
        "relay"
    } else {
        &r.listener
    };
    writeln!(
        out,
        "  connected       {} on the {} listener, HELO {}, TLS {}",
        shown(&r.peer),
        shown(listener),
        or_none(&r.helo),
        shown(&r.tls)
    )?;
    let names = recipient_entries(&r.certificate_names);
    let certificate = if names.is_empty() {
        "none".to_string()
    } else {
        let trust = if r.certificate_trusted {
            "trusted"
        } else {
            "not trusted"
        };
        format!("{} ({trust})", shown(&names.join(", ")))
    };
    writeln!(out, "  certificate     {certificate}")?;
    if !r.user.is_empty() {
        writeln!(out, "  authenticated   as {}", shown(&r.user))?;
    }
    let tenant = if r.tenant.is_empty() {
        "(the one tenant, or none attributed)".to_string()
    } else {
        shown(&r.tenant)
    };
    writeln!(
        out,
        "  identified as   {} of tenant {tenant}",
        shown(&f.identity)
    )?;
    writeln!(out, "  connector       {}", or_none(&r.connector))?;
    writeln!(out, "  P1 MAIL FROM    <{}>", shown(&r.p1))?;
    if !r.rewritten_to.is_empty() {
        writeln!(
            out,
            "  rewritten to    <{}> by a [[rewrite]] rule: judged and sent upstream as this",
            shown(&r.rewritten_to)
        )?;
    }
    writeln!(out, "  P2 From:        {}", or_none(&r.p2))?;
    writeln!(out, "  Message-ID      {}", or_none(&r.message_id))?;
    for entry in recipient_entries(&r.recipients) {
        writeln!(out, "  recipient       {}", shown(&entry))?;
    }
    writeln!(out, "  size            {} bytes", r.size)?;
    writeln!(
        out,
        "  decision        {} ({}, {} mode): {}",
        shown(&r.relay),
        r.profile.as_str(),
        r.mode.as_str(),
        shown(&r.branch)
    )?;
    // Absent from older logs: left out rather than guessed from `branch`.
    if !r.condition1_by.is_empty() {
        writeln!(out, "  attributed by   {}", shown(&r.condition1_by))?;
    }
    writeln!(out, "  exo-2023        {}", f.exo_2023)?;
    let differs = if f.broken_by_november_2023 {
        "  <- broken by the November 2023 change"
    } else {
        ""
    };
    writeln!(out, "  exo-legacy      {}{differs}", f.exo_legacy)?;
    if !f.fix.is_empty() {
        writeln!(out, "  fix (exo-2023)  {}", shown(&f.fix))?;
    }
    writeln!(out, "  client got      {}", shown(&r.reply))?;
    if !r.enforce_would_reply.is_empty() {
        writeln!(out, "  enforce would   {}", shown(&r.enforce_would_reply))?;
    }
    if !r.dsn_dropped.is_empty() {
        writeln!(out, "  DSN dropped     {}", shown(&r.dsn_dropped))?;
    }
    writeln!(out, "  upstream said   {}", or_none(&r.upstream_reply))
}

/// Log text as printed: control characters (a terminal's escape sequences) shown as `?`.
fn shown(s: &str) -> String {
    s.replace(|c: char| c.is_control(), "?")
}

pub fn load(path: &Path, key: &Key, out: &mut impl Write) -> Result<usize, TraceError> {
    let file = std::fs::File::open(path).map_err(|source| TraceError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    match trace(io::BufReader::with_capacity(64 * 1024, file), key, out) {
        Err(TraceError::Read(source)) => Err(TraceError::Io {
            path: path.to_path_buf(),
            source,
        }),
        other => other,
    }
}

/// Exit 0 when some transaction matched, 1 when none did, 2 when the log cannot be read.
pub fn run(log: PathBuf, key: String) -> ExitCode {
    let key = Key::new(&key);
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    let result = if log.as_os_str() == "-" {
        trace(io::stdin().lock(), &key, &mut out)
    } else {
        load(&log, &key, &mut out)
    };
    let flushed = out.flush();
    match result {
        Ok(0) => {
            eprintln!(
                "relaygate: no transaction in {} matches {}",
                log.display(),
                shown(&key.text)
            );
            ExitCode::from(1)
        }
        Ok(_) if flushed.is_ok() => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(2),
        Err(e) => {
            eprintln!("relaygate: {e}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests;
