//! How long witm waits on either side before it gives up, and the pieces
//! that enforce it: a body that fails when its sender goes quiet, the count
//! of requests in flight on a client connection (an idle HTTP/2 connection
//! closes), and the clock of a raw tunnel.
//!
//! Each timeout is logged where it fires and counted ([`crate::counters`]).
//! An HTTP/1 client connection idle between requests is closed by hyper's
//! head timeout (`connection.rs`), which runs from the moment hyper waits
//! for the next head.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use std::future::Future;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::sync::Notify;
use tokio::time::Sleep;
use witm_flow::ErrorKind;

use crate::answers::Failure;
use crate::body::{BoxError, ProxyBody};
use crate::counters::{Counters, Timeout};

/// How long witm waits, on each side. Defaults follow nginx's where it has
/// one (60 s between two reads of a body, 60 s for a server to answer).
#[derive(Clone, Debug)]
pub struct Timeouts {
    /// Longest quiet gap inside a body, the client's request body or the
    /// server's response body (nginx's `client_body_timeout`,
    /// `proxy_read_timeout`).
    pub body_idle: Duration,
    /// Longest a client may take over its whole request body; `None`: no
    /// limit.
    pub request_body: Option<Duration>,
    /// Longest a server may take to send its response head once the request
    /// body has gone out.
    pub response_head: Duration,
    /// An HTTP/2 client connection with no request in flight for this long
    /// is closed (GOAWAY).
    pub connection_idle: Duration,
    /// A raw tunnel (not intercepted) with no byte either way for this long
    /// is closed.
    pub tunnel_idle: Duration,
    /// How often HTTP/2 connections (to clients and to servers) are pinged
    /// while requests are in flight; one not answered within the same time
    /// is closed. `None`: no pings.
    pub h2_keepalive: Option<Duration>,
}

/// A timeout that never fires (a hundred years): what "no timeout" is for
/// the limits that are always set.
pub const NEVER: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            body_idle: Duration::from_secs(60),
            request_body: Some(Duration::from_secs(600)),
            response_head: Duration::from_secs(60),
            connection_idle: Duration::from_secs(120),
            tunnel_idle: Duration::from_secs(600),
            h2_keepalive: Some(Duration::from_secs(30)),
        }
    }
}

/// Whose body a [`Timed`] body is: says who went quiet.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Sender {
    Client,
    Server,
}

/// `inner` failing with a `TimedOut` error when its sender sends nothing
/// for `idle` while it is waited for, or (`total`) when the whole body takes
/// longer. The idle clock runs only while the body is polled and has
/// nothing, so a slow reader on the other side is not blamed on the sender.
/// `ended` fires when the body has been read to its end (the server's clock
/// for its response head starts then).
pub(crate) fn timed(
    inner: ProxyBody,
    sender: Sender,
    limits: (Duration, Option<Duration>),
    counters: Arc<Counters>,
    ended: Option<tokio::sync::oneshot::Sender<()>>,
) -> ProxyBody {
    let (idle, total) = limits;
    crate::body::boxed(Timed {
        inner,
        sender,
        idle,
        idle_timer: None,
        waiting: false,
        total: total.map(|t| (t, Box::pin(tokio::time::sleep(t)))),
        counters,
        ended,
    })
}

struct Timed {
    inner: ProxyBody,
    sender: Sender,
    idle: Duration,
    /// Made on the first wait and reset on each later one.
    idle_timer: Option<Pin<Box<Sleep>>>,
    /// True while the body waits for its sender (the idle timer runs).
    waiting: bool,
    total: Option<(Duration, Pin<Box<Sleep>>)>,
    counters: Arc<Counters>,
    ended: Option<tokio::sync::oneshot::Sender<()>>,
}

type Polled = Poll<Option<Result<Frame<Bytes>, BoxError>>>;

impl Timed {
    fn expired(&mut self, what: Timeout, message: String) -> Polled {
        self.counters.timed_out(what);
        tracing::info!("{message}");
        self.idle_timer = None;
        self.total = None;
        let error = std::io::Error::new(std::io::ErrorKind::TimedOut, message);
        Poll::Ready(Some(Err(BoxError::from(error))))
    }
}

