//! The host side of the WIT resources: what a guest handle points to, and the
//! `Host*` trait impls that serve the guest's method calls.
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

use std::sync::Arc;

use bytes::Bytes;
use wasmtime::component::Resource;
use witm_flow::headers::validate;
use witm_flow::{
    Body, ClientConn, ClientHello, ContentError, Flow, Headers, HttpMessage, Response,
    WebSocketMessage,
};

use crate::bindings::types::{self, HostError, Level};
use crate::state::StoreState;

type Result<T> = wasmtime::Result<T>;

/// A flow lent to the guest for one event, or a copy the guest owns
/// (`duplicate-flow`).
pub struct FlowEntry {
    pub(crate) flow: Flow,
    /// The flow as it was before the first change of this call.
    pub(crate) before_change: Option<Box<Flow>>,
    generation: u64,
    /// A duplicate, owned by the guest: deleted when the guest drops it.
    owned_by_guest: bool,
}

impl FlowEntry {
    pub(crate) fn new(flow: Flow, generation: u64) -> Self {
        Self {
            flow,
            before_change: None,
            generation,
            owned_by_guest: false,
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
    },
}

/// Which message's headers a [`HeadersHandle`] is a view of.
#[derive(Clone, Copy, Debug)]
pub enum HeadersHandle {
    /// The headers of a flow's request.
    Request(FlowRef),
    /// The headers of a flow's response.
    Response(FlowRef),
    /// The headers of a response the guest made (by table index).
    Detached {
        /// Table index of the [`ResponseHandle`].
        rep: u32,
        /// Its generation, to spot a handle outliving the response.
        generation: u64,
    },
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

fn body_bytes(body: &Body) -> std::result::Result<Vec<u8>, HostError> {
    body.bytes()
        .map(|b| b.to_vec())
        .ok_or(HostError::BodyStreamed)
}

fn replace_body(body: &mut Body, new: Vec<u8>) -> std::result::Result<(), HostError> {
    match body {
        Body::Streamed => Err(HostError::BodyStreamed),
        Body::Buffered(_) => {
            *body = Body::Buffered(Bytes::from(new));
            Ok(())
        }
    }
}

impl StoreState {
    fn flow_ref(&self, flow: &Resource<FlowEntry>) -> Result<FlowRef> {
        let entry = self.table.get(flow).map_err(|_| stale())?;
        Ok(FlowRef {
            rep: flow.rep(),
            generation: entry.generation,
        })
    }

    fn flow(&self, r: FlowRef) -> Result<&Flow> {
        match self.table.get(&Resource::<FlowEntry>::new_borrow(r.rep)) {
            Ok(entry) if entry.generation == r.generation => Ok(&entry.flow),
            _ => Err(stale()),
        }
    }

    /// The flow, for a change: saves the flow as it was on the first change.
    fn flow_mut(&mut self, r: FlowRef) -> Result<&mut Flow> {
        match self
            .table
            .get_mut(&Resource::<FlowEntry>::new_borrow(r.rep))
        {
            Ok(entry) if entry.generation == r.generation => {
                if entry.before_change.is_none() {
                    entry.before_change = Some(Box::new(entry.flow.clone()));
                }
                Ok(&mut entry.flow)
            }
            _ => Err(stale()),
        }
    }

    fn response(&self, handle: &Resource<ResponseHandle>) -> Result<&Response> {
        match self.table.get(handle).map_err(|_| stale())? {
            ResponseHandle::Detached { response, .. } => Ok(response),
            ResponseHandle::OfFlow(r) => self.flow(*r)?.response.as_ref().ok_or_else(stale),
        }
    }

    fn response_mut(&mut self, handle: &Resource<ResponseHandle>) -> Result<&mut Response> {
        let of_flow = match self.table.get(handle).map_err(|_| stale())? {
            ResponseHandle::OfFlow(r) => Some(*r),
            ResponseHandle::Detached { .. } => None,
        };
        match of_flow {
            Some(r) => self.flow_mut(r)?.response.as_mut().ok_or_else(stale),
            None => match self.table.get_mut(handle).map_err(|_| stale())? {
                ResponseHandle::Detached { response, .. } => Ok(response),
                ResponseHandle::OfFlow(_) => unreachable!("checked above"),
            },
        }
    }

