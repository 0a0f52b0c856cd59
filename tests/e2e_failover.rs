//! Every upstream address, failover without duplicates, over real sockets: a list of upstreams
//! whose first is dead (refused, silent, refusing its greeting, failing at MAIL) delivers through
//! the next one; a host name is tried at each address it resolves to; and once the final dot or
//! `BDAT ... LAST` has gone out the gate never tries elsewhere: the client gets a 451 and the
//! message exists at most once (copies counted at every upstream).

mod support;
use relaygate::observe::metrics::metrics;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use support::*;
use tokio::net::TcpListener;

const MESSAGE: &[u8] = b"Subject: failover\r\n\r\nhi\r\n";

/// `[upstream]` over these addresses in order, plain, timeouts of 3 s, no pool (so every
/// session connects and shows which address it picks).
fn upstream_list(addresses: &[String]) -> String {
    let list: Vec<String> = addresses.iter().map(|a| format!("\"{a}\"")).collect();
    format!(
        "[upstream]\nkind = \"smtp\"\naddress = [{}]\ntls = \"none\"\nreply_timeout_secs = 3\ndata_end_timeout_secs = 3\nconnect_timeout_secs = 3\npool_max_idle = 0\n",
        list.join(", ")
    )
}

async fn gate_over(addresses: &[String]) -> Gate {
    start_gate(
        "",
        &format!("{BASELINE_TENANT}\n{}", upstream_list(addresses)),
    )
    .await
}

async fn send(g: &Gate) -> String {
    let mut c = session(g).await;
    let r = c
        .send_message("app@contoso.com", &["bob@example.org"], MESSAGE)
        .await;
    c.quit().await;
    r
}

/// A listener that accepts and never says a word; counts its connections.
async fn silent_upstream() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&accepted);
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            held.push(s);
        }
    });
    (addr, accepted)
}

/// The gauge line of one configured address in `/metrics`.
fn address_gauge(address: &str) -> Option<String> {
    metrics()
        .render()
        .lines()
        .find(|l| {
            l.starts_with(&format!(
                "relaygate_upstream_address_up{{address=\"{address}\"}}"
            ))
        })
        .map(str::to_string)
}

#[tokio::test]
async fn a_refused_first_address_fails_over_to_the_next_and_is_shown_down() {
    let refused = free_port();
    let sink = Upstream::start(Script::default()).await;
    let g = gate_over(&[refused.to_string(), sink.addr.to_string()]).await;
    let r = send(&g).await;
    assert!(r.starts_with("250"), "{r}");
    assert_eq!(sink.completed(), 1, "{}", sink.view());
    assert_eq!(
        address_gauge(&refused.to_string()).as_deref(),
        Some(format!("relaygate_upstream_address_up{{address=\"{refused}\"}} 0").as_str())
    );
    assert_eq!(
        address_gauge(&sink.addr.to_string()).as_deref(),
        Some(
            format!(
                "relaygate_upstream_address_up{{address=\"{}\"}} 1",
                sink.addr
            )
            .as_str()
        )
    );
}

#[tokio::test]
async fn a_silent_first_address_costs_one_timeout_then_is_skipped() {
    let (silent, accepted) = silent_upstream().await;
    let sink = Upstream::start(Script::default()).await;
    let g = gate_over(&[silent.to_string(), sink.addr.to_string()]).await;
    for n in 1..=2 {
        let r = send(&g).await;
        assert!(r.starts_with("250"), "message {n}: {r}");
    }
    assert_eq!(sink.completed(), 2, "{}", sink.view());
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "the silent address is skipped after its first failure"
    );
}

#[tokio::test]
async fn a_refusing_greeting_moves_to_the_next_address() {
    let refusing = Upstream::start(Script {
        greeting: Some("554 5.3.2 not now"),
        ..Default::default()
    })
    .await;
    let sink = Upstream::start(Script::default()).await;
    let g = gate_over(&[refusing.addr.to_string(), sink.addr.to_string()]).await;
    let r = send(&g).await;
    assert!(r.starts_with("250"), "{r}");
    assert_eq!(sink.completed(), 1);
    assert_eq!(refusing.completed(), 0);
}

#[tokio::test]
async fn trouble_at_mail_moves_to_the_next_address_with_the_whole_envelope() {
    for first in [
        Script {
            drop_after_mail: true,
            ..Default::default()
        },
        Script {
            mail_reply: Some("421 4.3.2 Service shutting down"),
            ..Default::default()
        },
    ] {
        let failing = Upstream::start(first).await;
        let sink = Upstream::start(Script::default()).await;
        let g = gate_over(&[failing.addr.to_string(), sink.addr.to_string()]).await;
        let r = send(&g).await;
        assert!(r.starts_with("250"), "{r}");
        let t = sink.next_completed().await;
        assert_eq!(t.mail, "MAIL FROM:<app@contoso.com>");
        assert_eq!(t.rcpts.len(), 1, "{t:?}");
        assert_eq!(failing.completed(), 0, "{}", failing.view());
    }
}

