//! The second door: an authenticated user is the identity, whatever the connectors say.

use super::*;

fn submitted(user: &str, may_send_as: bool) -> (Client, Submitter<'_>) {
    // An address no connector covers, without a certificate: only the user can authorise.
    (
        Client::new("198.51.100.7", "none"),
        Submitter { user, may_send_as },
    )
}

#[test]
fn an_authenticated_user_allowed_to_send_as_the_p1_relays_to_every_recipient() {
    let t = baseline();
    let (client, submitter) = submitted("scanner", true);
    let facts = SessionFacts {
        submitter: Some(submitter),
        ..client.facts()
    };
    let relay = authorize_relay(
        &t,
        Profile::Exo2023,
        &facts,
        p1("scan@example.net"),
        HeaderSender::NotYetKnown,
    );
    assert_eq!(
        relay,
        RelayDecision::Authenticated {
            user: "scanner".into()
        }
    );
    for rcpt in [EXT, ALICE] {
        assert_eq!(
            judge_recipient(&t, &facts, p1("scan@example.net"), &relay, rcpt),
            RecipientVerdict::Accept(AcceptReason::Originating),
            "{rcpt}"
        );
    }
    assert_eq!(wording::condition1_token(&relay), "auth");
    assert_eq!(wording::relay(&relay), "relay authorized");
}

#[test]
fn an_authenticated_user_not_allowed_to_send_as_the_p1_is_denied_with_5_7_60() {
    let t = baseline();
    let (client, submitter) = submitted("scanner", false);
    let facts = SessionFacts {
        submitter: Some(submitter),
        ..client.facts()
    };
    let relay = authorize_relay(
        &t,
        Profile::Exo2023,
        &facts,
        p1("ceo@contoso.com"),
        HeaderSender::NotYetKnown,
    );
    assert_eq!(
        relay,
        RelayDecision::Denied(RelayDenial::SendAsDenied {
            user: "scanner".into()
        })
    );
    assert_eq!(
        send_as_refusal().to_line(),
        "550 5.7.60 SMTP; Client does not have permissions to send as this sender"
    );
}

#[test]
fn without_a_tenant_an_authenticated_transaction_is_still_no_tenants() {
    // Several tenants, none attributed: no upstream would take it, authenticated or not.
    let t = baseline();
    let (client, submitter) = submitted("scanner", true);
    let facts = SessionFacts {
        submitter: Some(submitter),
        ..client.facts()
    };
    let relay = authorize_relay_among(
        &[t],
        None,
        Profile::Exo2023,
        &facts,
        p1("scan@example.net"),
        HeaderSender::NotYetKnown,
    );
    assert_eq!(relay, RelayDecision::Denied(RelayDenial::NoTenant));
}