    fn detached_response(&self, rep: u32, generation: u64) -> Result<&ResponseHandle> {
        match self.table.get(&Resource::<ResponseHandle>::new_borrow(rep)) {
            Ok(h @ ResponseHandle::Detached { generation: g, .. }) if *g == generation => Ok(h),
            _ => Err(stale()),
        }
    }

    fn headers(&self, handle: &Resource<HeadersHandle>) -> Result<&Headers> {
        match *self.table.get(handle).map_err(|_| stale())? {
            HeadersHandle::Request(r) => Ok(&self.flow(r)?.request.headers),
            HeadersHandle::Response(r) => self
                .flow(r)?
                .response
                .as_ref()
                .map(|resp| &resp.headers)
                .ok_or_else(stale),
            HeadersHandle::Detached { rep, generation } => {
                match self.detached_response(rep, generation)? {
                    ResponseHandle::Detached { response, .. } => Ok(&response.headers),
                    ResponseHandle::OfFlow(_) => Err(stale()),
                }
            }
        }
    }

    fn headers_mut(&mut self, handle: &Resource<HeadersHandle>) -> Result<&mut Headers> {
        match *self.table.get(handle).map_err(|_| stale())? {
            HeadersHandle::Request(r) => Ok(&mut self.flow_mut(r)?.request.headers),
            HeadersHandle::Response(r) => self
                .flow_mut(r)?
                .response
                .as_mut()
                .map(|resp| &mut resp.headers)
                .ok_or_else(stale),
            HeadersHandle::Detached { rep, generation } => {
                self.detached_response(rep, generation)?;
                match self
                    .table
                    .get_mut(&Resource::<ResponseHandle>::new_borrow(rep))
                {
                    Ok(ResponseHandle::Detached { response, .. }) => Ok(&mut response.headers),
                    _ => Err(stale()),
                }
            }
        }
    }

    fn new_headers_handle(&mut self, handle: HeadersHandle) -> Result<Resource<HeadersHandle>> {
        Ok(self.table.push(handle)?)
    }
}

impl types::Host for StoreState {}

impl types::HostHeaders for StoreState {
    fn get(&mut self, h: Resource<HeadersHandle>, name: String) -> Result<Option<String>> {
        Ok(self.headers(&h)?.get(&name))
    }

    fn get_all(&mut self, h: Resource<HeadersHandle>, name: String) -> Result<Vec<String>> {
        Ok(self
            .headers(&h)?
            .get_all(&name)
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .collect())
    }

    fn set(
        &mut self,
        h: Resource<HeadersHandle>,
        name: String,
        value: String,
    ) -> Result<std::result::Result<(), HostError>> {
        if let Err(e) = validate(&name, value.as_bytes()) {
            return Ok(Err(invalid(e.0)));
        }
        self.headers_mut(&h)?.set(&name, value);
        Ok(Ok(()))
    }

    fn append(
        &mut self,
        h: Resource<HeadersHandle>,
        name: String,
        value: String,
    ) -> Result<std::result::Result<(), HostError>> {
        if let Err(e) = validate(&name, value.as_bytes()) {
            return Ok(Err(invalid(e.0)));
        }
        self.headers_mut(&h)?.append(&name, value);
        Ok(Ok(()))
    }

    fn insert(
        &mut self,
        h: Resource<HeadersHandle>,
        index: u32,
        name: String,
        value: String,
    ) -> Result<std::result::Result<(), HostError>> {
        if let Err(e) = validate(&name, value.as_bytes()) {
            return Ok(Err(invalid(e.0)));
        }
        self.headers_mut(&h)?.insert(index as usize, &name, value);
        Ok(Ok(()))
    }

