//! The host side of the WIT resources: what a guest handle points to, and the
//! `Host*` trait impls that serve the guest's method calls, one file per
//! resource (`headers`, `request`, `response`, `flow`, `conns` for the
//! connection and event objects, `context`), with what requests and
//! responses share in `message`.
//!
//! During an event the flow is *moved* into the store's views
//! ([`crate::views`]) as a [`FlowEntry`]; handles to its parts
//! ([`RequestHandle`], [`HeadersHandle`], a flow's [`ResponseHandle`]) name
//! that entry by slot and generation, so nothing is copied until the guest asks for it. A handle kept
//! past its event finds its entry gone (or reused under another generation)
//! and traps with a message that says so.
//!
//! The first change to a flow during a call saves a copy of it (bodies are
//! `Bytes`, so that copy is cheap); if the call then traps, the flow goes on as
//! it was before the call.
//!
//! What a method makes the host hold is charged to the instance's budget
//! before the host allocates it, and recorded on the entry that holds it
//! (`charged`), which gives it back when the entry leaves the table.

mod conns;
mod context;
mod flow;
mod headers;
mod message;
mod request;
mod response;

pub use message::HostCallDeadline;

use std::sync::Arc;

use wasmtime::component::Resource;
use witm_flow::{
    ClientConn, ClientHello, ContentError, Flow, Headers, HttpMessage, Request, Response,
    WebSocketMessage,
};

use crate::bindings::types::{self, HostError};
use crate::state::HostView;

type Result<T> = wasmtime::Result<T>;
/// What a host method that can fail gives the guest.
type HostResult<T> = Result<std::result::Result<T, HostError>>;

/// A flow lent to the guest for one event, or a copy the guest owns
/// (`duplicate-flow`).
pub struct FlowEntry {
    pub(crate) flow: Flow,
    /// What to restore if the call fails: the parts as they were before
    /// this call changed them.
    before: Before,
    generation: u64,
    /// A duplicate, owned by the guest: deleted when the guest drops it.
    owned_by_guest: bool,
    /// Bytes of the instance's budget this entry holds.
    pub(crate) charged: usize,
}

/// A lent flow's parts as they were before the call's first change of
/// each, kept to restore them if the call fails. A change to the request or
/// the response alone copies only that message, and a change to the
/// response's headers alone only its header list, or only its length while
/// fields are only added (add-header's one change copies nothing); any
/// other change copies the whole flow.
#[derive(Default)]
struct Before {
    flow: Option<Box<Flow>>,
    request: Option<Box<Request>>,
    response: Option<Box<Response>>,
    response_headers: Option<SavedHeaders>,
}

/// The response's header list as it was before the call.
enum SavedHeaders {
    /// Fields were only added at the end since: the first `len` are as
    /// they were. A copy of each field (and its drop) cost ~1,500
    /// instructions of every add-header call (`bench/instructions.sh`).
    Added(usize),
    /// A copy, taken at the first change that was not an addition.
    Copy(Headers),
}

impl SavedHeaders {
    /// What to keep before the call changes `headers`, given what was kept
    /// (if anything) and whether the change only adds fields at the end.
    fn before_change(kept: Option<Self>, headers: &Headers, adds_only: bool) -> Self {
        match kept {
            None if adds_only => SavedHeaders::Added(headers.len()),
            None => SavedHeaders::Copy(headers.clone()),
            Some(SavedHeaders::Added(len)) if !adds_only => {
                let mut copy = headers.clone();
                copy.truncate(len);
                SavedHeaders::Copy(copy)
            }
            Some(kept) => kept,
        }
    }

    fn restore(self, headers: &mut Headers) {
        match self {
            SavedHeaders::Added(len) => headers.truncate(len),
            SavedHeaders::Copy(copy) => *headers = copy,
        }
    }
}

impl FlowEntry {
    pub(crate) fn new(flow: Flow, generation: u64) -> Self {
        Self {
            flow,
            before: Before::default(),
            generation,
            owned_by_guest: false,
            charged: 0,
        }
    }