impl Body for Timed {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Polled {
        let this = &mut *self;
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            this.waiting = false;
            if frame.is_none()
                && let Some(ended) = this.ended.take()
            {
                let _ = ended.send(());
            }
            return Poll::Ready(frame);
        }
        let (who, idle_kind) = match this.sender {
            Sender::Client => ("the client", Timeout::RequestBodyIdle),
            Sender::Server => ("the server", Timeout::ResponseBodyIdle),
        };
        if let Some((total, timer)) = &mut this.total
            && timer.as_mut().poll(cx).is_ready()
        {
            let message = format!("{who} took over {total:?} to send its body");
            return this.expired(Timeout::RequestBody, message);
        }
        let now = tokio::time::Instant::now();
        let deadline = now.checked_add(this.idle).unwrap_or(now + NEVER);
        let timer = match (&mut this.idle_timer, this.waiting) {
            (Some(timer), true) => timer,
            (Some(timer), false) => {
                timer.as_mut().reset(deadline);
                timer
            }
            (timer @ None, _) => timer.insert(Box::pin(tokio::time::sleep_until(deadline))),
        };
        this.waiting = true;
        if timer.as_mut().poll(cx).is_ready() {
            let message = format!("{who} sent no body bytes for {:?}", this.idle);
            return this.expired(idle_kind, message);
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// `send` (a request on its way to `authority`, resolving with the response
/// head), failing when the head takes longer than `limit` after the request
/// body went out (`sent`: when it has been read to its end; `None` for a
/// body already whole).
///
/// A future of its own rather than an `async fn`: an `async fn` keeps its
/// arguments for its whole life, so `send` would be held twice (as the
/// argument and in what awaits it), and every request's future with it.
pub(crate) fn answered_within<'a, T, F>(
    send: F,
    sent: Option<tokio::sync::oneshot::Receiver<()>>,
    limit: Duration,
    counters: &'a Counters,
    authority: &'a str,
) -> AnsweredWithin<'a, F>
where
    F: Future<Output = Result<T, Failure>>,
{
    AnsweredWithin {
        send,
        sent,
        clock: None,
        limit,
        counters,
        authority,
    }
}

pin_project_lite::pin_project! {
    /// [`answered_within`]'s future.
    pub(crate) struct AnsweredWithin<'a, F> {
        #[pin]
        send: F,
        sent: Option<tokio::sync::oneshot::Receiver<()>>,
        // Started once the request body has gone.
        #[pin]
        clock: Option<Sleep>,
        limit: Duration,
        counters: &'a Counters,
        authority: &'a str,
    }
}

impl<T, F> Future for AnsweredWithin<'_, F>
where
    F: Future<Output = Result<T, Failure>>,
{
    type Output = Result<T, Failure>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if let Poll::Ready(answered) = this.send.poll(cx) {
            return Poll::Ready(answered);
        }
        if this.clock.is_none() {
            if let Some(sent) = this.sent.as_mut() {
                // Dropped unsent (the body failed): the exchange fails anyway.
                if Pin::new(sent).poll(cx).is_pending() {
                    return Poll::Pending;
                }
                *this.sent = None;
            }
            this.clock.set(Some(tokio::time::sleep(*this.limit)));
        }
        let clock = this.clock.as_pin_mut().expect("set above");
        if clock.poll(cx).is_pending() {
            return Poll::Pending;
        }
        this.counters.timed_out(Timeout::ResponseHead);
        let message = format!(
            "{} sent no response within {:?}",
            this.authority, this.limit
        );
        tracing::info!("{message}");
        Poll::Ready(Err(Failure::new(ErrorKind::Timeout, message)))
    }
}

/// The requests in flight on one client connection, for closing it once it
/// has had none for a while.
#[derive(Default)]
pub(crate) struct InFlight {
    count: AtomicUsize,
    changed: Notify,
}

/// One request in flight; dropped with its response body.
pub(crate) struct InFlightGuard(Arc<InFlight>);

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.0.count.fetch_sub(1, Ordering::AcqRel);
        self.0.changed.notify_waiters();
    }
}

impl InFlight {
    /// Counts a request in until the guard drops.
    pub(crate) fn start(self: &Arc<Self>) -> InFlightGuard {
        self.count.fetch_add(1, Ordering::AcqRel);
        self.changed.notify_waiters();
        InFlightGuard(self.clone())
    }

    /// Resolves once no request has been in flight for `idle`.
    pub(crate) async fn idle_for(&self, idle: Duration) {
        loop {
            let changed = self.changed.notified();
            let mut changed = std::pin::pin!(changed);
            changed.as_mut().enable();
            if self.count.load(Ordering::Acquire) == 0 {
                tokio::select! {
                    () = tokio::time::sleep(idle) => {
                        if self.count.load(Ordering::Acquire) == 0 {
                            return;
                        }
                    }
                    () = changed => {}
                }
            } else {
                changed.await;
            }
        }
    }
}

