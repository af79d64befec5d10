//! `flow`: one HTTP transaction, lent for an event or duplicated by the
//! plugin (then charged to its budget until it drops the copy).

use wasmtime::component::Resource;
use witm_flow::flow::METADATA_OVERHEAD;
use witm_flow::{ErrorKind, MetaValue, ProxyUrl, Route};

use super::response::copy_cost;
use super::{
    ClientConnHandle, FlowEntry, HostResult, RequestHandle, ResponseHandle, Result, invalid, stale,
    wit_cert,
};
use crate::bindings::types;
use crate::state::HostView;

impl types::HostFlow for HostView<'_> {
    fn id(&mut self, h: Resource<FlowEntry>) -> Result<String> {
        Ok(self.flow(self.flow_ref(&h)?)?.id.clone())
    }

    fn client_conn(&mut self, h: Resource<FlowEntry>) -> Result<Resource<ClientConnHandle>> {
        let conn = self.flow(self.flow_ref(&h)?)?.client.clone();
        self.push(ClientConnHandle(conn))
    }

    fn request(&mut self, h: Resource<FlowEntry>) -> Result<Resource<RequestHandle>> {
        let r = self.flow_ref(&h)?;
        self.push_view(|v| &mut v.requests, RequestHandle(r))
    }

    fn response(&mut self, h: Resource<FlowEntry>) -> Result<Option<Resource<ResponseHandle>>> {
        let r = self.flow_ref(&h)?;
        if self.flow(r)?.response.is_none() {
            return Ok(None);
        }
        Ok(Some(self.push_view(
            |v| &mut v.responses,
            ResponseHandle::OfFlow(r),
        )?))
    }

    fn set_response(
        &mut self,
        h: Resource<FlowEntry>,
        response: Resource<ResponseHandle>,
    ) -> Result<()> {
        let r = self.flow_ref(&h)?;
        // A response the plugin made brings its charge along; a copy of
        // another flow's response is charged here.
        let (new, charged) = match self.views.responses.remove(&response).ok_or_else(stale)? {
            ResponseHandle::Detached {
                response, charged, ..
            } => (*response, charged),
            ResponseHandle::OfFlow(of) => {
                let copy = self.flow(of)?.response.clone().ok_or_else(stale)?;
                let cost = copy_cost(&copy);
                self.host
                    .budget
                    .reserve(cost)
                    .map_err(|e| wasmtime::format_err!("set-response: {e:?}"))?;
                (copy, cost)
            }
        };
        let old = self.flow(r)?.response.as_ref().map_or(0, copy_cost);
        self.entry_mut(r)?.charged += charged;
        let _ = self.charge_flow(r, 0, old)?;
        self.flow_mut(r)?.response = Some(new);
        Ok(())
    }

    fn error(&mut self, h: Resource<FlowEntry>) -> Result<Option<types::Error>> {
        Ok(self
            .flow(self.flow_ref(&h)?)?
            .error
            .as_ref()
            .map(|e| types::Error {
                kind: error_kind(e.kind),
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
            .map(wit_cert))
    }

    fn metadata(&mut self, h: Resource<FlowEntry>, key: String) -> Result<Option<String>> {
        Ok(self
            .flow(self.flow_ref(&h)?)?
            .metadata_get(&key)
            .map(|v| v.text().into_owned()))
    }

    fn set_metadata(
        &mut self,
        h: Resource<FlowEntry>,
        key: String,
        value: Option<String>,
    ) -> Result<()> {
        let r = self.flow_ref(&h)?;
        let value = value.map(MetaValue::Str);
        let cost = |v: &MetaValue| key.len() + v.held_bytes() + METADATA_OVERHEAD;
        let removed = self.flow(r)?.metadata_get(&key).map_or(0, cost);
        let added = value.as_ref().map_or(0, cost);
        // set-metadata cannot fail in the WIT: past the budget the call ends.
        if let Err(e) = self.charge_flow(r, added, removed)? {
            return Err(wasmtime::format_err!("set-metadata: {e:?}"));
        }
        self.flow_mut(r)?.metadata_set(&key, value);
        Ok(())
    }

    fn metadata_entries(&mut self, h: Resource<FlowEntry>) -> Result<Vec<(String, String)>> {
        Ok(self
            .flow(self.flow_ref(&h)?)?
            .metadata
            .iter()
            .map(|(k, v)| (k.clone(), v.text().into_owned()))
            .collect())
    }

    fn marked(&mut self, h: Resource<FlowEntry>) -> Result<bool> {
        Ok(self.flow(self.flow_ref(&h)?)?.is_marked())
    }

    fn set_marked(&mut self, h: Resource<FlowEntry>, marked: bool) -> Result<()> {
        let r = self.flow_ref(&h)?;
        self.flow_mut(r)?.set_marked(marked);
        Ok(())
    }

    fn comment(&mut self, h: Resource<FlowEntry>) -> Result<String> {
        Ok(self.flow(self.flow_ref(&h)?)?.comment.clone())
    }

    fn set_comment(&mut self, h: Resource<FlowEntry>, comment: String) -> Result<()> {
        let r = self.flow_ref(&h)?;
        let removed = self.flow(r)?.comment.len();
        if let Err(e) = self.charge_flow(r, comment.len(), removed)? {
            return Err(wasmtime::format_err!("set-comment: {e:?}"));
        }
        self.flow_mut(r)?.comment = comment;
        Ok(())
    }

    fn kill(&mut self, h: Resource<FlowEntry>) -> Result<()> {
        let r = self.flow_ref(&h)?;
        self.flow_mut(r)?.killed = true;
        Ok(())
    }

    fn set_upstream(&mut self, h: Resource<FlowEntry>, proxy: Option<String>) -> HostResult<()> {
        let r = self.flow_ref(&h)?;
        let route = match proxy {
            None => Route::Direct,
            Some(url) => match ProxyUrl::parse(&url) {
                Ok(proxy) => Route::Via(proxy.into()),
                Err(e) => return Ok(Err(invalid(e))),
            },
        };
        self.flow_mut(r)?.route = Some(route);
        Ok(Ok(()))
    }

    fn upstream(&mut self, h: Resource<FlowEntry>) -> Result<Option<String>> {
        Ok(match &self.flow(self.flow_ref(&h)?)?.route {
            Some(Route::Via(proxy)) => Some(proxy.to_string()),
            _ => None,
        })
    }

    fn drop(&mut self, h: Resource<FlowEntry>) -> Result<()> {
        // Lent flows are only borrowed, and taken back by the host when the
        // event returns; only duplicates are the guest's to drop.
        let duplicate = self
            .views
            .flows
            .get(&h)
            .filter(|entry| entry.owned_by_guest);
        if let Some(charged) = duplicate.map(|entry| entry.charged) {
            self.views.flows.discard(&h);
            self.host.budget.release(charged);
        }
        Ok(())
    }
}

/// The WIT's name for where an error came from.
fn error_kind(kind: ErrorKind) -> types::ErrorKind {
    match kind {
        ErrorKind::Client => types::ErrorKind::Client,
        ErrorKind::Server => types::ErrorKind::Server,
        ErrorKind::Timeout => types::ErrorKind::Timeout,
        ErrorKind::Tls => types::ErrorKind::Tls,
        ErrorKind::Plugin => types::ErrorKind::Plugin,
        ErrorKind::Internal => types::ErrorKind::Internal,
    }
}