    /// The flow, for a change: saves the flow as it was on the first change.
    fn flow_to_change(&mut self) -> &mut Flow {
        if self.before.flow.is_none() {
            self.before.flow = Some(Box::new(self.flow.clone()));
        }
        &mut self.flow
    }

    /// The flow's request, for a change: saves the request alone as it was
    /// on its first change (unless the whole flow is saved already).
    fn request_to_change(&mut self) -> &mut Request {
        let FlowEntry { flow, before, .. } = self;
        if before.flow.is_none() && before.request.is_none() {
            before.request = Some(Box::new(flow.request.clone()));
        }
        &mut flow.request
    }

    /// The flow's response, for a change: saves the response alone as it
    /// was on its first change (unless the whole flow is saved already).
    fn response_to_change(&mut self) -> Option<&mut Response> {
        let FlowEntry { flow, before, .. } = self;
        let response = flow.response.as_mut()?;
        if before.flow.is_none() && before.response.is_none() {
            before.response = Some(Box::new(response.clone()));
        }
        Some(response)
    }

    /// The flow's response's headers, for a change that, with `adds_only`,
    /// only adds fields at the end: saves them alone ([`SavedHeaders`]),
    /// unless the response or the whole flow is saved already.
    fn response_headers_to_change(&mut self, adds_only: bool) -> Option<&mut Headers> {
        let FlowEntry { flow, before, .. } = self;
        let response = flow.response.as_mut()?;
        if before.flow.is_none() && before.response.is_none() {
            let kept = before.response_headers.take();
            before.response_headers = Some(SavedHeaders::before_change(
                kept,
                &response.headers,
                adds_only,
            ));
        }
        Some(&mut response.headers)
    }

    /// The flow as the guest left it, or as it was before the call if the
    /// call failed.
    #[cfg(test)]
    fn into_flow(mut self, call_failed: bool) -> Flow {
        let mut flow = Flow::default();
        self.give_back(call_failed, &mut flow);
        flow
    }

    /// Puts in `to` the flow as the guest left it, or as it was before the
    /// call if the call failed; the entry keeps an empty flow. Taken out of
    /// the entry where it lies, not moved out with it: a flow is ~800
    /// bytes, and each move a copy.
    pub(crate) fn give_back(&mut self, call_failed: bool, to: &mut Flow) {
        if !call_failed {
            *to = std::mem::take(&mut self.flow);
            return;
        }
        let Before {
            flow,
            request,
            response,
            response_headers,
        } = std::mem::take(&mut self.before);
        // A message saved alone was saved before any copy of the whole
        // flow (none is saved alone after one), so it goes back after it;
        // the response's headers saved alone before any copy of the
        // response, so they go back last.
        let mut restored = flow.map_or_else(|| std::mem::take(&mut self.flow), |flow| *flow);
        if let Some(request) = request {
            restored.request = *request;
        }
        if let Some(response) = response {
            restored.response = Some(*response);
        }
        // Added fields are undone on what the whole copies restored: those
        // were taken after additions only (any other change made a copy).
        if let (Some(headers), Some(response)) = (response_headers, restored.response.as_mut()) {
            headers.restore(&mut response.headers);
        }
        *to = restored;
    }
}

/// Names a [`FlowEntry`] in the views, for the flow's parts.
#[derive(Clone, Copy, Debug)]
pub struct FlowRef {
    rep: u32,
    generation: u64,
}

/// Names a request or response: a flow's, or one the guest made.
#[derive(Clone, Copy, Debug)]
pub enum MessageRef {
    /// A flow's request.
    Request(FlowRef),
    /// A flow's response.
    Response(FlowRef),
    /// A response the guest made, not yet given to a flow (by table index
    /// and generation of its [`ResponseHandle`]).
    Detached {
        /// Table index of the [`ResponseHandle`].
        rep: u32,
        /// Its generation, to spot a handle outliving the response.
        generation: u64,
    },
}

