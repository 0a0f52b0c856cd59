//! The connector: built once per configuration from its settings, it owns what upstream legs
//! share (the connection pool, the way to dial), and hands each client session its own leg.
//!
//! Runtime objects live here, not in the settings (pingora's `TransportConnector` owns its
//! `ConnectionPool` the same way): the configuration stays plain data, and a reload builds a
//! new connector with a fresh pool. Dialing is a trait so the fault simulation can put an
//! in-memory upstream behind the very same leg code that talks to Exchange Online.

use super::connection::Connection;
use super::directory::DirectoryLeg;
use super::pool::Pool;
use super::smtp::SmtpLeg;
use super::Upstream;
use crate::config::{SmtpUpstreamSettings, UpstreamSettings};
use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};

/// A byte stream to an upstream: TCP in production, an in-memory pipe in the simulation.
pub trait Transport: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Transport for T {}

/// A boxed future, for the one async method a trait object needs.
pub type Dialing<'a> = Pin<Box<dyn Future<Output = io::Result<Box<dyn Transport>>> + Send + 'a>>;

/// Opens a new connection to the upstream (the connect timeout is applied by the caller).
pub trait Dial: Send + Sync {
    fn dial(&self) -> Dialing<'_>;
}

/// TCP to `host:port`, resolved at each connect so DNS changes are followed.
struct TcpDial {
    address: String,
}

impl Dial for TcpDial {
    fn dial(&self) -> Dialing<'_> {
        Box::pin(async move {
            let tcp = tokio::net::TcpStream::connect(&self.address).await?;
            let _ = tcp.set_nodelay(true);
            Ok(Box::new(tcp) as Box<dyn Transport>)
        })
    }
}

/// What every SMTP leg of one configuration shares.
pub(super) struct SmtpShared {
    pub(super) settings: Arc<SmtpUpstreamSettings>,
    pub(super) helo_name: String,
    pub(super) pool: Pool<Connection>,
    pub(super) dial: Box<dyn Dial>,
}

enum Kind {
    Smtp(Arc<SmtpShared>),
    Directory(PathBuf),
}

/// Builds upstream legs for one configuration.
pub struct Connector {
    kind: Kind,
}

impl Connector {
    /// The connector production uses: TCP to `[upstream] address`.
    pub fn new(settings: &UpstreamSettings, helo_name: &str) -> Connector {
        let dial = match settings {
            UpstreamSettings::Smtp(s) => Some(Box::new(TcpDial {
                address: s.address.clone(),
            }) as Box<dyn Dial>),
            UpstreamSettings::Directory { .. } => None,
        };
        Connector::build(settings, helo_name, dial)
    }

    /// A connector that dials with `dial` instead of TCP (tests; the directory kind ignores it).
    pub fn with_dial(
        settings: &UpstreamSettings,
        helo_name: &str,
        dial: Box<dyn Dial>,
    ) -> Connector {
        Connector::build(settings, helo_name, Some(dial))
    }

    fn build(settings: &UpstreamSettings, helo_name: &str, dial: Option<Box<dyn Dial>>) -> Self {
        let kind = match (settings, dial) {
            (UpstreamSettings::Smtp(s), Some(dial)) => Kind::Smtp(Arc::new(SmtpShared {
                settings: Arc::clone(s),
                helo_name: helo_name.to_string(),
                pool: Pool::new(s.pool_max_idle, s.pool_idle_timeout),
                dial,
            })),
            (UpstreamSettings::Smtp(s), None) => {
                return Connector::new(&UpstreamSettings::Smtp(Arc::clone(s)), helo_name)
            }
            (UpstreamSettings::Directory { path }, _) => Kind::Directory(path.clone()),
        };
        Connector { kind }
    }

    /// A leg for one client session.
    pub fn leg(&self) -> Upstream {
        match &self.kind {
            Kind::Smtp(shared) => Upstream::Smtp(SmtpLeg::new(Arc::clone(shared))),
            Kind::Directory(path) => Upstream::Directory(Box::new(DirectoryLeg::new(path.clone()))),
        }
    }

    /// Readiness probe: for SMTP a new connection (never a pooled one) through greeting, EHLO
    /// and STARTTLS as configured, then QUIT.
    pub async fn probe(&self) -> Result<(), super::UpstreamError> {
        match &self.kind {
            Kind::Smtp(shared) => {
                SmtpLeg::connect(shared).await?.close().await;
                Ok(())
            }
            Kind::Directory(_) => Ok(()),
        }
    }

    /// Idle pooled connections (for tests and metrics).
    pub fn idle_connections(&self) -> usize {
        match &self.kind {
            Kind::Smtp(shared) => shared.pool.idle_count(),
            Kind::Directory(_) => 0,
        }
    }
}
