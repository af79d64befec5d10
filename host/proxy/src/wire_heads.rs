//! The heads of HTTP/1 messages as they were on the wire: names in their
//! case, fields in their order.
//!
//! hyper parses a head into an `http::HeaderMap`, which lower-cases names and
//! groups the values of one name together; its own record of the original
//! case is private to it. A flow must show the fields as they were sent
//! (mitmproxy keeps them, saved flows and HAR repeat them, a plugin that
//! reads `entries` is promised them), so [`Tapped`] watches a connection's
//! bytes on their way to hyper: each head is parsed again with httparse
//! and its body's framing followed to find the next head.
//!
//! A head is used only when it agrees with what hyper made of the same
//! message ([`Heads::take_request`], [`Heads::take_response`]). At the
//! first disagreement, or at anything the tap does not follow (an upgrade,
//! a body read until the close, HTTP/2, a head larger than hyper takes),
//! it stops, and the connection's later messages show hyper's view: the
//! same fields, lower-cased and grouped. Nothing here can fail a message.

use std::collections::VecDeque;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::rt::{Read, ReadBuf, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::{Connected, Connection};
use witm_flow::Headers;

/// Most fields hyper reads in a head (its default); a head with more is
/// refused by hyper, so the tap stops there too.
const MAX_FIELDS: usize = 100;
/// Most bytes of a head the tap gathers (hyper refuses larger ones).
const MAX_HEAD_BYTES: usize = 512 << 10;
/// Most bytes of a chunk-size line (with extensions) the tap gathers.
const MAX_CHUNK_LINE: usize = 4 << 10;
/// Most heads parsed ahead of hyper (pipelined requests): hyper's read
/// buffer bounds them already; this bounds the queue whatever it does.
const MAX_QUEUED: usize = 64;
/// How much a read through the tap asks for at once.
const READ_CHUNK: usize = 16 << 10;

/// Which messages a connection's reads carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Side {
    /// A client connection: requests are read.
    Requests,
    /// A server connection: responses are read, requests written.
    Responses,
}

/// One head as it was on the wire: its bytes, kept whole (one copy per
/// head) and made into [`Headers`] only when a flow wants them
/// ([`RawHead::into_headers`]): places in them, not copies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RawHead {
    /// Where the method is in the head (requests), or the status.
    start: Start,
    bytes: Bytes,
    /// Where each field's name and value are in `bytes` (from, length;
    /// from, length), from the parse that found the head's end: the flow's
    /// copy is made from them without parsing the head again.
    fields: Vec<[u32; 4]>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Start {
    /// The method's offset and length.
    Method(usize, usize),
    Status(u16),
}

impl RawHead {
    /// True when hyper parsed this head as `start` with `count` fields.
    fn agrees(&self, start: Start, method: &str, count: usize) -> bool {
        let start_agrees = match (self.start, start) {
            (Start::Method(at, len), Start::Method(..)) => {
                self.bytes.get(at..at + len) == Some(method.as_bytes())
            }
            (Start::Status(ours), Start::Status(hypers)) => ours == hypers,
            _ => false,
        };
        start_agrees && self.fields.len() == count
    }

    /// The fields, in order and case, sharing the head's bytes.
    pub(crate) fn into_headers(self) -> Headers {
        Headers::from_wire(self.bytes, &self.fields)
    }
}

/// Where the tap is in the stream of bytes.
#[derive(Debug)]
enum State {
    /// Gathering a head (the bytes so far, often none).
    Head(Vec<u8>),
    /// Skipping a body of this many more bytes.
    Body(u64),
    /// In a chunked body: gathering a chunk-size line.
    ChunkSize(Vec<u8>),
    /// Skipping this many more bytes of chunk data (and its CRLF).
    ChunkData(u64),
    /// Skipping the trailer section: the length of its current line.
    Trailers(usize),
    /// Not following the stream any more.
    Off,
}

/// The heads read on one connection that hyper has not handed out yet.
#[derive(Debug)]
pub(crate) struct Heads {
    side: Side,
    inner: Mutex<Tracker>,
}

#[derive(Debug)]
struct Tracker {
    state: State,
    queue: VecDeque<RawHead>,
    /// Responses: the next write starts a request (its method is noted).
    awaiting_request: bool,
    /// Responses: the request being answered was a HEAD (no body follows).
    answering_head: bool,
}

