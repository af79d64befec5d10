//! Opening a byte stream to `host:port` along a flow's [`Route`]: a TCP
//! connection, or a CONNECT tunnel through an upstream proxy (over TLS to
//! the proxy for `https://` proxies), with `Proxy-Authorization` from the
//! proxy URL's credentials.
//!
//! Every server connection witm makes for tunnels (intercepted, h2c, raw)
//! and the upstream pools' connections for HTTPS go through here, so the
//! route is honoured the same way everywhere.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use witm_flow::{ProxyUrl, Route};
use witm_tls::{ALPN_HTTP1, Upstream};

/// Largest response head an upstream proxy may answer a CONNECT with.
const MAX_CONNECT_HEAD: usize = 16 * 1024;

/// A connection to a server, whichever way it was made.
pub(crate) trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// A boxed [`Stream`].
pub(crate) type BoxStream = Box<dyn Stream>;

/// Opens a stream to `host:port` along `route`, within `timeout`; the
/// error names the server (and the proxy, if any) and the reason.
pub(crate) async fn dial(
    route: &Route,
    host: &str,
    port: u16,
    trust: &Upstream,
    timeout: Duration,
) -> std::io::Result<BoxStream> {
    Ok(dial_peer(route, host, port, trust, timeout).await?.0)
}

/// [`dial`], and the address connected to when it is the server's own
/// (direct; through a proxy, the server's is not known).
pub(crate) async fn dial_peer(
    route: &Route,
    host: &str,
    port: u16,
    trust: &Upstream,
    timeout: Duration,
) -> std::io::Result<(BoxStream, Option<SocketAddr>)> {
    let dialed = async {
        match route {
            Route::Direct => {
                let tcp = tcp(host, port).await?;
                let peer = tcp.peer_addr().ok();
                Ok((Box::new(tcp) as BoxStream, peer))
            }
            Route::Via(proxy) => Ok((via(proxy, host, port, trust).await?, None)),
        }
    };
    tokio::time::timeout(timeout, dialed).await.map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("connecting to {host}:{port} ({route}) timed out"),
        )
    })?
}

/// The `Proxy-Authorization` value for `proxy`'s credentials, if any.
pub(crate) fn proxy_authorization(proxy: &ProxyUrl) -> Option<String> {
    let credentials = proxy.credentials.as_ref()?;
    Some(format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(credentials)
    ))
}

async fn tcp(host: &str, port: u16) -> std::io::Result<TcpStream> {
    let tcp = TcpStream::connect((host, port)).await.map_err(|e| {
        std::io::Error::new(e.kind(), format!("cannot connect to {host}:{port}: {e}"))
    })?;
    let _ = tcp.set_nodelay(true);
    Ok(tcp)
}

/// A connection to the proxy itself: TCP, and TLS for `https://` proxies.
pub(crate) async fn to_proxy(proxy: &ProxyUrl, trust: &Upstream) -> std::io::Result<BoxStream> {
    let tcp = tcp(&proxy.host, proxy.port).await?;
    if !proxy.tls {
        return Ok(Box::new(tcp));
    }
    let name = ServerName::try_from(proxy.host.clone()).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("upstream proxy {proxy}: invalid name: {e}"),
        )
    })?;
    let connector = TlsConnector::from(trust.client_config(vec![ALPN_HTTP1.to_vec()]));
    let tls = connector.connect(name, tcp).await.map_err(|e| {
        std::io::Error::new(e.kind(), format!("TLS with upstream proxy {proxy}: {e}"))
    })?;
    Ok(Box::new(tls))
}

/// A CONNECT tunnel to `host:port` through `proxy`.
async fn via(
    proxy: &Arc<ProxyUrl>,
    host: &str,
    port: u16,
    trust: &Upstream,
) -> std::io::Result<BoxStream> {
    let mut stream = to_proxy(proxy, trust).await?;
    let target = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let mut head = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
    if let Some(authorization) = proxy_authorization(proxy) {
        head.push_str(&format!("Proxy-Authorization: {authorization}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await?;
    // Read the answer's head byte by byte: what follows it is the server's.
    let mut answer = Vec::with_capacity(256);
    while !answer.ends_with(b"\r\n\r\n") {
        if answer.len() >= MAX_CONNECT_HEAD {
            return Err(refused(proxy, &target, "an answer head over 16 KiB"));
        }
        let byte = stream.read_u8().await.map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("upstream proxy {proxy} closed during CONNECT {target}: {e}"),
            )
        })?;
        answer.push(byte);
    }
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut response = httparse::Response::new(&mut headers);
    match response.parse(&answer) {
        Ok(httparse::Status::Complete(_)) => {}
        _ => return Err(refused(proxy, &target, "a malformed answer")),
    }
    match response.code {
        Some(code) if (200..300).contains(&code) => Ok(stream),
        Some(code) => Err(refused(
            proxy,
            &target,
            &format!("{code} {}", response.reason.unwrap_or_default()),
        )),
        None => Err(refused(proxy, &target, "no status")),
    }
}

fn refused(proxy: &ProxyUrl, target: &str, what: &str) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::ConnectionRefused,
        format!("upstream proxy {proxy} answered CONNECT {target} with {what}"),
    )
}
