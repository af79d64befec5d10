//! CONNECT: a raw tunnel to the requested host. HTTPS inside it passes
//! through untouched (interception is a later step); plugins do not see it.

use hyper::body::Incoming;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use witm_flow::ClientConn;

use crate::body::{self, ProxyBody};
use crate::forward::plain_response;

/// Answers a CONNECT: 200 and a tunnel, or 400 for a target that is not
/// "host:port".
pub(crate) fn connect(
    request: hyper::Request<Incoming>,
    conn: &ClientConn,
) -> hyper::Response<ProxyBody> {
    let Some(target) = request.uri().authority().map(|a| a.to_string()) else {
        return plain_response(
            http::StatusCode::BAD_REQUEST,
            "CONNECT needs a host:port target",
        );
    };
    let client = conn.address;
    tokio::spawn(async move {
        let upgraded = match hyper::upgrade::on(request).await {
            Ok(upgraded) => upgraded,
            Err(e) => {
                tracing::debug!(%client, "CONNECT {target}: upgrade failed: {e}");
                return;
            }
        };
        if let Err(e) = relay(upgraded, &target).await {
            tracing::info!(%client, "CONNECT {target}: {e}");
        }
    });
    hyper::Response::new(body::empty())
}

async fn relay(upgraded: Upgraded, target: &str) -> std::io::Result<()> {
    let mut server = TcpStream::connect(target).await?;
    let mut client = TokioIo::new(upgraded);
    tokio::io::copy_bidirectional(&mut client, &mut server).await?;
    Ok(())
}
