//! The connection to the server a CONNECT tunnel is for: opened during the
//! interception (TLS with the client's SNI and ALPN offers), kept for the
//! tunnel's requests, reporting `server-connect`/`server-disconnect`; and
//! what requests inside the tunnel default to.

use std::sync::Arc;
use std::time::Duration;

use hyper::client::conn::{http1 as client_http1, http2 as client_http2};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio_rustls::TlsConnector;
use witm_flow::{ErrorKind, Route, ServerConn};
use witm_tls::{ALPN_HTTP1, Upstream};

use crate::answers::{self, Failure};
use crate::body::ProxyBody;
use crate::dial::{self, BoxStream};
use crate::server_events::ServerEvents;
use crate::server_http::ServerHttp;
use crate::tls::TlsOptions;
use crate::wire_heads::{Heads, ResponseHeads, Side, Tapped};

/// What requests inside a tunnel default to, and the server connection
/// opened for it.
pub(crate) struct Tunnel {
    /// "https" or "http".
    pub scheme: &'static str,
    /// The CONNECT target.
    pub host: String,
    /// The CONNECT target's port.
    pub port: u16,
    /// The connection made to the server during the handshake, if it worked.
    pub link: Option<ServerLink>,
    /// Why there is no server connection, for each flow's 502 and `error`.
    pub link_error: Option<Failure>,
    /// The tenant of the CONNECT, and so of every flow in the tunnel.
    pub tenant: Option<Arc<str>>,
    /// How the server connection was made (direct or through a proxy).
    pub route: Route,
    /// A reverse proxy's client connection, not a CONNECT: every request
    /// goes to the server, whatever its URL says.
    pub reverse: bool,
    /// The tunnel's "host:port" as a URI's, made at its first request
    /// (`target::in_tunnel`); none if it cannot be one.
    pub authority: std::sync::OnceLock<Option<http::uri::Authority>>,
}

impl Tunnel {
    /// True when `flow` goes where this tunnel's server connection goes (a
    /// plugin may have re-targeted it elsewhere, or through another route).
    pub(crate) fn serves(&self, flow: &witm_flow::Flow, route: &Route) -> bool {
        let request = &flow.request;
        self.serves_target((&request.scheme, &request.host, request.port), route)
    }

    /// As [`Tunnel::serves`], for a request going to `(scheme, host, port)`.
    pub(crate) fn serves_target(
        &self,
        (scheme, host, port): (&str, &str, u16),
        route: &Route,
    ) -> bool {
        scheme == self.scheme
            && port == self.port
            && host.eq_ignore_ascii_case(&self.host)
            && *route == self.route
    }
}

/// A connection to the tunnel's server, reused for the tunnel's requests.
pub(crate) struct ServerLink {
    sender: Sender,
    /// What plugins learn of the server.
    pub info: Arc<ServerConn>,
}

/// The link's protocol, which never changes, and how requests take it.
enum Sender {
    /// One exchange at a time: the lock is held until the response comes.
    /// With the tap of the connection's heads (see [`crate::wire_heads`]).
    Http1(
        tokio::sync::Mutex<client_http1::SendRequest<ProxyBody>>,
        Arc<Heads>,
    ),
    /// Shared by the tunnel's requests, each with a handle of its own.
    Http2(client_http2::SendRequest<ProxyBody>),
}

impl ServerLink {
    /// True when the connection is open and has no request in flight, so
    /// another tunnel may take it over (see [`crate::link_pool`]).
    pub(crate) fn is_reusable(&self) -> bool {
        match &self.sender {
            Sender::Http1(h1, _) => h1.try_lock().is_ok_and(|h1| h1.is_ready()),
            Sender::Http2(h2) => h2.is_ready(),
        }
    }

    /// True when the link's protocol is HTTP/2.
    pub(crate) fn is_http2(&self) -> bool {
        matches!(self.sender, Sender::Http2(_))
    }

    /// Sends over the link; gives the request back if the link has closed
    /// (the server ended the keep-alive), for the caller to use the pool.
    pub(crate) async fn send(
        &self,
        request: hyper::Request<ProxyBody>,
    ) -> Result<
        Result<hyper::Response<hyper::body::Incoming>, hyper::Error>,
        hyper::Request<ProxyBody>,
    > {
        match &self.sender {
            Sender::Http2(h2) => {
                let mut h2 = h2.clone();
                if h2.ready().await.is_err() {
                    return Err(request);
                }
                Ok(h2.send_request(request).await)
            }
            Sender::Http1(h1, heads) => {
                let mut h1 = h1.lock().await;
                if h1.ready().await.is_err() {
                    return Err(request);
                }
                let mut sent = h1.send_request(request).await;
                if let Ok(response) = &mut sent {
                    response
                        .extensions_mut()
                        .insert(ResponseHeads(heads.clone()));
                }
                Ok(sent)
            }
        }
    }
}

/// Drives a server connection, then reports that it closed.
async fn report_close<F: std::future::Future>(
    connection: F,
    events: Arc<dyn ServerEvents>,
    server: Arc<ServerConn>,
) {
    let _ = connection.await;
    events.disconnected(server);
}

