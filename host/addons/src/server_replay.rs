//! Server replay (`--server-replay FILE`, mitmproxy's `serverplayback`):
//! requests are answered from saved responses, matched on method, URL and
//! body; what no saved flow matches is forwarded, killed or answered with a
//! status, as asked.
//!
//! Stacked after the plugins, so a plugin may still change what is matched
//! or answer itself.

use std::collections::{HashMap, VecDeque};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Mutex;

use witm_flow::{Events, Flow, FlowCtx, FlowHooks, Response};

/// What a request is matched on: method, URL and body, as mitmproxy's
/// server replay does by default.
#[derive(Clone, PartialEq, Eq, Hash)]
struct RequestKey {
    method: String,
    url: String,
    body: u64,
}

impl RequestKey {
    fn of(flow: &Flow) -> Self {
        let mut hasher = DefaultHasher::new();
        flow.request
            .body
            .bytes()
            .map(|b| b.as_ref())
            .hash(&mut hasher);
        Self {
            method: flow.request.method.to_ascii_uppercase(),
            url: flow.request.url(),
            body: hasher.finish(),
        }
    }
}

/// What to do with a request no saved flow matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unmatched {
    /// Send it to the server as usual.
    Forward,
    /// Drop the client connection.
    Kill,
    /// Answer with this status.
    Status(u16),
}

impl std::str::FromStr for Unmatched {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "forward" => Ok(Unmatched::Forward),
            "kill" => Ok(Unmatched::Kill),
            code => code
                .parse()
                .ok()
                .filter(|c| (100..=599).contains(c))
                .map(Unmatched::Status)
                .ok_or_else(|| format!("{s:?}: expected forward, kill or a status code like 404")),
        }
    }
}

/// Answers requests from saved responses (`--server-replay`).
pub struct ServerReplay {
    responses: Mutex<HashMap<RequestKey, VecDeque<Response>>>,
    unmatched: Unmatched,
    reuse: bool,
}

impl ServerReplay {
    /// Indexes the responses of `flows`; flows without one are ignored.
    pub fn new(flows: impl IntoIterator<Item = Flow>, unmatched: Unmatched, reuse: bool) -> Self {
        let mut responses: HashMap<RequestKey, VecDeque<Response>> = HashMap::new();
        for mut flow in flows {
            if let Some(response) = flow.response.take() {
                responses
                    .entry(RequestKey::of(&flow))
                    .or_default()
                    .push_back(response);
            }
        }
        Self {
            responses: Mutex::new(responses),
            unmatched,
            reuse,
        }
    }

    /// How many saved responses are waiting to be served.
    pub fn waiting(&self) -> usize {
        self.responses
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .map(VecDeque::len)
            .sum()
    }

    /// Sets the flow's response from the next saved one for its request, or
    /// applies the unmatched policy. Each saved response is served once
    /// (in order) unless `reuse` is set, like mitmproxy.
    fn answer(&self, flow: &mut Flow) {
        let key = RequestKey::of(flow);
        let saved = {
            let mut responses = self.responses.lock().unwrap_or_else(|e| e.into_inner());
            match responses.get_mut(&key) {
                Some(queue) if self.reuse => queue.front().cloned(),
                Some(queue) => queue.pop_front(),
                None => None,
            }
        };
        match (saved, self.unmatched) {
            (Some(mut response), _) => {
                response.timestamp_start = witm_flow::now_ms();
                flow.response = Some(response);
                flow.metadata_set("replay", Some("response".into()));
                flow.is_replay = Some(witm_flow::ReplaySide::Response);
            }
            (None, Unmatched::Forward) => {}
            (None, Unmatched::Kill) => flow.killed = true,
            (None, Unmatched::Status(status)) => {
                let body = format!(
                    "witm: no saved response for {} {}\n",
                    flow.request.method,
                    flow.request.url()
                );
                flow.response = Some(Response::make(
                    status,
                    witm_flow::Headers::from_pairs([("content-type", "text/plain")]),
                    body,
                ));
            }
        }
    }
}

impl FlowHooks for ServerReplay {
    type Ctx = ();
    fn subscriptions(&self) -> Events {
        Events::REQUEST
    }
    async fn request(&self, flow: &mut Flow, _ctx: FlowCtx<'_, ()>) {
        if flow.response.is_none() && !flow.killed {
            self.answer(flow);
        }
    }
}

#[cfg(test)]
mod tests {
    use witm_flow::HttpMessage;
    use witm_flow::testing::{tflow, trequest, with_response};

    use super::*;

    fn saved() -> Vec<Flow> {
        vec![
            with_response(tflow("http://example.com/a"), 200, "first a"),
            with_response(tflow("http://example.com/a"), 200, "second a"),
            with_response(trequest("POST", "http://example.com/form", "x=1"), 201, "x"),
        ]
    }

    async fn ask(replay: &ServerReplay, mut flow: Flow) -> Flow {
        replay
            .request(&mut flow, witm_flow::FlowState::default().ctx())
            .await;
        flow
    }

    #[tokio::test]
    async fn saved_responses_are_served_once_each_in_order_then_the_policy() {
        let replay = ServerReplay::new(saved(), Unmatched::Status(404), false);
        assert_eq!(replay.waiting(), 3);
        let body = |flow: &Flow| {
            flow.response
                .as_ref()
                .map(|r| r.content().unwrap().to_vec())
        };
        let first = ask(&replay, tflow("http://example.com/a")).await;
        assert_eq!(body(&first).unwrap(), b"first a");
        assert_eq!(
            first.metadata_get("replay"),
            Some(&witm_flow::MetaValue::from("response"))
        );
        let second = ask(&replay, tflow("http://example.com/a")).await;
        assert_eq!(body(&second).unwrap(), b"second a");
        let third = ask(&replay, tflow("http://example.com/a")).await;
        assert_eq!(third.response.as_ref().unwrap().status, 404);
        // The body is part of the match.
        let other_body = ask(&replay, trequest("POST", "http://example.com/form", "x=2")).await;
        assert_eq!(other_body.response.as_ref().unwrap().status, 404);
        let same_body = ask(&replay, trequest("POST", "http://example.com/form", "x=1")).await;
        assert_eq!(same_body.response.as_ref().unwrap().status, 201);
    }

    #[tokio::test]
    async fn forward_kill_and_reuse() {
        let forward = ServerReplay::new(saved(), Unmatched::Forward, true);
        for _ in 0..3 {
            let again = ask(&forward, tflow("http://example.com/a")).await;
            assert_eq!(again.response.unwrap().content().unwrap(), b"first a");
        }
        let unmatched = ask(&forward, tflow("http://example.com/new")).await;
        assert!(unmatched.response.is_none() && !unmatched.killed);
        let kill = ServerReplay::new(saved(), Unmatched::Kill, false);
        assert!(ask(&kill, tflow("http://example.com/new")).await.killed);
        // A response a plugin already set is left alone.
        let answered = with_response(tflow("http://example.com/a"), 204, "");
        let kept = ask(&kill, answered).await;
        assert_eq!(kept.response.unwrap().status, 204);
    }
}
