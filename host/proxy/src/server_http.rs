//! How witm's connections to servers speak HTTP, alike on every route: the
//! direct pool ([`crate::server_pool`]), a tunnel's own connection
//! ([`crate::upstream`]) and an upstream proxy's pools ([`crate::routes`]).

use std::time::Duration;

use hyper::client::conn::{http1, http2};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioTimer;

use crate::spawn::BoxedSpawn;
use crate::timeouts::NEVER;

/// What every server connection is set up with.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ServerHttp {
    /// An HTTP/2 connection is pinged this often while requests are in
    /// flight, and closed when a ping goes unanswered as long.
    pub h2_keepalive: Option<Duration>,
    /// HTTP/1 responses keep the case of their header names: hyper records
    /// it as it parses a head and the response carries it to the client's
    /// connection. Off (`--lowercase-header-names`), names go to the client
    /// lower-case, and neither parse nor encode pays for the record.
    pub keep_header_case: bool,
}

impl ServerHttp {
    /// The HTTP/1 handshake of a connection to a server.
    pub(crate) fn http1(&self) -> http1::Builder {
        let mut builder = http1::Builder::new();
        builder.preserve_header_case(self.keep_header_case);
        builder
    }

    /// The HTTP/2 handshake of a connection to a server: pinged every
    /// `h2_keepalive` while requests are in flight.
    pub(crate) fn http2(&self) -> http2::Builder<BoxedSpawn> {
        let mut builder = http2::Builder::new(BoxedSpawn);
        builder
            .timer(TokioTimer::new())
            .keep_alive_interval(self.h2_keepalive)
            .keep_alive_timeout(self.h2_keepalive.unwrap_or(NEVER));
        builder
    }

    /// How every pool of connections through an upstream proxy is set up
    /// (the direct route's are `ServerPool`s): as [`ServerHttp::http1`] and
    /// [`ServerHttp::http2`], idle connections kept 90 s.
    pub(crate) fn pool_builder(&self) -> hyper_util::client::legacy::Builder {
        let mut builder = Client::builder(BoxedSpawn);
        builder
            .http1_preserve_header_case(self.keep_header_case)
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .http2_keep_alive_interval(self.h2_keepalive)
            .http2_keep_alive_timeout(self.h2_keepalive.unwrap_or(NEVER));
        builder
    }
}
