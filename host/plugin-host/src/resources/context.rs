//! `context`: the plugin's link to the proxy — its log (rate-limited), its
//! key-value store (bounded in bytes), copies of flows (charged to the
//! budget), replays and outbound HTTP (capabilities, checked by
//! [`crate::replay`] and [`crate::outbound`]) and the tick period.

use wasmtime::component::Resource;
use witm_flow::Flow;

use super::{ContextHandle, FlowEntry, HostResult, Result};
use crate::bindings::types::{self, Level};
use crate::state::HostView;

impl types::HostContext for HostView<'_> {
    fn log(&mut self, _h: Resource<ContextHandle>, level: Level, message: String) -> Result<()> {
        self.host.shared.log.line(level, "log", message.as_bytes());
        Ok(())
    }

    fn plugin_name(&mut self, _h: Resource<ContextHandle>) -> Result<String> {
        Ok(self.host.shared.log.plugin().to_owned())
    }

    fn kv_get(&mut self, _h: Resource<ContextHandle>, key: String) -> Result<Option<String>> {
        Ok(self.host.shared.kv.get(&key))
    }

    fn kv_set(
        &mut self,
        _h: Resource<ContextHandle>,
        key: String,
        value: Option<String>,
    ) -> HostResult<()> {
        Ok(self
            .host
            .shared
            .kv
            .set(key, value, self.host.settings.kv_bytes))
    }

    fn duplicate_flow(
        &mut self,
        _h: Resource<ContextHandle>,
        flow: Resource<FlowEntry>,
    ) -> Result<Resource<FlowEntry>> {
        let r = self.flow_ref(&flow)?;
        // The copy's bytes, and its entry's own (~900 bytes), which a
        // slot holds as long as the plugin keeps the copy.
        let cost = self.flow(r)?.held_bytes() + std::mem::size_of::<FlowEntry>();
        // duplicate-flow cannot fail in the WIT: past the budget the call ends.
        self.host
            .budget
            .reserve(cost)
            .map_err(|e| wasmtime::format_err!("duplicate-flow: {e:?}"))?;
        let mut copy = self.flow(r)?.clone();
        copy.id = Flow::new_id();
        copy.response = None;
        copy.error = None;
        copy.killed = false;
        let generation = self.host.generation();
        let mut entry = FlowEntry::new(copy, generation);
        entry.owned_by_guest = true;
        entry.charged = cost;
        let pushed = self.push_view(|v| &mut v.flows, entry);
        if pushed.is_err() {
            self.host.budget.release(cost);
        }
        pushed
    }

    async fn replay_request(
        &mut self,
        _h: Resource<ContextHandle>,
        flow: Resource<FlowEntry>,
    ) -> HostResult<()> {
        let copy = self.flow(self.flow_ref(&flow)?)?.clone();
        let gate = self.host.shared.replay.clone();
        let settings = self.host.settings.clone();
        Ok(gate.replay(copy, &settings, self.host.deadline).await)
    }

    async fn http_send(
        &mut self,
        _h: Resource<ContextHandle>,
        request: types::OutgoingRequest,
    ) -> HostResult<types::IncomingResponse> {
        // The request is held for the whole call, which may wait long:
        // charged to the instance's host memory while it is.
        let held = request.url.len()
            + request.body.len()
            + request
                .headers
                .iter()
                .map(|(name, value)| name.len() + value.len())
                .sum::<usize>();
        if let Err(e) = self.host.budget.reserve(held) {
            return Ok(Err(e));
        }
        let gate = self.host.shared.outbound.clone();
        let settings = self.host.settings.clone();
        let calls = self.host.outbound_calls;
        self.host.outbound_calls = calls.saturating_add(1);
        let outcome = gate
            .send(request, &settings, self.host.deadline, calls)
            .await;
        self.host.budget.release(held);
        Ok(outcome)
    }

    fn set_tick(&mut self, _h: Resource<ContextHandle>, period_ms: u32) -> HostResult<()> {
        Ok(self.host.shared.tick.set(period_ms, &self.host.settings))
    }

    fn drop(&mut self, _h: Resource<ContextHandle>) -> Result<()> {
        Ok(())
    }
}