    fn remove(&mut self, h: Resource<HeadersHandle>, name: String) -> Result<()> {
        if self.headers(&h)?.contains(&name) {
            self.headers_mut(&h)?.remove(&name);
        }
        Ok(())
    }

    fn entries(&mut self, h: Resource<HeadersHandle>) -> Result<Vec<(String, String)>> {
        Ok(self
            .headers(&h)?
            .iter()
            .map(|(n, v)| (n.to_owned(), String::from_utf8_lossy(v).into_owned()))
            .collect())
    }

    fn drop(&mut self, h: Resource<HeadersHandle>) -> Result<()> {
        self.table.delete(h)?;
        Ok(())
    }
}

impl StoreState {
    fn request_flow(&self, h: &Resource<RequestHandle>) -> Result<FlowRef> {
        Ok(self.table.get(h).map_err(|_| stale())?.0)
    }

    fn request(&self, h: &Resource<RequestHandle>) -> Result<&witm_flow::Request> {
        Ok(&self.flow(self.request_flow(h)?)?.request)
    }

    fn request_mut(&mut self, h: &Resource<RequestHandle>) -> Result<&mut witm_flow::Request> {
        let r = self.request_flow(h)?;
        Ok(&mut self.flow_mut(r)?.request)
    }
}

impl types::HostRequest for StoreState {
    fn method(&mut self, h: Resource<RequestHandle>) -> Result<String> {
        Ok(self.request(&h)?.method.clone())
    }

    fn set_method(
        &mut self,
        h: Resource<RequestHandle>,
        method: String,
    ) -> Result<std::result::Result<(), HostError>> {
        if http_method_is_valid(&method) {
            self.request_mut(&h)?.method = method;
            Ok(Ok(()))
        } else {
            Ok(Err(invalid(format!("invalid method {method:?}"))))
        }
    }

    fn scheme(&mut self, h: Resource<RequestHandle>) -> Result<String> {
        Ok(self.request(&h)?.scheme.clone())
    }

    fn host(&mut self, h: Resource<RequestHandle>) -> Result<String> {
        Ok(self.request(&h)?.host.clone())
    }

    fn port(&mut self, h: Resource<RequestHandle>) -> Result<u16> {
        Ok(self.request(&h)?.port)
    }

    fn path(&mut self, h: Resource<RequestHandle>) -> Result<String> {
        Ok(self.request(&h)?.path.clone())
    }

    fn set_path(
        &mut self,
        h: Resource<RequestHandle>,
        path: String,
    ) -> Result<std::result::Result<(), HostError>> {
        if !path.starts_with('/') || path.parse::<http::uri::PathAndQuery>().is_err() {
            return Ok(Err(invalid(format!(
                "invalid path {path:?}: it must start with '/' and be a valid URI path"
            ))));
        }
        self.request_mut(&h)?.path = path;
        Ok(Ok(()))
    }

    fn authority(&mut self, h: Resource<RequestHandle>) -> Result<String> {
        Ok(self.request(&h)?.authority())
    }

    fn url(&mut self, h: Resource<RequestHandle>) -> Result<String> {
        Ok(self.request(&h)?.url())
    }

    fn set_url(
        &mut self,
        h: Resource<RequestHandle>,
        url: String,
    ) -> Result<std::result::Result<(), HostError>> {
        let mut request = self.request(&h)?.clone();
        match request.set_url(&url) {
            Ok(()) => {
                *self.request_mut(&h)? = request;
                Ok(Ok(()))
            }
            Err(e) => Ok(Err(invalid(e))),
        }
    }

    fn http_version(&mut self, h: Resource<RequestHandle>) -> Result<String> {
        Ok(self.request(&h)?.http_version.clone())
    }

    fn headers(&mut self, h: Resource<RequestHandle>) -> Result<Resource<HeadersHandle>> {
        let r = self.request_flow(&h)?;
        self.new_headers_handle(HeadersHandle::Request(r))
    }

    fn body(
        &mut self,
        h: Resource<RequestHandle>,
    ) -> Result<std::result::Result<Vec<u8>, HostError>> {
        Ok(body_bytes(&self.request(&h)?.body))
    }

