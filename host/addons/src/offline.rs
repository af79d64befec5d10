//! A saved flow run through hooks with no network (`witm replay -r FILE`):
//! the events it would have had — `request`, then `response` if it has
//! one, `error` if it has one — each in one fresh flow context; a TCP flow
//! has `tcp-end` only (so `-w` saves it again).

use witm_flow::{Events, Flow, FlowHooks, FlowState};

/// Runs `flow`'s events through `hooks` (those it subscribes to).
pub async fn run_events<H: FlowHooks>(hooks: &H, flow: &mut Flow) {
    let events = hooks.subscriptions();
    let mut state = FlowState::<H::Ctx>::default();
    if flow.is_tcp() {
        if events.contains(Events::TCP_END) {
            hooks.tcp_end(flow, state.ctx()).await;
        }
        return;
    }
    if events.contains(Events::REQUEST) {
        hooks.request(flow, state.ctx()).await;
    }
    if flow.response.is_some() && events.contains(Events::RESPONSE) {
        hooks.response(flow, state.ctx()).await;
    }
    if flow.error.is_some() && events.contains(Events::ERROR) {
        hooks.error(flow, state.ctx()).await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use witm_flow::FlowCtx;
    use witm_flow::testing::{tflow, with_error, with_response};

    use super::*;

    /// Notes the events it gets.
    #[derive(Default)]
    struct Seen(Mutex<Vec<&'static str>>);

    impl FlowHooks for Seen {
        type Ctx = ();
        fn subscriptions(&self) -> Events {
            Events::REQUEST | Events::RESPONSE | Events::ERROR
        }
        async fn request(&self, _flow: &mut Flow, _ctx: FlowCtx<'_, ()>) {
            self.0.lock().unwrap().push("request");
        }
        async fn response(&self, _flow: &mut Flow, _ctx: FlowCtx<'_, ()>) {
            self.0.lock().unwrap().push("response");
        }
        async fn error(&self, _flow: &mut Flow, _ctx: FlowCtx<'_, ()>) {
            self.0.lock().unwrap().push("error");
        }
    }

    #[tokio::test]
    async fn a_flow_gets_the_events_it_had() {
        let seen = Seen::default();
        run_events(
            &seen,
            &mut with_response(tflow("http://a.example/"), 200, "ok"),
        )
        .await;
        run_events(
            &seen,
            &mut with_error(tflow("http://a.example/"), "refused"),
        )
        .await;
        run_events(&seen, &mut tflow("http://a.example/")).await;
        assert_eq!(
            *seen.0.lock().unwrap(),
            ["request", "response", "request", "error", "request"]
        );
    }
}
