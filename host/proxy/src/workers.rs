//! Thread per core: the threads that serve client connections, each with
//! its own single-threaded tokio runtime, and a connection served from
//! accept to close by one of them.
//!
//! As nginx's workers and Envoy's `--concurrency`: a connection's tasks
//! (its flows, its server connections, their timers) stay on the thread
//! that took it, so they wake each other without a signal to another core
//! and without the atomics a shared run queue needs. tokio's work-stealing
//! runtime moved them between its workers instead: on the 2-core bench
//! machine, two threads of this kind served 1.07x the requests per second
//! of its two workers with no plugin and 1.085x with add-header, and
//! 1.12x and 1.14x more with a pool of server connections per thread
//! (`Shared::upstream`; bench/README.md, the fifth pass).
//!
//! Each accepted connection goes to the thread serving the fewest (in
//! turn among equals; the listener stays on the runtime that called
//! [`crate::Proxy::serve`]). Once there it stays: a thread with a busy
//! connection is not relieved by the others, as in Envoy.

use std::cell::Cell;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::net::TcpStream;
use tokio::runtime::Handle;
use tokio::sync::oneshot;

/// tokio's default bound on one runtime's threads for blocking work.
const BLOCKING_THREADS: usize = 512;

thread_local! {
    /// Which worker thread this is, set as it starts.
    static WORKER: Cell<Option<usize>> = const { Cell::new(None) };
}

/// The worker thread the caller runs on (0, 1, …), `None` off them: for
/// what each thread keeps its own of (its server connections).
pub(crate) fn current() -> Option<usize> {
    WORKER.with(Cell::get)
}

/// One `T` per thread that keeps its own (first the one for threads that
/// are not workers, then one per worker, as [`of_this_thread`] reads
/// them): `make` is told how many there are, to share a bound out.
pub(crate) fn per_thread<T>(workers: usize, mut make: impl FnMut(usize) -> T) -> Vec<T> {
    (0..=workers).map(|_| make(workers + 1)).collect()
}

/// The calling thread's own of what [`per_thread`] made.
pub(crate) fn of_this_thread<T>(made: &[T]) -> &T {
    let own = current().map_or(0, |n| n + 1);
    &made[own.min(made.len() - 1)]
}

/// Each of `pools` pools' part of a bound of `total` (at least 1): what
/// they keep together stays within `total` however many threads there
/// are (or one each, past `total` threads).
pub(crate) fn share(total: usize, pools: usize) -> usize {
    (total / pools.max(1)).max(1)
}

/// The connection-serving threads (see the module's documentation).
/// Dropping it stops them, with whatever they still run.
pub struct Workers {
    handles: Vec<Handle>,
    /// Each thread runs until its sender is dropped.
    _stops: Vec<oneshot::Sender<()>>,
    /// The connections each thread serves now.
    serving: Arc<[AtomicUsize]>,
    /// Where the next look for the least busy thread starts.
    next: AtomicUsize,
}

/// One connection counted in [`Workers::serving`] while it is served.
struct Serving {
    serving: Arc<[AtomicUsize]>,
    at: usize,
}

impl Drop for Serving {
    fn drop(&mut self) {
        self.serving[self.at].fetch_sub(1, Ordering::Relaxed);
    }
}

impl std::fmt::Debug for Workers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workers")
            .field("threads", &self.handles.len())
            .finish()
    }
}

impl Workers {
    /// Starts `threads` threads (at least one), named `witm-worker-N`.
    pub fn start(threads: usize) -> std::io::Result<Workers> {
        let threads = threads.max(1);
        let mut handles = Vec::with_capacity(threads);
        let mut stops = Vec::with_capacity(threads);
        for n in 0..threads {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                // The threads for blocking work (a plugin's large body
                // coded) stay as many in all as one runtime's default.
                .max_blocking_threads((BLOCKING_THREADS / threads).max(1))
                .build()?;
            let (stop, stopped) = oneshot::channel::<()>();
            handles.push(runtime.handle().clone());
            stops.push(stop);
            std::thread::Builder::new()
                .name(format!("witm-worker-{n}"))
                .spawn(move || {
                    WORKER.with(|worker| worker.set(Some(n)));
                    // Runs the spawned connections until told to stop.
                    let _ = runtime.block_on(stopped);
                })?;
        }
        Ok(Workers {
            handles,
            _stops: stops,
            serving: (0..threads).map(|_| AtomicUsize::new(0)).collect(),
            next: AtomicUsize::new(0),
        })
    }

