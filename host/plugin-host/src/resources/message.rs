//! What requests and responses share, written once for both: the body raw
//! and as content or text. Decoding and encoding run off the async threads
//! (a blocking thread) in chunks that stop at the event's deadline, so a
//! decompression bomb costs the plugin its deadline, not the proxy a worker;
//! decoded content is capped at the guest's memory (it could not take more).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use bytes::Bytes;
use witm_flow::Body;
use witm_flow::encoding::CodingError;

use super::{HostResult, MessageRef, content_error};
use crate::bindings::types::HostError;
use crate::state::HostView;

/// Bodies up to this size are coded on the calling thread: handing work to
/// a blocking thread costs more than coding them.
const INLINE_CODING: usize = 64 << 10;

/// A host call that ran into the event's deadline; counted as a deadline
/// hit, like an epoch interrupt.
#[derive(Debug)]
pub struct HostCallDeadline(pub &'static str);

impl std::fmt::Display for HostCallDeadline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "deadline exceeded in a host call ({})", self.0)
    }
}

impl std::error::Error for HostCallDeadline {}

/// Runs `work` (a coder asking its `stop` between chunks) so that it ends
/// by `deadline`: inline for small inputs, else on a blocking thread told
/// to stop when the deadline passes. Past the deadline the call traps.
async fn code_by<T: Send + 'static>(
    what: &'static str,
    size: usize,
    deadline: Instant,
    work: impl FnOnce(&dyn Fn() -> bool) -> Result<T, CodingError> + Send + 'static,
) -> wasmtime::Result<Result<T, CodingError>> {
    let stopped = |result: Result<T, CodingError>| match result {
        Err(CodingError::Stopped) => Err(wasmtime::Error::new(HostCallDeadline(what))),
        other => Ok(other),
    };
    if size <= INLINE_CODING {
        return stopped(work(&|| Instant::now() >= deadline));
    }
    let cancel = Arc::new(AtomicBool::new(false));
    let told = cancel.clone();
    let job = tokio::task::spawn_blocking(move || {
        work(&|| told.load(Ordering::Relaxed) || Instant::now() >= deadline)
    });
    match tokio::time::timeout_at(deadline.into(), job).await {
        Ok(Ok(result)) => stopped(result),
        Ok(Err(e)) => Err(wasmtime::format_err!("{what} failed: {e}")),
        Err(_) => {
            cancel.store(true, Ordering::Relaxed);
            Err(wasmtime::Error::new(HostCallDeadline(what)))
        }
    }
}

impl HostView<'_> {
    pub(super) fn body_of(&self, m: MessageRef) -> HostResult<Vec<u8>> {
        Ok(self
            .message(m)?
            .body()
            .bytes()
            .map(|b| b.to_vec())
            .ok_or(HostError::BodyStreamed))
    }

    /// Replaces `m`'s body with `encoded`, charging it (and giving back
    /// what the old body held, if the plugin had put it there).
    fn put_body(&mut self, m: MessageRef, encoded: Vec<u8>, raw: bool) -> HostResult<()> {
        let message = self.message(m)?;
        let Some(old) = message.body().bytes() else {
            return Ok(Err(HostError::BodyStreamed));
        };
        let old = old.len();
        if let Err(e) = self.charge(m, encoded.len(), old)? {
            return Ok(Err(e));
        }
        let message = self.message_mut(m)?;
        if raw {
            *message.body_mut() = Body::Buffered(Bytes::from(encoded));
            Ok(Ok(()))
        } else {
            Ok(message.set_encoded(encoded).map_err(content_error))
        }
    }

    pub(super) fn set_body_of(&mut self, m: MessageRef, body: Vec<u8>) -> HostResult<()> {
        self.put_body(m, body, true)
    }

    pub(super) async fn content_of(&mut self, m: MessageRef) -> HostResult<Vec<u8>> {
        let message = self.message(m)?;
        let Some(raw) = message.body().bytes().cloned() else {
            return Ok(Err(HostError::BodyStreamed));
        };
        let coding = match message.coding() {
            Ok(coding) => coding,
            Err(e) => return Ok(Err(content_error(e))),
        };
        let limit = self.host.settings.memory_bytes;
        let decoded = code_by(
            "decoding a body",
            raw.len(),
            self.host.deadline,
            move |stop| coding.decode_until(&raw, limit.min(witm_flow::message::MAX_DECODED), stop),
        )
        .await?;
        Ok(decoded.map_err(|e| content_error(witm_flow::ContentError::Coding(e))))
    }

    pub(super) async fn set_content_of(
        &mut self,
        m: MessageRef,
        content: Vec<u8>,
    ) -> HostResult<()> {
        let message = self.message(m)?;
        if message.body() == &Body::Streamed {
            return Ok(Err(HostError::BodyStreamed));
        }
        let coding = match message.coding() {
            Ok(coding) => coding,
            Err(e) => return Ok(Err(content_error(e))),
        };
        let encoded = code_by(
            "encoding a body",
            content.len(),
            self.host.deadline,
            move |stop| coding.encode_until(&content, stop),
        )
        .await?;
        match encoded {
            Ok(encoded) => self.put_body(m, encoded, false),
            Err(e) => Ok(Err(content_error(witm_flow::ContentError::Coding(e)))),
        }
    }

    pub(super) async fn text_of(&mut self, m: MessageRef) -> HostResult<String> {
        Ok(match self.content_of(m).await? {
            Ok(content) => Ok(self.message(m)?.decode_text(&content)),
            Err(e) => Err(e),
        })
    }

    pub(super) async fn set_text_of(&mut self, m: MessageRef, text: String) -> HostResult<()> {
        let bytes = self.message(m)?.encode_text(&text);
        drop(text);
        self.set_content_of(m, bytes).await
    }
}
