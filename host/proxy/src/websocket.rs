//! WebSockets (HTTP/1.1 Upgrade): after the server's 101, both connections
//! are taken over and messages are relayed one by one, each offered to the
//! `websocket-message` event, which may change or drop it. Control frames
//! (ping, pong, close) pass through as they are.

use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use witm_flow::websocket::MAX_KEPT_BYTES;
use witm_flow::{Events, Flow, FlowHooks, FlowState, Request, WebSocketMessage};

use crate::held_budget::HeldBytes;
use crate::shared::Shared;

/// The largest WebSocket message and frame witm relays; one over either
/// closes both sides with 1009 (message too big).
#[derive(Clone, Copy, Debug)]
pub struct WebSocketLimits {
    /// Largest message, all its frames together (tungstenite's default).
    pub max_message: usize,
    /// Largest single frame (tungstenite's default).
    pub max_frame: usize,
}

impl Default for WebSocketLimits {
    fn default() -> Self {
        Self {
            max_message: 64 << 20,
            max_frame: 16 << 20,
        }
    }
}

/// True for a request asking to switch to WebSocket.
pub(crate) fn is_upgrade(request: &Request) -> bool {
    let upgrade = request
        .headers
        .get("upgrade")
        .is_some_and(|u| u.eq_ignore_ascii_case("websocket"));
    // Most requests stop here, without a second look through the fields.
    upgrade
        && request.headers.get("connection").is_some_and(|c| {
            c.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
        })
}

/// Puts back the headers that make the switch (hop-by-hop headers are
/// otherwise not forwarded).
pub(crate) fn keep_upgrade_headers(headers: &mut http::HeaderMap) {
    headers.insert(
        http::header::CONNECTION,
        http::HeaderValue::from_static("Upgrade"),
    );
    headers.insert(
        http::header::UPGRADE,
        http::HeaderValue::from_static("websocket"),
    );
}

/// Relays messages between the client and the server until either closes
/// or `closing` resolves (witm stops); then `websocket-end` delivers the
/// complete flow (e.g. to be saved). Messages are recorded on the flow only
/// when something subscribes to `websocket-end`, and their bytes count
/// against the held-bytes budget (`--max-held-bytes`) until it has the flow:
/// many sockets cannot hold more than that budget between them.
pub(crate) async fn relay<H: FlowHooks>(
    shared: Arc<Shared<H>>,
    mut flow: Flow,
    mut state: FlowState<H::Ctx>,
    (client, server): (OnUpgrade, OnUpgrade),
    closing: impl Future<Output = ()>,
) {
    let recorded = shared.hooks.subscriptions().contains(Events::WEBSOCKET_END);
    if recorded {
        flow.websocket = Some(Box::default());
    }
    let mut held = HeldBytes::new(shared.counters.clone(), shared.options.max_held_bytes);
    tokio::select! {
        () = exchange(&shared, &mut flow, &mut state, &mut held, (client, server)) => {}
        () = closing => {}
    }
    if let Some(websocket) = flow.websocket.as_mut() {
        websocket.timestamp_end = Some(witm_flow::now_ms());
    }
    if recorded {
        shared.hooks.websocket_end(&mut flow, state.ctx()).await;
    }
    drop(held);
}

