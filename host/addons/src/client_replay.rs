//! Client replay (`--client-replay FILE`, mitmproxy's `clientplayback`):
//! the saved requests are sent again, one after another, through the proxy
//! and its hooks, as if their client had sent them.

use witm_flow::{Flow, Replayer};

/// Sends each of `flows` through `replayer` in order, each once the one
/// before has its response; returns how many were sent. TCP flows are not
/// sent (as mitmproxy's client replay, which replays HTTP only).
pub async fn replay_all(flows: Vec<Flow>, replayer: Replayer) -> usize {
    let mut count = 0;
    for flow in flows.into_iter().filter(|f| !f.is_tcp()) {
        replayer(flow).await;
        count += 1;
    }
    tracing::info!("client replay: {count} requests sent again");
    count
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use witm_flow::testing::tflow;

    use super::*;

    #[tokio::test]
    async fn requests_go_one_after_another_in_order() {
        let sent = Arc::new(Mutex::new(Vec::new()));
        let replayer: Replayer = {
            let sent = sent.clone();
            Arc::new(move |flow: Flow| {
                let sent = sent.clone();
                Box::pin(async move {
                    sent.lock()
                        .unwrap()
                        .push(format!("start {}", flow.request.path));
                    tokio::task::yield_now().await;
                    sent.lock()
                        .unwrap()
                        .push(format!("end {}", flow.request.path));
                })
            })
        };
        let flows = vec![tflow("http://a.example/1"), tflow("http://a.example/2")];
        assert_eq!(replay_all(flows, replayer).await, 2);
        assert_eq!(
            *sent.lock().unwrap(),
            ["start /1", "end /1", "start /2", "end /2"]
        );
    }
}
