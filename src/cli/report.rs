//! `relaygate report`: the JSON decision log of an audit run, grouped into flows.
//!
//! An admin runs the gate in `mode = "audit"` for a while before switching to enforce; this
//! turns what it logged into the question that matters before the switch: which senders
//! would Exchange Online refuse under the November 2023 rules, and what would fix each one.
//! A flow is one (identity, P1 domain, P2 domain) triple because that is the unit a fix
//! applies to: one certificate or IP range, one envelope domain, one header domain.
//!
//! The log is read as a stream: memory grows with the number of flows, never with the number
//! of lines, so a week of audit log is as cheap as an hour of it. Everything that comes from
//! the log is attacker-influenced (a P2 domain is whatever the sender wrote in `From:`), so
//! the HTML escapes every byte of it and the text table neutralises control characters.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{self, BufRead};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The most buckets a chart shows: beyond that bars get too thin to read or hover.
const MAX_BUCKETS: usize = 48;
/// Buckets kept while reading: twice the display so that the final merge by two can reach
/// near 48 buckets even when the ladder of widths jumps by five.
const MAX_FINE_BUCKETS: usize = 2 * MAX_BUCKETS;
/// Bucket widths in seconds, each a multiple of the one before, so that rebucketing while
/// streaming is exact (no event ever moves to a neighbouring bucket) and every bucket starts
/// on a round time. Past the last, widths double.
const WIDTHS: [i64; 13] = [
    1, 2, 10, 20, 60, 120, 600, 1200, 3600, 7200, 21600, 43200, 86400,
];
/// A longer line cannot be one of the gate's events; skipping it keeps a corrupt or hostile
/// log from making the reader buffer an unbounded line.
const MAX_LINE: usize = 1 << 20;
/// A line still going at this length is no log at all (`/dev/zero`, a binary file), and
/// skipping it could take forever: the report stops with an error naming the line.
const MAX_SKIPPED_LINE: usize = 64 << 20;
const TRANSACTION_TARGET: &str = "relaygate::transaction";

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
    /// `certificate NAME` or `ip ADDRESS`, as logged.
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
    /// The reply of the latest exo-2023 refusal, e.g. `550 5.7.64`.
    pub last_refusal_2023: Option<String>,
    pub last_refusal_legacy: Option<String>,
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
    fn add(&mut self, other: BucketCount) {
        self.accepted += other.accepted;
        self.refused += other.refused;
    }
}

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
        verdict_text(
            self.refused_2023,
            self.count,
            self.last_refusal_2023.as_deref(),
        )
    }

    pub fn verdict_legacy(&self) -> String {
        if self.accepted_legacy == 0 && self.refused_legacy == 0 {
            return "undecided (no message reached its header)".to_owned();
        }
        verdict_text(
            self.refused_legacy,
            self.count,
            self.last_refusal_legacy.as_deref(),
        )
    }
}

fn verdict_text(refused: u64, count: u64, reply: Option<&str>) -> String {
    match (refused, reply) {
        (0, _) => "accepted".to_owned(),
        (n, Some(r)) if !r.is_empty() => format!("refused {r} ({n} of {count})"),
        (n, _) => format!("refused ({n} of {count})"),
    }
}

impl Report {
    /// Flows with any exo-2023 refusal: the number that must reach zero before enforcing.
    pub fn breaking_flows(&self) -> usize {
        self.flows.iter().filter(|f| f.breaks_2023()).count()
    }

    pub fn transactions(&self) -> u64 {
        self.flows.iter().map(|f| f.count).sum()
    }

    pub fn render_text(&self) -> String {
        let mut out = String::new();
        let broken_by_change = self.flows.iter().filter(|f| f.broken_by_2023()).count();
        let _ = writeln!(
            out,
            "{} transactions in {} flows, {} to {}",
            self.transactions(),
            self.flows.len(),
            printable(self.first.as_deref().unwrap_or("?")),
            printable(self.last.as_deref().unwrap_or("?")),
        );
        let _ = writeln!(
            out,
            "{} flows refused under exo-2023, {} of them accepted under exo-legacy (broken by \
             the November 2023 change); {} other log {} skipped",
            self.breaking_flows(),
            broken_by_change,
            self.skipped_lines,
            if self.skipped_lines == 1 {
                "line"
            } else {
                "lines"
            },
        );
        out.push('\n');

        let header = [
            "IDENTITY",
            "P1 (MAIL FROM)",
            "P2 (From:)",
            "COUNT",
            "EXO-2023",
            "EXO-LEGACY",
            "FIX",
        ];
        let rows: Vec<[String; 7]> = self
            .flows
            .iter()
            .map(|f| {
                [
                    printable(&f.identity),
                    printable(f.p1_display()),
                    printable(f.p2_display()),
                    f.count.to_string(),
                    printable(&f.verdict_2023()),
                    printable(&f.verdict_legacy()),
                    printable(f.fix.as_deref().unwrap_or("")),
                ]
            })
            .collect();
        let mut widths = header.map(|h| h.chars().count());
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut line = |cells: [&str; 7]| {
            let mut l = String::new();
            for (i, cell) in cells.iter().enumerate() {
                if i == 3 {
                    let _ = write!(l, "{cell:>w$}  ", w = widths[i]);
                } else if i == cells.len() - 1 {
                    l.push_str(cell);
                } else {
                    let _ = write!(l, "{cell:<w$}  ", w = widths[i]);
                }
            }
            out.push_str(l.trim_end());
            out.push('\n');
        };
        line(header);
        for row in &rows {
            line(row.each_ref().map(String::as_str));
        }
        out
    }

