//! The body type the proxy sends either way, and how to make one.

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};

/// Any error a body can fail with on its way through the proxy.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A body in flight: buffered, streamed from the other side, or empty.
pub type ProxyBody = BoxBody<Bytes, BoxError>;

/// A body holding `bytes`.
pub fn full(bytes: impl Into<Bytes>) -> ProxyBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// How much of a held body goes to hyper at a time. hyper queues a whole
/// frame for writing and drops the body once its last frame is taken, so
/// frames of this size keep the body (and what it keeps alive, such as
/// its bytes' place in the held budget) until it has nearly all been
/// written to a slow reader.
const SLICE: usize = 256 << 10;

/// A body holding `bytes`, then `trailers` (when there are any), handed
/// out in slices of [`SLICE`] bytes (no copy: they share `bytes`).
pub fn full_with_trailers(bytes: Bytes, trailers: Option<&witm_flow::Headers>) -> ProxyBody {
    let trailers = trailers
        .filter(|t| !t.is_empty())
        .map(|t| t.to_header_map(|_| false).0);
    if trailers.is_none() && bytes.len() <= SLICE {
        return full(bytes);
    }
    boxed(Slices {
        data: bytes,
        trailers,
    })
}

/// Data in slices, then trailers. With trailers its size is not told, so
/// hyper frames it chunked on HTTP/1.1, where trailers need it.
struct Slices {
    data: Bytes,
    trailers: Option<http::HeaderMap>,
}

impl http_body::Body for Slices {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        let frame = if self.data.is_empty() {
            self.trailers.take().map(http_body::Frame::trailers)
        } else {
            let take = self.data.len().min(SLICE);
            Some(http_body::Frame::data(self.data.split_to(take)))
        };
        std::task::Poll::Ready(frame.map(Ok))
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_empty() && self.trailers.is_none()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        match self.trailers {
            None => http_body::SizeHint::with_exact(self.data.len() as u64),
            Some(_) => http_body::SizeHint::default(),
        }
    }
}

/// An empty body.
pub fn empty() -> ProxyBody {
    Empty::new().map_err(|never| match never {}).boxed()
}

/// A body streamed through from hyper (the client's or the server's).
pub fn streamed(incoming: hyper::body::Incoming) -> ProxyBody {
    incoming.map_err(BoxError::from).boxed()
}

/// A failure of the client's own body (its connection broke, its chunked
/// framing was malformed) while witm streamed it to the server: the
/// server's exchange then fails too, and this says whose fault it was.
#[derive(Debug)]
pub struct ClientBodyError(pub BoxError);

impl std::fmt::Display for ClientBodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the client's request body failed: {}", self.0)
    }
}

impl std::error::Error for ClientBodyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}

/// `body` (the client's request body, streamed to the server) with its
/// errors marked as the client's.
pub fn from_client(body: ProxyBody) -> ProxyBody {
    body.map_err(|e| BoxError::from(ClientBodyError(e))).boxed()
}

/// `chunks` already read from `incoming`, then the rest of it.
pub fn replay_then(chunks: Vec<Bytes>, incoming: ProxyBody) -> ProxyBody {
    ReplayThen {
        chunks: chunks.into(),
        incoming,
    }
    .boxed()
}

struct ReplayThen {
    chunks: std::collections::VecDeque<Bytes>,
    incoming: ProxyBody,
}

impl http_body::Body for ReplayThen {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        if let Some(chunk) = self.chunks.pop_front() {
            return std::task::Poll::Ready(Some(Ok(http_body::Frame::data(chunk))));
        }
        std::pin::Pin::new(&mut self.incoming).poll_frame(cx)
    }
}

/// `body`, keeping `kept` alive until it is dropped (sent or abandoned):
/// a count of requests in flight, bytes held against a budget.
pub fn keeping<T: Send + Sync + Unpin + 'static>(body: ProxyBody, kept: T) -> ProxyBody {
    boxed(Keeping {
        inner: body,
        _kept: kept,
    })
}

struct Keeping<T> {
    inner: ProxyBody,
    _kept: T,
}

impl<T: Send + Sync + Unpin + 'static> http_body::Body for Keeping<T> {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        std::pin::Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Boxes any body of ours.
pub fn boxed<B>(body: B) -> ProxyBody
where
    B: http_body::Body<Data = Bytes, Error = BoxError> + Send + Sync + 'static,
{
    BoxBody::new(body)
}
