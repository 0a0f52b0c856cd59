//! The upstream legs of one client session, one per tenant.
//!
//! Each tenant's mail leaves through that tenant's [`Connector`] (its address, its client
//! certificate, its pool): Exchange Online attributes mail from the gate by the certificate the
//! gate presents. A session serves transactions of any tenant, one at a time, so it holds a leg
//! per tenant, each made when its tenant's first transaction needs it, and [selects](Legs::select)
//! the leg of the transaction's tenant. A session with one leg (every single-tenant gate, the
//! fault simulation) is `Legs::from(leg)`.

use super::{Connector, Upstream};
use std::sync::Arc;

enum Slot {
    /// Not needed yet: the connector that makes the leg.
    Unused(Arc<Connector>),
    Ready(Upstream),
}

/// A session's legs, and which one is in use.
pub struct Legs {
    slots: Vec<Slot>,
    current: usize,
}

impl Legs {
    /// One leg per connector, in tenant order, none made yet.
    pub fn of(connectors: &[Arc<Connector>]) -> Legs {
        Legs {
            slots: connectors
                .iter()
                .map(|c| Slot::Unused(Arc::clone(c)))
                .collect(),
            current: 0,
        }
    }

    /// Use the leg of tenant `tenant` from now on (a transaction was attributed to it). An
    /// index beyond the legs keeps the last one: a session given a single leg serves every
    /// tenant through it.
    pub fn select(&mut self, tenant: usize) {
        self.current = tenant.min(self.slots.len().saturating_sub(1));
    }

    /// The leg in use, made now if this is its first use.
    pub fn leg(&mut self) -> &mut Upstream {
        let slot = &mut self.slots[self.current];
        if let Slot::Unused(connector) = slot {
            *slot = Slot::Ready(connector.leg());
        }
        match slot {
            Slot::Ready(leg) => leg,
            Slot::Unused(_) => unreachable!("made just above"),
        }
    }

    /// Close every leg that was used, politely (their connections return to their pools).
    pub async fn quit(&mut self) {
        for slot in &mut self.slots {
            if let Slot::Ready(leg) = slot {
                leg.quit().await;
            }
        }
    }
}

impl From<Upstream> for Legs {
    fn from(leg: Upstream) -> Legs {
        Legs {
            slots: vec![Slot::Ready(leg)],
            current: 0,
        }
    }
}
