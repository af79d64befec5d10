//! Raw tunnels: bytes relayed both ways untouched (ignored hosts, no
//! interception, or a plugin's pass-through).

use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Relays a raw tunnel to `host:port` untouched.
pub(crate) async fn relay(upgraded: Upgraded, host: &str, port: u16) -> std::io::Result<()> {
    relay_with(TokioIo::new(upgraded), &[], host, port).await
}

/// Connects to `host:port`, sends `already_read` (bytes the client sent
/// that witm has consumed), then relays both ways untouched.
pub(crate) async fn relay_with<IO>(
    mut client: IO,
    already_read: &[u8],
    host: &str,
    port: u16,
) -> std::io::Result<()>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut server = TcpStream::connect((host, port)).await?;
    tokio::io::AsyncWriteExt::write_all(&mut server, already_read).await?;
    tokio::io::copy_bidirectional(&mut client, &mut server).await?;
    Ok(())
}
