//! What a flow that opened a WebSocket keeps of it (mitmproxy's
//! `WebSocketData`): the messages that passed, as delivered (after plugins),
//! and how the connection closed. Recorded up to a bound so that a
//! long-lived socket cannot grow the proxy: past it, messages are counted,
//! not kept. The proxy also holds the bytes it keeps to
//! [`MAX_KEPT_BYTES`] per flow and to its budget for all held bodies.

use bytes::Bytes;

/// Messages one flow keeps at most.
pub const MAX_KEPT_MESSAGES: usize = 100_000;
/// Payload bytes one flow keeps at most (the proxy checks it, against the
/// bytes it holds for the flow).
pub const MAX_KEPT_BYTES: usize = 64 << 20;

/// One message as recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedMessage {
    /// True when the client sent it.
    pub from_client: bool,
    /// A text message (else binary).
    pub is_text: bool,
    /// The payload as delivered (after plugins).
    pub content: Bytes,
    /// When it passed, ms since the Unix epoch.
    pub timestamp: u64,
    /// A plugin dropped it: it was not delivered.
    pub dropped: bool,
}

/// A WebSocket's messages and close.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WebSocketData {
    /// The messages kept, in the order they passed.
    pub messages: Vec<RecordedMessage>,
    /// Messages that passed after the bound and were not kept.
    pub not_kept: u64,
    /// Who closed it, when a close frame was seen.
    pub closed_by_client: Option<bool>,
    /// The close frame's code (1000 normal, 1009 too big, …).
    pub close_code: Option<u16>,
    /// The close frame's reason.
    pub close_reason: String,
    /// When it ended, ms since the Unix epoch.
    pub timestamp_end: Option<u64>,
}

impl WebSocketData {
    /// Keeps `message`, or counts it once [`MAX_KEPT_MESSAGES`] are kept.
    pub fn record(&mut self, message: RecordedMessage) {
        keep(&mut self.messages, &mut self.not_kept, message);
    }

    /// Bytes of payload kept.
    pub fn kept_bytes(&self) -> usize {
        kept_bytes(&self.messages)
    }
}

/// Pushes `message` onto `messages`, or counts it in `not_kept` once
/// [`MAX_KEPT_MESSAGES`] are kept (a WebSocket's or a TCP flow's).
pub(crate) fn keep(
    messages: &mut Vec<RecordedMessage>,
    not_kept: &mut u64,
    message: RecordedMessage,
) {
    if messages.len() >= MAX_KEPT_MESSAGES {
        *not_kept += 1;
    } else {
        messages.push(message);
    }
}

/// Bytes of payload in `messages`.
pub(crate) fn kept_bytes(messages: &[RecordedMessage]) -> usize {
    messages.iter().map(|m| m.content.len()).sum()
}
