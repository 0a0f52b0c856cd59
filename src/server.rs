//! Listeners and the accept loop: one task per client session.
//!
//! `run` takes the shutdown signal as an argument (mini-redis style), so tests and `main` both
//! decide when the gate stops.

use crate::config::Settings;
use crate::smtp::{run_session, Peer};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// Bind every configured address; the first failure is returned with the address it concerns.
pub async fn bind(addrs: &[SocketAddr]) -> Result<Vec<TcpListener>, (SocketAddr, io::Error)> {
    let mut listeners = Vec::with_capacity(addrs.len());
    for addr in addrs {
        listeners.push(TcpListener::bind(addr).await.map_err(|e| (*addr, e))?);
    }
    Ok(listeners)
}

/// Accept clients on all listeners until `shutdown` completes.
pub async fn run(listeners: Vec<TcpListener>, settings: Arc<Settings>, shutdown: impl Future<Output = ()>) {
    let mut tasks = tokio::task::JoinSet::new();
    for listener in listeners {
        tasks.spawn(accept_loop(listener, Arc::clone(&settings)));
    }
    shutdown.await;
    tasks.abort_all();
}

async fn accept_loop(listener: TcpListener, settings: Arc<Settings>) {
    let mut backoff = Duration::from_millis(10);
    loop {
        match listener.accept().await {
            Ok((stream, addr)) => {
                backoff = Duration::from_millis(10);
                let _ = stream.set_nodelay(true);
                let settings = Arc::clone(&settings);
                tokio::spawn(run_session(stream, Peer { addr }, settings));
            }
            Err(e) => {
                // Usually out of file descriptors: wait instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
}
