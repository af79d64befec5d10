//! Thread per core: the threads that serve client connections, each with
//! its own single-threaded tokio runtime, and a connection served from
//! accept to close by one of them.
//!
//! As nginx's workers and Envoy's `--concurrency`: a connection's tasks
//! (its flows, its server connections, their timers) stay on the thread
//! that took it, so they wake each other without a signal to another core
//! and without the atomics a shared run queue needs. tokio's work-stealing
//! runtime moved them between its workers instead: on the 2-core bench machine, two
//! threads of this kind served 1.07x the requests per second of its two
//! workers with no plugin and 1.085x with add-header (bench/README.md, the
//! fifth pass).
//!
//! Connections are dealt to the threads in turn as they are accepted (the
//! listener stays on the runtime that called [`crate::Proxy::serve`]); a
//! thread with a busy connection is not relieved by the others, which is
//! what Envoy does too.

use std::cell::Cell;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::net::TcpStream;
use tokio::runtime::Handle;
use tokio::sync::oneshot;

thread_local! {
    /// Which worker thread this is, set as it starts.
    static WORKER: Cell<Option<usize>> = const { Cell::new(None) };
}

/// The worker thread the caller runs on (0, 1, …), `None` off them: for
/// what each thread keeps its own of (its server connections).
pub(crate) fn current() -> Option<usize> {
    WORKER.with(Cell::get)
}

/// The connection-serving threads (see the module's documentation).
/// Dropping it stops them, with whatever they still run.
pub struct Workers {
    handles: Vec<Handle>,
    /// Each thread runs until its sender is dropped.
    _stops: Vec<oneshot::Sender<()>>,
    next: AtomicUsize,
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
            next: AtomicUsize::new(0),
        })
    }

    /// How many threads serve connections.
    pub fn threads(&self) -> usize {
        self.handles.len()
    }

    /// Serves `stream` on the next thread in turn, with `serve`. The
    /// stream is moved to that thread's runtime, so that its readiness is
    /// watched there too, not on the accepting thread.
    pub(crate) fn serve<F, Fut>(&self, stream: TcpStream, serve: F)
    where
        F: FnOnce(TcpStream) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let at = self.next.fetch_add(1, Ordering::Relaxed) % self.handles.len();
        let stream = match stream.into_std() {
            Ok(stream) => stream,
            Err(e) => {
                tracing::warn!("cannot hand an accepted connection to a worker: {e}");
                return;
            }
        };
        self.handles[at].spawn(async move {
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

    /// Connections are dealt to every thread in turn, and each is served
    /// on the thread it was dealt to (not on the accepting runtime).
    #[tokio::test]
    async fn connections_are_dealt_to_each_thread_in_turn() {
        let workers = Workers::start(3).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (seen, mut names) = tokio::sync::mpsc::unbounded_channel();
        for _ in 0..6 {
            let client = TcpStream::connect(address).await.unwrap();
            let (accepted, _) = listener.accept().await.unwrap();
            let seen = seen.clone();
            workers.serve(accepted, move |mut stream| async move {
                use tokio::io::AsyncReadExt;
                let name = std::thread::current().name().unwrap_or("").to_owned();
                // The stream works on this thread's runtime.
                let mut byte = [0u8; 1];
                let read = stream.read(&mut byte).await.unwrap();
                let _ = seen.send((name, read));
            });
            drop(client);
        }
        let mut got = Vec::new();
        for _ in 0..6 {
            got.push(names.recv().await.unwrap());
        }
        got.sort();
        let expected: Vec<(String, usize)> = (0..3)
            .flat_map(|n| {
                [
                    (format!("witm-worker-{n}"), 0),
                    (format!("witm-worker-{n}"), 0),
                ]
            })
            .collect();
        assert_eq!(got, expected);
    }
}
