//! One flow's chart: accepted and refused transactions under exo-2023 per time bucket, as
//! inline SVG (stacked bars, a grid at round counts, thinned time labels, a tooltip per bar).

use super::time::{format_time, label_style, TimeStyle};
use super::{BucketCount, Flow, Timeline};
use maud::{html, Markup};

const CHART_W: f64 = 1160.0;
const CHART_H: f64 = 230.0;
const PLOT_LEFT: f64 = 48.0;
const PLOT_RIGHT: f64 = 12.0;
const PLOT_TOP: f64 = 30.0;
const PLOT_BOTTOM: f64 = 36.0;

/// A coordinate to one decimal: enough for a screen, short in the page.
fn at(v: f64) -> String {
    format!("{v:.1}")
}

/// The plot's geometry for one flow: where a count and a bucket land.
struct Plot {
    buckets: usize,
    plot_h: f64,
    bottom: f64,
    /// The count at the top of the plot, a multiple of `step`.
    top: u64,
    /// Grid lines every `step` transactions.
    step: u64,
    slot: f64,
    gap: f64,
}

impl Plot {
    fn new(f: &Flow, t: &Timeline) -> Plot {
        let buckets = t.buckets.max(1);
        let plot_w = CHART_W - PLOT_LEFT - PLOT_RIGHT;
        let plot_h = CHART_H - PLOT_TOP - PLOT_BOTTOM;
        let peak = f
            .series
            .iter()
            .map(|b| b.accepted + b.refused)
            .max()
            .unwrap_or(0)
            .max(1);
        let step = nice_step(peak.div_ceil(4));
        let slot = plot_w / buckets as f64;
        Plot {
            buckets,
            plot_h,
            bottom: PLOT_TOP + plot_h,
            top: peak.div_ceil(step) * step,
            step,
            slot,
            gap: (slot * 0.15).clamp(1.0, 6.0),
        }
    }

    fn y(&self, v: u64) -> f64 {
        self.bottom - self.plot_h * v as f64 / self.top as f64
    }
}

pub(super) fn svg(n: usize, f: &Flow, t: &Timeline) -> Markup {
    let p = Plot::new(f, t);
    let right = CHART_W - PLOT_RIGHT;
    let grid: Vec<u64> = (0..=p.top).step_by(p.step as usize).collect();
    // Legend, top right.
    let lx = right - 230.0;
    html! {
        svg class="chart" data-flow=(n) viewBox={ "0 0 " (CHART_W) " " (CHART_H) }
            width=(CHART_W) height=(CHART_H) role="img"
            aria-label={ "flow " (n) ": accepted and refused transactions under exo-2023 over time" } {
            g class="legend" {
                rect class="legend-accepted accepted" x=(lx) y="8" width="12" height="12" {}
                text x=(lx + 17.0) y="18" { "accepted" }
                rect class="legend-refused refused" x=(lx + 90.0) y="8" width="12" height="12" {}
                text x=(lx + 107.0) y="18" { "refused (exo-2023)" }
            }
            @for v in grid {
                line class="grid" x1=(PLOT_LEFT) x2=(right) y1=(at(p.y(v))) y2=(at(p.y(v))) {}
                text class="y-label" x=(PLOT_LEFT - 6.0) y=(at(p.y(v) + 4.0)) text-anchor="end" { (v) }
            }
            @for (i, b) in f.series.iter().enumerate().take(p.buckets) {
                @if b.accepted + b.refused > 0 {
                    (bar(&p, t, i, b))
                }
            }
            line class="axis" x1=(PLOT_LEFT) x2=(right) y1=(p.bottom) y2=(p.bottom) {}
            (x_labels(&p, t))
        }
    }
}

/// One bucket's stacked bar, with its counts as a tooltip.
fn bar(p: &Plot, t: &Timeline, i: usize, b: &BucketCount) -> Markup {
    let start = t.start + i as i64 * t.bucket_seconds;
    let x = at(PLOT_LEFT + i as f64 * p.slot + p.gap / 2.0);
    let w = at((p.slot - p.gap).max(1.0));
    let y_acc = p.y(b.accepted);
    let y_top = p.y(b.accepted + b.refused);
    html! {
        g class="bucket" data-start=(format_time(start, TimeStyle::Iso)) {
            title {
                (format_time(start, TimeStyle::Full)) " to "
                (format_time(start + t.bucket_seconds, TimeStyle::Full)) " UTC: "
                (b.accepted) " accepted, " (b.refused) " refused"
            }
            @if b.accepted > 0 {
                rect class="accepted" x=(x) y=(at(y_acc)) width=(w) height=(at(p.bottom - y_acc)) {}
            }
            @if b.refused > 0 {
                rect class="refused" x=(x) y=(at(y_top)) width=(w) height=(at(y_acc - y_top)) {}
            }
        }
    }
}

/// Bucket start times under the axis, thinned so labels never overlap.
fn x_labels(p: &Plot, t: &Timeline) -> Markup {
    let style = label_style(t);
    let label_px = match style {
        TimeStyle::Seconds => 60.0,
        TimeStyle::Minutes => 44.0,
        _ => 86.0,
    };
    let every = ((label_px + 16.0) / p.slot).ceil().max(1.0) as usize;
    html! {
        @for i in (0..p.buckets).step_by(every) {
            @let x = at(PLOT_LEFT + i as f64 * p.slot);
            line class="axis" x1=(x) x2=(x) y1=(p.bottom) y2=(p.bottom + 4.0) {}
            text class="x-label" x=(x) y=(p.bottom + 17.0) text-anchor="middle" {
                (format_time(t.start + i as i64 * t.bucket_seconds, style))
            }
        }
    }
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
