//! `[[rewrite]]`'s pitfall: a rule whose `new_sender` is not in a domain any tenant accepts.
//! The rule exists to give a flow a sender Exchange Online attributes (condition 1b); one
//! outside the accepted domains fixes nothing, and the flow is still refused (5.7.64). A
//! warning, not an error: the gate runs, and `check` shows the refusal.

use super::{Finding, Severity};
use crate::config::Settings;
use crate::policy::{domain_of, tenant_of_domain};

pub(super) fn warnings(settings: &Settings) -> Vec<Finding> {
    let of_any = if settings.named_tenants() {
        " of any tenant"
    } else {
        ""
    };
    settings
        .rewrites
        .iter()
        .enumerate()
        .filter_map(|(i, rule)| {
            let domain = domain_of(&rule.new_sender)?;
            tenant_of_domain(&settings.tenants, domain).is_none().then(|| Finding {
                severity: Severity::Warning,
                subject: format!("rewrite[{i}] new_sender \"{}\"", rule.new_sender),
                problem: format!(
                    "{domain} is not an accepted domain{of_any}: Exchange Online still refuses the rewritten mail (550 5.7.64), so the rule fixes nothing"
                ),
                fix: format!(
                    "set new_sender to an address in an accepted domain, or add {domain} as an accepted domain if you own it"
                ),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn findings(new_sender: &str) -> Vec<Finding> {
        let text = format!(
            r#"
[server]
[[accepted_domains]]
domain = "contoso.com"
[upstream]
kind = "directory"
path = "out"
[[rewrite]]
new_sender = "{new_sender}"
"#
        );
        let settings = Config::parse(&text).unwrap().validate().unwrap();
        warnings(&settings)
    }

    #[test]
    fn a_new_sender_outside_the_accepted_domains_is_warned_about() {
        let found = findings("app@example.net");
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].severity, Severity::Warning);
        assert_eq!(
            found[0].subject,
            "rewrite[0] new_sender \"app@example.net\""
        );
        assert!(found[0]
            .problem
            .contains("example.net is not an accepted domain"));
        assert!(findings("app@CONTOSO.com").is_empty());
    }
}
