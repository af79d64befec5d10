//! The host side of the WIT resources: what a guest handle points to, and the
//! `Host*` trait impls that serve the guest's method calls, one file per
//! resource (`headers`, `request`, `response`, `flow`, `conns` for the
//! connection and event objects, `context`), with what requests and
//! responses share in `message`.
//!
//! During an event the flow is *moved* into the store's table as a
//! [`FlowEntry`]; handles to its parts ([`RequestHandle`], [`HeadersHandle`],
//! a flow's [`ResponseHandle`]) name that entry by table index and
//! generation, so nothing is copied until the guest asks for it. A handle kept
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
    ClientConn, ClientHello, ContentError, Flow, HttpMessage, Response, WebSocketMessage,
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
    /// The flow as it was before the first change of this call.
    pub(crate) before_change: Option<Box<Flow>>,
    generation: u64,
    /// A duplicate, owned by the guest: deleted when the guest drops it.
    owned_by_guest: bool,
    /// Bytes of the instance's budget this entry holds.
    pub(crate) charged: usize,
}

impl FlowEntry {
    pub(crate) fn new(flow: Flow, generation: u64) -> Self {
        Self {
            flow,
            before_change: None,
            generation,
            owned_by_guest: false,
            charged: 0,
        }
    }

    /// The flow as the guest left it, or as it was before the call if the
    /// call failed.
    pub(crate) fn into_flow(self, call_failed: bool) -> Flow {
        match (call_failed, self.before_change) {
            (true, Some(before)) => *before,
            _ => self.flow,
        }
    }
}

/// Names a [`FlowEntry`] in the table, for the flow's parts.
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
        /// The response itself, owned by the handle until given to a flow.
        response: Response,
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
        let entry = self.table.get(flow).map_err(|_| stale())?;
        Ok(FlowRef {
            rep: flow.rep(),
            generation: entry.generation,
        })
    }

    fn entry_mut(&mut self, r: FlowRef) -> Result<&mut FlowEntry> {
        match self
            .table
            .get_mut(&Resource::<FlowEntry>::new_borrow(r.rep))
        {
            Ok(entry) if entry.generation == r.generation => Ok(entry),
            _ => Err(stale()),
        }
    }

    fn flow(&self, r: FlowRef) -> Result<&Flow> {
        match self.table.get(&Resource::<FlowEntry>::new_borrow(r.rep)) {
            Ok(entry) if entry.generation == r.generation => Ok(&entry.flow),
            _ => Err(stale()),
        }
    }

    /// The flow, for a change: saves the flow as it was on the first change.
    fn flow_mut(&mut self, r: FlowRef) -> Result<&mut Flow> {
        let entry = self.entry_mut(r)?;
        if entry.before_change.is_none() {
            entry.before_change = Some(Box::new(entry.flow.clone()));
        }
        Ok(&mut entry.flow)
    }

    fn detached(&self, rep: u32, generation: u64) -> Result<&Response> {
        match self.table.get(&Resource::<ResponseHandle>::new_borrow(rep)) {
            Ok(ResponseHandle::Detached {
                response,
                generation: g,
                ..
            }) if *g == generation => Ok(response),
            _ => Err(stale()),
        }
    }

    fn detached_mut(&mut self, rep: u32, generation: u64) -> Result<(&mut Response, &mut usize)> {
        match self
            .table
            .get_mut(&Resource::<ResponseHandle>::new_borrow(rep))
        {
            Ok(ResponseHandle::Detached {
                response,
                generation: g,
                charged,
            }) if *g == generation => Ok((response, charged)),
            _ => Err(stale()),
        }
    }

    /// What a response handle names.
    fn response_ref(&self, handle: &Resource<ResponseHandle>) -> Result<MessageRef> {
        Ok(match self.table.get(handle).map_err(|_| stale())? {
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
            MessageRef::Request(r) => &mut self.flow_mut(r)?.request,
            MessageRef::Response(r) => self.flow_mut(r)?.response.as_mut().ok_or_else(stale)?,
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

    /// Deletes a flow entry and gives back what it held.
    fn release_entry(&mut self, entry: &FlowEntry) {
        self.host.budget.release(entry.charged);
    }
}