    /// How many threads serve connections.
    pub fn threads(&self) -> usize {
        self.handles.len()
    }

    /// The thread serving the fewest connections; of several, the first
    /// from a start that moves on each time (in turn, when all are equal).
    fn least_busy(&self) -> usize {
        let count = self.handles.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..count)
            .map(|i| (start + i) % count)
            .min_by_key(|&at| self.serving[at].load(Ordering::Relaxed))
            .unwrap_or(0)
    }

    /// Serves `stream` on the thread serving the fewest connections, with
    /// `serve`. The stream is moved to that thread's runtime, so that its
    /// readiness is watched there too, not on the accepting thread.
    pub(crate) fn serve<F, Fut>(&self, stream: TcpStream, serve: F)
    where
        F: FnOnce(TcpStream) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let at = self.least_busy();
        self.serving[at].fetch_add(1, Ordering::Relaxed);
        let counted = Serving {
            serving: self.serving.clone(),
            at,
        };
        let stream = match stream.into_std() {
            Ok(stream) => stream,
            Err(e) => {
                tracing::warn!("cannot hand an accepted connection to a worker: {e}");
                return;
            }
        };
        self.handles[at].spawn(async move {
            let _counted = counted;
            match TcpStream::from_std(stream) {
                Ok(stream) => serve(stream).await,
                Err(e) => tracing::warn!("a worker cannot take an accepted connection: {e}"),
            }
        });
    }

    /// Runs `future` on thread `n`.
    #[cfg(test)]
    pub(crate) fn spawn_on<F>(&self, n: usize, future: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handles[n].spawn(future)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;
    use tokio::sync::mpsc;

    /// Deals one accepted connection to `workers`; says which thread
    /// serves it as it starts, and serves it until the client closes.
    async fn deal(
        workers: &Workers,
        listener: &tokio::net::TcpListener,
        started: &mpsc::UnboundedSender<String>,
    ) -> TcpStream {
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        let started = started.clone();
        workers.serve(accepted, move |mut stream| async move {
            let name = std::thread::current().name().unwrap_or("").to_owned();
            let _ = started.send(name);
            // The stream works on this thread's runtime.
            let mut byte = [0u8; 1];
            while stream.read(&mut byte).await.unwrap_or(0) > 0 {}
        });
        client
    }

    /// Connections go to each thread in turn while all serve as many, and
    /// to the thread serving the fewest otherwise, which serves them (not
    /// the accepting runtime).
    #[tokio::test]
    async fn a_connection_goes_to_the_least_busy_thread_and_is_served_there() {
        let workers = Workers::start(3).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (started, mut names) = mpsc::unbounded_channel();
        let mut clients = Vec::new();
        for expected in ["witm-worker-0", "witm-worker-1", "witm-worker-2"] {
            clients.push(deal(&workers, &listener, &started).await);
            assert_eq!(names.recv().await.unwrap(), expected);
        }
        // Worker 1's connection ends: the next goes there, not to worker 0
        // (whose turn it would be).
        drop(clients.remove(1));
        let ended = async {
            while workers.serving[1].load(Ordering::Relaxed) > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(10), ended)
            .await
            .expect("worker 1's count goes down once its connection ends");
        clients.push(deal(&workers, &listener, &started).await);
        assert_eq!(names.recv().await.unwrap(), "witm-worker-1");
        let serving: Vec<usize> = workers
            .serving
            .iter()
            .map(|n| n.load(Ordering::Relaxed))
            .collect();
        assert_eq!(serving, [1, 1, 1]);
    }
}
