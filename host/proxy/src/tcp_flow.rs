//! Raw tunnels recorded as TCP flows (mitmproxy's `TCPFlow`): a tunnel
//! whose traffic is neither TLS nor HTTP is relayed untouched (`relay`),
//! and when something subscribes to `tcp-end` (`-w` does) every chunk
//! that passes is kept as a message, `from_client` by direction. The
//! flow goes to `tcp-end` when the tunnel closes.
//!
//! Bounded like WebSocket recording: at most
//! [`witm_flow::websocket::MAX_KEPT_BYTES`] per flow and
//! [`witm_flow::websocket::MAX_KEPT_MESSAGES`] messages, and the bytes
//! count against the held-bytes budget (`--max-held-bytes`) until the flow
//! has gone to `tcp-end`; past either, chunks are counted, not kept.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use witm_flow::websocket::MAX_KEPT_BYTES;
use witm_flow::{
    ClientConn, ErrorKind, Events, Flow, FlowError, FlowHooks, FlowState, RecordedMessage,
};

use crate::held_budget::HeldBytes;
use crate::shared::Shared;

/// A TCP flow being recorded, and the bytes it holds.
pub(crate) struct Recorder {
    flow: Flow,
    held: HeldBytes,
}

impl Recorder {
    /// A recorder for a tunnel to `host:port`, when `tcp-end` is wanted.
    pub(crate) fn wanted<H: FlowHooks>(
        shared: &Shared<H>,
        conn: &Arc<ClientConn>,
        (host, port): (&str, u16),
    ) -> Option<Self> {
        if !shared.hooks.subscriptions().contains(Events::TCP_END) {
            return None;
        }
        Some(Self {
            flow: Flow::tcp(conn.clone(), host, port),
            held: HeldBytes::new(shared.counters.clone(), shared.options.max_held_bytes),
        })
    }

    /// Keeps one chunk (a copy), or counts it past the bounds.
    pub(crate) fn record(&mut self, from_client: bool, chunk: &[u8]) {
        if chunk.is_empty() {
            return;
        }
        let Some(tcp) = self.flow.tcp.as_mut() else {
            return;
        };
        if !self.held.keep(chunk.len(), MAX_KEPT_BYTES) {
            tcp.not_kept += 1;
            return;
        }
        tcp.record(RecordedMessage {
            from_client,
            is_text: false,
            content: Bytes::copy_from_slice(chunk),
            timestamp: witm_flow::now_ms(),
            dropped: false,
        });
    }

    /// Ends the flow (with `failure`, if the relay failed) and delivers it
    /// to `tcp-end`, for the tunnel's tenant.
    pub(crate) async fn finish<H: FlowHooks>(
        mut self,
        shared: &Shared<H>,
        tenant: Option<Arc<str>>,
        failure: Option<&std::io::Error>,
    ) {
        if let Some(tcp) = self.flow.tcp.as_mut() {
            tcp.timestamp_end = Some(witm_flow::now_ms());
        }
        if let Some(e) = failure {
            self.flow.error = Some(FlowError::new(ErrorKind::Server, e.to_string()));
        }
        let mut state = FlowState::<H::Ctx>::new(tenant);
        shared.hooks.tcp_end(&mut self.flow, state.ctx()).await;
    }
}

/// A client stream whose traffic is recorded: what is read from it came
/// from the client, what is written to it came from the server.
pub(crate) struct Recorded<'r, IO> {
    io: IO,
    recorder: &'r mut Recorder,
}

impl<'r, IO> Recorded<'r, IO> {
    pub(crate) fn new(io: IO, recorder: &'r mut Recorder) -> Self {
        Self { io, recorder }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Recorded<'_, IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let read = Pin::new(&mut self.io).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = read {
            let this = &mut *self;
            this.recorder.record(true, &buf.filled()[before..]);
        }
        read
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Recorded<'_, IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let written = Pin::new(&mut self.io).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = written {
            self.recorder.record(false, &buf[..n]);
        }
        written
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
