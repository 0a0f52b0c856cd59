//! Opening an upstream connection: dial, greeting, EHLO, STARTTLS, and failover across every
//! configured address while nothing of a message has been sent.
//!
//! Each address gets its own connect timeout, and any failure up to a connection ready for MAIL
//! (refused, silent, a refusing greeting, EHLO, TLS) moves on to the next one: nothing is
//! committed yet, so trying elsewhere cannot duplicate a message.

use super::connection::{Connection, Expect};
use super::dial::{Dial, Dialing, TcpDial};
use super::failover::{book, Target};
use super::smtp::SmtpShared;
use super::{Stage, TlsFailure, UpstreamError};
use crate::config::UpstreamTls;
use crate::stream::MaybeTls;
use std::net::SocketAddr;
use tokio::time::timeout;

/// How a connector reaches its upstream.
pub(super) enum Route {
    /// The configured addresses, resolved at each connect (production).
    Addresses(Vec<String>),
    /// One scripted upstream behind a [`super::Dial`] (the fault simulation, tests).
    Fixed(Box<dyn Dial>),
}

/// A new connection through greeting, EHLO and STARTTLS as configured: the first address
/// (in the order [`super::failover::Book::order`] gives) that gets that far.
pub(super) async fn connect(shared: &SmtpShared) -> Result<Connection, UpstreamError> {
    let entries = match &shared.route {
        Route::Fixed(dial) => return handshake(shared, dial.dial(), None).await,
        Route::Addresses(entries) => entries,
    };
    let book = book();
    let targets = book.order(book.resolve(entries, shared.settings.connect_timeout).await);
    let mut last = None;
    for target in targets {
        let dial = TcpDial::to(target.addr);
        match handshake(shared, dial.dial(), Some(&target)).await {
            Ok(c) => {
                book.succeeded(target.addr);
                book.publish(&target.entry);
                return Ok(c);
            }
            Err(e) => {
                failed(&target, &e);
                last = Some(e);
            }
        }
    }
    for entry in entries {
        book.publish(entry);
    }
    Err(last.unwrap_or(UpstreamError::Unresolved))
}

/// Whether a connection would now have an address other than `addr` to try first (one that
/// is not being skipped), from the configured entries' last resolution.
pub(super) fn has_alternative(shared: &SmtpShared, addr: SocketAddr) -> bool {
    match &shared.route {
        Route::Fixed(_) => false,
        Route::Addresses(entries) => book().has_alternative(entries, addr),
    }
}

/// An address failed before anything of a message was committed: logged, skipped a while.
pub(super) fn failed(target: &Target, e: &UpstreamError) {
    let book = book();
    book.failed(target.addr);
    book.publish(&target.entry);
    tracing::warn!(
        upstream = %target.entry,
        address = %target.addr,
        error = %e,
        "upstream address failed; trying the next one"
    );
}

async fn handshake(
    shared: &SmtpShared,
    dialing: Dialing<'_>,
    target: Option<&Target>,
) -> Result<Connection, UpstreamError> {
    let s = &shared.settings;
    let stream = match timeout(s.connect_timeout, dialing).await {
        Err(_) => return Err(UpstreamError::Timeout(Stage::Connect)),
        Ok(Err(e)) => return Err(UpstreamError::Connect(e)),
        Ok(Ok(t)) => t,
    };
    let mut c = Connection::new(stream);
    c.via = target.cloned().map(Box::new);
    let greeting = c
        .read_expected(Expect::Ready, s.reply_timeout, Stage::Greeting)
        .await?;
    if greeting.code != 220 {
        return Err(UpstreamError::Refused {
            stage: Stage::Greeting,
            reply: greeting.summary(),
        });
    }
    c.hello(&shared.helo_name, s.reply_timeout).await?;
    match (s.tls, c.caps.starttls) {
        (UpstreamTls::None, _) | (UpstreamTls::Opportunistic, false) => {}
        (UpstreamTls::Required, false) => return Err(UpstreamError::Tls(TlsFailure::NotOffered)),
        (_, true) => {
            let reply = c
                .command("STARTTLS", Expect::Ready, s.reply_timeout, Stage::StartTls)
                .await?;
            if reply.code != 220 {
                return Err(UpstreamError::Tls(TlsFailure::Refused(reply.summary())));
            }
            c.clear_input();
            let config = s
                .tls_config
                .clone()
                .ok_or(UpstreamError::Tls(TlsFailure::NoConfiguration))?;
            let connector = tokio_rustls::TlsConnector::from(config);
            let MaybeTls::Plain(plain) = c.stream else {
                return Err(UpstreamError::OutOfStep {
                    stage: Stage::StartTls,
                    seen: "STARTTLS twice".into(),
                });
            };
            // Each address is verified against its own entry's name.
            let index = target.map_or(0, |t| t.index);
            let name = s
                .addresses
                .get(index)
                .or(s.addresses.first())
                .map(|a| a.tls_server_name.clone())
                .ok_or(UpstreamError::Tls(TlsFailure::NoConfiguration))?;
            let tls = match timeout(s.connect_timeout, connector.connect(name, plain)).await {
                Err(_) => return Err(UpstreamError::Timeout(Stage::TlsHandshake)),
                Ok(Err(e)) => return Err(UpstreamError::Tls(TlsFailure::Handshake(e))),
                Ok(Ok(t)) => t,
            };
            c.stream = MaybeTls::Client(Box::new(tls));
            c.hello(&shared.helo_name, s.reply_timeout).await?;
        }
    }
    Ok(c)
}
