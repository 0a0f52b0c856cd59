#!/usr/bin/env python3
"""The soak's verdict and plot (bench/soak.sh), standard library only.

    python3 bench/soak-report.py CSV ACCEPTED SUNK SVG TITLE

CSV: seconds,rss_kib,fds,sink_messages,msgs_per_s (one row per sample). Prints PASS or FAIL for:
  - memory flat after warm-up: the mean RSS of the last third of the samples after warm-up (the
    first quarter of the run) within 5% of the mean of the first third;
  - descriptors flat after warm-up: the same for open descriptors;
  - exact delivery: ACCEPTED (messages the clients were told 250) == SUNK (the sink's count).
Means of thirds, not max/min: descriptors follow the sessions open at the sampled instant, so
single samples jitter by a few; a leak shows as a trend between the thirds. Writes an SVG with
three panels (RSS, descriptors, messages per second) against time. Exits 1 on any FAIL.
"""

import csv
import sys
from xml.sax.saxutils import escape


def flat(values, label, unit):
    n = len(values)
    third = max(1, n // 3)
    first = sum(values[:third]) / third
    last = sum(values[-third:]) / third
    drift = (last - first) / first if first else float("inf")
    ok = abs(drift) <= 0.05
    verdict = "PASS" if ok else "FAIL"
    print(f"{verdict} {label} flat after warm-up: {first:.0f} -> {last:.0f} {unit} ({drift:+.1%}, limit 5%)")
    return ok


def panel(rows, key, label, top, height, warm_until, width=760, left=70):
    xs = [r["seconds"] for r in rows]
    ys = [r[key] for r in rows]
    x0, x1 = min(xs), max(xs) or 1
    y0, y1 = 0.0, (max(ys) * 1.1) or 1
    def px(x):
        return left + (x - x0) / ((x1 - x0) or 1) * width
    def py(y):
        return top + height - (y - y0) / (y1 - y0) * height
    points = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in zip(xs, ys))
    return "\n".join([
        f'<rect x="{left}" y="{top}" width="{width}" height="{height}" fill="none" stroke="#999"/>',
        f'<text x="{left}" y="{top - 6}" font-size="13">{escape(label)}</text>',
        f'<text x="{left - 6}" y="{top + 10}" font-size="11" text-anchor="end">{y1:.0f}</text>',
        f'<text x="{left - 6}" y="{top + height}" font-size="11" text-anchor="end">0</text>',
        f'<text x="{left}" y="{top + height + 14}" font-size="11">{x0:.0f} s</text>',
        f'<text x="{left + width}" y="{top + height + 14}" font-size="11" text-anchor="end">{x1:.0f} s</text>',
        f'<line x1="{px(warm_until):.1f}" y1="{top}" x2="{px(warm_until):.1f}" y2="{top + height}" stroke="#c60" stroke-dasharray="4 3"/>',
        f'<text x="{px(warm_until) + 4:.1f}" y="{top + height - 4}" font-size="10" fill="#c60">warm-up ends</text>',
        f'<polyline fill="none" stroke="#1f5fa8" stroke-width="1.5" points="{points}"/>',
    ])


def main():
    if len(sys.argv) != 6:
        sys.exit(__doc__)
    path, accepted, sunk, svg, title = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
    with open(path, newline="") as f:
        rows = [{k: float(v) for k, v in r.items()} for r in csv.DictReader(f)]
    if len(rows) < 4:
        print(f"FAIL too few samples ({len(rows)}) for a verdict")
        sys.exit(1)
    warm = max(1, len(rows) // 4)
    after = rows[warm:]
    ok = flat([r["rss_kib"] for r in after], "memory (VmRSS)", "KiB")
    ok &= flat([r["fds"] for r in after], "open descriptors", "fds")
    exact = accepted == sunk
    print(f"{'PASS' if exact else 'FAIL'} exact delivery: clients told 250 for {accepted}, sink counted {sunk}")
    ok &= exact
    w = rows[warm]["seconds"]
    body = [
        '<svg xmlns="http://www.w3.org/2000/svg" width="860" height="640" font-family="sans-serif">',
        '<rect width="100%" height="100%" fill="white"/>',
        f'<text x="70" y="22" font-size="15">{escape(title)}</text>',
        panel([{**r, "rss_mib": r["rss_kib"] / 1024} for r in rows], "rss_mib", "relaygate resident memory (MiB)", 50, 150, w),
        panel(rows, "fds", "relaygate open descriptors", 250, 150, w),
        panel(rows, "msgs_per_s", "messages per second at the sink", 450, 150, w),
        "</svg>",
    ]
    with open(svg, "w") as f:
        f.write("\n".join(body) + "\n")
    print(f"{'PASS' if ok else 'FAIL'} soak; plot in {svg}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