/// A flow's request.
pub struct RequestHandle(FlowRef);

/// A response: a flow's, or one the guest made.
pub enum ResponseHandle {
    /// The response of a flow (present when the handle was made).
    OfFlow(FlowRef),
    /// Made by the guest with the constructor, not yet given to a flow.
    Detached {
        /// The response itself, owned by the handle until given to a flow
        /// (boxed: a handle to a flow's is a few bytes).
        response: Box<Response>,
        /// Tells this response apart from a later one in the same slot.
        generation: u64,
        /// Bytes of the instance's budget it holds.
        charged: usize,
    },
}

/// A view of the headers of a request or response.
#[derive(Clone, Copy, Debug)]
pub struct HeadersHandle {
    message: MessageRef,
    /// A view of the message's trailers, not its headers.
    trailers: bool,
}

impl HeadersHandle {
    /// The headers of `message`.
    pub(crate) fn headers(message: MessageRef) -> Self {
        Self {
            message,
            trailers: false,
        }
    }

    /// The trailers of `message`.
    pub(crate) fn trailers(message: MessageRef) -> Self {
        Self {
            message,
            trailers: true,
        }
    }
}

/// A client connection, shared with the proxy.
pub struct ClientConnHandle(pub(crate) Arc<ClientConn>);

/// A server connection, shared with the proxy.
pub struct ServerConnHandle(pub(crate) Arc<witm_flow::ServerConn>);

/// A ClientHello lent to the guest for the `tls-clienthello` event.
pub struct ClientHelloEntry(pub(crate) ClientHello);

/// A WebSocket message lent to the guest for the `websocket-message` event.
pub struct WebSocketMessageEntry(pub(crate) WebSocketMessage);

/// The plugin's context; the plugin's name lives in the store state.
pub struct ContextHandle;

fn stale() -> wasmtime::Error {
    wasmtime::format_err!(
        "plugin used a handle after its event returned (handles to a flow and its parts are valid only during the event)"
    )
}

fn invalid(message: impl Into<String>) -> HostError {
    HostError::Invalid(message.into())
}

fn wit_cert(c: &witm_flow::CertInfo) -> types::Cert {
    types::Cert {
        subject: c.subject.clone(),
        issuer: c.issuer.clone(),
        serial: c.serial.clone(),
        not_before: c.not_before,
        not_after: c.not_after,
        sans: c.sans.clone(),
        der: c.der.clone(),
    }
}

fn content_error(error: ContentError) -> HostError {
    match error {
        ContentError::Streamed => HostError::BodyStreamed,
        ContentError::Coding(e) => HostError::DecodeFailed(e.to_string()),
    }
}

impl types::Host for HostView<'_> {}