    fn set_body(
        &mut self,
        h: Resource<RequestHandle>,
        body: Vec<u8>,
    ) -> Result<std::result::Result<(), HostError>> {
        if self.request(&h)?.body == Body::Streamed {
            return Ok(Err(HostError::BodyStreamed));
        }
        Ok(replace_body(&mut self.request_mut(&h)?.body, body))
    }

    fn timestamp_start(&mut self, h: Resource<RequestHandle>) -> Result<u64> {
        Ok(self.request(&h)?.timestamp_start)
    }

    fn content(
        &mut self,
        h: Resource<RequestHandle>,
    ) -> Result<std::result::Result<Vec<u8>, HostError>> {
        Ok(self.request(&h)?.content().map_err(content_error))
    }

    fn set_content(
        &mut self,
        h: Resource<RequestHandle>,
        content: Vec<u8>,
    ) -> Result<std::result::Result<(), HostError>> {
        Ok(self
            .request_mut(&h)?
            .set_content(&content)
            .map_err(content_error))
    }

    fn text(
        &mut self,
        h: Resource<RequestHandle>,
    ) -> Result<std::result::Result<String, HostError>> {
        Ok(self.request(&h)?.text().map_err(content_error))
    }

    fn set_text(
        &mut self,
        h: Resource<RequestHandle>,
        text: String,
    ) -> Result<std::result::Result<(), HostError>> {
        Ok(self.request_mut(&h)?.set_text(&text).map_err(content_error))
    }

    fn query(&mut self, h: Resource<RequestHandle>) -> Result<Vec<(String, String)>> {
        Ok(self.request(&h)?.query())
    }

    fn set_query(
        &mut self,
        h: Resource<RequestHandle>,
        pairs: Vec<(String, String)>,
    ) -> Result<()> {
        self.request_mut(&h)?.set_query(&pairs);
        Ok(())
    }

    fn cookies(&mut self, h: Resource<RequestHandle>) -> Result<Vec<(String, String)>> {
        Ok(self.request(&h)?.cookies())
    }

    fn stream_body(&mut self, h: Resource<RequestHandle>) -> Result<bool> {
        Ok(self.request(&h)?.stream)
    }

    fn set_stream_body(&mut self, h: Resource<RequestHandle>, enabled: bool) -> Result<()> {
        self.request_mut(&h)?.stream = enabled;
        Ok(())
    }

    fn drop(&mut self, h: Resource<RequestHandle>) -> Result<()> {
        self.table.delete(h)?;
        Ok(())
    }
}

/// RFC 9110 token characters: what a method may be made of.
fn http_method_is_valid(method: &str) -> bool {
    http::Method::from_bytes(method.as_bytes()).is_ok()
}

impl types::HostResponse for StoreState {
    fn new(
        &mut self,
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    ) -> Result<Resource<ResponseHandle>> {
        // A constructor cannot return an error: values the wire would refuse
        // are dropped here and reported in the log.
        let valid = headers.into_iter().filter(|(n, v)| match validate(n, v.as_bytes()) {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(plugin = %self.plugin, "Response constructor: {e}; header dropped");
                false
            }
        });
        let mut response =
            Response::make(status, Headers::from_pairs(valid.collect::<Vec<_>>()), body);
        if !(100..=999).contains(&status) {
            tracing::warn!(plugin = %self.plugin, "Response constructor: status {status} is not a valid HTTP status; using 500");
            response = Response::make(
                500,
                response.headers,
                response.body.bytes().cloned().unwrap_or_default(),
            );
        }
        let generation = self.generation();
        Ok(self.table.push(ResponseHandle::Detached {
            response,
            generation,
        })?)
    }

    fn status(&mut self, h: Resource<ResponseHandle>) -> Result<u16> {
        Ok(self.response(&h)?.status)
    }

