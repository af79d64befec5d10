//! A plugin's instances, taken by whichever flow asks first when one is
//! free.
//!
//! Why not a fair queue (tokio's `Semaphore`, as before): a fair queue
//! hands a freed instance to the flow that has waited longest, and that
//! flow's task may sit behind others in its worker's run queue for tens of
//! microseconds before it runs. Meanwhile the instance is reserved and idle,
//! and every flow that comes along queues behind it: a convoy. With one
//! instance, 32 clients and two worker threads, flows waited 127 µs per
//! call on average for a call of 4 µs (29 s of waiting against 1 s in the
//! plugin over one run). Here a freed instance goes to whoever takes it
//! next: a flow that is running takes it at once, and a woken waiter that
//! finds it taken waits again (as parking_lot's and std's mutexes let a
//! running thread barge). A waiter can lose more than once; the plugin's
//! `queue_timeout_ms` bounds how long it waits in all.

use std::ops::{Deref, DerefMut};

use tokio::sync::{Mutex, MutexGuard, Notify};

/// One slot per instance.
pub(crate) struct Slots<T> {
    slots: Vec<Mutex<T>>,
    /// Told each time a slot is let go.
    freed: Notify,
}

impl<T> Slots<T> {
    pub(crate) fn new(count: usize, mut make: impl FnMut() -> T) -> Self {
        Self {
            slots: (0..count).map(|_| Mutex::new(make())).collect(),
            freed: Notify::new(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    /// The first slot, while nothing else can hold it.
    pub(crate) fn first_mut(&mut self) -> &mut T {
        self.slots[0].get_mut()
    }

    /// A free slot now, if there is one.
    pub(crate) fn try_take(&self) -> Option<Taken<'_, T>> {
        self.slots
            .iter()
            .find_map(|slot| slot.try_lock().ok())
            .map(|guard| Taken::new(guard, &self.freed))
    }

    /// The first slot that is free; waits for one to be let go. Not in
    /// turn: see the module's docs.
    pub(crate) async fn take(&self) -> Taken<'_, T> {
        loop {
            let freed = self.freed.notified();
            tokio::pin!(freed);
            // Registered before looking, so a slot let go after the look
            // wakes this waiter.
            freed.as_mut().enable();
            if let Some(taken) = self.try_take() {
                return taken;
            }
            freed.await;
        }
    }

    /// Slot `index`, waiting for it however long it is held (shutting a
    /// plugin down visits every instance).
    pub(crate) async fn take_at(&self, index: usize) -> Taken<'_, T> {
        Taken::new(self.slots[index].lock().await, &self.freed)
    }
}

/// A slot held; letting it go tells one waiter.
pub(crate) struct Taken<'a, T> {
    guard: Option<MutexGuard<'a, T>>,
    freed: &'a Notify,
}

impl<'a, T> Taken<'a, T> {
    fn new(guard: MutexGuard<'a, T>, freed: &'a Notify) -> Self {
        Self {
            guard: Some(guard),
            freed,
        }
    }
}

impl<T> Deref for Taken<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.guard.as_deref().expect("held until dropped")
    }
}

impl<T> DerefMut for Taken<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        self.guard.as_deref_mut().expect("held until dropped")
    }
}

impl<T> Drop for Taken<'_, T> {
    fn drop(&mut self) {
        // Unlocked first: the waiter told next must find it free.
        drop(self.guard.take());
        self.freed.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_waiter_gets_a_slot_let_go_and_try_take_finds_none_while_all_are_held() {
        let slots = Arc::new(Slots::new(2, || 0u32));
        let a = slots.try_take().expect("two free");
        let b = slots.try_take().expect("one free");
        assert!(slots.try_take().is_none());
        let waiter = {
            let slots = slots.clone();
            tokio::spawn(async move {
                let mut taken = slots.take().await;
                *taken += 1;
            })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished(), "all slots are held");
        drop(a);
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("the waiter is told")
            .unwrap();
        drop(b);
        let total: u32 = [slots.try_take().unwrap(), slots.try_take().unwrap()]
            .iter()
            .map(|t| **t)
            .sum();
        assert_eq!(total, 1);
    }

    /// The point of the module: a slot let go while a waiter is queued is
    /// not reserved for that waiter; a taker that runs first gets it (a
    /// fair queue, tokio's `Semaphore`, would hand it to the waiter).
    #[tokio::test]
    async fn a_slot_let_go_goes_to_whoever_takes_it_first() {
        let slots = Arc::new(Slots::new(1, || 0u32));
        let held = slots.try_take().unwrap();
        let waiter = {
            let slots = slots.clone();
            tokio::spawn(async move {
                let mut taken = slots.take().await;
                *taken += 1;
            })
        };
        // The waiter runs up to its wait (a current-thread runtime).
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        drop(held);
        let mut first = slots.try_take().expect("not reserved for the waiter");
        *first += 10;
        drop(first);
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("the waiter gets it after")
            .unwrap();
        assert_eq!(*slots.try_take().unwrap(), 11);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_takers_on_one_slot_all_get_it_in_the_end() {
        let slots = Arc::new(Slots::new(1, || 0u64));
        let tasks: Vec<_> = (0..64)
            .map(|_| {
                let slots = slots.clone();
                tokio::spawn(async move {
                    for _ in 0..100 {
                        let mut taken = slots.take().await;
                        let seen = *taken;
                        tokio::task::yield_now().await;
                        *taken = seen + 1;
                    }
                })
            })
            .collect();
        for task in tasks {
            tokio::time::timeout(Duration::from_secs(20), task)
                .await
                .expect("no waiter is lost")
                .unwrap();
        }
        assert_eq!(*slots.try_take().unwrap(), 6400);
    }
}
