//! The report as one self-contained HTML page: a summary, the flow table, a chart per flow.
//!
//! Written with maud, which escapes every interpolated value by default: the log is
//! attacker-influenced (a P2 domain is whatever the sender wrote in `From:`), so no value
//! reaches the page as markup unless it is wrapped in `PreEscaped`, which only the gate's own
//! stylesheet is. No script, no outside resource: the page's CSP allows inline style only.

use super::time::{human_duration, human_time};
use super::{Flow, Report};
use maud::{html, Markup, PreEscaped, DOCTYPE};

const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'";

impl Report {
    pub fn render_html(&self) -> String {
        let broken_by_change = self.flows.iter().filter(|f| f.broken_by_2023()).count();
        let breaking = self.breaking_flows();
        let refused_2023: u64 = self.flows.iter().map(|f| f.refused_2023).sum();
        let range = match (&self.first, &self.last) {
            (Some(a), Some(b)) => format!("{} to {}", human_time(a), human_time(b)),
            _ => "no timestamps".to_owned(),
        };
        let totals = [
            ("transactions", self.transactions(), ""),
            ("flows", self.flows.len() as u64, ""),
            (
                "flows refused under exo-2023",
                breaking as u64,
                if breaking > 0 { " bad" } else { " good" },
            ),
            (
                "of them accepted under exo-legacy",
                broken_by_change as u64,
                if broken_by_change > 0 { " bad" } else { "" },
            ),
            ("transactions refused under exo-2023", refused_2023, ""),
            ("log lines skipped", self.skipped_lines as u64, ""),
        ];
        let page = html! {
            (DOCTYPE)
            html lang="en" {
                head {
                    meta charset="utf-8";
                    meta http-equiv="Content-Security-Policy" content=(CSP);
                    meta name="viewport" content="width=device-width, initial-scale=1";
                    title { "relaygate audit report" }
                    style { (PreEscaped(CSS)) }
                }
                body {
                    header id="summary" {
                        h1 { "relaygate audit report" }
                        p class="range" { (visible(&range)) }
                        ul class="totals" {
                            @for (id, (label, value, class)) in totals.iter().enumerate() {
                                li class={ "total" (class) } id={ "total-" (id) } {
                                    span class="value" { (value) } " "
                                    span class="label" { (label) }
                                }
                            }
                        }
                    }
                    section id="flows" {
                        h2 { "Flows" }
                        p class="note" {
                            "A flow is one sender identity, envelope (P1) domain and "
                            code { "From:" }
                            " (P2) domain. Flows refused under exo-2023 come first, those the \
                             November 2023 change broke (accepted under exo-legacy) before all \
                             others."
                        }
                        table class="flows" {
                            thead { tr {
                                th { "#" }
                                @if self.has_tenants() { th { "Tenant" } }
                                th { "Identity" } th { "P1 (MAIL FROM)" }
                                th { "P2 (From:)" } th class="num" { "Count" }
                                th { "exo-2023" } th { "exo-legacy" } th { "Fix" }
                            } }
                            tbody {
                                @for (i, f) in self.flows.iter().enumerate() {
                                    (flow_row(i + 1, f, self.has_tenants()))
                                }
                            }
                        }
                    }
                    (rewrite_blocks(self))
                    section id="charts" {
                        h2 { "Over time" }
                        p class="note" {
                            "Transactions per " (human_duration(self.timeline.bucket_seconds))
                            " bucket (UTC), judged under exo-2023."
                        }
                        @for (i, f) in self.flows.iter().enumerate() {
                            (flow_chart(i + 1, f, self))
                        }
                    }
                }
            }
        };
        page.into_string()
    }
}

/// One row of the flow table; `tenants`: the log names tenants, so the row names its own.
fn flow_row(n: usize, f: &Flow, tenants: bool) -> Markup {
    html! {
        tr class=(flow_class("flow", f)) id={ "flow-" (n) } data-flow=(n) {
            td class="num" { a href={ "#chart-" (n) } { (n) } }
            @if tenants { td class="tenant" { (visible(f.tenant_display())) } }
            td class="identity" { (visible(&f.identity)) }
            td class="p1" { (visible(f.p1_display())) }
            td class="p2" { (visible(f.p2_display())) }
            td class="num count" { (f.count) }
            td class={ "verdict exo-2023 " (verdict_class(f.refused_2023)) } {
                span class="v" { (visible(&f.verdict_2023())) }
            }
            td class={ "verdict exo-legacy " (verdict_class(f.refused_legacy)) } {
                span class="v" { (visible(&f.verdict_legacy())) }
                (badge(f))
            }
            td class="fix" { (visible(f.fix.as_deref().unwrap_or(""))) }
        }
    }
}

