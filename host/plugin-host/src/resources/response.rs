//! `response`: a flow's response, or one the plugin made with the
//! constructor (charged to the budget while the plugin holds it).

use wasmtime::component::Resource;
use witm_flow::headers::{FIELD_OVERHEAD, validate};
use witm_flow::{Headers, HttpMessage, Response};

use super::headers::check_limits;
use super::{HeadersHandle, HostResult, MessageRef, ResponseHandle, Result, invalid};
use crate::bindings::types;
use crate::state::HostView;

impl HostView<'_> {
    fn response(&self, h: &Resource<ResponseHandle>) -> Result<&Response> {
        Ok(match self.response_ref(h)? {
            MessageRef::Response(r) => self.flow(r)?.response.as_ref().ok_or_else(super::stale)?,
            MessageRef::Detached { rep, generation } => self.detached(rep, generation)?,
            MessageRef::Request(_) => unreachable!("a response handle names a response"),
        })
    }

    fn response_mut(&mut self, h: &Resource<ResponseHandle>) -> Result<&mut Response> {
        Ok(match self.response_ref(h)? {
            MessageRef::Response(r) => self.flow_response_mut(r)?,
            MessageRef::Detached { rep, generation } => self.detached_mut(rep, generation)?.0,
            MessageRef::Request(_) => unreachable!("a response handle names a response"),
        })
    }
}

impl types::HostResponse for HostView<'_> {
    fn new(
        &mut self,
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    ) -> Result<Resource<ResponseHandle>> {
        // A constructor cannot return an error: what the wire would refuse
        // is dropped and logged; what is past the limits or the budget ends
        // the call (the host never builds it).
        let bytes: usize = headers.iter().map(|(n, v)| n.len() + v.len()).sum();
        if let Err(e) = check_limits(headers.len(), bytes) {
            return Err(wasmtime::format_err!("Response constructor: {e:?}"));
        }
        let held = bytes + headers.len() * FIELD_OVERHEAD + body.len();
        if let Err(e) = self.host.budget.reserve(held) {
            return Err(wasmtime::format_err!("Response constructor: {e:?}"));
        }
        let plugin = self.host.shared.log.plugin().to_owned();
        let valid = headers
            .into_iter()
            .filter(|(n, v)| match validate(n, v.as_bytes()) {
                Ok(()) => true,
                Err(e) => {
                    tracing::warn!(plugin = %plugin, "Response constructor: {e}; header dropped");
                    false
                }
            });
        let mut response =
            Response::make(status, Headers::from_pairs(valid.collect::<Vec<_>>()), body);
        if !(100..=999).contains(&status) {
            tracing::warn!(plugin = %plugin, "Response constructor: status {status} is not a valid HTTP status; using 500");
            response = Response::make(
                500,
                response.headers,
                response.body.bytes().cloned().unwrap_or_default(),
            );
        }
        let generation = self.host.generation();
        let pushed = self.push_view(
            |v| &mut v.responses,
            ResponseHandle::Detached {
                response: Box::new(response),
                generation,
                charged: held,
            },
        );
        if pushed.is_err() {
            self.host.budget.release(held);
        }
        pushed
    }

    fn status(&mut self, h: Resource<ResponseHandle>) -> Result<u16> {
        Ok(self.response(&h)?.status)
    }

    fn set_status(&mut self, h: Resource<ResponseHandle>, status: u16) -> HostResult<()> {
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
        let m = self.response_ref(&h)?;
        self.push_view(|v| &mut v.headers, HeadersHandle::headers(m))
    }

    fn trailers(&mut self, h: Resource<ResponseHandle>) -> Result<Resource<HeadersHandle>> {
        let m = self.response_ref(&h)?;
        self.push_view(|v| &mut v.headers, HeadersHandle::trailers(m))
    }

    fn body(&mut self, h: Resource<ResponseHandle>) -> HostResult<Vec<u8>> {
        self.body_of(self.response_ref(&h)?)
    }

    fn set_body(&mut self, h: Resource<ResponseHandle>, body: Vec<u8>) -> HostResult<()> {
        self.set_body_of(self.response_ref(&h)?, body)
    }

    async fn content(&mut self, h: Resource<ResponseHandle>) -> HostResult<Vec<u8>> {
        self.content_of(self.response_ref(&h)?).await
    }

    async fn set_content(
        &mut self,
        h: Resource<ResponseHandle>,
        content: Vec<u8>,
    ) -> HostResult<()> {
        self.set_content_of(self.response_ref(&h)?, content).await
    }

    async fn text(&mut self, h: Resource<ResponseHandle>) -> HostResult<String> {
        self.text_of(self.response_ref(&h)?).await
    }

    async fn set_text(&mut self, h: Resource<ResponseHandle>, text: String) -> HostResult<()> {
        self.set_text_of(self.response_ref(&h)?, text).await
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
        if let Some(ResponseHandle::Detached { charged, .. }) = self.views.responses.remove(&h) {
            self.host.budget.release(charged);
        }
        Ok(())
    }
}

/// What a response costs the budget when copied into a flow.
pub(super) fn copy_cost(response: &Response) -> usize {
    response.held_bytes()
}