    fn set_status(
        &mut self,
        h: Resource<ResponseHandle>,
        status: u16,
    ) -> Result<std::result::Result<(), HostError>> {
        if !(100..=999).contains(&status) {
            return Ok(Err(invalid(format!("invalid status {status}"))));
        }
        let response = self.response_mut(&h)?;
        response.status = status;
        response.reason = witm_flow::message::canonical_reason(status).to_owned();
        Ok(Ok(()))
    }

    fn reason(&mut self, h: Resource<ResponseHandle>) -> Result<String> {
        Ok(self.response(&h)?.reason.clone())
    }

    fn timestamp_start(&mut self, h: Resource<ResponseHandle>) -> Result<u64> {
        Ok(self.response(&h)?.timestamp_start)
    }

    fn http_version(&mut self, h: Resource<ResponseHandle>) -> Result<String> {
        Ok(self.response(&h)?.http_version.clone())
    }

    fn headers(&mut self, h: Resource<ResponseHandle>) -> Result<Resource<HeadersHandle>> {
        let view = match self.table.get(&h).map_err(|_| stale())? {
            ResponseHandle::OfFlow(r) => HeadersHandle::Response(*r),
            ResponseHandle::Detached { generation, .. } => HeadersHandle::Detached {
                rep: h.rep(),
                generation: *generation,
            },
        };
        self.new_headers_handle(view)
    }

    fn body(
        &mut self,
        h: Resource<ResponseHandle>,
    ) -> Result<std::result::Result<Vec<u8>, HostError>> {
        Ok(body_bytes(&self.response(&h)?.body))
    }

    fn set_body(
        &mut self,
        h: Resource<ResponseHandle>,
        body: Vec<u8>,
    ) -> Result<std::result::Result<(), HostError>> {
        if self.response(&h)?.body == Body::Streamed {
            return Ok(Err(HostError::BodyStreamed));
        }
        Ok(replace_body(&mut self.response_mut(&h)?.body, body))
    }

    fn content(
        &mut self,
        h: Resource<ResponseHandle>,
    ) -> Result<std::result::Result<Vec<u8>, HostError>> {
        Ok(self.response(&h)?.content().map_err(content_error))
    }

    fn set_content(
        &mut self,
        h: Resource<ResponseHandle>,
        content: Vec<u8>,
    ) -> Result<std::result::Result<(), HostError>> {
        Ok(self
            .response_mut(&h)?
            .set_content(&content)
            .map_err(content_error))
    }

    fn text(
        &mut self,
        h: Resource<ResponseHandle>,
    ) -> Result<std::result::Result<String, HostError>> {
        Ok(self.response(&h)?.text().map_err(content_error))
    }

    fn set_text(
        &mut self,
        h: Resource<ResponseHandle>,
        text: String,
    ) -> Result<std::result::Result<(), HostError>> {
        Ok(self
            .response_mut(&h)?
            .set_text(&text)
            .map_err(content_error))
    }

    fn cookies(&mut self, h: Resource<ResponseHandle>) -> Result<Vec<types::SetCookie>> {
        Ok(self
            .response(&h)?
            .cookies()
            .into_iter()
            .map(|c| types::SetCookie {
                name: c.name,
                value: c.value,
                attributes: c.attributes,
            })
            .collect())
    }

    fn stream_body(&mut self, h: Resource<ResponseHandle>) -> Result<bool> {
        Ok(self.response(&h)?.stream)
    }

    fn set_stream_body(&mut self, h: Resource<ResponseHandle>, enabled: bool) -> Result<()> {
        self.response_mut(&h)?.stream = enabled;
        Ok(())
    }

    fn drop(&mut self, h: Resource<ResponseHandle>) -> Result<()> {
        self.table.delete(h)?;
        Ok(())
    }
}

impl types::HostClientConn for StoreState {
    fn id(&mut self, h: Resource<ClientConnHandle>) -> Result<String> {
        Ok(self.table.get(&h)?.0.id.clone())
    }

    fn address(&mut self, h: Resource<ClientConnHandle>) -> Result<String> {
        Ok(self.table.get(&h)?.0.address.to_string())
    }

