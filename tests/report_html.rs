//! `relaygate report` as an admin sees it: a realistic audit log rendered to HTML and opened
//! in a real headless browser (Debian's chromium), so escaping, layout and the inline SVG
//! charts are checked by what a browser builds, not by string matching alone.

mod support;

use relaygate::cli::report;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use support::{run_chromium, CHROMIUM};

/// In a P2 domain, where a hostile sender controls it; the report must show it as text.
const HOSTILE: &str = "<script>alert('p2')</script>.example";
const HOSTILE_IDENTITY: &str = "ip 192.0.2.66\"><img src=x onerror=alert(1)>";

/// Two hours of an audit run starting 2026-11-25 02:00 UTC: the three flows an admin
/// typically finds, interleaved with the gate's other events and a stray text line.
fn write_log(path: &Path) {
    let start = 1_795_572_000i64; // 2026-11-25T02:00:00Z
    let mut log = String::new();
    log.push_str("relaygate 0.1.0 starting (audit mode)\n");
    log.push_str(&other_event(
        start - 5,
        "relaygate::server",
        "listening on 0.0.0.0:25",
    ));
    let mut n = 0u64;
    // One event every ~25 s over two hours: 288 transactions.
    for i in 0..288i64 {
        let t = start + i * 25 + (i * 7) % 11;
        let (identity, p1, p2, exo_2023, exo_legacy, fix) = match i % 6 {
            // The multifunction printers: certificate-authenticated but sending as a domain
            // that is not accepted. Fine before November 2023, refused since, until the
            // admin adds the domain and reloads the gate at 03:30.
            0..=2 if i >= 216 => (
                "certificate mail.contoso.com",
                "contoso-mail.com",
                "contoso-mail.com",
                "accepted",
                "accepted",
                "",
            ),
            0..=2 => (
                "certificate mail.contoso.com",
                "contoso-mail.com",
                "contoso-mail.com",
                "refused 550 5.7.64",
                "accepted",
                "add contoso-mail.com as an accepted domain",
            ),
            // A line-of-business app relaying bounces from an unknown IP: refused either way,
            // and with a hostile From: domain.
            3 if i % 4 == 1 => (
                HOSTILE_IDENTITY,
                "",
                HOSTILE,
                "refused 550 5.7.64",
                "refused 550 5.7.64",
                "add an inbound connector for 192.0.2.66",
            ),
            // The on-premises Exchange server: all fine.
            _ => (
                "ip 203.0.113.10",
                "fabrikam.com",
                "fabrikam.com",
                "accepted",
                "accepted",
                "",
            ),
        };
        n += 1;
        let _ = writeln!(
            log,
            "{}",
            serde_json::json!({
                "timestamp": rfc3339(t, (i * 37_123) % 1_000_000),
                "level": "INFO",
                "message": "transaction",
                "target": "relaygate::transaction",
                "session": format!("{n:08x}"),
                "peer": "203.0.113.10:50123",
                "helo": "printer.contoso.com",
                "tls": "TLSv1.3",
                "identity": identity,
                "p1_domain": p1,
                "p2_domain": p2,
                "recipients": ["someone@example.org=accepted"],
                "size": 2048 + i,
                "profile": "exo-2023",
                "mode": "audit",
                "exo_2023": exo_2023,
                "exo_legacy": exo_legacy,
                "fix": fix,
            })
        );
        if i % 20 == 0 {
            log.push_str(&other_event(
                t,
                "relaygate::upstream",
                "upstream connection reused",
            ));
        }
        if i == 150 {
            log.push_str("\n   \nWARN something that is not JSON\n");
        }
    }
    std::fs::write(path, log).unwrap();
}

fn other_event(t: i64, target: &str, message: &str) -> String {
    format!(
        "{}\n",
        serde_json::json!({
            "timestamp": rfc3339(t, 0),
            "level": "INFO",
            "message": message,
            "target": target,
        })
    )
}