#[tokio::test]
async fn a_pipelining_client_still_fails_over_at_mail_on_a_new_connection() {
    // To upstreams offering CHUNKING a pipelined one-recipient transaction would go with its
    // envelope sent ahead, but not on a new connection that may still fail over at MAIL: the
    // upstream's 421 would come back with the message's reply, too late for the next address.
    let chunking = |mail_reply| Script {
        chunking: true,
        mail_reply,
        ..Default::default()
    };
    let failing = Upstream::start(chunking(Some("421 4.3.2 Service shutting down"))).await;
    let sink = Upstream::start(chunking(None)).await;
    let g = gate_over(&[failing.addr.to_string(), sink.addr.to_string()]).await;
    let mut c = session(&g).await;
    let replies = c.pipelined_envelope(&["bob@example.org"]).await;
    // (On the last address, with nothing left to fail over to, the envelope goes ahead.)
    assert!(replies[1].starts_with("250 "), "{replies:?}");
    assert!(replies[2].starts_with("354 "), "{replies:?}");
    c.send(MESSAGE).await;
    c.send(b".\r\n").await;
    let r = c.reply().await;
    assert!(r.starts_with("250 "), "{r}");
    assert_eq!(sink.next_completed().await.rcpts.len(), 1);
    assert_eq!(failing.completed(), 0, "{}", failing.view());
    assert_eq!(
        failing.transactions().len(),
        1,
        "MAIL was tried there first"
    );
}

#[tokio::test]
async fn a_refusal_of_the_sender_is_the_upstreams_verdict_not_a_failover() {
    let refusing = Upstream::start(Script {
        mail_reply: Some("550 5.7.1 sender refused"),
        ..Default::default()
    })
    .await;
    let sink = Upstream::start(Script::default()).await;
    let g = gate_over(&[refusing.addr.to_string(), sink.addr.to_string()]).await;
    let mut c = session(&g).await;
    c.cmd("MAIL FROM:<app@contoso.com>", "250").await;
    c.cmd("RCPT TO:<bob@example.org>", "550").await;
    assert_eq!(sink.transactions().len(), 0, "{}", sink.view());
}

/// The message reached the first upstream whole, then the connection died before its reply:
/// the upstream may hold it. The client is told to retry; no second copy goes anywhere.
async fn never_after_the_end_of_the_message(first: Script) {
    let first = Upstream::start(first).await;
    let sink = Upstream::start(Script::default()).await;
    let g = gate_over(&[first.addr.to_string(), sink.addr.to_string()]).await;
    let r = send(&g).await;
    assert!(r.starts_with("451 4.4."), "{r}");
    let copies = first.completed() + sink.completed();
    assert_eq!(copies, 1, "first: {} sink: {}", first.view(), sink.view());
    assert_eq!(first.completed(), 1);
    assert_eq!(sink.transactions().len(), 0, "{}", sink.view());
}

#[tokio::test]
async fn no_failover_after_the_final_dot() {
    never_after_the_end_of_the_message(Script {
        drop_after_dot: true,
        ..Default::default()
    })
    .await;
}

#[tokio::test]
async fn no_failover_after_bdat_last() {
    never_after_the_end_of_the_message(Script {
        drop_after_dot: true,
        chunking: true,
        ..Default::default()
    })
    .await;
}

#[tokio::test]
async fn no_failover_when_the_final_reply_never_comes() {
    never_after_the_end_of_the_message(Script {
        silent_after_dot: true,
        ..Default::default()
    })
    .await;
}

/// `localhost` on the sink's port, bound on 127.0.0.1 only: where the name also resolves to
/// `::1` (most systems), that address has nothing listening and the next one takes the
/// message; every address the name resolves to is tried in turn.
#[tokio::test]
async fn a_name_is_tried_at_each_address_it_resolves_to() {
    let sink = Upstream::start(Script::default()).await;
    let name = format!("localhost:{}", sink.addr.port());
    let resolved: Vec<SocketAddr> = tokio::net::lookup_host(&name).await.unwrap().collect();
    assert!(resolved.contains(&sink.addr), "{resolved:?}");
    let g = gate_over(std::slice::from_ref(&name)).await;
    let r = send(&g).await;
    assert!(
        r.starts_with("250"),
        "{r} (localhost resolves to {resolved:?})"
    );
    assert_eq!(sink.completed(), 1);
    assert_eq!(
        address_gauge(&name).as_deref(),
        Some(format!("relaygate_upstream_address_up{{address=\"{name}\"}} 1").as_str()),
        "one address of the name works: the name is up"
    );
}

#[tokio::test]
async fn with_every_address_down_the_client_is_told_to_retry() {
    let (silent, _) = silent_upstream().await;
    let refused = free_port();
    let g = gate_over(&[refused.to_string(), silent.to_string()]).await;
    let mut c = session(&g).await;
    c.cmd("MAIL FROM:<app@contoso.com>", "250").await;
    let r = c.cmd("RCPT TO:<bob@example.org>", "451").await;
    assert_exo_reply(
        &r,
        "451 4.4.2 Temporary server error. Please try again later [",
    );
    for a in [refused, silent] {
        assert!(
            address_gauge(&a.to_string()).is_some_and(|l| l.ends_with(" 0")),
            "{a} down"
        );
    }
}