/// A stream to `host:port` along `route`, the error naming it; and the
/// server conn's facts so far: the address connected to and when the
/// connection began and was up.
async fn connect_stream(
    route: &Route,
    trust: &Upstream,
    host: &str,
    port: u16,
    timeout: Duration,
) -> Result<(BoxStream, ServerConn), Failure> {
    let start = witm_flow::now_ms();
    let (stream, peername) = dial::dial_peer(route, host, port, trust, timeout)
        .await
        .map_err(|e| Failure::new(answers::kind_of_upstream(&e), e.to_string()))?;
    let facts = ServerConn {
        address: format!("{host}:{port}"),
        peername,
        timestamp_start: Some(start),
        timestamp_tcp_setup: Some(witm_flow::now_ms()),
        ..ServerConn::default()
    };
    Ok((stream, facts))
}

/// HTTP/2 to the server over `io`, set up as `http` says (pinged while
/// requests are in flight, closed when a ping goes unanswered); its close
/// is reported.
async fn http2_sender<IO>(
    io: IO,
    http: ServerHttp,
    events: &Arc<dyn ServerEvents>,
    info: &Arc<ServerConn>,
) -> Result<Sender, Failure>
where
    IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (sender, connection) = http.http2().handshake(io).await.map_err(|e| {
        Failure::new(
            ErrorKind::Server,
            format!("HTTP/2 with {} failed: {e}", info.address),
        )
    })?;
    tokio::spawn(report_close(connection, events.clone(), info.clone()));
    Ok(Sender::Http2(sender))
}

/// Connects to the server in plain HTTP/2 (prior knowledge, "h2c"), for a
/// tunnel whose client spoke it: an HTTP/1.1 server could not answer it.
pub(crate) async fn connect_h2c(
    (route, trust): (&Route, &Upstream),
    timeout: Duration,
    http: ServerHttp,
    events: &Arc<dyn ServerEvents>,
    host: &str,
    port: u16,
) -> Result<ServerLink, Failure> {
    let (tcp, facts) = connect_stream(route, trust, host, port, timeout).await?;
    let info = Arc::new(ServerConn {
        alpn: Some("h2c".into()),
        ..facts
    });
    let sender = http2_sender(TokioIo::new(tcp), http, events, &info).await?;
    Ok(ServerLink { sender, info })
}

/// Connects to the server over TLS and sets up HTTP on it. The error text
/// names the host and the reason (refused, bad certificate, timeout).
pub(crate) async fn connect_server(
    (tls, route): (&TlsOptions, &Route),
    events: &Arc<dyn ServerEvents>,
    host: &str,
    port: u16,
    server_name: &str,
    alpn: Vec<Vec<u8>>,
    http: ServerHttp,
) -> Result<ServerLink, Failure> {
    let address = format!("{host}:{port}");
    let connect = async {
        let (tcp, facts) =
            connect_stream(route, &tls.upstream, host, port, tls.handshake_timeout).await?;
        let name = ServerName::try_from(server_name.to_owned()).map_err(|e| {
            Failure::new(
                ErrorKind::Client,
                format!("invalid server name {server_name:?}: {e}"),
            )
        })?;
        let alpn = if alpn.is_empty() {
            vec![ALPN_HTTP1.to_vec()]
        } else {
            alpn
        };
        let connector = TlsConnector::from(tls.upstream.client_config(alpn));
        let stream = connector.connect(name, tcp).await.map_err(|e| {
            Failure::new(
                ErrorKind::Tls,
                format!("TLS handshake with server {address} failed: {e}"),
            )
        })?;
        Ok::<_, Failure>((stream, facts))
    };
    let (stream, facts) = tokio::time::timeout(tls.handshake_timeout, connect)
        .await
        .map_err(|_| {
            Failure::new(
                ErrorKind::Timeout,
                format!("connecting to {address} timed out"),
            )
        })??;
    let (_, session) = stream.get_ref();
    let alpn = session
        .alpn_protocol()
        .map(|p| String::from_utf8_lossy(p).into_owned());
    let cert = session
        .peer_certificates()
        .and_then(|chain| chain.first())
        .and_then(crate::cert_info::cert_info);
    let info = Arc::new(ServerConn {
        sni: Some(server_name.to_owned()),
        alpn: alpn.clone(),
        cert,
        timestamp_tls_setup: Some(witm_flow::now_ms()),
        ..facts
    });
    let io = TokioIo::new(stream);
    let sender = if alpn.as_deref() == Some("h2") {
        http2_sender(io, http, events, &info).await?
    } else {
        let heads = Heads::for_flows(Side::Responses, events.flows_wanted());
        let (sender, connection) = http
            .http1()
            .handshake(Tapped::new(io, heads.clone()))
            .await
            .map_err(|e| {
                Failure::new(
                    ErrorKind::Server,
                    format!("HTTP/1.1 with {address} failed: {e}"),
                )
            })?;
        tokio::spawn(report_close(
            connection.with_upgrades(),
            events.clone(),
            info.clone(),
        ));
        Sender::Http1(tokio::sync::Mutex::new(sender), heads)
    };
    Ok(ServerLink { sender, info })
}
