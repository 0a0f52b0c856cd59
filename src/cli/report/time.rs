//! Timestamps: RFC 3339 in, the few forms the report shows out.

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

/// RFC 3339 to (Unix seconds, nanoseconds). Hand-written because it is all the date handling
/// the report needs, and a date crate would be a dependency for one function.
pub(super) fn parse_timestamp(s: &str) -> Option<(i64, u32)> {
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

pub(super) fn civil_from_days(z: i64) -> (i64, i64, i64) {
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