    pub fn render_html(&self) -> String {
        let mut h = String::with_capacity(16 * 1024 + self.flows.len() * 8 * 1024);
        let broken_by_change = self.flows.iter().filter(|f| f.broken_by_2023()).count();
        let refused_2023: u64 = self.flows.iter().map(|f| f.refused_2023).sum();
        let range = match (&self.first, &self.last) {
            (Some(a), Some(b)) => format!("{} to {}", human_time(a), human_time(b)),
            _ => "no timestamps".to_owned(),
        };
        h.push_str(
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; \
             style-src 'unsafe-inline'\">\n\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
             <title>relaygate audit report</title>\n<style>\n",
        );
        h.push_str(CSS);
        h.push_str("</style>\n</head>\n<body>\n<header id=\"summary\">\n");
        h.push_str("<h1>relaygate audit report</h1>\n");
        let _ = writeln!(h, "<p class=\"range\">{}</p>", esc(&range));
        h.push_str("<ul class=\"totals\">\n");
        let totals = [
            ("transactions", self.transactions().to_string(), ""),
            ("flows", self.flows.len().to_string(), ""),
            (
                "flows refused under exo-2023",
                self.breaking_flows().to_string(),
                if self.breaking_flows() > 0 {
                    " bad"
                } else {
                    " good"
                },
            ),
            (
                "of them accepted under exo-legacy",
                broken_by_change.to_string(),
                if broken_by_change > 0 { " bad" } else { "" },
            ),
            (
                "transactions refused under exo-2023",
                refused_2023.to_string(),
                "",
            ),
            ("log lines skipped", self.skipped_lines.to_string(), ""),
        ];
        for (id, (label, value, class)) in totals.iter().enumerate() {
            let _ = writeln!(
                h,
                "<li class=\"total{class}\" id=\"total-{id}\"><span class=\"value\">{value}</span> \
                 <span class=\"label\">{}</span></li>",
                esc(label)
            );
        }
        h.push_str("</ul>\n</header>\n");

        h.push_str(
            "<section id=\"flows\">\n<h2>Flows</h2>\n<p class=\"note\">A flow is one sender \
             identity, envelope (P1) domain and <code>From:</code> (P2) domain. Flows refused \
             under exo-2023 come first, those the November 2023 change broke (accepted under \
             exo-legacy) before all others.</p>\n<table class=\"flows\">\n<thead><tr>\
             <th>#</th><th>Identity</th><th>P1 (MAIL FROM)</th><th>P2 (From:)</th>\
             <th class=\"num\">Count</th><th>exo-2023</th><th>exo-legacy</th><th>Fix</th>\
             </tr></thead>\n<tbody>\n",
        );
        for (i, f) in self.flows.iter().enumerate() {
            let n = i + 1;
            let _ = writeln!(
                h,
                "<tr class=\"{}\" id=\"flow-{n}\" data-flow=\"{n}\"><td class=\"num\">\
                 <a href=\"#chart-{n}\">{n}</a></td><td class=\"identity\">{}</td>\
                 <td class=\"p1\">{}</td><td class=\"p2\">{}</td><td class=\"num count\">{}</td>\
                 <td class=\"verdict exo-2023 {}\"><span class=\"v\">{}</span></td>\
                 <td class=\"verdict exo-legacy {}\"><span class=\"v\">{}</span>{}</td>\
                 <td class=\"fix\">{}</td></tr>",
                flow_class("flow", f),
                esc(&f.identity),
                esc(f.p1_display()),
                esc(f.p2_display()),
                f.count,
                verdict_class(f.refused_2023),
                esc(&f.verdict_2023()),
                verdict_class(f.refused_legacy),
                esc(&f.verdict_legacy()),
                badge(f),
                esc(f.fix.as_deref().unwrap_or("")),
            );
        }
        h.push_str("</tbody>\n</table>\n</section>\n");

        let _ = writeln!(
            h,
            "<section id=\"charts\">\n<h2>Over time</h2>\n<p class=\"note\">Transactions per \
             {} bucket (UTC), judged under exo-2023.</p>",
            esc(&human_duration(self.timeline.bucket_seconds))
        );
        for (i, f) in self.flows.iter().enumerate() {
            let n = i + 1;
            let _ = writeln!(
                h,
                "<section class=\"{}\" id=\"chart-{n}\">\n<h3><span class=\"rank\">{n}</span> \
                 {} <span class=\"arrow\">·</span> P1 {} <span class=\"arrow\">·</span> P2 {}\
                 {}</h3>",
                flow_class("flow-chart", f),
                esc(&f.identity),
                esc(f.p1_display()),
                esc(f.p2_display()),
                badge(f),
            );
            if let Some(fix) = &f.fix {
                let _ = writeln!(h, "<p class=\"fix\">Fix: {}</p>", esc(fix));
            }
            chart_svg(&mut h, n, f, &self.timeline);
            h.push_str("</section>\n");
        }
        h.push_str("</section>\n</body>\n</html>\n");
        h
    }
}

fn flow_class(base: &str, f: &Flow) -> String {
    let mut c = base.to_owned();
    if f.breaks_2023() {
        c.push_str(" breaking");
    }
    if f.broken_by_2023() {
        c.push_str(" broken-by-2023");
    }
    c
}

/// Says in words what the red edge of a row means: exo-legacy accepted it, so the November
/// 2023 change alone is what breaks it.
fn badge(f: &Flow) -> &'static str {
    if f.broken_by_2023() {
        "<span class=\"badge\">broken by the 2023 rules</span>"
    } else {
        ""
    }
}

fn verdict_class(refused: u64) -> &'static str {
    if refused > 0 {
        "refused"
    } else {
        "accepted"
    }
}

const CSS: &str = "\
:root { --ok: #2e7d32; --bad: #c62828; --ink: #1d2329; --muted: #5f6b76; --line: #d8dee4; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, 'Segoe UI', 'DejaVu Sans', sans-serif;
  color: var(--ink); background: #fff; margin: 0; padding: 24px 32px; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 28px 0 6px; }
h3 { font-size: 15px; margin: 0 0 4px; font-weight: 600; overflow-wrap: anywhere; }
.note, .range { color: var(--muted); margin: 0 0 12px; }
.totals { display: flex; flex-wrap: wrap; gap: 12px; list-style: none; padding: 0;
  margin: 12px 0 0; }
.total { border: 1px solid var(--line); border-radius: 6px; padding: 8px 14px; min-width: 140px; }
.total .value { display: block; font-size: 22px; font-weight: 700; }
.total .label { color: var(--muted); font-size: 12px; }
.total.bad .value { color: var(--bad); }
.total.good .value { color: var(--ok); }
table.flows { border-collapse: collapse; width: 100%; font-size: 13px; }
table.flows th, table.flows td { text-align: left; vertical-align: top; padding: 6px 8px;
  border-bottom: 1px solid var(--line); overflow-wrap: anywhere; }