/// The `[[rewrite]]` blocks that would fix each flow the November 2023 change broke, after the
/// table as in the text report; none, no section. A block is TOML from the log's values (the
/// `toml` crate escaped them for TOML), and maud escapes it again for HTML: an admin copies
/// exactly what the text report prints.
fn rewrite_blocks(report: &Report) -> Markup {
    let blocks: Vec<(usize, &Flow, String)> = report
        .flows
        .iter()
        .enumerate()
        .filter_map(|(i, f)| f.rewrite_block().map(|b| (i + 1, f, b)))
        .collect();
    html! {
        @if !blocks.is_empty() {
            section id="rewrites" {
                h2 { "Or fix a flow at the gate" }
                p class="note" {
                    "Each flow broken by the November 2023 change, fixed with a "
                    code { "[[rewrite]]" }
                    " rule instead of a connector change (README: Fix a flow at the gate; the "
                    code { "From:" } " header is not changed)."
                }
                @for (n, f, block) in &blocks {
                    pre class="rewrite" id={ "rewrite-" (n) } data-flow=(n) {
                        code {
                            "# MAIL FROM " (visible(f.p1_display())) ", From: "
                            (visible(f.p2_display())) "\n"
                            // Line by line: its line breaks are the block's own.
                            @for line in block.lines() { (visible(line)) "\n" }
                        }
                    }
                }
            }
        }
    }
}

/// One flow's heading, fix and chart.
fn flow_chart(n: usize, f: &Flow, report: &Report) -> Markup {
    html! {
        section class=(flow_class("flow-chart", f)) id={ "chart-" (n) } {
            h3 {
                span class="rank" { (n) } " " (visible(&f.identity)) " "
                span class="arrow" { "·" } " P1 " (visible(f.p1_display())) " "
                span class="arrow" { "·" } " P2 " (visible(f.p2_display()))
                (badge(f))
            }
            @if let Some(fix) = &f.fix {
                p class="fix" { "Fix: " (visible(fix)) }
            }
            (super::chart::svg(n, f, &report.timeline))
        }
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
fn badge(f: &Flow) -> Markup {
    html! {
        @if f.broken_by_2023() {
            span class="badge" { "broken by the 2023 rules" }
        }
    }
}

fn verdict_class(refused: u64) -> &'static str {
    if refused > 0 {
        "refused"
    } else {
        "accepted"
    }
}

/// Control characters (but tab) as visible `\u{1b}` escapes: harmless in HTML, yet a reader
/// should see that the log held them. maud escapes the markup characters.
pub(super) fn visible(s: &str) -> std::borrow::Cow<'_, str> {
    use std::fmt::Write as _;
    if !s.chars().any(|c| c.is_control() && c != '\t') {
        return s.into();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c.is_control() && c != '\t' {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        } else {
            out.push(c);
        }
    }
    out.into()
}

const CSS: &str = r":root { --ok: #2e7d32; --bad: #c62828; --ink: #1d2329; --muted: #5f6b76; --line: #d8dee4; }
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
pre.rewrite { background: #f3f5f7; border: 1px solid var(--line); border-radius: 6px;
  padding: 10px 14px; margin: 0 0 10px; font-size: 12px; overflow-x: auto; }
svg.chart { display: block; width: 100%; max-width: 1200px; height: auto; }
svg.chart text { font: 11px system-ui, 'DejaVu Sans', sans-serif; fill: var(--muted); }
svg.chart .accepted { fill: var(--ok); }
svg.chart .refused { fill: var(--bad); }
svg.chart .grid { stroke: #e5e9ed; stroke-width: 1; }
svg.chart .axis { stroke: #9aa5b1; stroke-width: 1; }
svg.chart g.bucket:hover rect { opacity: 0.75; }
";
