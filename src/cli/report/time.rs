//! Timestamps: RFC 3339 in, the few forms the report shows out (both through jiff).

use super::Timeline;

#[derive(Debug, Clone, Copy)]
pub(super) enum TimeStyle {
    Seconds,
    Minutes,
    DayMinutes,
    Full,
    Iso,
}

pub(super) fn label_style(t: &Timeline) -> TimeStyle {
    let end = t.start + t.buckets as i64 * t.bucket_seconds - 1;
    if t.bucket_seconds < 60 {
        TimeStyle::Seconds
    } else if t.start.div_euclid(86400) == end.div_euclid(86400) {
        TimeStyle::Minutes
    } else {
        TimeStyle::DayMinutes
    }
}

pub(super) fn format_time(secs: i64, style: TimeStyle) -> String {
    let at = jiff::Timestamp::from_second(secs).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    let pattern = match style {
        TimeStyle::Seconds => "%H:%M:%S",
        TimeStyle::Minutes => "%H:%M",
        TimeStyle::DayMinutes => "%m-%d %H:%M",
        TimeStyle::Full => "%Y-%m-%d %H:%M:%S",
        TimeStyle::Iso => "%Y-%m-%dT%H:%M:%SZ",
    };
    at.strftime(pattern).to_string()
}

/// A logged timestamp as people read it; anything unparsable is shown as logged.
pub(super) fn human_time(raw: &str) -> String {
    match parse_timestamp(raw) {
        Some((secs, _)) => format!("{} UTC", format_time(secs, TimeStyle::Full)),
        None => raw.to_owned(),
    }
}

pub(super) fn human_duration(secs: i64) -> String {
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

/// RFC 3339 (what the JSON log writes) to (Unix seconds, nanoseconds); `None` for anything
/// else, including a time without an offset.
pub(super) fn parse_timestamp(s: &str) -> Option<(i64, u32)> {
    let at: jiff::Timestamp = s.parse().ok()?;
    Some((at.as_second(), at.subsec_nanosecond().max(0) as u32))
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
