//! The connector: built once per configuration from its settings, it owns what upstream legs
//! share (the connection pool, the way to dial), and hands each client session its own leg.
//!
//! Runtime objects live here, not in the settings (pingora's `TransportConnector` owns its
//! `ConnectionPool` the same way): the configuration stays plain data, and a reload builds a
//! new connector with a fresh pool. Dialing is a trait ([`Dial`]) so the fault simulation can
//! put an in-memory upstream behind the very same leg code that talks to Exchange Online.

use super::dial::Dial;
use super::directory::DirectoryLeg;
use super::open::Route;
use super::pool::Pool;
use super::smtp::{SmtpLeg, SmtpShared};
use super::Upstream;
use crate::config::UpstreamSettings;
use std::path::PathBuf;
use std::sync::Arc;

enum Kind {
    Smtp(Arc<SmtpShared>),
    Directory(PathBuf),
}

/// Builds upstream legs for one configuration.
pub struct Connector {
    kind: Kind,
}

impl Connector {
    /// The connector production uses: TCP to each `[upstream] address` in turn (failover).
    pub fn new(settings: &UpstreamSettings, helo_name: &str) -> Connector {
        let route = match settings {
            UpstreamSettings::Smtp(s) => Some(Route::Addresses(
                s.addresses.iter().map(|a| a.address.clone()).collect(),
            )),
            UpstreamSettings::Directory { .. } => None,
        };
        Connector::build(settings, helo_name, route)
    }

    /// A connector that dials with `dial` instead of TCP (tests; the directory kind ignores it).
    pub fn with_dial(
        settings: &UpstreamSettings,
        helo_name: &str,
        dial: Box<dyn Dial>,
    ) -> Connector {
        Connector::build(settings, helo_name, Some(Route::Fixed(dial)))
    }

    fn build(settings: &UpstreamSettings, helo_name: &str, route: Option<Route>) -> Self {
        let kind = match (settings, route) {
            (UpstreamSettings::Smtp(s), Some(route)) => Kind::Smtp(Arc::new(SmtpShared {
                settings: Arc::clone(s),
                helo_name: helo_name.to_string(),
                pool: Pool::new(s.pool_max_idle, s.pool_idle_timeout),
                route,
                ahead_distrusted: Default::default(),
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
