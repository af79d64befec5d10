//! Saving flows as they finish (`-w FILE`, mitmproxy's `save` addon): each
//! flow that got a response or an error goes to a witm flow file, written
//! on a thread of its own so the disk never holds a tokio worker.
//!
//! - The queue to the writer is bounded, by count ([`QUEUE`] flows) and by
//!   bytes ([`QUEUE_BYTES`] of bodies and headers held): when the disk falls
//!   behind, finishing flows wait for room (backpressure) rather than witm
//!   holding an unbounded backlog or dropping what it was asked to keep. A
//!   flow larger than the byte bound waits for the queue to empty.
//! - A flow too large for one record is skipped with a warning; the file
//!   stays good for the flows after it.
//! - Any other write error is loud and ends recording: logged when it
//!   happens, and at exit with how many flows were not saved after it.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use witm_flow::{Events, Flow, FlowCtx, FlowHooks};
use witm_store::{Filter, FlowWriter, StoreError};

/// Flows waiting for the writer at most.
pub const QUEUE: usize = 256;

/// Bytes of flows waiting for the writer at most (counted in KiB permits).
pub const QUEUE_BYTES: usize = 64 << 20;

/// A flow on its way to the writer, with its share of [`QUEUE_BYTES`].
struct Queued(Flow, #[allow(dead_code)] OwnedSemaphorePermit);

/// Records finished flows to a flow file.
pub struct Save {
    path: PathBuf,
    filter: Option<Filter>,
    /// `None` once [`Save::finish`] closed it (checked without a lock: the
    /// sender is taken out only there).
    queue: std::sync::RwLock<Option<mpsc::Sender<Queued>>>,
    /// KiB of flows in the queue.
    bytes: Arc<Semaphore>,
    writer: Mutex<Option<std::thread::JoinHandle<u64>>>,
    /// Flows not saved because recording stopped after a write error.
    lost: Arc<AtomicU64>,
}

impl Save {
    /// Creates (truncates) `path`, writes its header and starts the writer.
    pub fn create(path: &Path, filter: Option<Filter>) -> Result<Self, String> {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .map_err(|e| format!("cannot write flows to {}: {e}", path.display()))?;
        Self::with_file(path, file, filter)
    }

    /// As [`Save::create`], for a file already open (`path` names it in
    /// the log).
    pub fn with_file(
        path: &Path,
        file: std::fs::File,
        filter: Option<Filter>,
    ) -> Result<Self, String> {
        let mut writer = FlowWriter::for_path(file, path)
            .map_err(|e| format!("cannot write flows to {}: {e}", path.display()))?;
        let (queue, mut flows) = mpsc::channel::<Queued>(QUEUE);
        let shown = path.display().to_string();
        let lost = Arc::new(AtomicU64::new(0));
        let thread = std::thread::Builder::new()
            .name("witm-save".into())
            .spawn(move || {
                let mut saved = 0;
                while let Some(Queued(flow, _room)) = flows.blocking_recv() {
                    match writer.write(&flow) {
                        Ok(()) => saved += 1,
                        Err(e @ StoreError::TooLarge { .. }) => {
                            tracing::warn!("flow {} not saved to {shown}: {e}", flow.id);
                        }
                        Err(e) => {
                            tracing::error!(
                                "cannot write flows to {shown}: {e}; recording stopped, \
                                 later flows are not saved"
                            );
                            break;
                        }
                    }
                }
                saved
            })
            .map_err(|e| format!("cannot start the flow writer: {e}"))?;
        Ok(Self {
            path: path.to_owned(),
            filter,
            queue: std::sync::RwLock::new(Some(queue)),
            bytes: Arc::new(Semaphore::new(QUEUE_BYTES >> 10)),
            writer: Mutex::new(Some(thread)),
            lost,
        })
    }

    /// Queues `flow` for the file, waiting while the queue is full (in
    /// flows or in bytes).
    async fn record(&self, flow: &Flow) {
        if flow.killed || self.filter.as_ref().is_some_and(|f| !f.matches(flow)) {
            return;
        }
        let kib = (flow.held_bytes() >> 10).clamp(1, QUEUE_BYTES >> 10) as u32;
        let Ok(room) = self.bytes.clone().acquire_many_owned(kib).await else {
            return;
        };
        let queue = self.queue.read().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(queue) = queue
            && queue.send(Queued(flow.clone(), room)).await.is_err()
        {
            self.lost.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Closes the queue, waits for the writer to write what is queued, and
    /// logs what was saved (and lost). Returns the number saved.
    pub fn finish(&self) -> u64 {
        self.queue.write().unwrap_or_else(|e| e.into_inner()).take();
        let thread = self.writer.lock().unwrap_or_else(|e| e.into_inner()).take();
        let Some(thread) = thread else {
            return 0;
        };
        let saved = thread.join().unwrap_or(0);
        tracing::info!("saved {saved} flows to {}", self.path.display());
        let lost = self.lost.load(Ordering::Relaxed);
        if lost > 0 {
            tracing::error!(
                "{lost} flows were not saved to {} after the write error",
                self.path.display()
            );
        }
        saved
    }
}

impl FlowHooks for Save {
    type Ctx = ();
    fn subscriptions(&self) -> Events {
        // `request` too, so that request bodies are held and saved.
        Events::REQUEST | Events::RESPONSE | Events::ERROR | Events::WEBSOCKET_END | Events::TCP_END
    }
    async fn response(&self, flow: &mut Flow, _ctx: FlowCtx<'_, ()>) {
        // A WebSocket's flow is saved when it closes, with its messages.
        if !flow.is_websocket() {
            self.record(flow).await
        }
    }
    async fn websocket_end(&self, flow: &mut Flow, _ctx: FlowCtx<'_, ()>) {
        self.record(flow).await
    }
    async fn tcp_end(&self, flow: &mut Flow, _ctx: FlowCtx<'_, ()>) {
        self.record(flow).await
    }
    async fn error(&self, flow: &mut Flow, _ctx: FlowCtx<'_, ()>) {
        self.record(flow).await
    }
}

#[cfg(test)]
mod tests {
    use witm_flow::FlowState;
    use witm_flow::testing::{tflow, with_error, with_response};
    use witm_store::FlowFile;
    use witm_test_support::target_dir;

    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = target_dir().join("addons-save");
        std::fs::create_dir_all(&dir).unwrap();
        dir.join(name)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn finished_flows_are_saved_in_order_and_killed_ones_are_not() {
        let path = scratch("in-order.witm");
        let save = Save::create(&path, None).unwrap();
        for i in 0..QUEUE * 2 {
            let mut flow = with_response(tflow(&format!("http://example.com/{i}")), 200, "ok");
            save.response(&mut flow, FlowState::default().ctx()).await;
        }
        let mut failed = with_error(tflow("http://example.com/failed"), "refused");
        save.error(&mut failed, FlowState::default().ctx()).await;
        let mut killed = with_response(tflow("http://example.com/killed"), 200, "ok");
        killed.killed = true;
        save.response(&mut killed, FlowState::default().ctx()).await;
        assert_eq!(save.finish(), (QUEUE * 2 + 1) as u64);
        let flows: Vec<Flow> = FlowFile::open(&path)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(flows.len(), QUEUE * 2 + 1);
        assert_eq!(flows[0].request.url(), "http://example.com/0");
        assert_eq!(
            flows.last().unwrap().request.url(),
            "http://example.com/failed"
        );
    }

    /// The queue is bounded in bytes: while the writer is stuck on a slow
    /// disk (a FIFO nobody reads yet) with one 40 MiB flow, a second one
    /// waits instead of piling up in memory.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn large_flows_wait_for_room_in_bytes() {
        use std::time::Duration;
        let fifo = scratch("slow.fifo");
        let _ = std::fs::remove_file(&fifo);
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let (go, gate) = std::sync::mpsc::channel::<()>();
        let reader = {
            let fifo = fifo.clone();
            std::thread::spawn(move || {
                use std::io::Read;
                let mut pipe = std::fs::File::open(&fifo).unwrap();
                gate.recv().unwrap();
                let mut all = Vec::new();
                pipe.read_to_end(&mut all).unwrap();
                all.len()
            })
        };
        let file = std::fs::OpenOptions::new().write(true).open(&fifo);
        let save = Save::with_file(&fifo, file.unwrap(), None);
        // The header fits the pipe's buffer; the flows do not.
        let save = save.unwrap();
        let big = || with_response(tflow("http://example.com/big"), 200, vec![b'x'; 40 << 20]);
        save.response(&mut big(), FlowState::default().ctx()).await;
        let second = tokio::time::timeout(
            Duration::from_millis(300),
            save.response(&mut big(), FlowState::default().ctx()),
        )
        .await;
        assert!(
            second.is_err(),
            "the second 40 MiB flow was queued past 64 MiB"
        );
        go.send(()).unwrap();
        save.response(&mut big(), FlowState::default().ctx()).await;
        assert_eq!(save.finish(), 2);
        assert!(reader.join().unwrap() > 80 << 20);
    }

    /// A real write error: the file is a FIFO whose reader goes away after
    /// the first flow, so the next write fails (EPIPE).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_error_stops_recording_and_counts_what_was_lost() {
        let fifo = scratch("broken.fifo");
        let _ = std::fs::remove_file(&fifo);
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let reader = {
            let fifo = fifo.clone();
            std::thread::spawn(move || {
                use std::io::Read;
                let mut pipe = std::fs::File::open(&fifo).unwrap();
                let mut header = [0u8; 13];
                pipe.read_exact(&mut header).unwrap();
                // Gone before any flow arrives.
            })
        };
        let file = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
        let save = Save::with_file(&fifo, file, None).unwrap();
        reader.join().unwrap();
        for i in 0..10 {
            let mut flow = with_response(tflow(&format!("http://example.com/{i}")), 200, "ok");
            save.response(&mut flow, FlowState::default().ctx()).await;
        }
        // Wait for the writer to hit the error and close its queue.
        let started = std::time::Instant::now();
        while save.lost.load(Ordering::Relaxed) == 0 {
            assert!(started.elapsed() < std::time::Duration::from_secs(5));
            let mut flow = with_response(tflow("http://example.com/more"), 200, "ok");
            save.response(&mut flow, FlowState::default().ctx()).await;
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(save.finish(), 0, "nothing reached the file");
        assert!(save.lost.load(Ordering::Relaxed) >= 1);
    }
}