impl HostView<'_> {
    fn flow_ref(&self, flow: &Resource<FlowEntry>) -> Result<FlowRef> {
        let entry = self.views.flows.get(flow).ok_or_else(stale)?;
        Ok(FlowRef {
            rep: flow.rep(),
            generation: entry.generation,
        })
    }

    fn entry_mut(&mut self, r: FlowRef) -> Result<&mut FlowEntry> {
        match self
            .views
            .flows
            .get_mut(&Resource::<FlowEntry>::new_borrow(r.rep))
        {
            Some(entry) if entry.generation == r.generation => Ok(entry),
            _ => Err(stale()),
        }
    }

    fn flow(&self, r: FlowRef) -> Result<&Flow> {
        match self
            .views
            .flows
            .get(&Resource::<FlowEntry>::new_borrow(r.rep))
        {
            Some(entry) if entry.generation == r.generation => Ok(&entry.flow),
            _ => Err(stale()),
        }
    }

    /// The flow, for a change ([`FlowEntry::flow_to_change`]).
    fn flow_mut(&mut self, r: FlowRef) -> Result<&mut Flow> {
        Ok(self.entry_mut(r)?.flow_to_change())
    }

    /// The flow's request, for a change ([`FlowEntry::request_to_change`]).
    fn flow_request_mut(&mut self, r: FlowRef) -> Result<&mut Request> {
        Ok(self.entry_mut(r)?.request_to_change())
    }

    /// The flow's response, for a change ([`FlowEntry::response_to_change`]).
    fn flow_response_mut(&mut self, r: FlowRef) -> Result<&mut Response> {
        self.entry_mut(r)?.response_to_change().ok_or_else(stale)
    }

    /// The flow's response's headers, for a change
    /// ([`FlowEntry::response_headers_to_change`]).
    fn flow_response_headers_mut(&mut self, r: FlowRef, adds_only: bool) -> Result<&mut Headers> {
        self.entry_mut(r)?
            .response_headers_to_change(adds_only)
            .ok_or_else(stale)
    }

    fn detached(&self, rep: u32, generation: u64) -> Result<&Response> {
        match self
            .views
            .responses
            .get(&Resource::<ResponseHandle>::new_borrow(rep))
        {
            Some(ResponseHandle::Detached {
                response,
                generation: g,
                ..
            }) if *g == generation => Ok(&**response),
            _ => Err(stale()),
        }
    }

    fn detached_mut(&mut self, rep: u32, generation: u64) -> Result<(&mut Response, &mut usize)> {
        match self
            .views
            .responses
            .get_mut(&Resource::<ResponseHandle>::new_borrow(rep))
        {
            Some(ResponseHandle::Detached {
                response,
                generation: g,
                charged,
            }) if *g == generation => Ok((&mut **response, charged)),
            _ => Err(stale()),
        }
    }

    /// What a response handle names.
    fn response_ref(&self, handle: &Resource<ResponseHandle>) -> Result<MessageRef> {
        Ok(match self.views.responses.get(handle).ok_or_else(stale)? {
            ResponseHandle::OfFlow(r) => MessageRef::Response(*r),
            ResponseHandle::Detached { generation, .. } => MessageRef::Detached {
                rep: handle.rep(),
                generation: *generation,
            },
        })
    }

    fn message(&self, m: MessageRef) -> Result<&dyn HttpMessage> {
        Ok(match m {
            MessageRef::Request(r) => &self.flow(r)?.request,
            MessageRef::Response(r) => self.flow(r)?.response.as_ref().ok_or_else(stale)?,
            MessageRef::Detached { rep, generation } => self.detached(rep, generation)?,
        })
    }

    fn message_mut(&mut self, m: MessageRef) -> Result<&mut dyn HttpMessage> {
        Ok(match m {
            MessageRef::Request(r) => self.flow_request_mut(r)?,
            MessageRef::Response(r) => self.flow_response_mut(r)?,
            MessageRef::Detached { rep, generation } => self.detached_mut(rep, generation)?.0,
        })
    }

    /// Where the bytes held for `m` are recorded.
    fn charged_mut(&mut self, m: MessageRef) -> Result<&mut usize> {
        Ok(match m {
            MessageRef::Request(r) | MessageRef::Response(r) => &mut self.entry_mut(r)?.charged,
            MessageRef::Detached { rep, generation } => self.detached_mut(rep, generation)?.1,
        })
    }

    /// Charges `added` bytes to the budget for a change to what `m`'s owner
    /// holds and gives back `removed` (no more than was charged for it: what
    /// the proxy put in a lent flow is not the plugin's to give back). Call
    /// before making the change; an error means: do not make it.
    fn charge(&mut self, m: MessageRef, added: usize, removed: usize) -> HostResult<()> {
        self.charged_mut(m)?;
        if let Err(e) = self.host.budget.reserve(added) {
            return Ok(Err(e));
        }
        let charged = self.charged_mut(m)?;
        *charged += added;
        let back = removed.min(*charged);
        *charged -= back;
        self.host.budget.release(back);
        Ok(Ok(()))
    }

    /// Charges `added` bytes to a flow entry (metadata, comment, query).
    fn charge_flow(&mut self, r: FlowRef, added: usize, removed: usize) -> HostResult<()> {
        self.charge(MessageRef::Request(r), added, removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use witm_flow::testing::{tflow, with_response};

    /// Flows have no `PartialEq`: their debug text says all they hold.
    fn same(a: &Flow, b: &Flow) -> bool {
        format!("{a:?}") == format!("{b:?}")
    }

    fn lent() -> FlowEntry {
        FlowEntry::new(with_response(tflow("http://a.example/"), 200, "body"), 1)
    }

    #[test]
    fn a_failed_call_gives_back_the_flow_as_it_was_whatever_was_saved_when() {
        // A response header changed alone: only the headers are saved.
        let mut entry = lent();
        let original = entry.flow.clone();
        entry
            .response_headers_to_change(false)
            .unwrap()
            .set("content-type", "changed");
        // Then the response as a whole (its headers changed already), then
        // the whole flow: the headers still go back to the first.
        entry.response_to_change().unwrap().status = 500;
        entry.flow_to_change().comment = "changed".into();
        assert!(same(&entry.into_flow(true), &original));

        // A response changed alone: only the response is saved.
        let mut entry = lent();
        let original = entry.flow.clone();
        entry
            .response_to_change()
            .unwrap()
            .headers
            .set("newheader", "foo");
        assert!(entry.before.flow.is_none() && entry.before.request.is_none());
        assert!(same(&entry.into_flow(true), &original));

        // The request saved alone first, the whole flow later (with the
        // request already changed): the request goes back to the first.
        let mut entry = lent();
        let original = entry.flow.clone();
        entry.request_to_change().headers.set("x-half-done", "1");
        entry.flow_to_change().comment = "changed".into();
        entry.flow.response = None;
        assert!(same(&entry.into_flow(true), &original));

        // A call that succeeds keeps its changes.
        let mut entry = lent();
        entry.flow_to_change().comment = "kept".into();
        assert_eq!(entry.into_flow(false).comment, "kept");
    }

    /// Fields only added are undone by their count, with no copy; a later
    /// change of a field that was there makes the copy, of the fields as
    /// they were; a whole copy taken in between still loses the added ones.
    #[test]
    fn added_response_headers_are_undone_without_a_copy() {
        let add = |entry: &mut FlowEntry, name: &str| {
            entry
                .response_headers_to_change(true)
                .unwrap()
                .append(name, "1");
        };
        let mut entry = lent();
        let original = entry.flow.clone();
        add(&mut entry, "x-one");
        add(&mut entry, "x-two");
        assert!(matches!(
            entry.before.response_headers,
            Some(SavedHeaders::Added(_))
        ));
        assert!(same(&entry.into_flow(true), &original));

        let mut entry = lent();
        let original = entry.flow.clone();
        add(&mut entry, "x-one");
        let headers = entry.response_headers_to_change(false).unwrap();
        headers.remove("content-type");
        headers.set("x-one", "2");
        assert!(matches!(
            entry.before.response_headers,
            Some(SavedHeaders::Copy(_))
        ));
        add(&mut entry, "x-three");
        assert!(same(&entry.into_flow(true), &original));

        let mut entry = lent();
        let original = entry.flow.clone();
        add(&mut entry, "x-one");
        entry.response_to_change().unwrap().status = 500;
        entry
            .response_headers_to_change(false)
            .unwrap()
            .remove("content-type");
        entry.flow_to_change().comment = "changed".into();
        add(&mut entry, "x-two");
        assert!(same(&entry.into_flow(true), &original));

        let mut entry = lent();
        add(&mut entry, "x-one");
        let kept = entry.into_flow(false);
        assert_eq!(
            kept.response.unwrap().headers.get("x-one").as_deref(),
            Some("1")
        );
    }
}
