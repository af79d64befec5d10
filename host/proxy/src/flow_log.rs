//! One line per flow on stdout, like mitmdump: client, method, URL, status,
//! size, duration. It is written when the response body has been sent (or
//! abandoned), so size and duration are the real ones.
//!
//! It lives in the engine, not among the addons (`host/addons`), on purpose:
//! the moment it needs — the last body byte handed to the client — is seen
//! only here, as the body is polled; no `FlowHooks` event fires then, and
//! one would cost every flow a call for the sake of one line.

use std::io::Write;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use crate::body::{BoxError, ProxyBody};

/// What the line says besides size and duration, fixed when the response
/// is ready.
pub struct FlowLine {
    /// "127.0.0.1:50312 GET http://example.com/ 200".
    pub head: String,
    /// When the request arrived.
    pub started: Instant,
}

/// Wraps a response body, counting what goes through it.
pub struct LoggedBody {
    inner: ProxyBody,
    line: Option<FlowLine>,
    sent: u64,
}

impl LoggedBody {
    /// Logs `line` once `inner` has been sent or dropped.
    pub fn new(inner: ProxyBody, line: FlowLine) -> Self {
        Self {
            inner,
            line: Some(line),
            sent: 0,
        }
    }

    fn finish(&mut self, outcome: &str) {
        if let Some(line) = self.line.take() {
            let elapsed = line.started.elapsed();
            let mut out = std::io::stdout().lock();
            let _ = writeln!(
                out,
                "{} {} {}{}",
                line.head,
                human_size(self.sent),
                human_duration(elapsed),
                outcome
            );
        }
    }
}

impl Body for LoggedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.sent += data.len() as u64;
                }
            }
            Poll::Ready(None) => self.finish(""),
            Poll::Ready(Some(Err(e))) => {
                let outcome = format!(" (body broke off: {e})");
                self.finish(&outcome)
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for LoggedBody {
    fn drop(&mut self) {
        if self.inner.is_end_stream() {
            self.finish("");
        } else {
            self.finish(" (client went away)");
        }
    }
}

/// "512b", "1.5k", "3.2m", as mitmdump prints sizes.
pub fn human_size(bytes: u64) -> String {
    match bytes {
        b if b < 1024 => format!("{b}b"),
        b if b < 1024 * 1024 => format!("{:.1}k", b as f64 / 1024.0),
        b => format!("{:.1}m", b as f64 / (1024.0 * 1024.0)),
    }
}

fn human_duration(d: std::time::Duration) -> String {
    if d.as_millis() < 1 {
        format!("{}µs", d.as_micros())
    } else if d.as_secs() < 10 {
        format!("{}ms", d.as_millis())
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}
