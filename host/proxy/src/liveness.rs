//! Who is still serving a client connection. A CONNECT tunnel and a
//! WebSocket relay outlive the HTTP exchange that opened them (hyper's
//! connection future ends at the upgrade), so the tasks that serve them hold
//! a [`Liveness`] too: the connection's `client-disconnect` waits until the
//! last holder is gone, and so does shutdown (within its grace). Holders
//! watch [`Liveness::closing`] to wind down when witm stops.

use tokio::sync::{mpsc, watch};

/// Held by every task serving one client connection.
#[derive(Clone, Debug)]
pub(crate) struct Liveness {
    /// The listener's count of live connections (shutdown waits for it).
    _listener: mpsc::Sender<()>,
    /// This connection's count of live tasks.
    _connection: mpsc::Sender<()>,
    closing: watch::Receiver<bool>,
}

/// Resolves once no task holds the connection's [`Liveness`] any more.
pub(crate) struct ConnectionEnd(mpsc::Receiver<()>);

impl Liveness {
    /// The liveness of a new connection of a listener.
    pub(crate) fn new(
        listener: mpsc::Sender<()>,
        closing: watch::Receiver<bool>,
    ) -> (Self, ConnectionEnd) {
        let (connection, end) = mpsc::channel(1);
        let live = Self {
            _listener: listener,
            _connection: connection,
            closing,
        };
        (live, ConnectionEnd(end))
    }

    /// Resolves when witm starts shutting down (or the listener is gone).
    pub(crate) async fn closing(&self) {
        let mut closing = self.closing.clone();
        let _ = closing.wait_for(|closing| *closing).await;
    }
}

impl ConnectionEnd {
    /// Waits until every holder is dropped.
    pub(crate) async fn wait(mut self) {
        while self.0.recv().await.is_some() {}
    }
}
