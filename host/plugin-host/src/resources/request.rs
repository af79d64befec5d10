//! `request`: a flow's request.

use wasmtime::component::Resource;

use super::{
    FlowRef, HeadersHandle, HostResult, MessageRef, RequestHandle, Result, invalid, stale,
};
use crate::bindings::types;
use crate::state::HostView;

impl HostView<'_> {
    fn request_flow(&self, h: &Resource<RequestHandle>) -> Result<FlowRef> {
        Ok(self.views.requests.get(h).ok_or_else(stale)?.0)
    }

    fn request(&self, h: &Resource<RequestHandle>) -> Result<&witm_flow::Request> {
        Ok(&self.flow(self.request_flow(h)?)?.request)
    }

    fn request_mut(&mut self, h: &Resource<RequestHandle>) -> Result<&mut witm_flow::Request> {
        let r = self.request_flow(h)?;
        self.flow_request_mut(r)
    }

    fn request_message(&self, h: &Resource<RequestHandle>) -> Result<MessageRef> {
        Ok(MessageRef::Request(self.request_flow(h)?))
    }
}

/// RFC 9110 token characters: what a method may be made of.
fn http_method_is_valid(method: &str) -> bool {
    http::Method::from_bytes(method.as_bytes()).is_ok()
}

impl types::HostRequest for HostView<'_> {
    fn method(&mut self, h: Resource<RequestHandle>) -> Result<String> {
        Ok(self.request(&h)?.method.clone())
    }

    fn set_method(&mut self, h: Resource<RequestHandle>, method: String) -> HostResult<()> {
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

    fn set_path(&mut self, h: Resource<RequestHandle>, path: String) -> HostResult<()> {
        // A valid URI path is under 64 KiB (the `http` crate's limit): a
        // replacement, bounded, not charged.
        if !path.starts_with('/') || path.parse::<http::uri::PathAndQuery>().is_err() {
            return Ok(Err(invalid(format!(
                "invalid path {:?}: it must start with '/' and be a valid URI path",
                path.chars().take(200).collect::<String>()
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

    fn set_url(&mut self, h: Resource<RequestHandle>, url: String) -> HostResult<()> {
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
        let m = self.request_message(&h)?;
        self.push_view(|v| &mut v.headers, HeadersHandle::headers(m))
    }

    fn trailers(&mut self, h: Resource<RequestHandle>) -> Result<Resource<HeadersHandle>> {
        let m = self.request_message(&h)?;
        self.push_view(|v| &mut v.headers, HeadersHandle::trailers(m))
    }

    fn body(&mut self, h: Resource<RequestHandle>) -> HostResult<Vec<u8>> {
        self.body_of(self.request_message(&h)?)
    }

    fn set_body(&mut self, h: Resource<RequestHandle>, body: Vec<u8>) -> HostResult<()> {
        self.set_body_of(self.request_message(&h)?, body)
    }

    fn timestamp_start(&mut self, h: Resource<RequestHandle>) -> Result<u64> {
        Ok(self.request(&h)?.timestamp_start)
    }

    async fn content(&mut self, h: Resource<RequestHandle>) -> HostResult<Vec<u8>> {
        self.content_of(self.request_message(&h)?).await
    }

    async fn set_content(
        &mut self,
        h: Resource<RequestHandle>,
        content: Vec<u8>,
    ) -> HostResult<()> {
        self.set_content_of(self.request_message(&h)?, content)
            .await
    }

    async fn text(&mut self, h: Resource<RequestHandle>) -> HostResult<String> {
        self.text_of(self.request_message(&h)?).await
    }

    async fn set_text(&mut self, h: Resource<RequestHandle>, text: String) -> HostResult<()> {
        self.set_text_of(self.request_message(&h)?, text).await
    }

    fn query(&mut self, h: Resource<RequestHandle>) -> Result<Vec<(String, String)>> {
        Ok(self.request(&h)?.query())
    }

    fn set_query(
        &mut self,
        h: Resource<RequestHandle>,
        pairs: Vec<(String, String)>,
    ) -> Result<()> {
        // set-query cannot fail in the WIT: a query the budget cannot hold
        // ends the call.
        let added: usize = pairs.iter().map(|(k, v)| 3 * (k.len() + v.len()) + 2).sum();
        let r = self.request_flow(&h)?;
        let removed = self.request(&h)?.path.len();
        if let Err(e) = self.charge_flow(r, added, removed)? {
            return Err(wasmtime::format_err!("set-query: {e:?}"));
        }
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
        self.views.requests.discard(&h);
        Ok(())
    }
}
