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

/// An empty body.
pub fn empty() -> ProxyBody {
    Empty::new().map_err(|never| match never {}).boxed()
}

/// A body streamed through from hyper (the client's or the server's).
pub fn streamed(incoming: hyper::body::Incoming) -> ProxyBody {
    incoming.map_err(BoxError::from).boxed()
}

/// Boxes any body of ours.
pub fn boxed<B>(body: B) -> ProxyBody
where
    B: http_body::Body<Data = Bytes, Error = BoxError> + Send + Sync + 'static,
{
    BoxBody::new(body)
}
