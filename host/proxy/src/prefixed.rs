//! A client stream that witm has started reading: the first bytes (read to
//! tell TLS from plain HTTP, and HTTP/2's preface from HTTP/1) are put back
//! in front, and what is read is kept until told to stop, so a ClientHello
//! witm has consumed can be replayed to the server when a plugin asks for
//! the connection to pass through.

use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// `inner`, with `first` read again before it, recording what is read.
pub(crate) struct Peeked<T> {
    first: Vec<u8>,
    recorded: Option<Vec<u8>>,
    inner: T,
}

impl<T> Peeked<T> {
    /// `first` was read from `inner` already; it counts as recorded.
    pub(crate) fn new(first: Vec<u8>, inner: T) -> Self {
        Self {
            recorded: Some(first.clone()),
            first,
            inner,
        }
    }

    /// Stops recording and returns what was read so far.
    pub(crate) fn take_recorded(&mut self) -> Vec<u8> {
        self.recorded.take().unwrap_or_default()
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Peeked<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if buf.remaining() > 0 && !self.first.is_empty() {
            let n = self.first.len().min(buf.remaining());
            buf.put_slice(&self.first[..n]);
            self.first.drain(..n);
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let (Poll::Ready(Ok(())), Some(recorded)) = (&polled, self.recorded.as_mut()) {
            recorded.extend_from_slice(&buf.filled()[before..]);
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Peeked<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