impl Heads {
    /// A tap for one connection.
    pub(crate) fn new(side: Side) -> Arc<Heads> {
        Self::starting(side, State::Head(Vec::new()))
    }

    /// A tap that follows nothing, for a connection whose messages no flow
    /// will take (nothing subscribes to a flow event when it opens): reads
    /// go straight through, at the cost of one check. A plugin that starts
    /// taking flows later sees the messages of such a connection with
    /// hyper's copy of their fields (lower-case names, each name's values
    /// together).
    pub(crate) fn off(side: Side) -> Arc<Heads> {
        Self::starting(side, State::Off)
    }

    /// [`Heads::new`] when `flows_wanted` (something subscribes to a flow
    /// event), else [`Heads::off`]: what every connection opens with.
    pub(crate) fn for_flows(side: Side, flows_wanted: bool) -> Arc<Heads> {
        if flows_wanted {
            Self::new(side)
        } else {
            Self::off(side)
        }
    }

    fn starting(side: Side, state: State) -> Arc<Heads> {
        Arc::new(Heads {
            side,
            inner: Mutex::new(Tracker {
                state,
                queue: VecDeque::new(),
                awaiting_request: true,
                answering_head: false,
            }),
        })
    }

    fn tracker(&self) -> std::sync::MutexGuard<'_, Tracker> {
        // The tracker holds no invariant a panic elsewhere could break.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn active(&self) -> bool {
        !matches!(self.tracker().state, State::Off)
    }

    /// The head of the request hyper parsed as `method` with `count`
    /// fields, as it was on the wire; `None` when the tap lost the stream
    /// (the caller uses hyper's headers).
    pub(crate) fn take_request(&self, method: &str, count: usize) -> Option<RawHead> {
        self.take(Start::Method(0, method.len()), method, count)
    }

    /// As [`Heads::take_request`], for a response with `status`.
    pub(crate) fn take_response(&self, status: u16, count: usize) -> Option<RawHead> {
        self.take(Start::Status(status), "", count)
    }

    fn take(&self, start: Start, method: &str, count: usize) -> Option<RawHead> {
        let mut tracker = self.tracker();
        let head = tracker.queue.pop_front();
        match head {
            Some(head) if head.agrees(start, method, count) => Some(head),
            None if matches!(tracker.state, State::Off) => None,
            _ => {
                tracing::debug!("the wire's heads and hyper's disagree: using hyper's");
                tracker.stop();
                None
            }
        }
    }

    /// Drops the head of the response hyper parsed with `status` and
    /// `count` fields, when no flow wants it: the tap stays in step (and
    /// stops at a disagreement, as [`Heads::take_response`] does).
    pub(crate) fn skip_response(&self, status: u16, count: usize) {
        self.take(Start::Status(status), "", count);
    }

    /// Puts the wire's fields of `request` (just parsed by hyper) in its
    /// extensions, when the tap has them.
    pub(crate) fn mark_request<B>(&self, request: &mut hyper::Request<B>) {
        if let Some(head) = self.take_request(request.method().as_str(), request.headers().len()) {
            request.extensions_mut().insert(WireHeaders(head));
        }
    }

    /// Notes bytes read from the connection.
    fn read(&self, bytes: &[u8]) {
        self.tracker().feed(self.side, bytes);
    }

    /// Notes bytes written to the connection (the start of requests sent).
    fn wrote(&self, bytes: &[u8]) {
        if self.side != Side::Responses || bytes.is_empty() {
            return;
        }
        let mut tracker = self.tracker();
        if tracker.awaiting_request {
            tracker.awaiting_request = false;
            tracker.answering_head = bytes.starts_with(b"HEAD ");
        }
    }
}

impl Tracker {
    fn stop(&mut self) {
        self.state = State::Off;
        self.queue.clear();
    }

