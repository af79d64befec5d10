//! CONNECT: intercepted (see `intercept`) or, for ignored hosts and when
//! interception is off, a raw tunnel the proxy does not look into.

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use witm_flow::{ClientConn, FlowHooks};

use crate::body::{self, ProxyBody};
use crate::forward::plain_response;
use crate::intercept;
use crate::server::Shared;

/// Answers a CONNECT: 200 and a tunnel, or 400 for a target that is not
/// "host:port".
pub(crate) fn connect<H: FlowHooks>(
    shared: Arc<Shared<H>>,
    request: hyper::Request<Incoming>,
    conn: Arc<ClientConn>,
) -> hyper::Response<ProxyBody> {
    let Some((host, port)) = request.uri().authority().and_then(|a| {
        Some((
            a.host()
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            a.port_u16()?,
        ))
    }) else {
        return plain_response(
            http::StatusCode::BAD_REQUEST,
            "CONNECT needs a host:port target",
        );
    };
    let tls = shared
        .options
        .tls
        .clone()
        .filter(|tls| tls.intercepts(&host, port));
    tokio::spawn(async move {
        let upgraded = match hyper::upgrade::on(request).await {
            Ok(upgraded) => upgraded,
            Err(e) => {
                tracing::debug!(client = %conn.address, "CONNECT {host}:{port}: upgrade failed: {e}");
                return;
            }
        };
        match tls {
            Some(tls) => intercept::intercept(shared, tls, conn, upgraded, host, port).await,
            None => {
                if let Err(e) = relay(upgraded, &host, port).await {
                    tracing::info!(client = %conn.address, "CONNECT {host}:{port}: {e}");
                }
            }
        }
    });
    hyper::Response::new(body::empty())
}

async fn relay(upgraded: Upgraded, host: &str, port: u16) -> std::io::Result<()> {
    let mut server = TcpStream::connect((host, port)).await?;
    let mut client = TokioIo::new(upgraded);
    tokio::io::copy_bidirectional(&mut client, &mut server).await?;
    Ok(())
}
