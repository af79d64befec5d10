//! What a TCP flow keeps (mitmproxy's `TCPFlow`): a tunnel that carried
//! neither TLS nor HTTP, relayed untouched, and the chunks that passed
//! each way as its messages. Bounded as WebSocket messages are: past
//! [`websocket::MAX_KEPT_MESSAGES`] (or the proxy's byte bounds)
//! chunks are counted, not kept.

use crate::websocket::{self, RecordedMessage};

/// A TCP flow's messages and end.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TcpData {
    /// The chunks kept, in the order they passed (`is_text` is false).
    pub messages: Vec<RecordedMessage>,
    /// Chunks that passed after the bound and were not kept.
    pub not_kept: u64,
    /// When the tunnel closed, ms since the Unix epoch.
    pub timestamp_end: Option<u64>,
}

impl TcpData {
    /// Keeps `message`, or counts it once [`websocket::MAX_KEPT_MESSAGES`]
    /// are kept.
    pub fn record(&mut self, message: RecordedMessage) {
        websocket::keep(&mut self.messages, &mut self.not_kept, message);
    }

    /// Bytes of payload kept.
    pub fn kept_bytes(&self) -> usize {
        websocket::kept_bytes(&self.messages)
    }

    /// Bytes that passed each way, of the kept chunks: (client, server).
    pub fn bytes_each_way(&self) -> (usize, usize) {
        self.messages
            .iter()
            .fold((0, 0), |(c, s), m| match m.from_client {
                true => (c + m.content.len(), s),
                false => (c, s + m.content.len()),
            })
    }
}