    fn feed(&mut self, side: Side, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            match &mut self.state {
                State::Off => return,
                State::Head(gathered) => {
                    let scan_from = gathered.len().saturating_sub(3);
                    let parsed = if gathered.is_empty() {
                        match parse_head(side, bytes) {
                            Parsed::Partial => {
                                gathered.extend_from_slice(bytes);
                                Parsed::Partial
                            }
                            done => done,
                        }
                    } else {
                        gathered.extend_from_slice(bytes);
                        if blank_line_in(&gathered[scan_from..]) {
                            parse_head(side, gathered)
                        } else {
                            Parsed::Partial
                        }
                    };
                    match parsed {
                        Parsed::Partial => {
                            if gathered.len() > MAX_HEAD_BYTES {
                                self.stop();
                            }
                            return;
                        }
                        Parsed::Invalid => return self.stop(),
                        Parsed::Complete { used, head, next } => {
                            // What of `bytes` lies past the head.
                            let rest = if gathered.is_empty() {
                                &bytes[used..]
                            } else {
                                let past = gathered.len() - used;
                                &bytes[bytes.len() - past..]
                            };
                            bytes = rest;
                            // The answer to a HEAD has no body, whatever
                            // its fields say.
                            let next = match next {
                                Next::Body(_) | Next::Chunked | Next::Unfollowed
                                    if side == Side::Responses && self.answering_head =>
                                {
                                    Next::NoBody
                                }
                                next => next,
                            };
                            self.headed(head, next);
                        }
                    }
                }
                State::Body(left) => {
                    let n = (*left).min(bytes.len() as u64);
                    *left -= n;
                    bytes = &bytes[n as usize..];
                    if *left == 0 {
                        self.message_ended();
                    }
                }
                State::ChunkSize(line) => match bytes.iter().position(|&b| b == b'\n') {
                    None => {
                        line.extend_from_slice(bytes);
                        if line.len() > MAX_CHUNK_LINE {
                            self.stop();
                        }
                        return;
                    }
                    Some(end) => {
                        line.extend_from_slice(&bytes[..end]);
                        bytes = &bytes[end + 1..];
                        match chunk_size(line) {
                            Some(0) => self.state = State::Trailers(0),
                            // The data, then its CRLF.
                            Some(size) => self.state = State::ChunkData(size.saturating_add(2)),
                            None => return self.stop(),
                        }
                    }
                },
                State::ChunkData(left) => {
                    let n = (*left).min(bytes.len() as u64);
                    *left -= n;
                    bytes = &bytes[n as usize..];
                    if *left == 0 {
                        self.state = State::ChunkSize(Vec::new());
                    }
                }
                State::Trailers(line) => {
                    let byte = bytes[0];
                    bytes = &bytes[1..];
                    match byte {
                        b'\n' if *line == 0 => self.message_ended(),
                        b'\n' => *line = 0,
                        b'\r' => {}
                        _ => *line += 1,
                    }
                }
            }
        }
    }

    /// A head was read: queue it and follow its body.
    fn headed(&mut self, head: RawHead, next: Next) {
        if self.queue.len() >= MAX_QUEUED {
            return self.stop();
        }
        let informational = next == Next::Informational;
        if !informational {
            self.queue.push_back(head);
        }
        match next {
            Next::Informational => self.state = State::Head(Vec::new()),
            Next::NoBody => self.message_ended(),
            Next::Body(0) => self.message_ended(),
            Next::Body(n) => self.state = State::Body(n),
            Next::Chunked => self.state = State::ChunkSize(Vec::new()),
            // The head is queued; what follows is not HTTP/1 messages.
            Next::Unfollowed => self.state = State::Off,
        }
    }

    fn message_ended(&mut self) {
        self.state = State::Head(Vec::new());
        self.awaiting_request = true;
    }
}

/// What follows a head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Next {
    /// A 1xx response other than 101: another head follows.
    Informational,
    NoBody,
    Body(u64),
    Chunked,
    /// An upgrade, a CONNECT, or a body that ends with the connection.
    Unfollowed,
}

enum Parsed {
    Partial,
    Invalid,
    Complete {
        used: usize,
        head: RawHead,
        next: Next,
    },
}

fn blank_line_in(bytes: &[u8]) -> bool {
    bytes.windows(2).any(|w| w == b"\n\n") || bytes.windows(3).any(|w| w == b"\n\r\n")
}