    fn timestamp_start(&mut self, h: Resource<ClientConnHandle>) -> Result<u64> {
        Ok(self.table.get(&h)?.0.timestamp_start)
    }

    fn tls_sni(&mut self, h: Resource<ClientConnHandle>) -> Result<Option<String>> {
        Ok(self
            .table
            .get(&h)?
            .0
            .tls
            .as_ref()
            .and_then(|t| t.sni.clone()))
    }

    fn alpn(&mut self, h: Resource<ClientConnHandle>) -> Result<Option<String>> {
        Ok(self
            .table
            .get(&h)?
            .0
            .tls
            .as_ref()
            .and_then(|t| t.alpn.clone()))
    }

    fn drop(&mut self, h: Resource<ClientConnHandle>) -> Result<()> {
        self.table.delete(h)?;
        Ok(())
    }
}

impl types::HostServerConn for StoreState {
    fn address(&mut self, h: Resource<ServerConnHandle>) -> Result<String> {
        Ok(self.table.get(&h).map_err(|_| stale())?.0.address.clone())
    }

    fn sni(&mut self, h: Resource<ServerConnHandle>) -> Result<Option<String>> {
        Ok(self.table.get(&h).map_err(|_| stale())?.0.sni.clone())
    }

    fn alpn(&mut self, h: Resource<ServerConnHandle>) -> Result<Option<String>> {
        Ok(self.table.get(&h).map_err(|_| stale())?.0.alpn.clone())
    }

    fn cert(&mut self, h: Resource<ServerConnHandle>) -> Result<Option<types::Cert>> {
        Ok(self
            .table
            .get(&h)
            .map_err(|_| stale())?
            .0
            .cert
            .as_ref()
            .map(wit_cert))
    }

    fn drop(&mut self, h: Resource<ServerConnHandle>) -> Result<()> {
        self.table.delete(h)?;
        Ok(())
    }
}

impl types::HostClientHello for StoreState {
    fn sni(&mut self, h: Resource<ClientHelloEntry>) -> Result<Option<String>> {
        Ok(self.table.get(&h).map_err(|_| stale())?.0.sni.clone())
    }

    fn alpn_protocols(&mut self, h: Resource<ClientHelloEntry>) -> Result<Vec<String>> {
        Ok(self.table.get(&h).map_err(|_| stale())?.0.alpn.clone())
    }

    fn ignore_connection(&mut self, h: Resource<ClientHelloEntry>) -> Result<bool> {
        Ok(self.table.get(&h).map_err(|_| stale())?.0.ignore_connection)
    }

    fn set_ignore_connection(&mut self, h: Resource<ClientHelloEntry>, ignore: bool) -> Result<()> {
        self.table
            .get_mut(&h)
            .map_err(|_| stale())?
            .0
            .ignore_connection = ignore;
        Ok(())
    }

    fn drop(&mut self, _h: Resource<ClientHelloEntry>) -> Result<()> {
        // Only ever lent: the host takes it back when the event returns.
        Ok(())
    }
}

impl StoreState {
    fn message(&mut self, h: &Resource<WebSocketMessageEntry>) -> Result<&mut WebSocketMessage> {
        Ok(&mut self.table.get_mut(h).map_err(|_| stale())?.0)
    }
}

impl types::HostWebsocketMessage for StoreState {
    fn from_client(&mut self, h: Resource<WebSocketMessageEntry>) -> Result<bool> {
        Ok(self.message(&h)?.from_client)
    }

    fn is_text(&mut self, h: Resource<WebSocketMessageEntry>) -> Result<bool> {
        Ok(self.message(&h)?.is_text)
    }

    fn content(&mut self, h: Resource<WebSocketMessageEntry>) -> Result<Vec<u8>> {
        Ok(self.message(&h)?.content.clone())
    }

    fn set_content(&mut self, h: Resource<WebSocketMessageEntry>, content: Vec<u8>) -> Result<()> {
        self.message(&h)?.content = content;
        Ok(())
    }

