//! The `[[rewrite]]` block that would fix a flow the November 2023 change broke, at the gate.
//!
//! Such a flow was accepted under exo-legacy by its `From:` domain (1c), which is an accepted
//! domain; what exo-2023 lacks is a P1 in one. The block matches the flow's client (its
//! identity) and its P1 domain (or the null sender) and sets a sender in the `From:` domain.
//! Everything in it comes from the log, so each value is written as a TOML string by the `toml`
//! crate (escaped), never pasted.

use super::Flow;

impl Flow {
    /// The block, or `None` for a flow the change did not break, or one without a `From:`
    /// domain to send as.
    pub fn rewrite_block(&self) -> Option<String> {
        if !self.broken_by_2023() || self.p2_domain.is_empty() {
            return None;
        }
        let quoted = |s: &str| toml::Value::String(s.to_string()).to_string();
        let client = match self.identity.split_once(' ') {
            Some(("ip", ip)) => format!("client_ips = [{}]", quoted(ip)),
            Some(("certificate", name)) => {
                format!("client_certificate_names = [{}]", quoted(name))
            }
            Some(("user", name)) => format!("client_users = [{}]", quoted(name)),
            _ => return None,
        };
        let sender = if self.p1_domain.is_empty() {
            // The null sender: only explicitly (README: bounce loops, RFC 5321 4.5.5).
            "null_sender = true".to_string()
        } else {
            format!("senders = [{}]", quoted(&format!("*@{}", self.p1_domain)))
        };
        let new_sender = quoted(&format!("relay@{}", self.p2_domain));
        Some(format!(
            "[[rewrite]]\n{client}\n{sender}\nnew_sender = {new_sender}  # a mailbox of yours that reads bounces\n"
        ))
    }
}

#[cfg(test)]
mod tests {
    use crate::cli::report::read;

    fn flows(lines: &[&str]) -> Vec<super::Flow> {
        read(lines.join("\n").as_bytes()).unwrap().flows
    }

    fn event(identity: &str, p1_domain: &str, legacy: &str) -> String {
        format!(
            r#"{{"target":"relaygate::transaction","timestamp":"2026-11-30T20:00:00Z","identity":"{identity}","p1_domain":"{p1_domain}","p2_domain":"contoso.com","exo_2023":"refused 550 5.7.64","exo_legacy":"{legacy}","broken_by_november_2023":true}}"#
        )
    }

    #[test]
    fn a_broken_flow_gets_the_block_that_matches_its_client_and_sender() {
        let f = flows(&[&event("ip 192.0.2.10", "example.net", "accepted")]);
        assert_eq!(
            f[0].rewrite_block().unwrap(),
            "[[rewrite]]\nclient_ips = [\"192.0.2.10\"]\nsenders = [\"*@example.net\"]\nnew_sender = \"relay@contoso.com\"  # a mailbox of yours that reads bounces\n"
        );
        let f = flows(&[&event("user scanner", "", "accepted")]);
        let block = f[0].rewrite_block().unwrap();
        assert!(
            block.contains("client_users = [\"scanner\"]\nnull_sender = true\n"),
            "{block}"
        );
        let f = flows(&[&event("certificate mail.fabrikam.com", "x.net", "accepted")]);
        assert!(f[0]
            .rewrite_block()
            .unwrap()
            .contains("client_certificate_names = [\"mail.fabrikam.com\"]"));
    }

    #[test]
    fn the_block_parses_as_a_rule_even_from_a_hostile_log() {
        let f = flows(&[&event("user a\\\"]\\nx = [\\\"", "example.net", "accepted")]);
        let block = f[0].rewrite_block().unwrap();
        let parsed: toml::Table = toml::from_str(&block).unwrap();
        assert_eq!(
            parsed["rewrite"][0]["client_users"][0].as_str(),
            Some("a\"]\nx = [\"")
        );
    }

    #[test]
    fn the_text_report_ends_with_the_blocks() {
        let r = read(event("ip 192.0.2.10", "example.net", "accepted").as_bytes()).unwrap();
        let text = r.render_text();
        assert!(
            text.contains("with a [[rewrite]] rule")
                && text.contains("\n# MAIL FROM example.net, From: contoso.com\n[[rewrite]]\nclient_ips = [\"192.0.2.10\"]\n"),
            "{text}"
        );
    }

    #[test]
    fn the_html_report_shows_each_block_after_the_table_escaped() {
        let hostile = "ip 192.0.2.66\"><img src=x onerror=alert(1)>";
        let event = serde_json::json!({
            "target": "relaygate::transaction",
            "timestamp": "2026-11-30T20:00:00Z",
            "identity": hostile,
            "p1_domain": "example.net",
            "p2_domain": "contoso.com",
            "exo_2023": "refused 550 5.7.64",
            "exo_legacy": "accepted",
            "broken_by_november_2023": true,
        });
        let r = read(event.to_string().as_bytes()).unwrap();
        let html = r.render_html();
        assert!(!html.contains("<img"), "{html}");
        let table_end = html.find("</table>").unwrap();
        let at = html
            .find("<pre class=\"rewrite\" id=\"rewrite-1\"")
            .unwrap();
        assert!(at > table_end, "the blocks come after the table");
        let pre = &html[at..at + html[at..].find("</pre>").unwrap()];
        let shown = pre[pre.find("<code>").unwrap() + "<code>".len()..]
            .trim_end_matches("</code>")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&amp;", "&");
        // Unescaped by a browser, the page shows what the text report prints, byte for byte.
        let block = r.flows[0].rewrite_block().unwrap();
        assert_eq!(
            shown,
            format!("# MAIL FROM example.net, From: contoso.com\n{block}")
        );
        assert!(r.render_text().contains(&shown));
        // A report without a broken flow has no such section.
        let fine = read(event_fine().as_bytes()).unwrap();
        assert!(!fine.render_html().contains("id=\"rewrites\""));
    }

    fn event_fine() -> String {
        event("ip 192.0.2.10", "example.net", "refused 550 5.7.64")
    }

    #[test]
    fn a_flow_the_change_did_not_break_gets_none() {
        let f = flows(&[&event("ip 192.0.2.10", "example.net", "refused 550 5.7.64")]);
        assert_eq!(f[0].rewrite_block(), None);
    }
}