/// When bytes last moved through a raw tunnel, either way.
pub(crate) struct Activity {
    start: Instant,
    /// Milliseconds after `start`.
    last: AtomicU64,
}

impl Activity {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            start: Instant::now(),
            last: AtomicU64::new(0),
        })
    }

    fn touch(&self) {
        let now = self.start.elapsed().as_millis() as u64;
        self.last.store(now, Ordering::Relaxed);
    }

    /// Resolves once nothing has moved for `idle`.
    pub(crate) async fn quiet_for(&self, idle: Duration) {
        loop {
            let last = Duration::from_millis(self.last.load(Ordering::Relaxed));
            let quiet = self.start.elapsed().saturating_sub(last);
            if quiet >= idle {
                return;
            }
            tokio::time::sleep(idle - quiet).await;
        }
    }
}

/// An IO whose reads and writes mark its [`Activity`].
pub(crate) struct ActivityIo<IO> {
    io: IO,
    activity: Arc<Activity>,
}

impl<IO> ActivityIo<IO> {
    pub(crate) fn new(io: IO, activity: Arc<Activity>) -> Self {
        Self { io, activity }
    }
}

impl<IO: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for ActivityIo<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl<IO: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for ActivityIo<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    type Frames = tokio::sync::mpsc::Sender<Result<Frame<Bytes>, BoxError>>;

    /// A body fed by the test, timed as a client's.
    fn fed(
        idle: u64,
        total: Option<u64>,
        counters: &Arc<Counters>,
    ) -> (Frames, tokio::task::JoinHandle<Result<Bytes, BoxError>>) {
        let (tx, mut rx) = tokio::sync::mpsc::channel(4);
        let stream = http_body_util::StreamBody::new(futures_util::stream::poll_fn(move |cx| {
            rx.poll_recv(cx)
        }));
        let body = timed(
            crate::body::boxed(stream),
            Sender::Client,
            (Duration::from_secs(idle), total.map(Duration::from_secs)),
            counters.clone(),
            None,
        );
        let reader = tokio::spawn(async move { body.collect().await.map(|c| c.to_bytes()) });
        (tx, reader)
    }

    #[tokio::test(start_paused = true)]
    async fn a_sender_quiet_for_the_idle_time_fails_the_body() {
        let counters = Arc::new(Counters::default());
        let (tx, reader) = fed(5, None, &counters);
        tx.send(Ok(Frame::data(Bytes::from_static(b"x"))))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_secs(4)).await;
        tx.send(Ok(Frame::data(Bytes::from_static(b"y"))))
            .await
            .unwrap();
        let error = reader.await.unwrap().unwrap_err();
        assert!(
            error.to_string().contains("no body bytes for 5s"),
            "{error}"
        );
        assert_eq!(counters.count(Timeout::RequestBodyIdle), 1);
        drop(tx);
    }

    #[tokio::test(start_paused = true)]
    async fn a_sender_that_keeps_talking_is_cut_at_the_total() {
        let counters = Arc::new(Counters::default());
        let (tx, reader) = fed(5, Some(12), &counters);
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_secs(3)).await;
            tx.send(Ok(Frame::data(Bytes::from_static(b"x"))))
                .await
                .unwrap();
        }
        // 9 s in, never quiet for 5 s; the total (12 s) ends it.
        let error = reader.await.unwrap().unwrap_err();
        assert!(error.to_string().contains("over 12s"), "{error}");
        assert_eq!(counters.count(Timeout::RequestBody), 1);
        assert_eq!(counters.count(Timeout::RequestBodyIdle), 0);
        drop(tx);
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_ends_in_time_is_whole() {
        let counters = Arc::new(Counters::default());
        let (tx, reader) = fed(5, Some(12), &counters);
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_secs(4)).await;
            tx.send(Ok(Frame::data(Bytes::from_static(b"x"))))
                .await
                .unwrap();
        }
        drop(tx);
        assert_eq!(reader.await.unwrap().unwrap(), "xxx");
        assert_eq!(counters.count(Timeout::RequestBodyIdle), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_connection_is_told_once_nothing_is_in_flight() {
        let in_flight = Arc::new(InFlight::default());
        let guard = in_flight.start();
        let idle = tokio::spawn({
            let in_flight = in_flight.clone();
            async move { in_flight.idle_for(Duration::from_secs(10)).await }
        });
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert!(!idle.is_finished(), "idle while a request was in flight");
        drop(guard);
        tokio::time::sleep(Duration::from_secs(9)).await;
        assert!(!idle.is_finished());
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(idle.is_finished());
    }
}
