//! The report read from logs the tests write, and rendered.

use super::aggregate::MAX_BUCKETS;
use super::read::MAX_LINE;
use super::time::parse_timestamp;
use super::*;
use std::path::Path;

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
    assert_eq!(
        main.last_refusal_2023,
        Some(RecordedVerdict::Refused {
            code: 550,
            enhanced: "5.7.64".into()
        })
    );
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
    // Every attribute maud writes is double-quoted, so `'` cannot end one and stays as it is;
    // `&`, `<`, `>` and `"` are escaped wherever a value lands.
    assert!(html.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;'&amp;"));
    assert!(
        !html.contains("='"),
        "a single-quoted attribute in the HTML"
    );
    let control = read(
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
    .unwrap();
    let html = control.render_html();
    assert!(!html.contains('\u{1b}'), "escape character in the HTML");
    assert!(html.contains("a\\u{1b}[2Jb"));
    let text = control.render_text();
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
        let ts = jiff::Timestamp::from_second(secs).unwrap().to_string();
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

#[test]
fn an_authenticated_users_transactions_make_its_own_flow_whatever_its_address() {
    // The session logs `user NAME` as the identity, not the address it came from.
    let lines = [
        event(
            "2026-11-25T02:00:00Z",
            "user scanner",
            "contoso.com",
            "contoso.com",
            "accepted",
            "accepted",
        ),
        event(
            "2026-11-25T02:00:01Z",
            "user scanner",
            "contoso.com",
            "contoso.com",
            "accepted",
            "accepted",
        ),
        event(
            "2026-11-25T02:00:02Z",
            "ip 127.0.0.1",
            "contoso.com",
            "contoso.com",
            "accepted",
            "accepted",
        ),
    ];
    let r = report(&lines);
    assert_eq!(r.flows.len(), 2);
    let user = r
        .flows
        .iter()
        .find(|f| f.identity == "user scanner")
        .unwrap();
    assert_eq!(user.count, 2);
    assert!(r.render_text().contains("user scanner"));
}
