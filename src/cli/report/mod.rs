//! `relaygate report`: the JSON decision log of an audit run, grouped into flows.
//!
//! An admin runs the gate in `mode = "audit"` for a while before switching to enforce; this
//! turns what it logged into the question that matters before the switch: which senders
//! would Exchange Online refuse under the November 2023 rules, and what would fix each one.
//! Flows are grouped per tenant when the gate serves several (`[[tenants]]`).
//! A flow is one (identity, P1 domain, P2 domain) triple because that is the unit a fix
//! applies to: one certificate or IP range, one envelope domain, one header domain.
//!
//! The log is read as a stream: memory grows with the number of flows, never with the number
//! of lines, so a week of audit log is as cheap as an hour of it. Everything that comes from
//! the log is attacker-influenced (a P2 domain is whatever the sender wrote in `From:`), so
//! the HTML escapes every byte of it and the text table neutralises control characters.
//!
//! [`read`] turns the log into events (each a [`crate::record::FlowRecord`], read with serde),
//! [`aggregate`] groups them into flows on one time axis, [`text`] and [`html`] render them.

mod aggregate;
mod chart;
mod html;
mod read;
mod rewrite;
mod text;
mod time;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_tenants;

pub use read::{load, read};
/// The bounded line reader, shared with `relaygate trace`.
pub(crate) use read::{next_line, Line, MAX_SKIPPED_LINE};

use crate::policy::{wording, RecordedVerdict};
use std::io;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// From [`read`], which does not know where its reader comes from.
    #[error("cannot read the log: {0}")]
    Read(#[source] io::Error),
    #[error(
        "no transaction events found ({skipped_lines} other lines skipped): the report needs \
         the log of a gate run with [log] format = \"json\""
    )]
    NoTransactions { skipped_lines: usize },
}

/// What an audit log says, one entry per flow.
#[derive(Debug, Clone)]
pub struct Report {
    /// Breaking flows first (see [`Report::breaking_flows`]), then the busiest.
    pub flows: Vec<Flow>,
    /// The earliest and latest transaction timestamps, as logged.
    pub first: Option<String>,
    pub last: Option<String>,
    /// Lines that were not transaction events (other events, non-JSON text, malformed or
    /// overlong lines); blank lines are not counted.
    pub skipped_lines: usize,
    /// The time axis every [`Flow::series`] is laid on, so charts line up across flows.
    pub timeline: Timeline,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flow {
    /// The tenant (`[[tenants]] name`) the flow's transactions were attributed to; empty for a
    /// gate with one unnamed tenant, or when no tenant was attributed. Flows are grouped by it.
    pub tenant: String,
    /// `user NAME` (authenticated on a submission listener), `certificate NAME` or
    /// `ip ADDRESS`, as logged.
    pub identity: String,
    /// Envelope sender domain; empty for the null sender (shown as `<>`).
    pub p1_domain: String,
    /// `From:` header domain; empty when there was none.
    pub p2_domain: String,
    pub count: u64,
    pub accepted_2023: u64,
    pub refused_2023: u64,
    pub accepted_legacy: u64,
    pub refused_legacy: u64,
    /// The latest exo-2023 refusal (`refused 550 5.7.64`).
    pub last_refusal_2023: Option<RecordedVerdict>,
    pub last_refusal_legacy: Option<RecordedVerdict>,
    /// The latest fix the gate suggested; `None` when the flow always passed.
    pub fix: Option<String>,
    /// Accepted and refused under exo-2023, one entry per [`Report::timeline`] bucket.
    pub series: Vec<BucketCount>,
}

/// Equal-width buckets from `start` (Unix seconds, UTC), aligned on a round time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeline {
    pub start: i64,
    pub bucket_seconds: i64,
    pub buckets: usize,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BucketCount {
    pub accepted: u64,
    pub refused: u64,
}

impl BucketCount {
    pub(super) fn add(&mut self, other: BucketCount) {
        self.accepted += other.accepted;
        self.refused += other.refused;
    }
}

impl Flow {
    pub fn breaks_2023(&self) -> bool {
        self.refused_2023 > 0
    }

    /// Refused under exo-2023 yet never under exo-legacy: exactly what the November 2023
    /// change broke, and so what the admin must fix before enforcing.
    /// (Transactions that ended before their header have no exo-legacy verdict: a flow seen
    /// only so is not known to have passed before.)
    pub fn broken_by_2023(&self) -> bool {
        self.refused_2023 > 0 && self.refused_legacy == 0 && self.accepted_legacy > 0
    }

    /// The envelope domain as an admin reads it: the null sender is `<>`, not a blank cell.
    pub fn p1_display(&self) -> &str {
        if self.p1_domain.is_empty() {
            "<>"
        } else {
            &self.p1_domain
        }
    }

    pub fn p2_display(&self) -> &str {
        if self.p2_domain.is_empty() {
            "(none)"
        } else {
            &self.p2_domain
        }
    }

    pub fn verdict_2023(&self) -> String {
        wording::flow_verdict(
            self.refused_2023,
            self.count,
            self.last_refusal_2023.as_ref(),
        )
    }

    pub fn verdict_legacy(&self) -> String {
        if self.accepted_legacy == 0 && self.refused_legacy == 0 {
            return wording::FLOW_UNDECIDED.to_owned();
        }
        wording::flow_verdict(
            self.refused_legacy,
            self.count,
            self.last_refusal_legacy.as_ref(),
        )
    }
}

impl Flow {
    /// The tenant as a heading shows it.
    pub fn tenant_display(&self) -> &str {
        if self.tenant.is_empty() {
            "(no tenant)"
        } else {
            &self.tenant
        }
    }
}

impl Report {
    /// Whether the log names tenants (a gate with `[[tenants]]`): then flows are shown per
    /// tenant.
    pub fn has_tenants(&self) -> bool {
        self.flows.iter().any(|f| !f.tenant.is_empty())
    }

    /// Flows with any exo-2023 refusal: the number that must reach zero before enforcing.
    pub fn breaking_flows(&self) -> usize {
        self.flows.iter().filter(|f| f.breaks_2023()).count()
    }

    pub fn transactions(&self) -> u64 {
        self.flows.iter().map(|f| f.count).sum()
    }
}

/// `relaygate report`: the text report, and the HTML one with `--html`; exit 1 when a flow is
/// refused under exo-2023.
pub fn run(logfile: PathBuf, html: Option<PathBuf>) -> ExitCode {
    use crate::cli::report;
    let loaded = if logfile.as_os_str() == "-" {
        report::read(std::io::stdin().lock())
    } else {
        report::load(&logfile)
    };
    let r = match loaded {
        Ok(r) => r,
        Err(e) => {
            eprintln!("relaygate: {e}");
            return ExitCode::from(2);
        }
    };
    print!("{}", r.render_text());
    if let Some(path) = html {
        if let Err(e) = std::fs::write(&path, r.render_html()) {
            eprintln!("relaygate: cannot write {}: {e}", path.display());
            return ExitCode::from(2);
        }
        eprintln!("relaygate: wrote {}", path.display());
    }
    if r.breaking_flows() > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
