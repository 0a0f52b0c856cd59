//! The report as a table for a terminal.

use super::Report;
use std::fmt::Write as _;

impl Report {
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
        let line = |cells: [&str; 7]| {
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
            format!("{}\n", l.trim_end())
        };
        // With tenants, each tenant's flows under a heading of their own, the table header
        // repeated; without, one table as always.
        let mut group: Option<&str> = None;
        for (i, (f, row)) in self.flows.iter().zip(&rows).enumerate() {
            let heading = self.has_tenants() && group != Some(f.tenant.as_str());
            if heading {
                group = Some(&f.tenant);
                let (n, count) = self
                    .flows
                    .iter()
                    .filter(|g| g.tenant == f.tenant)
                    .fold((0, 0), |(n, c), g| (n + 1, c + g.count));
                if i > 0 {
                    out.push('\n');
                }
                let _ = writeln!(
                    out,
                    "tenant {}: {count} transactions in {n} flows",
                    printable(f.tenant_display())
                );
            }
            if heading || i == 0 {
                out.push_str(&line(header));
            }
            out.push_str(&line(row.each_ref().map(String::as_str)));
        }
        let blocks: Vec<(&super::Flow, String)> = self
            .flows
            .iter()
            .filter_map(|f| f.rewrite_block().map(|b| (f, b)))
            .collect();
        if !blocks.is_empty() {
            out.push_str(
                "\nOr fix a flow broken by the November 2023 change at the gate, with a [[rewrite]] \
                 rule (README: Fix a flow at the gate; the From: header is not changed):\n",
            );
        }
        for (f, block) in blocks {
            // Not the identity: the block names the client, and a line per flow is the table's.
            let _ = writeln!(
                out,
                "\n# MAIL FROM {}, From: {}",
                printable(f.p1_display()),
                printable(f.p2_display())
            );
            out.push_str(&block);
        }
        out
    }
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