    fn text(&mut self, h: Resource<WebSocketMessageEntry>) -> Result<String> {
        Ok(String::from_utf8_lossy(&self.message(&h)?.content).into_owned())
    }

    fn set_text(&mut self, h: Resource<WebSocketMessageEntry>, text: String) -> Result<()> {
        let message = self.message(&h)?;
        message.content = text.into_bytes();
        message.is_text = true;
        Ok(())
    }

    fn drop_message(&mut self, h: Resource<WebSocketMessageEntry>) -> Result<()> {
        self.message(&h)?.dropped = true;
        Ok(())
    }

    fn drop(&mut self, _h: Resource<WebSocketMessageEntry>) -> Result<()> {
        // Only ever lent: the host takes it back when the event returns.
        Ok(())
    }
}

impl types::HostFlow for StoreState {
    fn id(&mut self, h: Resource<FlowEntry>) -> Result<String> {
        Ok(self.flow(self.flow_ref(&h)?)?.id.clone())
    }

    fn client_conn(&mut self, h: Resource<FlowEntry>) -> Result<Resource<ClientConnHandle>> {
        let conn = self.flow(self.flow_ref(&h)?)?.client.clone();
        Ok(self.table.push(ClientConnHandle(conn))?)
    }

    fn request(&mut self, h: Resource<FlowEntry>) -> Result<Resource<RequestHandle>> {
        let r = self.flow_ref(&h)?;
        Ok(self.table.push(RequestHandle(r))?)
    }

    fn response(&mut self, h: Resource<FlowEntry>) -> Result<Option<Resource<ResponseHandle>>> {
        let r = self.flow_ref(&h)?;
        if self.flow(r)?.response.is_none() {
            return Ok(None);
        }
        Ok(Some(self.table.push(ResponseHandle::OfFlow(r))?))
    }

    fn set_response(
        &mut self,
        h: Resource<FlowEntry>,
        response: Resource<ResponseHandle>,
    ) -> Result<()> {
        let r = self.flow_ref(&h)?;
        let new = match self.table.delete(response).map_err(|_| stale())? {
            ResponseHandle::Detached { response, .. } => response,
            ResponseHandle::OfFlow(of) => self.flow(of)?.response.clone().ok_or_else(stale)?,
        };
        self.flow_mut(r)?.response = Some(new);
        Ok(())
    }

    fn error(&mut self, h: Resource<FlowEntry>) -> Result<Option<types::Error>> {
        Ok(self
            .flow(self.flow_ref(&h)?)?
            .error
            .as_ref()
            .map(|e| types::Error {
                message: e.message.clone(),
                timestamp: e.timestamp,
            }))
    }

    fn server_address(&mut self, h: Resource<FlowEntry>) -> Result<Option<String>> {
        let flow = self.flow(self.flow_ref(&h)?)?;
        Ok(flow.server_conn.as_ref().map(|s| s.address.clone()))
    }

    fn server_alpn(&mut self, h: Resource<FlowEntry>) -> Result<Option<String>> {
        let flow = self.flow(self.flow_ref(&h)?)?;
        Ok(flow.server_conn.as_ref().and_then(|s| s.alpn.clone()))
    }

    fn server_cert(&mut self, h: Resource<FlowEntry>) -> Result<Option<types::Cert>> {
        let flow = self.flow(self.flow_ref(&h)?)?;
        Ok(flow
            .server_conn
            .as_ref()
            .and_then(|s| s.cert.as_ref())
            .map(|c| types::Cert {
                subject: c.subject.clone(),
                issuer: c.issuer.clone(),
                serial: c.serial.clone(),
                not_before: c.not_before,
                not_after: c.not_after,
                sans: c.sans.clone(),
                der: c.der.clone(),
            }))
    }

    fn metadata(&mut self, h: Resource<FlowEntry>, key: String) -> Result<Option<String>> {
        Ok(self
            .flow(self.flow_ref(&h)?)?
            .metadata_get(&key)
            .map(str::to_owned))
    }

