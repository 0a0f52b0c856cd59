//! How a leg reaches its upstream: a [`Dial`] opens a byte stream ([`Transport`]). TCP in
//! production; the fault simulation dials in-memory pipes with a scripted server on the far end.

use std::future::Future;
use std::io;
use std::pin::Pin;
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

/// TCP to one resolved address (the failover resolves names and picks the address).
pub(super) struct TcpDial {
    address: std::net::SocketAddr,
}

impl TcpDial {
    pub(super) fn to(address: std::net::SocketAddr) -> TcpDial {
        TcpDial { address }
    }
}

impl Dial for TcpDial {
    fn dial(&self) -> Dialing<'_> {
        Box::pin(async move {
            let tcp = tokio::net::TcpStream::connect(self.address).await?;
            let _ = tcp.set_nodelay(true);
            Ok(Box::new(tcp) as Box<dyn Transport>)
        })
    }
}
