//! One budget for all the bodies held in memory for plugins
//! (`--max-held-bytes`). Each flow may hold up to `--stream-large-bodies`,
//! but many flows at once could hold far more than the machine has: past
//! the budget, a body is streamed through (what was read goes first) and
//! plugins see `body-streamed`, as for a body over the per-flow limit.
//!
//! A flow's reservation lasts until its response has gone to the client
//! (the held bytes live in the flow until then), and is given back when it
//! drops. A body that goes on streamed keeps what it had read counted
//! until that has gone on. The bytes held are a gauge in `/metrics`.

use std::sync::Arc;

use crate::counters::Counters;

/// The bytes one flow holds against the budget; given back on drop.
#[derive(Default)]
pub(crate) struct HeldBytes {
    budget: Option<(Arc<Counters>, usize)>,
    bytes: usize,
}

impl HeldBytes {
    /// Nothing held yet, against a budget of `max` bytes counted in
    /// `counters`.
    pub(crate) fn new(counters: Arc<Counters>, max: usize) -> Self {
        Self {
            budget: Some((counters, max)),
            bytes: 0,
        }
    }

    /// Holds `more` bytes if the budget has room for them, else holds
    /// nothing more and says so.
    pub(crate) fn grow(&mut self, more: usize) -> bool {
        let Some((counters, max)) = &self.budget else {
            return true;
        };
        if counters.try_hold(more, *max) {
            self.bytes += more;
            true
        } else {
            counters.held_over_budget();
            false
        }
    }

    /// Holds `more` bytes of a recording (a WebSocket's or TCP flow's
    /// messages) if this flow stays under `per_flow` bytes and the budget
    /// has room; else holds nothing more, and the message is counted, not
    /// kept.
    pub(crate) fn keep(&mut self, more: usize, per_flow: usize) -> bool {
        self.bytes.saturating_add(more) <= per_flow && self.grow(more)
    }

    /// Bytes held by this flow.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// What was held since [`HeldBytes::bytes`] was `mark`, as a
    /// reservation of its own: for a body that goes on streamed after all,
    /// whose bytes already read stay in memory until they are sent.
    pub(crate) fn split_off(&mut self, mark: usize) -> HeldBytes {
        let part = self.bytes.saturating_sub(mark);
        self.bytes -= part;
        HeldBytes {
            budget: self.budget.clone(),
            bytes: part,
        }
    }
}

impl Drop for HeldBytes {
    fn drop(&mut self) {
        if let Some((counters, _)) = &self.budget {
            counters.release_held(self.bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flows_hold_up_to_the_budget_together_and_give_back_on_drop() {
        let counters = Arc::new(Counters::default());
        let mut first = HeldBytes::new(counters.clone(), 100);
        let mut second = HeldBytes::new(counters.clone(), 100);
        assert!(first.grow(60));
        assert!(!second.grow(50), "60 + 50 is over 100");
        assert!(second.grow(40));
        assert_eq!(counters.held_bytes(), 100);
        assert_eq!(counters.held_over_budget_count(), 1);
        drop(first);
        assert_eq!(counters.held_bytes(), 40);
        assert!(second.grow(50));
        let streamed = second.split_off(40);
        assert_eq!((second.bytes(), streamed.bytes()), (40, 50));
        assert_eq!(counters.held_bytes(), 90);
        drop(streamed);
        assert_eq!(counters.held_bytes(), 40);
        drop(second);
        assert_eq!(counters.held_bytes(), 0);
    }
}