table.flows th { background: #f3f5f7; font-weight: 600; white-space: nowrap; }
table.flows .num { text-align: right; white-space: nowrap; }
table.flows tr.breaking td { background: #fdecea; }
table.flows tr.broken-by-2023 td:first-child { box-shadow: inset 4px 0 0 var(--bad); }
td.verdict { font-weight: 600; }
td.verdict .v { white-space: nowrap; }
td.verdict.accepted { color: var(--ok); }
td.verdict.refused { color: var(--bad); }
td.identity, td.p1, td.p2 { font-family: ui-monospace, 'DejaVu Sans Mono', monospace;
  font-size: 12px; }
td.identity { min-width: 15em; }
td.p1, td.p2 { min-width: 11em; }
td.fix { min-width: 16em; }
.badge { display: inline-block; margin-left: 6px; padding: 0 6px; border-radius: 9px;
  font-size: 11px; font-weight: 600; color: #fff; background: var(--bad); white-space: nowrap;
  vertical-align: 1px; }
a { color: inherit; }
.flow-chart { border: 1px solid var(--line); border-radius: 6px; padding: 12px 14px;
  margin: 0 0 14px; }
.flow-chart.breaking { border-color: #e6a5a0; border-left: 4px solid var(--bad); }
.flow-chart .rank { color: var(--muted); }
.flow-chart .arrow { color: var(--muted); }
.flow-chart p.fix { margin: 0 0 6px; color: var(--bad); }
svg.chart { display: block; width: 100%; max-width: 1200px; height: auto; }
svg.chart text { font: 11px system-ui, 'DejaVu Sans', sans-serif; fill: var(--muted); }
svg.chart .accepted { fill: var(--ok); }
svg.chart .refused { fill: var(--bad); }
svg.chart .grid { stroke: #e5e9ed; stroke-width: 1; }
svg.chart .axis { stroke: #9aa5b1; stroke-width: 1; }
svg.chart g.bucket:hover rect { opacity: 0.75; }
";

const CHART_W: f64 = 1160.0;
const CHART_H: f64 = 230.0;
const PLOT_LEFT: f64 = 48.0;
const PLOT_RIGHT: f64 = 12.0;
const PLOT_TOP: f64 = 30.0;
const PLOT_BOTTOM: f64 = 36.0;

fn chart_svg(h: &mut String, n: usize, f: &Flow, t: &Timeline) {
    let buckets = t.buckets.max(1);
    let plot_w = CHART_W - PLOT_LEFT - PLOT_RIGHT;
    let plot_h = CHART_H - PLOT_TOP - PLOT_BOTTOM;
    let bottom = PLOT_TOP + plot_h;
    let peak = f
        .series
        .iter()
        .map(|b| b.accepted + b.refused)
        .max()
        .unwrap_or(0)
        .max(1);
    let step = nice_step(peak.div_ceil(4));
    let top = peak.div_ceil(step) * step;
    let y = |v: u64| bottom - plot_h * v as f64 / top as f64;
    let slot = plot_w / buckets as f64;
    let gap = (slot * 0.15).clamp(1.0, 6.0);

    let _ = writeln!(
        h,
        "<svg class=\"chart\" data-flow=\"{n}\" viewBox=\"0 0 {CHART_W} {CHART_H}\" \
         width=\"{CHART_W}\" height=\"{CHART_H}\" role=\"img\" aria-label=\"flow {n}: \
         accepted and refused transactions under exo-2023 over time\">"
    );
    // Legend, top right.
    let lx = CHART_W - PLOT_RIGHT - 230.0;
    let _ = writeln!(
        h,
        "<g class=\"legend\"><rect class=\"legend-accepted accepted\" x=\"{lx}\" y=\"8\" \
         width=\"12\" height=\"12\"/><text x=\"{}\" y=\"18\">accepted</text>\
         <rect class=\"legend-refused refused\" x=\"{}\" y=\"8\" width=\"12\" height=\"12\"/>\
         <text x=\"{}\" y=\"18\">refused (exo-2023)</text></g>",
        lx + 17.0,
        lx + 90.0,
        lx + 107.0,
    );
    // Y grid and labels.
    let mut v = 0;
    while v <= top {
        let yy = y(v);
        let _ = writeln!(
            h,
            "<line class=\"grid\" x1=\"{PLOT_LEFT}\" x2=\"{}\" y1=\"{yy:.1}\" y2=\"{yy:.1}\"/>\
             <text class=\"y-label\" x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{v}</text>",
            CHART_W - PLOT_RIGHT,
            PLOT_LEFT - 6.0,
            yy + 4.0,
        );
        v += step;
    }
    // Bars.
    for (i, b) in f.series.iter().enumerate().take(buckets) {
        if b.accepted + b.refused == 0 {
            continue;
        }
        let start = t.start + i as i64 * t.bucket_seconds;
        let x = PLOT_LEFT + i as f64 * slot + gap / 2.0;
        let w = (slot - gap).max(1.0);
        let _ = write!(
            h,
            "<g class=\"bucket\" data-start=\"{}\"><title>{} to {} UTC: {} accepted, {} refused\
             </title>",
            format_time(start, TimeStyle::Iso),
            format_time(start, TimeStyle::Full),
            format_time(start + t.bucket_seconds, TimeStyle::Full),
            b.accepted,
            b.refused,
        );
        let y_acc = y(b.accepted);
        if b.accepted > 0 {
            let _ = write!(
                h,
                "<rect class=\"accepted\" x=\"{x:.1}\" y=\"{y_acc:.1}\" width=\"{w:.1}\" \
                 height=\"{:.1}\"/>",
                bottom - y_acc
            );
        }
        if b.refused > 0 {
            let y_top = y(b.accepted + b.refused);
            let _ = write!(
                h,
                "<rect class=\"refused\" x=\"{x:.1}\" y=\"{y_top:.1}\" width=\"{w:.1}\" \
                 height=\"{:.1}\"/>",
                y_acc - y_top
            );
        }
        h.push_str("</g>\n");
    }
    // X axis: bucket start times, thinned so labels never overlap.
    let _ = writeln!(
        h,
        "<line class=\"axis\" x1=\"{PLOT_LEFT}\" x2=\"{}\" y1=\"{bottom}\" y2=\"{bottom}\"/>",
        CHART_W - PLOT_RIGHT
    );
    let style = label_style(t);
    let label_px = match style {
        TimeStyle::Seconds => 60.0,
        TimeStyle::Minutes => 44.0,
        _ => 86.0,
    };
    let every = ((label_px + 16.0) / slot).ceil().max(1.0) as usize;
    for i in (0..buckets).step_by(every) {
        let x = PLOT_LEFT + i as f64 * slot;
        let start = t.start + i as i64 * t.bucket_seconds;
        let _ = writeln!(
            h,
            "<line class=\"axis\" x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{bottom}\" y2=\"{}\"/>\
             <text class=\"x-label\" x=\"{x:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            bottom + 4.0,
            bottom + 17.0,
            format_time(start, style),
        );
    }
    h.push_str("</svg>\n");
}

/// 1, 2 or 5 times a power of ten, at least `raw`: grid lines at round counts.
fn nice_step(raw: u64) -> u64 {
    let mut p = 1u64;
    loop {
        for m in [1, 2, 5] {
            if p.saturating_mul(m) >= raw {
                return p.saturating_mul(m);
            }
        }
        p = p.saturating_mul(10);
    }
}

#[derive(Debug, Clone, Copy)]
enum TimeStyle {
    Seconds,
    Minutes,
    DayMinutes,
    Full,
    Iso,
}

fn label_style(t: &Timeline) -> TimeStyle {
    let end = t.start + t.buckets as i64 * t.bucket_seconds - 1;
    if t.bucket_seconds < 60 {
        TimeStyle::Seconds
    } else if t.start.div_euclid(86400) == end.div_euclid(86400) {
        TimeStyle::Minutes
    } else {
        TimeStyle::DayMinutes
    }
}

fn format_time(secs: i64, style: TimeStyle) -> String {
    let (y, mo, d) = civil_from_days(secs.div_euclid(86400));
    let s = secs.rem_euclid(86400);
    let (hh, mm, ss) = (s / 3600, s / 60 % 60, s % 60);
    match style {
        TimeStyle::Seconds => format!("{hh:02}:{mm:02}:{ss:02}"),
        TimeStyle::Minutes => format!("{hh:02}:{mm:02}"),
        TimeStyle::DayMinutes => format!("{mo:02}-{d:02} {hh:02}:{mm:02}"),
        TimeStyle::Full => format!("{y:04}-{mo:02}-{d:02} {hh:02}:{mm:02}:{ss:02}"),
        TimeStyle::Iso => format!("{y:04}-{mo:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}Z"),
    }
}

/// A logged timestamp as people read it; anything unparsable is shown as logged.
fn human_time(raw: &str) -> String {
    match parse_timestamp(raw) {
        Some((secs, _)) => format!("{} UTC", format_time(secs, TimeStyle::Full)),
        None => raw.to_owned(),
    }
}

fn human_duration(secs: i64) -> String {
    let parts = [(86400, "d"), (3600, "h"), (60, "min"), (1, "s")];
    let mut rest = secs.max(1);
    let mut out = Vec::new();
    for (unit, name) in parts {
        if rest >= unit {
            out.push(format!("{} {name}", rest / unit));
            rest %= unit;
        }
    }
    out.join(" ")
}

/// Escapes for both text and attribute values: the log is attacker-influenced.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && c != '\t' => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// A terminal interprets escape sequences, so a hostile domain must not reach it raw.
fn printable(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_owned();
    }
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// What [`next_line`] did with a line.
enum Line {
    /// In the buffer.
    Kept,
    /// Longer than [`MAX_LINE`]: consumed but not kept.
    Skipped,
    /// Longer than [`MAX_SKIPPED_LINE`]: reading stopped there.
    Endless,
}

/// Reads one line into `buf` (without its end of line); `None` at the end of the input.
fn next_line(reader: &mut impl BufRead, buf: &mut Vec<u8>) -> io::Result<Option<Line>> {
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

#[derive(serde::Deserialize)]
struct RawEvent {
    target: Option<String>,
    timestamp: Option<String>,
    identity: Option<String>,
    p1_domain: Option<String>,
    p2_domain: Option<String>,
    exo_2023: Option<String>,
    exo_legacy: Option<String>,
    fix: Option<String>,
}

struct Event {
    at: (i64, u32),
    timestamp: String,
    key: FlowKey,
    exo_2023: Verdict,
    exo_legacy: Verdict,
    fix: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Verdict {
    Accepted,
    Refused(String),
    /// exo-legacy for a transaction that ended before its header (it needed the P2 sender).
    Undecided,
}

impl Verdict {
    fn parse(s: &str) -> Option<Verdict> {
        if s == "accepted" {
            return Some(Verdict::Accepted);
        }
        if s == "undecided" {
            return Some(Verdict::Undecided);
        }
        let rest = s.strip_prefix("refused")?;
        if !(rest.is_empty() || rest.starts_with(' ')) {
            return None;
        }
        Some(Verdict::Refused(rest.trim().to_owned()))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct FlowKey {
    identity: String,
    p1_domain: String,
    p2_domain: String,
}

/// A transaction event, or `None` for anything else: another event, or one missing a field
/// the report needs (an older gate's log, or a hand-edited line).
fn parse_event(line: &str) -> Option<Event> {
    if !line.starts_with('{') {
        return None;
    }
    let raw: RawEvent = serde_json::from_str(line).ok()?;
    if raw.target.as_deref() != Some(TRANSACTION_TARGET) {
        return None;
    }
    let timestamp = raw.timestamp?;
    Some(Event {
        at: parse_timestamp(&timestamp)?,
        timestamp,
        exo_2023: Verdict::parse(raw.exo_2023.as_deref()?)?,
        exo_legacy: Verdict::parse(raw.exo_legacy.as_deref()?)?,
        key: FlowKey {
            identity: raw.identity?,
            p1_domain: raw.p1_domain?,
            p2_domain: raw.p2_domain?,
        },
        fix: raw.fix.unwrap_or_default(),
    })
}

#[derive(Default)]
struct FlowAcc {
    count: u64,
    accepted_2023: u64,
    refused_2023: u64,
    accepted_legacy: u64,
    refused_legacy: u64,
    last_refusal_2023: Option<((i64, u32), String)>,
    last_refusal_legacy: Option<((i64, u32), String)>,
    fix: Option<((i64, u32), String)>,
    series: Vec<BucketCount>,
}

/// Keeps `slot` as the value of the latest `at`, so an out-of-order line cannot replace a
/// later refusal or fix with an earlier one.
fn keep_latest(slot: &mut Option<((i64, u32), String)>, at: (i64, u32), value: &str) {
    if slot.as_ref().is_none_or(|(t, _)| *t <= at) {
        *slot = Some((at, value.to_owned()));
    }
}

/// The time axis while streaming: `origin` is a multiple of `width`, and every flow's series
/// is indexed from it.
struct Axis {
    origin: i64,
    width: i64,
    len: usize,
}

#[derive(Default)]
struct Aggregator {
    flows: HashMap<FlowKey, FlowAcc>,
    axis: Option<Axis>,
    first: Option<((i64, u32), String)>,
    last: Option<((i64, u32), String)>,
    skipped: usize,
}

impl Aggregator {
    fn record(&mut self, e: Event) {
        if self.first.as_ref().is_none_or(|(t, _)| e.at < *t) {
            self.first = Some((e.at, e.timestamp.clone()));
        }
        keep_latest(&mut self.last, e.at, &e.timestamp);
        let slot = self.slot(e.at.0);
        let flow = self.flows.entry(e.key).or_default();
        flow.count += 1;
        let mut bucket = BucketCount::default();
        match &e.exo_2023 {
            Verdict::Accepted => {
                flow.accepted_2023 += 1;
                bucket.accepted = 1;
            }
            Verdict::Refused(reply) => {
                flow.refused_2023 += 1;
                bucket.refused = 1;
                keep_latest(&mut flow.last_refusal_2023, e.at, reply);
            }
            // exo-2023 never waits for the header; an older or hand-made line might say so.
            Verdict::Undecided => {}
        }
        match &e.exo_legacy {
            Verdict::Accepted => flow.accepted_legacy += 1,
            Verdict::Refused(reply) => {
                flow.refused_legacy += 1;
                keep_latest(&mut flow.last_refusal_legacy, e.at, reply);
            }
            Verdict::Undecided => {}
        }
        if !e.fix.is_empty() {
            keep_latest(&mut flow.fix, e.at, &e.fix);
        }
        if flow.series.len() <= slot {
            flow.series.resize(slot + 1, BucketCount::default());
        }
        flow.series[slot].add(bucket);
    }

    /// The bucket of `t`, widening or extending the axis (for every flow) when `t` falls
    /// outside it. Widening only ever merges whole buckets, so counts stay exact.
    fn slot(&mut self, t: i64) -> usize {
        let axis = self.axis.get_or_insert(Axis {
            origin: t,
            width: 1,
            len: 1,
        });
        loop {
            if t < axis.origin {
                let new_origin = t.div_euclid(axis.width) * axis.width;
                let k = ((axis.origin - new_origin) / axis.width) as usize;
                if axis.len + k <= MAX_FINE_BUCKETS {
                    prepend(&mut self.flows, k);
                    axis.origin = new_origin;
                    axis.len += k;
                } else {
                    widen(axis, &mut self.flows);
                    continue;
                }
            }
            let index = (t - axis.origin) / axis.width;
            if index < MAX_FINE_BUCKETS as i64 {
                let index = index as usize;
                axis.len = axis.len.max(index + 1);
                return index;
            }
            widen(axis, &mut self.flows);
        }
    }

    fn finish(self) -> Result<Report, ReportError> {
        let Some(axis) = self.axis else {
            return Err(ReportError::NoTransactions {
                skipped_lines: self.skipped,
            });
        };
        // Halve the fine buckets for display when there are too many to read.
        let merge = if axis.len > MAX_BUCKETS { 2 } else { 1 };
        // Start the merged buckets on a multiple of their width too, when that costs no bar.
        let shift = usize::from(
            merge == 2
                && axis.origin.rem_euclid(2 * axis.width) != 0
                && axis.len < MAX_FINE_BUCKETS,
        );
        let timeline = Timeline {
            start: axis.origin - shift as i64 * axis.width,
            bucket_seconds: axis.width * merge as i64,
            buckets: (axis.len + shift).div_ceil(merge),
        };
        let mut flows: Vec<Flow> = self
            .flows
            .into_iter()
            .map(|(key, acc)| {
                let mut series = vec![BucketCount::default(); timeline.buckets];
                for (i, b) in acc.series.iter().enumerate() {
                    series[(i + shift) / merge].add(*b);
                }
                Flow {
                    identity: key.identity,
                    p1_domain: key.p1_domain,
                    p2_domain: key.p2_domain,
                    count: acc.count,
                    accepted_2023: acc.accepted_2023,
                    refused_2023: acc.refused_2023,
                    accepted_legacy: acc.accepted_legacy,
                    refused_legacy: acc.refused_legacy,
                    last_refusal_2023: acc.last_refusal_2023.map(|(_, r)| r),
                    last_refusal_legacy: acc.last_refusal_legacy.map(|(_, r)| r),
                    fix: acc.fix.map(|(_, f)| f),
                    series,
                }
            })
            .collect();
        flows.sort_by(|a, b| {
            let rank = |f: &Flow| (!f.breaks_2023(), !f.broken_by_2023());
            rank(a)
                .cmp(&rank(b))
                .then(b.count.cmp(&a.count))
                .then_with(|| a.identity.cmp(&b.identity))
                .then_with(|| a.p1_domain.cmp(&b.p1_domain))
                .then_with(|| a.p2_domain.cmp(&b.p2_domain))
        });
        Ok(Report {
            flows,
            first: self.first.map(|(_, s)| s),
            last: self.last.map(|(_, s)| s),
            skipped_lines: self.skipped,
            timeline,
        })
    }
}

fn prepend(flows: &mut HashMap<FlowKey, FlowAcc>, k: usize) {
    for f in flows.values_mut() {
        if !f.series.is_empty() {
            f.series
                .splice(0..0, std::iter::repeat_n(BucketCount::default(), k));
        }
    }
}

/// Moves the axis to the next width of [`WIDTHS`]: first back to an origin aligned on the
/// new width, then merging each run of old buckets that makes one new bucket.
fn widen(axis: &mut Axis, flows: &mut HashMap<FlowKey, FlowAcc>) {
    let next = WIDTHS
        .iter()
        .copied()
        .find(|&w| w > axis.width)
        .unwrap_or(axis.width.saturating_mul(2));
    let ratio = (next / axis.width) as usize;
    let new_origin = axis.origin.div_euclid(next) * next;
    let shift = ((axis.origin - new_origin) / axis.width) as usize;
    prepend(flows, shift);
    let old_len = axis.len + shift;
    for f in flows.values_mut() {
        let merged: Vec<BucketCount> = f
            .series
            .chunks(ratio)
            .map(|c| {
                let mut b = BucketCount::default();
                c.iter().for_each(|x| b.add(*x));
                b
            })
            .collect();
        f.series = merged;
    }
    axis.origin = new_origin;
    axis.width = next;
    axis.len = old_len.div_ceil(ratio);
}

/// RFC 3339 to (Unix seconds, nanoseconds). Hand-written because it is all the date handling
/// the report needs, and a date crate would be a dependency for one function.
fn parse_timestamp(s: &str) -> Option<(i64, u32)> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = b.get(r)?;
        if !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        Some(part.iter().fold(0i64, |n, d| n * 10 + i64::from(d - b'0')))
    };
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut i = 19;
    let mut nanos = 0u32;
    if b[i] == b'.' {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 9 {
                nanos = nanos * 10 + u32::from(b[i] - b'0');
            }
            i += 1;
        }
        if i == start {
            return None;
        }
        for _ in (i - start)..9 {
            nanos *= 10;
        }
    }
    let offset = match b.get(i..)? {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), rest @ ..] if rest.len() == 5 && rest[2] == b':' => {
            let oh = num(i + 1..i + 3)?;
            let om = num(i + 4..i + 6)?;
            if oh > 23 || om > 59 {
                return None;
            }
            let o = oh * 3600 + om * 60;
            if *sign == b'+' {
                o
            } else {
                -o
            }
        }
        _ => return None,
    };
    let secs = days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second;
    Some((secs - offset, nanos))
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn event(ts: &str, identity: &str, p1: &str, p2: &str, v2023: &str, legacy: &str) -> String {
        let fix = if v2023 == "accepted" {
            String::new()
        } else {
            format!("add {p2} as an accepted domain")
        };
        serde_json::json!({
            "timestamp": ts,
            "level": "INFO",
            "message": "transaction",
            "target": "relaygate::transaction",
            "session": "s1",
            "identity": identity,
            "p1_domain": p1,
            "p2_domain": p2,
            "exo_2023": v2023,
            "exo_legacy": legacy,
            "fix": fix,
        })
        .to_string()
    }

    fn report(lines: &[String]) -> Report {
        read(lines.join("\n").as_bytes()).expect("a report")
    }

    const REFUSED: &str = "refused 550 5.7.64";

    #[test]
    fn transactions_of_the_same_identity_and_domains_make_one_flow() {
        let lines = [
            event(
                "2026-11-25T02:00:00Z",
                "ip 203.0.113.10",
                "contoso.com",
                "contoso.com",
                "accepted",
                "accepted",
            ),
            event(
                "2026-11-25T02:00:01Z",
                "ip 203.0.113.10",
                "contoso.com",
                "contoso.com",
                "accepted",
                "accepted",
            ),
            event(
                "2026-11-25T02:00:02Z",
                "ip 203.0.113.10",
                "contoso.com",
                "fabrikam.com",
                REFUSED,
                "accepted",
            ),
            event(
                "2026-11-25T02:00:03Z",
                "ip 203.0.113.11",
                "contoso.com",
                "contoso.com",
                "accepted",
                "accepted",
            ),
            event(
                "2026-11-25T02:00:04Z",
                "ip 203.0.113.10",
                "contoso.com",
                "contoso.com",
                REFUSED,
                "accepted",
            ),
        ];
        let r = report(&lines);
        assert_eq!(r.flows.len(), 3);
        let main = r
            .flows
            .iter()
            .find(|f| f.identity == "ip 203.0.113.10" && f.p2_domain == "contoso.com")
            .unwrap();
        assert_eq!(main.count, 3);
        assert_eq!((main.accepted_2023, main.refused_2023), (2, 1));
        assert_eq!((main.accepted_legacy, main.refused_legacy), (3, 0));
        assert_eq!(main.last_refusal_2023.as_deref(), Some("550 5.7.64"));
        assert_eq!(
            main.fix.as_deref(),
            Some("add contoso.com as an accepted domain")
        );
        assert_eq!(main.verdict_2023(), "refused 550 5.7.64 (1 of 3)");
        assert_eq!(main.verdict_legacy(), "accepted");
        let total: u64 = main.series.iter().map(|b| b.accepted + b.refused).sum();
        assert_eq!(total, 3);
        assert_eq!(r.first.as_deref(), Some("2026-11-25T02:00:00Z"));
        assert_eq!(r.last.as_deref(), Some("2026-11-25T02:00:04Z"));
    }

    #[test]
    fn flows_broken_by_2023_but_legacy_ok_come_first_then_by_count() {
        let mut lines = Vec::new();
        for s in 0..10 {
            let ts = format!("2026-11-25T02:00:{s:02}Z");
            lines.push(event(
                &ts,
                "ip 198.51.100.1",
                "fine.example",
                "fine.example",
                "accepted",
                "accepted",
            ));
        }
        for s in 0..5 {
            let ts = format!("2026-11-25T02:01:{s:02}Z");
            lines.push(event(
                &ts,
                "ip 198.51.100.2",
                "both.example",
                "both.example",
                REFUSED,
                "refused 550 5.7.1",
            ));
        }
        for s in 0..2 {
            let ts = format!("2026-11-25T02:02:{s:02}Z");
            lines.push(event(
                &ts,
                "certificate mail.contoso.com",
                "contoso.com",
                "contoso-mail.com",
                REFUSED,
                "accepted",
            ));
        }
        lines.push(event(
            "2026-11-25T02:03:00Z",
            "ip 198.51.100.3",
            "both.example",
            "other.example",
            REFUSED,
            REFUSED,
        ));
        let r = report(&lines);
        let order: Vec<&str> = r.flows.iter().map(|f| f.p2_domain.as_str()).collect();
        assert_eq!(
            order,
            [
                "contoso-mail.com",
                "both.example",
                "other.example",
                "fine.example"
            ]
        );
        assert_eq!(r.breaking_flows(), 3);
        assert!(r.flows[0].broken_by_2023());
        assert_eq!(r.flows[1].verdict_legacy(), "refused 550 5.7.1 (5 of 5)");
    }

    #[test]
    fn null_sender_is_shown_as_angle_brackets() {
        let lines = [event(
            "2026-11-25T02:00:00Z",
            "ip 203.0.113.10",
            "",
            "contoso.com",
            REFUSED,
            "accepted",
        )];
        let r = report(&lines);
        assert_eq!(r.flows[0].p1_domain, "");
        assert_eq!(r.flows[0].p1_display(), "<>");
        let text = r.render_text();
        let row = text
            .lines()
            .find(|l| l.starts_with("ip 203.0.113.10"))
            .unwrap();
        assert!(row.contains(" <> "), "{row}");
        assert!(r.render_html().contains("<td class=\"p1\">&lt;&gt;</td>"));
    }

    #[test]
    fn non_json_and_non_transaction_lines_are_skipped_and_counted() {
        let lines = [
            "relaygate starting".to_owned(),
            concat!(
                r#"{"timestamp":"2026-11-25T02:00:00Z","level":"INFO","#,
                r#""message":"listening","target":"relaygate::server"}"#
            )
            .to_owned(),
            event(
                "2026-11-25T02:00:01Z",
                "ip 203.0.113.10",
                "contoso.com",
                "contoso.com",
                "accepted",
                "accepted",
            ),
            String::new(),
            "{not json".to_owned(),
            r#"{"target":"relaygate::transaction","timestamp":"2026-11-25T02:00:02Z"}"#.to_owned(),
            "[1, 2, 3]".to_owned(),
            event(
                "2026-11-25T02:00:03Z",
                "ip 203.0.113.10",
                "contoso.com",
                "contoso.com",
                "accepted",
                "accepted",
            ),
        ];
        let mut input = lines.join("\r\n").into_bytes();
        input.extend_from_slice(b"\n\xff\xfe not utf-8\n");
        let r = read(input.as_slice()).unwrap();
        assert_eq!(r.flows.len(), 1);
        assert_eq!(r.flows[0].count, 2);
        // Text, other event, "{not json", incomplete transaction, array, invalid UTF-8.
        assert_eq!(r.skipped_lines, 6);
    }

    #[test]
    fn overlong_lines_are_skipped_without_being_kept() {
        let mut input = vec![b'x'; MAX_LINE + 10];
        input.push(b'\n');
        input.extend_from_slice(
            event(
                "2026-11-25T02:00:00Z",
                "ip 203.0.113.10",
                "a.example",
                "a.example",
                "accepted",
                "accepted",
            )
            .as_bytes(),
        );
        let r = read(io::BufReader::with_capacity(4096, input.as_slice())).unwrap();
        assert_eq!((r.flows.len(), r.skipped_lines), (1, 1));
    }

    #[test]
    fn an_endless_line_is_an_error_naming_it() {
        use std::io::Read;
        let first = event(
            "2026-11-25T02:00:00Z",
            "ip 203.0.113.10",
            "a.example",
            "a.example",
            "accepted",
            "accepted",
        ) + "\n";
        let input = first.as_bytes().chain(io::repeat(b'x'));
        let err = read(io::BufReader::with_capacity(64 * 1024, input)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot read the log: line 2 is longer than 64 MiB, the limit for a log line: this is not a relaygate log"
        );
    }

    #[test]
    fn hostile_domains_are_escaped_in_html_and_neutralised_in_text() {
        let hostile = "<script>alert(\"x\")</script>'&";
        let lines = [event(
            "2026-11-25T02:00:00Z",
            "certificate <img src=x onerror=alert(1)>",
            "contoso.com",
            hostile,
            REFUSED,
            "accepted",
        )];
        let r = report(&lines);
        let html = r.render_html();
        assert!(!html.contains("<script"), "unescaped script in the HTML");
        assert!(!html.contains("<img"), "unescaped img in the HTML");
        assert!(html.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&#39;&amp;"));
        let text = read(
            event(
                "2026-11-25T02:00:00Z",
                "ip 1",
                "a\u{1b}[2Jb",
                "c",
                "accepted",
                "accepted",
            )
            .as_bytes(),
        )
        .unwrap()
        .render_text();
        assert!(
            !text.contains('\u{1b}'),
            "escape character reached the terminal"
        );
        assert!(text.contains("a\\u{1b}[2Jb"));
    }

    #[test]
    fn html_is_self_contained() {
        let lines = [event(
            "2026-11-25T02:00:00Z",
            "ip 203.0.113.10",
            "a.example",
            "a.example",
            REFUSED,
            "accepted",
        )];
        let html = report(&lines).render_html();
        for needle in [
            "http:", "https:", "src=", "url(", "@import", "<link", "<script",
        ] {
            assert!(!html.contains(needle), "HTML contains {needle}");
        }
        assert!(html.contains("<svg class=\"chart\" data-flow=\"1\""));
        assert!(html.contains("<rect class=\"refused\""));
        assert!(html.contains("<tr class=\"flow breaking broken-by-2023\""));
    }

    #[test]
    fn empty_log_is_an_error() {
        assert!(matches!(
            read(&b""[..]),
            Err(ReportError::NoTransactions { skipped_lines: 0 })
        ));
        assert!(matches!(
            read(&b"starting\n{\"target\":\"relaygate::server\"}\n"[..]),
            Err(ReportError::NoTransactions { skipped_lines: 2 })
        ));
    }

    #[test]
    fn missing_file_error_names_the_path() {
        let err = load(Path::new("/nonexistent/relaygate.log")).unwrap_err();
        assert!(matches!(err, ReportError::Io { .. }));
        assert!(
            err.to_string().contains("/nonexistent/relaygate.log"),
            "{err}"
        );
    }

    #[test]
    fn timeline_keeps_at_most_48_equal_buckets_and_every_event() {
        // Two hours, one event a minute, plus one out of order at the start.
        let mut lines = Vec::new();
        for m in 0..120 {
            let ts = format!("2026-11-25T{:02}:{:02}:17.5Z", 2 + m / 60, m % 60);
            let v = if m % 3 == 0 { REFUSED } else { "accepted" };
            lines.push(event(
                &ts,
                "ip 203.0.113.10",
                "a.example",
                "a.example",
                v,
                "accepted",
            ));
        }
        lines.push(event(
            "2026-11-25T01:59:59+00:00",
            "ip 203.0.113.10",
            "a.example",
            "a.example",
            "accepted",
            "accepted",
        ));
        let r = report(&lines);
        let t = r.timeline;
        assert!(t.buckets <= MAX_BUCKETS && t.buckets >= 12, "{t:?}");
        assert_eq!(t.start % t.bucket_seconds, 0, "{t:?}");
        let f = &r.flows[0];
        assert_eq!(f.series.len(), t.buckets);
        let accepted: u64 = f.series.iter().map(|b| b.accepted).sum();
        let refused: u64 = f.series.iter().map(|b| b.refused).sum();
        assert_eq!((accepted, refused), (f.accepted_2023, f.refused_2023));
        assert_eq!(r.first.as_deref(), Some("2026-11-25T01:59:59+00:00"));
        let first = parse_timestamp("2026-11-25T01:59:59Z").unwrap().0;
        let last = parse_timestamp("2026-11-25T03:59:17Z").unwrap().0;
        assert!(t.start <= first && last < t.start + t.bucket_seconds * t.buckets as i64);
    }

    #[test]
    fn out_of_order_and_far_apart_events_are_all_counted() {
        // A fixed pseudo-random walk over a year, in no order, across several flows.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut lines = Vec::new();
        for i in 0..2000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let secs = 1_767_225_600 + (state % (365 * 86400)) as i64;
            let (y, m, d) = civil_from_days(secs.div_euclid(86400));
            let s = secs.rem_euclid(86400);
            let ts = format!(
                "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
                s / 3600,
                s / 60 % 60,
                s % 60
            );
            let v = if state % 5 == 0 { REFUSED } else { "accepted" };
            let ip = format!("ip 198.51.100.{}", i % 7);
            lines.push(event(&ts, &ip, "a.example", "a.example", v, "accepted"));
        }
        let r = report(&lines);
        let t = r.timeline;
        assert!(t.buckets <= MAX_BUCKETS, "{t:?}");
        for f in &r.flows {
            assert_eq!(f.series.len(), t.buckets);
            let accepted: u64 = f.series.iter().map(|b| b.accepted).sum();
            let refused: u64 = f.series.iter().map(|b| b.refused).sum();
            assert_eq!((accepted, refused), (f.accepted_2023, f.refused_2023));
        }
        assert_eq!(r.transactions(), 2000);
        let first = parse_timestamp(r.first.as_deref().unwrap()).unwrap().0;
        let last = parse_timestamp(r.last.as_deref().unwrap()).unwrap().0;
        assert!(t.start <= first && last < t.start + t.bucket_seconds * t.buckets as i64);
    }

    #[test]
    fn single_second_logs_get_one_second_buckets() {
        let lines = [
            event(
                "2026-11-25T02:00:00.1Z",
                "ip 1",
                "a",
                "a",
                "accepted",
                "accepted",
            ),
            event(
                "2026-11-25T02:00:00.9Z",
                "ip 1",
                "a",
                "a",
                REFUSED,
                "accepted",
            ),
        ];
        let t = report(&lines).timeline;
        assert_eq!((t.bucket_seconds, t.buckets), (1, 1));
    }

    #[test]
    fn timestamps_parse_as_rfc3339() {
        assert_eq!(parse_timestamp("1970-01-01T00:00:00Z"), Some((0, 0)));
        assert_eq!(
            parse_timestamp("2026-11-25T02:34:21.123456Z"),
            Some((1_795_574_061, 123_456_000))
        );
        assert_eq!(
            parse_timestamp("2026-11-25T03:34:21+01:00"),
            parse_timestamp("2026-11-25T02:34:21Z")
        );
        assert_eq!(parse_timestamp("2026-02-29T00:00:00Z"), None);
        assert_eq!(parse_timestamp("2026-11-25 02:34:21"), None);
        let secs = parse_timestamp("2024-02-29T23:59:59Z").unwrap().0;
        assert_eq!(format_time(secs, TimeStyle::Iso), "2024-02-29T23:59:59Z");
    }

    #[test]
    fn transactions_that_ended_before_their_header_are_counted_but_not_blamed_on_2023() {
        let log = [
            event(
                "2026-11-25T01:00:00Z",
                "ip 203.0.113.10",
                "example.net",
                "",
                "refused 550 5.7.64",
                "undecided",
            ),
            event(
                "2026-11-25T01:00:01Z",
                "ip 203.0.113.10",
                "example.net",
                "",
                "refused 550 5.7.64",
                "undecided",
            ),
        ]
        .join("\n");
        let r = read(log.as_bytes()).unwrap();
        assert_eq!(r.skipped_lines, 0);
        let f = &r.flows[0];
        assert_eq!((f.count, f.refused_2023), (2, 2));
        assert_eq!((f.accepted_legacy, f.refused_legacy), (0, 0));
        assert!(f.breaks_2023() && !f.broken_by_2023());
        assert!(
            f.verdict_legacy().starts_with("undecided"),
            "{}",
            f.verdict_legacy()
        );
    }
}
