//! The log as a stream of transaction events: line by line (bounded), each JSON line that is a
//! transaction event deserialised into a [`FlowRecord`], everything else counted and skipped.

use super::aggregate::{Aggregator, Event, FlowKey};
use super::time::parse_timestamp;
use super::{Report, ReportError};
use crate::record::{FlowRecord, TARGET};
use std::io::{self, BufRead};
use std::path::Path;

/// A longer line cannot be one of the gate's events; skipping it keeps a corrupt or hostile
/// log from making the reader buffer an unbounded line.
pub(super) const MAX_LINE: usize = 1 << 20;
/// A line still going at this length is no log at all (`/dev/zero`, a binary file), and
/// skipping it could take forever: the report stops with an error naming the line.
pub(crate) const MAX_SKIPPED_LINE: usize = 64 << 20;

/// Reads a whole log. Lines that are not transaction events are counted, not fatal: the
/// gate's log interleaves them with startup, TLS and upstream events.
pub fn read(mut reader: impl BufRead) -> Result<Report, ReportError> {
    let mut acc = Aggregator::default();
    let mut line = Vec::new();
    let mut number = 0;
    while let Some(ended) = next_line(&mut reader, &mut line).map_err(ReportError::Read)? {
        number += 1;
        match ended {
            Line::Kept => {}
            Line::Skipped => {
                acc.skipped += 1;
                continue;
            }
            Line::Endless => {
                return Err(ReportError::Read(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "line {number} is longer than {} MiB, the limit for a log line: this is not a relaygate log",
                        MAX_SKIPPED_LINE >> 20
                    ),
                )))
            }
        }
        let text = match std::str::from_utf8(&line) {
            Ok(t) => t.trim(),
            Err(_) => {
                acc.skipped += 1;
                continue;
            }
        };
        if text.is_empty() {
            continue;
        }
        match parse_event(text) {
            Some(event) => acc.record(event),
            None => acc.skipped += 1,
        }
    }
    acc.finish()
}

pub fn load(path: &Path) -> Result<Report, ReportError> {
    let io_error = |source| ReportError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io_error)?;
    match read(io::BufReader::with_capacity(64 * 1024, file)) {
        Err(ReportError::Read(source)) => Err(io_error(source)),
        other => other,
    }
}

/// What [`next_line`] did with a line.
pub(crate) enum Line {
    /// In the buffer.
    Kept,
    /// Longer than [`MAX_LINE`]: consumed but not kept.
    Skipped,
    /// Longer than [`MAX_SKIPPED_LINE`]: reading stopped there.
    Endless,
}

/// Reads one line into `buf` (without its end of line); `None` at the end of the input.
pub(crate) fn next_line(reader: &mut impl BufRead, buf: &mut Vec<u8>) -> io::Result<Option<Line>> {
    buf.clear();
    let mut any = false;
    let mut too_long = false;
    let mut length = 0;
    let ended = |too_long: bool| if too_long { Line::Skipped } else { Line::Kept };
    loop {
        let available = match reader.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            return Ok(any.then_some(ended(too_long)));
        }
        any = true;
        let (chunk, used, done) = match memchr::memchr(b'\n', available) {
            Some(i) => (&available[..i], i + 1, true),
            None => (available, available.len(), false),
        };
        length += chunk.len();
        if !too_long {
            if length > MAX_LINE {
                too_long = true;
                buf.clear();
            } else {
                buf.extend_from_slice(chunk);
            }
        }
        reader.consume(used);
        if done {
            return Ok(Some(ended(too_long)));
        }
        if length > MAX_SKIPPED_LINE {
            return Ok(Some(Line::Endless));
        }
    }
}

/// A line of the JSON log: `tracing`'s own fields around the record's.
#[derive(serde::Deserialize)]
struct LoggedEvent {
    target: String,
    timestamp: String,
    /// The transaction's tenant ([`crate::record::TransactionRecord::tenant`]); absent from
    /// older logs and single-tenant gates' meaning alike: no tenant named.
    #[serde(default)]
    tenant: String,
    #[serde(flatten)]
    flow: FlowRecord,
}

/// A transaction event, or `None` for anything else: another event, or one missing a field
/// the report needs (an older gate's log, or a hand-edited line).
fn parse_event(line: &str) -> Option<Event> {
    if !line.starts_with('{') {
        return None;
    }
    let event: LoggedEvent = serde_json::from_str(line).ok()?;
    if event.target != TARGET {
        return None;
    }
    let f = event.flow;
    Some(Event {
        at: parse_timestamp(&event.timestamp)?,
        timestamp: event.timestamp,
        exo_2023: f.exo_2023,
        exo_legacy: f.exo_legacy,
        key: FlowKey {
            tenant: event.tenant,
            identity: f.identity,
            p1_domain: f.p1_domain,
            p2_domain: f.p2_domain,
        },
        fix: f.fix,
    })
}