fn rfc3339(t: i64, micros: i64) -> String {
    let days = t.div_euclid(86_400);
    let s = t.rem_euclid(86_400);
    // 2026-11-25 is day 20_782 since the epoch; the log stays within that day.
    assert_eq!(days, 20_782, "test log must stay on 2026-11-25");
    format!(
        "2026-11-25T{:02}:{:02}:{:02}.{micros:06}Z",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// The report's own checks, which need no browser.
fn check_report(report: &report::Report, html: &str) {
    assert_eq!(report.flows.len(), 3, "{}", report.render_text());
    assert_eq!(report.breaking_flows(), 2);
    assert_eq!(report.flows[0].identity, "certificate mail.contoso.com");
    assert!(report.flows[0].broken_by_2023());
    assert_eq!(report.flows[1].p2_domain, HOSTILE);
    assert_eq!(report.flows[2].p2_domain, "fabrikam.com");
    // Two "upstream" events every 20 transactions, the start banner, "listening", the
    // stray text line.
    assert_eq!(report.skipped_lines, 15 + 3);
    assert!(report.timeline.buckets > 12 && report.timeline.buckets <= 48);
    assert!(!html.contains(HOSTILE) && !html.contains("<img"));
    // The printers' flow, broken by the November 2023 change, gets its [[rewrite]] block after
    // the table, as in the text report; the flow refused under both profiles does not.
    assert_eq!(html.matches("<pre class=\"rewrite\"").count(), 1, "{html}");
    assert!(html.contains("<pre class=\"rewrite\" id=\"rewrite-1\" data-flow=\"1\">"));
}

#[test]
#[cfg_attr(
    not(feature = "peers"),
    ignore = "needs Chromium: cargo test --features peers (scripts/test.sh)"
)]
fn report_renders_in_a_headless_browser() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("relaygate.log");
    write_log(&log);
    let report = report::load(&log).expect("the report of the log");
    let html = report.render_html();
    check_report(&report, &html);
    let page = dir.path().join("report.html");
    std::fs::write(&page, &html).unwrap();

    if !Path::new(CHROMIUM).exists() {
        if std::env::var("RELAYGATE_SKIP_BROWSER").as_deref() == Ok("1") {
            eprintln!("RELAYGATE_SKIP_BROWSER=1: not rendering the report in a browser");
            return;
        }
        panic!(
            "{CHROMIUM} is missing: install it with `apt-get install -y chromium` (Debian), \
             or set RELAYGATE_SKIP_BROWSER=1 to skip the browser check"
        );
    }

    let url = format!("file://{}", page.display());
    let png = dir.path().join("report.png");
    run_chromium(
        dir.path(),
        &[
            format!("--screenshot={}", png.display()),
            "--window-size=1280,2000".to_owned(),
            url.clone(),
        ],
        &dir.path().join("screenshot-stdout.txt"),
    );
    let image = std::fs::read(&png).expect("chromium wrote no screenshot");
    assert!(
        image.starts_with(b"\x89PNG\r\n\x1a\n"),
        "the screenshot is not a PNG"
    );
    assert!(
        image.len() > 20_000,
        "the screenshot is only {} bytes: a blank page?",
        image.len()
    );
    // How docs/report-example.png is refreshed after a layout change.
    if let Some(keep) = std::env::var_os("RELAYGATE_REPORT_SCREENSHOT") {
        std::fs::copy(&png, PathBuf::from(keep)).unwrap();
    }

    let dom_path = dir.path().join("dom.html");
    run_chromium(dir.path(), &["--dump-dom".to_owned(), url], &dom_path);
    let dom = std::fs::read_to_string(&dom_path).unwrap();
    check_dom(&dom);
}

fn check_dom(dom: &str) {
    assert!(
        dom.contains("relaygate audit report"),
        "no report in the DOM:\n{dom}"
    );
    let table = &dom[dom.find("<table").expect("no table")..dom.find("</table>").unwrap()];
    let rows: Vec<&str> = table.split("<tr").skip(2).collect();
    assert_eq!(rows.len(), 3, "three flow rows expected:\n{table}");
    assert!(
        rows[0].contains("class=\"flow breaking broken-by-2023\"")
            && rows[0].contains("certificate mail.contoso.com")
            && rows[0].contains("refused 550 5.7.64 (108 of 144)")
            && rows[0].contains("add contoso-mail.com as an accepted domain"),
        "the flow broken by exo-2023 must come first:\n{}",
        rows[0]
    );
    assert!(
        rows[1].contains("class=\"flow breaking\"")
            && rows[1].contains("&lt;script&gt;alert('p2')&lt;/script&gt;.example")
            && rows[1].contains("<td class=\"p1\">&lt;&gt;</td>"),
        "the flow refused under both profiles must come second:\n{}",
        rows[1]
    );
    assert!(
        rows[2].contains("class=\"flow\"") && rows[2].contains("fabrikam.com"),
        "the fine flow must come last:\n{}",
        rows[2]
    );
    // The browser built the charts: one per flow, with refused bars where refusals were.
    assert_eq!(dom.matches("<svg class=\"chart\"").count(), 3);
    for (flow, refused) in [("1", true), ("2", true), ("3", false)] {
        let at = dom
            .find(&format!("<svg class=\"chart\" data-flow=\"{flow}\""))
            .unwrap_or_else(|| panic!("no chart for flow {flow}"));
        let svg = &dom[at..at + dom[at..].find("</svg>").unwrap()];
        assert_eq!(
            svg.contains("<rect class=\"refused\""),
            refused,
            "refused bars of flow {flow}"
        );
        assert_eq!(
            svg.contains("<rect class=\"accepted\""),
            flow != "2",
            "accepted bars of flow {flow}"
        );
        assert!(
            svg.contains("<title>2026-11-25 0"),
            "tooltips of flow {flow}"
        );
        assert!(
            svg.contains("class=\"x-label\""),
            "axis labels of flow {flow}"
        );
    }
    // The block reads in the browser as the text report prints it.
    let at = dom
        .find("<pre class=\"rewrite\"")
        .expect("no [[rewrite]] block");
    let pre = &dom[at..at + dom[at..].find("</pre>").unwrap()];
    assert!(
        pre.contains(
            "[[rewrite]]\nclient_certificate_names = [\"mail.contoso.com\"]\nsenders = [\"*@contoso-mail.com\"]\nnew_sender = \"relay@contoso-mail.com\""
        ),
        "{pre}"
    );
    // The hostile strings stayed text: no element was made of them.
    assert!(!dom.contains("<script"), "a script element reached the DOM");
    assert!(!dom.contains("<img"), "an img element reached the DOM");
    assert!(dom.contains("&lt;img src=x onerror=alert(1)&gt;"));
}