fn parse_head(side: Side, bytes: &[u8]) -> Parsed {
    // Left uninitialised, as hyper's parse does: filling 100 empty fields
    // for each head cost more than reading a usual head's dozen.
    let mut fields = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_FIELDS];
    match side {
        Side::Requests => {
            let mut request = httparse::Request::new(&mut []);
            match request.parse_with_uninit_headers(bytes, &mut fields) {
                Ok(httparse::Status::Complete(used)) => {
                    let method = request.method.unwrap_or_default();
                    let upgrade = method == "CONNECT" || has(request.headers, "upgrade");
                    let next = if upgrade {
                        Next::Unfollowed
                    } else {
                        request_framing(request.headers)
                    };
                    let at = (method.as_ptr() as usize).saturating_sub(bytes.as_ptr() as usize);
                    let start = Start::Method(at, method.len());
                    complete(&bytes[..used], start, request.headers, next)
                }
                Ok(httparse::Status::Partial) => Parsed::Partial,
                Err(_) => Parsed::Invalid,
            }
        }
        Side::Responses => {
            let mut response = httparse::Response::new(&mut []);
            let config = httparse::ParserConfig::default();
            match config.parse_response_with_uninit_headers(&mut response, bytes, &mut fields) {
                Ok(httparse::Status::Complete(used)) => {
                    let status = response.code.unwrap_or_default();
                    let next = response_framing(status, response.headers);
                    let start = Start::Status(status);
                    complete(&bytes[..used], start, response.headers, next)
                }
                Ok(httparse::Status::Partial) => Parsed::Partial,
                Err(_) => Parsed::Invalid,
            }
        }
    }
}