    fn set_metadata(
        &mut self,
        h: Resource<FlowEntry>,
        key: String,
        value: Option<String>,
    ) -> Result<()> {
        let r = self.flow_ref(&h)?;
        self.flow_mut(r)?.metadata_set(&key, value);
        Ok(())
    }

    fn metadata_entries(&mut self, h: Resource<FlowEntry>) -> Result<Vec<(String, String)>> {
        Ok(self.flow(self.flow_ref(&h)?)?.metadata.clone())
    }

    fn marked(&mut self, h: Resource<FlowEntry>) -> Result<bool> {
        Ok(self.flow(self.flow_ref(&h)?)?.marked)
    }

    fn set_marked(&mut self, h: Resource<FlowEntry>, marked: bool) -> Result<()> {
        let r = self.flow_ref(&h)?;
        self.flow_mut(r)?.marked = marked;
        Ok(())
    }

    fn comment(&mut self, h: Resource<FlowEntry>) -> Result<String> {
        Ok(self.flow(self.flow_ref(&h)?)?.comment.clone())
    }

    fn set_comment(&mut self, h: Resource<FlowEntry>, comment: String) -> Result<()> {
        let r = self.flow_ref(&h)?;
        self.flow_mut(r)?.comment = comment;
        Ok(())
    }

    fn kill(&mut self, h: Resource<FlowEntry>) -> Result<()> {
        let r = self.flow_ref(&h)?;
        self.flow_mut(r)?.killed = true;
        Ok(())
    }

    fn drop(&mut self, h: Resource<FlowEntry>) -> Result<()> {
        // Lent flows are only borrowed, and taken back by the host when the
        // event returns; only duplicates are the guest's to drop.
        if self.table.get(&h).is_ok_and(|entry| entry.owned_by_guest) {
            self.table.delete(h)?;
        }
        Ok(())
    }
}

impl types::HostContext for StoreState {
    fn log(&mut self, _h: Resource<ContextHandle>, level: Level, message: String) -> Result<()> {
        let plugin = &self.plugin;
        match level {
            Level::Debug => tracing::debug!(plugin = %plugin, "{message}"),
            Level::Info => tracing::info!(plugin = %plugin, "{message}"),
            Level::Warn => tracing::warn!(plugin = %plugin, "{message}"),
            Level::Error => tracing::error!(plugin = %plugin, "{message}"),
        }
        Ok(())
    }

    fn plugin_name(&mut self, _h: Resource<ContextHandle>) -> Result<String> {
        Ok(self.plugin.clone())
    }

    fn kv_get(&mut self, _h: Resource<ContextHandle>, key: String) -> Result<Option<String>> {
        Ok(self.kv.get(&key))
    }

    fn kv_set(
        &mut self,
        _h: Resource<ContextHandle>,
        key: String,
        value: Option<String>,
    ) -> Result<std::result::Result<(), HostError>> {
        Ok(self.kv.set(key, value).map_err(invalid))
    }

    fn duplicate_flow(
        &mut self,
        _h: Resource<ContextHandle>,
        flow: Resource<FlowEntry>,
    ) -> Result<Resource<FlowEntry>> {
        let mut copy = self.flow(self.flow_ref(&flow)?)?.clone();
        copy.id = Flow::new_id();
        copy.response = None;
        copy.error = None;
        copy.killed = false;
        let generation = self.generation();
        let mut entry = FlowEntry::new(copy, generation);
        entry.owned_by_guest = true;
        Ok(self.table.push(entry)?)
    }

    fn replay_request(
        &mut self,
        _h: Resource<ContextHandle>,
        flow: Resource<FlowEntry>,
    ) -> Result<std::result::Result<(), HostError>> {
        let copy = self.flow(self.flow_ref(&flow)?)?.clone();
        match self.replayer.get() {
            Some(replay) => {
                replay(copy);
                Ok(Ok(()))
            }
            None => Ok(Err(invalid(
                "replay-request: no proxy to send the request through",
            ))),
        }
    }

    fn drop(&mut self, _h: Resource<ContextHandle>) -> Result<()> {
        Ok(())
    }
}