/// The relay itself: messages both ways, each recorded as delivered.
async fn exchange<H: FlowHooks>(
    shared: &Arc<Shared<H>>,
    flow: &mut Flow,
    state: &mut FlowState<H::Ctx>,
    held: &mut HeldBytes,
    (client, server): (OnUpgrade, OnUpgrade),
) {
    let (client, server) = match tokio::try_join!(client, server) {
        Ok(both) => both,
        Err(e) => {
            tracing::info!("{}: WebSocket upgrade failed: {e}", flow.request.url());
            return;
        }
    };
    let limits = &shared.options.websocket;
    let config = tungstenite::protocol::WebSocketConfig::default()
        .max_message_size(Some(limits.max_message))
        .max_frame_size(Some(limits.max_frame));
    let mut client =
        WebSocketStream::from_raw_socket(TokioIo::new(client), Role::Server, Some(config)).await;
    let mut server =
        WebSocketStream::from_raw_socket(TokioIo::new(server), Role::Client, Some(config)).await;
    let offered = shared
        .hooks
        .subscriptions()
        .contains(Events::WEBSOCKET_MESSAGE);
    loop {
        let (received, from_client) = tokio::select! {
            message = client.next() => (message, true),
            message = server.next() => (message, false),
        };
        let message = match received {
            Some(Ok(message)) => message,
            Some(Err(tungstenite::Error::Capacity(e))) => {
                // Past the frame or message limit: both sides are told why
                // (1009, message too big) rather than cut off.
                tracing::warn!(
                    "{}: WebSocket message from the {} over the limit ({e}); closing both sides with 1009",
                    flow.request.url(),
                    if from_client { "client" } else { "server" }
                );
                for side in [&mut client, &mut server] {
                    let _ = side.send(too_big()).await;
                }
                if let Some(websocket) = flow.websocket.as_mut() {
                    websocket.close_code = Some(1009);
                    websocket.close_reason = "message too big".into();
                }
                // Read away what the sender still sends (for a short while),
                // so closing does not reset the connection and lose the
                // close frame on its way.
                let sender = if from_client {
                    &mut client
                } else {
                    &mut server
                };
                drain(sender.get_mut()).await;
                break;
            }
            Some(Err(e)) => {
                tracing::debug!("{}: WebSocket ended: {e}", flow.request.url());
                break;
            }
            None => break,
        };
        let message = match message {
            Message::Text(_) | Message::Binary(_) if offered => {
                let is_text = message.is_text();
                let mut event = WebSocketMessage {
                    from_client,
                    is_text,
                    content: message.into_data().to_vec(),
                    dropped: false,
                };
                shared
                    .hooks
                    .websocket_message(flow, &mut event, state.ctx())
                    .await;
                let content = bytes::Bytes::from(event.content);
                record(
                    flow,
                    held,
                    (from_client, event.is_text, event.dropped),
                    content.clone(),
                );
                if event.dropped {
                    continue;
                }
                if event.is_text {
                    Message::text(String::from_utf8_lossy(&content).into_owned())
                } else {
                    Message::binary(content)
                }
            }
            Message::Text(_) | Message::Binary(_) => {
                if flow.websocket.is_some() {
                    let kind = (from_client, message.is_text(), false);
                    record(flow, held, kind, message.clone().into_data());
                }
                message
            }
            Message::Close(frame) => {
                // The first close frame says who closed and why; one without
                // a code is 1005, "no status received" (RFC 6455 7.1.5).
                if let Some(websocket) = flow.websocket.as_mut()
                    && websocket.closed_by_client.is_none()
                {
                    websocket.closed_by_client = Some(from_client);
                    websocket.close_code = Some(frame.as_ref().map_or(1005, |f| u16::from(f.code)));
                    websocket.close_reason = frame
                        .as_ref()
                        .map(|f| f.reason.to_string())
                        .unwrap_or_default();
                }
                Message::Close(frame)
            }
            Message::Frame(_) => continue,
            other => other,
        };
        let to = if from_client {
            &mut server
        } else {
            &mut client
        };
        if let Err(e) = to.send(message).await {
            tracing::debug!("{}: WebSocket ended: {e}", flow.request.url());
            break;
        }
    }
}

/// Keeps a message on the flow, `(from_client, is_text, dropped)`, while
/// the flow holds under [`MAX_KEPT_BYTES`] and the held-bytes budget has
/// room; past either, it is counted, not kept.
fn record(
    flow: &mut Flow,
    held: &mut HeldBytes,
    (from_client, is_text, dropped): (bool, bool, bool),
    content: bytes::Bytes,
) {
    let Some(websocket) = flow.websocket.as_mut() else {
        return;
    };
    let len = content.len();
    if !held.keep(len, MAX_KEPT_BYTES) {
        websocket.not_kept += 1;
        return;
    }
    websocket.record(witm_flow::RecordedMessage {
        from_client,
        is_text,
        content,
        timestamp: witm_flow::now_ms(),
        dropped,
    });
}

/// The close frame for a message over the limit (RFC 6455 1009).
fn too_big() -> Message {
    Message::Close(Some(CloseFrame {
        code: CloseCode::Size,
        reason: "message too big".into(),
    }))
}

/// Reads and drops what `io` still delivers, until it closes or 2 s pass.
async fn drain(io: &mut (impl tokio::io::AsyncRead + Unpin)) {
    use tokio::io::AsyncReadExt;
    let mut buffer = vec![0u8; 64 << 10];
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), async {
        while let Ok(1..) = io.read(&mut buffer).await {}
    })
    .await;
}
