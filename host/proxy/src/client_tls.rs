//! The client's side of a TLS handshake witm terminates — in a CONNECT
//! tunnel (`intercept`) and on a reverse proxy's listener (`reverse`): the
//! ClientHello read first (to pick a certificate and protocols), then the
//! handshake finished with witm's certificate. Each step is bounded by the
//! handshake timeout and says in the log why it failed.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::server::TlsStream;
use tokio_rustls::{LazyConfigAcceptor, StartHandshake};
use witm_flow::ClientConn;

/// Reads the client's ClientHello on `io`; `what` names the connection
/// in the log (e.g. "example.com:443").
pub(crate) async fn read_hello<IO>(
    io: IO,
    timeout: Duration,
    conn: &ClientConn,
    what: &str,
) -> Option<StartHandshake<IO>>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    match tokio::time::timeout(timeout, LazyConfigAcceptor::new(Default::default(), io)).await {
        Ok(Ok(started)) => Some(started),
        Ok(Err(e)) => {
            tracing::info!(client = %conn.address, "{what}: not a TLS ClientHello: {e}");
            None
        }
        Err(_) => {
            tracing::info!(client = %conn.address, "{what}: TLS handshake timed out");
            None
        }
    }
}

/// Finishes the handshake with `config` (witm's certificate for `name`).
pub(crate) async fn finish<IO>(
    started: StartHandshake<IO>,
    config: Arc<rustls::ServerConfig>,
    timeout: Duration,
    conn: &ClientConn,
    name: &str,
) -> Option<TlsStream<IO>>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    match tokio::time::timeout(timeout, started.into_stream(config)).await {
        Ok(Ok(stream)) => Some(stream),
        Ok(Err(e)) => {
            tracing::warn!(
                client = %conn.address,
                "{name}: TLS handshake with the client failed: {e} (does the client trust witm's CA? see `witm ca`)"
            );
            None
        }
        Err(_) => {
            tracing::warn!(client = %conn.address, "{name}: TLS handshake with the client timed out");
            None
        }
    }
}
