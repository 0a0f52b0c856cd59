//! Events grouped into flows, each with a series of counts on one shared time axis.

use super::{BucketCount, Flow, Report, ReportError, Timeline};
use crate::policy::RecordedVerdict;
use std::collections::HashMap;

/// A transaction event, as the aggregation needs it.
pub(super) struct Event {
    pub(super) at: (i64, u32),
    pub(super) timestamp: String,
    pub(super) key: FlowKey,
    pub(super) exo_2023: RecordedVerdict,
    pub(super) exo_legacy: RecordedVerdict,
    pub(super) fix: String,
}

/// What makes a flow: the unit one fix applies to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct FlowKey {
    /// The tenant the transactions were attributed to; empty when none is named.
    pub(super) tenant: String,
    pub(super) identity: String,
    pub(super) p1_domain: String,
    pub(super) p2_domain: String,
}

/// The most buckets a chart shows: beyond that bars get too thin to read or hover.
pub(super) const MAX_BUCKETS: usize = 48;
/// Buckets kept while reading: twice the display so that the final merge by two can reach
/// near 48 buckets even when the ladder of widths jumps by five.
const MAX_FINE_BUCKETS: usize = 2 * MAX_BUCKETS;
/// Bucket widths in seconds, each a multiple of the one before, so that rebucketing while
/// streaming is exact (no event ever moves to a neighbouring bucket) and every bucket starts
/// on a round time. Past the last, widths double.
const WIDTHS: [i64; 13] = [
    1, 2, 10, 20, 60, 120, 600, 1200, 3600, 7200, 21600, 43200, 86400,
];

#[derive(Default)]
struct FlowAcc {
    count: u64,
    accepted_2023: u64,
    refused_2023: u64,
    accepted_legacy: u64,
    refused_legacy: u64,
    last_refusal_2023: Option<((i64, u32), RecordedVerdict)>,
    last_refusal_legacy: Option<((i64, u32), RecordedVerdict)>,
    fix: Option<((i64, u32), String)>,
    series: Vec<BucketCount>,
}

/// Keeps `slot` as the value of the latest `at`, so an out-of-order line cannot replace a
/// later refusal or fix with an earlier one.
fn keep_latest<T: Clone>(slot: &mut Option<((i64, u32), T)>, at: (i64, u32), value: &T) {
    if slot.as_ref().is_none_or(|(t, _)| *t <= at) {
        *slot = Some((at, value.clone()));
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
pub(super) struct Aggregator {
    flows: HashMap<FlowKey, FlowAcc>,
    axis: Option<Axis>,
    first: Option<((i64, u32), String)>,
    last: Option<((i64, u32), String)>,
    /// Lines that were not transaction events.
    pub(super) skipped: usize,
}

impl Aggregator {
    pub(super) fn record(&mut self, e: Event) {
        if self.first.as_ref().is_none_or(|(t, _)| e.at < *t) {
            self.first = Some((e.at, e.timestamp.clone()));
        }
        keep_latest(&mut self.last, e.at, &e.timestamp);
        let slot = self.slot(e.at.0);
        let flow = self.flows.entry(e.key).or_default();
        flow.count += 1;
        let mut bucket = BucketCount::default();
        match &e.exo_2023 {
            RecordedVerdict::Accepted => {
                flow.accepted_2023 += 1;
                bucket.accepted = 1;
            }
            v @ RecordedVerdict::Refused { .. } => {
                flow.refused_2023 += 1;
                bucket.refused = 1;
                keep_latest(&mut flow.last_refusal_2023, e.at, v);
            }
            // exo-2023 never waits for the header; an older or hand-made line might say so.
            RecordedVerdict::Undecided => {}
        }
        match &e.exo_legacy {
            RecordedVerdict::Accepted => flow.accepted_legacy += 1,
            v @ RecordedVerdict::Refused { .. } => {
                flow.refused_legacy += 1;
                keep_latest(&mut flow.last_refusal_legacy, e.at, v);
            }
            RecordedVerdict::Undecided => {}
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

    pub(super) fn finish(self) -> Result<Report, ReportError> {
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
                    tenant: key.tenant,
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
        // Grouped per tenant (in name order), then within each as before.
        flows.sort_by(|a, b| {
            let rank = |f: &Flow| (!f.breaks_2023(), !f.broken_by_2023());
            a.tenant
                .cmp(&b.tenant)
                .then(rank(a).cmp(&rank(b)))
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
