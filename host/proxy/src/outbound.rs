//! Plugins' own HTTP requests (`http-send`), sent for the plugin runtime.
//! The runtime has checked the target against the plugin's policy and
//! pinned the address; this connects to exactly that address (HTTPS
//! verified against the proxy's upstream trust, for the URL's host), sends
//! one HTTP/1.1 request and reads the response up to its byte cap. One
//! connection per call, closed after it: nothing a plugin sends shares a
//! connection with client traffic. The caller bounds the time; dropping
//! the future drops the connection.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use witm_flow::{HttpSender, OutboundRequest, OutboundResponse};
use witm_tls::Upstream;

/// A sender for plugins' `http-send` that verifies HTTPS servers as
/// `trust` says; connecting takes at most `connect_timeout`.
pub fn http_sender(trust: Upstream, connect_timeout: Duration) -> HttpSender {
    std::sync::Arc::new(move |request| Box::pin(send(trust.clone(), connect_timeout, request)))
}

async fn send(
    trust: Upstream,
    connect_timeout: Duration,
    request: OutboundRequest,
) -> Result<OutboundResponse, String> {
    let to = request.connect_to;
    let tcp = tokio::time::timeout(connect_timeout, TcpStream::connect(to))
        .await
        .map_err(|_| format!("connecting to {to} timed out"))?
        .map_err(|e| format!("connecting to {to} failed: {e}"))?;
    let _ = tcp.set_nodelay(true);
    if request.scheme != "https" {
        return exchange(tcp, request).await;
    }
    let name = request.host.trim_start_matches('[').trim_end_matches(']');
    let name = ServerName::try_from(name.to_owned())
        .map_err(|e| format!("invalid server name {name:?}: {e}"))?;
    let connector = TlsConnector::from(trust.client_config(vec![b"http/1.1".to_vec()]));
    let tls = tokio::time::timeout(connect_timeout, connector.connect(name, tcp))
        .await
        .map_err(|_| format!("TLS handshake with {to} timed out"))?
        .map_err(|e| format!("TLS handshake with {to} failed: {e}"))?;
    exchange(tls, request).await
}

/// Sends the request on `io` and reads the whole response, driving the
/// connection in the same future (nothing is left running when it is
/// dropped).
async fn exchange<IO>(io: IO, request: OutboundRequest) -> Result<OutboundResponse, String>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| format!("HTTP/1.1 failed: {e}"))?;
    let limit = request.max_response_bytes;
    let message = build(request)?;
    let exchange = async move {
        let response = sender
            .send_request(message)
            .await
            .map_err(|e| format!("no response: {e}"))?;
        let (head, body) = response.into_parts();
        let body = Limited::new(body, limit)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    format!("the response body is over {limit} bytes (max_outbound_response_bytes)")
                } else {
                    format!("reading the response body failed: {e}")
                }
            })?
            .to_bytes();
        Ok(OutboundResponse {
            status: head.status.as_u16(),
            headers: head
                .headers
                .iter()
                .map(|(name, value)| {
                    (
                        name.as_str().to_owned(),
                        String::from_utf8_lossy(value.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            body,
        })
    };
    let mut exchange = std::pin::pin!(exchange);
    let mut connection = std::pin::pin!(connection);
    tokio::select! {
        outcome = &mut exchange => outcome,
        // The connection ends (closed, or failed); the exchange has what it
        // got, or the error.
        _ = &mut connection => exchange.await,
    }
}

fn build(request: OutboundRequest) -> Result<http::Request<Full<Bytes>>, String> {
    let default_port = if request.scheme == "https" { 443 } else { 80 };
    let host = if request.port == default_port {
        request.host.clone()
    } else {
        format!("{}:{}", request.host, request.port)
    };
    let mut builder = http::Request::builder()
        .method(request.method.as_str())
        .uri(request.path.as_str())
        .header(http::header::HOST, host);
    for (name, value) in &request.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    builder
        .body(Full::new(request.body))
        .map_err(|e| format!("invalid request: {e}"))
}