fn complete(head: &[u8], start: Start, fields: &[httparse::Header<'_>], next: Next) -> Parsed {
    let base = head.as_ptr() as usize;
    // Within the head, which hyper keeps far below 4 GiB.
    let at = |part: &[u8]| [(part.as_ptr() as usize - base) as u32, part.len() as u32];
    let fields: Vec<[u32; 4]> = fields
        .iter()
        .map(|f| {
            let ([name_from, name_len], [value_from, value_len]) =
                (at(f.name.as_bytes()), at(f.value));
            [name_from, name_len, value_from, value_len]
        })
        .collect();
    Parsed::Complete {
        used: head.len(),
        head: RawHead {
            start,
            bytes: Bytes::copy_from_slice(head),
            fields,
        },
        next,
    }
}

fn has(fields: &[httparse::Header<'_>], name: &str) -> bool {
    fields.iter().any(|f| f.name.eq_ignore_ascii_case(name))
}

/// RFC 9112 §6.3 for requests: chunked, a length, or no body.
fn request_framing(fields: &[httparse::Header<'_>]) -> Next {
    match body_framing(fields) {
        Some(next) => next,
        None => Next::NoBody,
    }
}

/// RFC 9112 §6.3 for responses (the answer to a HEAD is the tracker's).
fn response_framing(status: u16, fields: &[httparse::Header<'_>]) -> Next {
    match status {
        101 => Next::Unfollowed,
        100..=199 => Next::Informational,
        204 | 304 => Next::NoBody,
        _ => body_framing(fields).unwrap_or(Next::Unfollowed),
    }
}

/// The framing the fields give a body: `None` when they give none.
fn body_framing(fields: &[httparse::Header<'_>]) -> Option<Next> {
    let codings: Vec<&[u8]> = fields
        .iter()
        .filter(|f| f.name.eq_ignore_ascii_case("transfer-encoding"))
        .map(|f| f.value)
        .collect();
    if let Some(last) = codings.last() {
        let chunked = last
            .rsplit(|&b| b == b',')
            .next()
            .is_some_and(|c| c.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        return Some(if chunked {
            Next::Chunked
        } else {
            Next::Unfollowed
        });
    }
    let mut length = None;
    for field in fields
        .iter()
        .filter(|f| f.name.eq_ignore_ascii_case("content-length"))
    {
        for value in field.value.split(|&b| b == b',') {
            let parsed = std::str::from_utf8(value.trim_ascii())
                .ok()
                .and_then(|v| v.parse::<u64>().ok());
            match (parsed, length) {
                (None, _) => return Some(Next::Unfollowed),
                (Some(n), Some(seen)) if n != seen => return Some(Next::Unfollowed),
                (Some(n), _) => length = Some(n),
            }
        }
    }
    length.map(Next::Body)
}

/// The size of a chunk-size line (`1a;ext=1\r`), `None` if it is none.
fn chunk_size(line: &[u8]) -> Option<u64> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let digits = line.split(|&b| b == b';').next()?.trim_ascii();
    if digits.is_empty() || digits.len() > 16 {
        return None;
    }
    u64::from_str_radix(std::str::from_utf8(digits).ok()?, 16).ok()
}

/// A connection whose reads feed [`Heads`]. While the tap follows the
/// stream, reads go through a bounce buffer (hyper's read cursor cannot be
/// looked at after a read); once it stops, they go straight through.
pub(crate) struct Tapped<IO> {
    io: IO,
    heads: Arc<Heads>,
}

thread_local! {
    /// The bounce buffer of every tapped connection read on this thread: a
    /// read is synchronous, so one per thread serves them all, and an idle
    /// connection holds none (thousands of keep-alive clients would hold
    /// one each).
    static BOUNCE: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl<IO> Tapped<IO> {
    /// `io`, its reads noted in `heads`.
    pub(crate) fn new(io: IO, heads: Arc<Heads>) -> Tapped<IO> {
        Tapped { io, heads }
    }
}

impl<IO: Read + Unpin> Read for Tapped<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        if !this.heads.active() {
            return Pin::new(&mut this.io).poll_read(cx, buf);
        }
        let want = buf.remaining().min(READ_CHUNK);
        let mut read_through = |bounce: &mut Vec<u8>| {
            if bounce.len() < want {
                bounce.resize(want, 0);
            }
            let mut bounce = ReadBuf::new(&mut bounce[..want]);
            match Pin::new(&mut this.io).poll_read(cx, bounce.unfilled()) {
                Poll::Ready(Ok(())) => {
                    let read = bounce.filled();
                    this.heads.read(read);
                    buf.put_slice(read);
                    Poll::Ready(Ok(()))
                }
                other => other,
            }
        };
        BOUNCE.with(|shared| match shared.try_borrow_mut() {
            Ok(mut bounce) => read_through(&mut bounce),
            // A tapped connection read from inside another's read (not
            // done today): a buffer of its own for this read.
            Err(_) => read_through(&mut Vec::new()),
        })
    }
}

impl<IO: Write + Unpin> Write for Tapped<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let written = Pin::new(&mut self.io).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = written {
            self.heads.wrote(&buf[..n]);
        }
        written
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let written = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = written
            && n > 0
            && let Some(first) = bufs.iter().find(|b| !b.is_empty())
        {
            self.heads.wrote(&first[..n.min(first.len())]);
        }
        written
    }
}

/// On a pooled server connection, every response carries the connection's
/// [`Heads`] in its extensions, so the flow can take its head from them.
impl<IO: Connection> Connection for Tapped<IO> {
    fn connected(&self) -> Connected {
        self.io.connected().extra(ResponseHeads(self.heads.clone()))
    }
}

/// The [`Heads`] of the connection a response came over, in the response's
/// extensions.
#[derive(Clone, Debug)]
pub(crate) struct ResponseHeads(pub(crate) Arc<Heads>);

/// A request's head as it was on the wire, in its extensions (put there
/// when the connection is served, taken by [`crate::wire::incoming_headers`]).
#[derive(Clone, Debug)]
pub(crate) struct WireHeaders(pub(crate) RawHead);

#[cfg(test)]
mod tests {
    use super::*;

    fn names(headers: &Headers) -> Vec<String> {
        headers.iter().map(|(n, _)| n.to_owned()).collect()
    }

    fn fed(side: Side, chunks: &[&[u8]]) -> Arc<Heads> {
        let heads = Heads::new(side);
        for chunk in chunks {
            heads.read(chunk);
        }
        heads
    }

    const PIPELINED: &[u8] = b"POST /a HTTP/1.1\r\nHost: x\r\nX-B: 1\r\nx-a: 2\r\nX-B: 3\r\nContent-Length: 5\r\n\r\nhello\
GET /b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n0\r\nTrailer-One: t\r\n\r\n\
GET /c HTTP/1.1\r\nHOST: y\r\n\r\n";

    #[test]
    fn pipelined_requests_keep_case_and_order_across_bodies() {
        let heads = fed(Side::Requests, &[PIPELINED]);
        let first = heads.take_request("POST", 5).unwrap().into_headers();
        assert_eq!(
            names(&first),
            ["Host", "X-B", "x-a", "X-B", "Content-Length"]
        );
        let values: Vec<&[u8]> = first.iter().map(|(_, v)| v).collect();
        assert_eq!(values, [&b"x"[..], b"1", b"2", b"3", b"5"]);
        let second = heads.take_request("GET", 2).unwrap().into_headers();
        assert_eq!(names(&second), ["Host", "Transfer-Encoding"]);
        assert_eq!(
            names(&heads.take_request("GET", 1).unwrap().into_headers()),
            ["HOST"]
        );
    }

    #[test]
    fn a_head_after_blank_lines_still_agrees_on_its_method() {
        let heads = fed(Side::Requests, &[b"\r\nPUT /x HTTP/1.1\r\nA: 1\r\n\r\n"]);
        let head = heads.take_request("PUT", 1).unwrap();
        assert_eq!(names(&head.into_headers()), ["A"]);
    }

    #[test]
    fn a_byte_at_a_time_is_followed_too() {
        let chunks: Vec<&[u8]> = PIPELINED.chunks(1).collect();
        let heads = fed(Side::Requests, &chunks);
        for (method, count) in [("POST", 5), ("GET", 2), ("GET", 1)] {
            assert!(heads.take_request(method, count).is_some(), "{method}");
        }
    }

    #[test]
    fn a_disagreement_stops_the_tap_for_the_rest_of_the_connection() {
        let heads = fed(Side::Requests, &[PIPELINED]);
        assert_eq!(heads.take_request("PUT", 5), None);
        assert_eq!(heads.take_request("GET", 2), None);
        heads.read(b"GET /d HTTP/1.1\r\n\r\n");
        assert_eq!(heads.take_request("GET", 0), None);
    }

    #[test]
    fn an_upgrade_or_connect_is_the_last_head_followed() {
        let heads = fed(
            Side::Requests,
            &[b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\nGET / HTTP/1.1\r\n\r\n"],
        );
        assert!(heads.take_request("CONNECT", 1).is_some());
        assert!(!heads.active());
        assert_eq!(heads.take_request("GET", 0), None);
    }

    #[test]
    fn responses_follow_head_requests_informational_and_bodiless_statuses() {
        let heads = Heads::new(Side::Responses);
        heads.wrote(b"HEAD / HTTP/1.1\r\n\r\n");
        heads.read(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\nSet-Cookie: a\r\n\r\n");
        heads.wrote(b"GET / HTTP/1.1\r\n\r\n");
        heads.read(b"HTTP/1.1 103 Early Hints\r\nLink: x\r\n\r\nHTTP/1.1 200 OK\r\nSet-Cookie: a\r\nX: 1\r\nSet-Cookie: b\r\nContent-Length: 2\r\n\r\nok");
        heads.wrote(b"GET / HTTP/1.1\r\n\r\n");
        heads.read(b"HTTP/1.1 304 Not Modified\r\nETag: e\r\n\r\n");
        heads.wrote(b"GET / HTTP/1.1\r\n\r\n");
        heads.read(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\nHTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
        assert!(heads.take_response(200, 2).is_some());
        let second = heads.take_response(200, 4).unwrap().into_headers();
        assert_eq!(
            names(&second),
            ["Set-Cookie", "X", "Set-Cookie", "Content-Length"]
        );
        assert!(heads.take_response(304, 1).is_some());
        assert!(heads.take_response(200, 1).is_some());
        assert!(heads.take_response(404, 1).is_some());
        assert!(heads.active());
    }

    #[test]
    fn a_body_to_the_close_and_http2_are_not_followed() {
        let heads = fed(
            Side::Responses,
            &[b"HTTP/1.1 200 OK\r\nX: 1\r\n\r\nHTTP/1.1 200"],
        );
        assert!(heads.take_response(200, 1).is_some());
        assert!(!heads.active());
        let h2 = fed(Side::Responses, &[b"\x00\x00\x12\x04\x00\x00\x00\x00\x00"]);
        assert!(!h2.active());
    }

    #[test]
    fn oversized_and_malformed_input_stops_the_tap() {
        let heads = Heads::new(Side::Requests);
        heads.read(b"GET / HTTP/1.1\r\n");
        for _ in 0..(MAX_HEAD_BYTES / 1024 + 1) {
            heads.read(&[b'a'; 1024]);
        }
        assert!(!heads.active());
        let chunked = fed(
            Side::Requests,
            &[b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"],
        );
        assert!(!chunked.active());
        let lengths = fed(
            Side::Requests,
            &[b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"],
        );
        assert!(!lengths.active());
    }
}
