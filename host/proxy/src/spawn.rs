//! The executor hyper's HTTP/2 connections spawn their tasks with.
//!
//! hyper spawns a task for every HTTP/2 request it sends (the wait for the
//! response; its type is an enum whose largest variant is the whole
//! connection task, TLS stream included) and one for every stream a client
//! opens (the service's future, ours). `tokio::spawn` takes the future by
//! value through several calls into the task's cell and writes the cell's
//! whole stage again when the task ends, so a large future is copied
//! several times per request. Boxed first, it is copied once, into the
//! box, and the task holds a pointer.

use std::future::Future;

/// [`hyper::rt::Executor`] that boxes each future and spawns it on the
/// current tokio runtime (as `hyper_util`'s `TokioExecutor` does, unboxed).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct BoxedSpawn;

impl<F> hyper::rt::Executor<F> for BoxedSpawn
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, future: F) {
        tokio::spawn(Box::pin(future));
    }
}

#[cfg(test)]
mod tests {
    use hyper::rt::Executor;

    use super::*;

    #[tokio::test]
    async fn a_future_given_to_it_runs_on_the_current_runtime() {
        let (done, ran) = tokio::sync::oneshot::channel();
        BoxedSpawn.execute(async move {
            let _ = done.send(std::thread::current().id());
        });
        let ran_on = tokio::time::timeout(std::time::Duration::from_secs(5), ran)
            .await
            .expect("the future ran")
            .expect("it sent");
        assert_eq!(ran_on, std::thread::current().id());
    }
}
