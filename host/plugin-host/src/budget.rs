//! The host memory budget of one instance: bytes the host holds because
//! the plugin asked (responses it made, flows it duplicated, what it added
//! to the flows it was lent). Charged where the data crosses into the host,
//! before the host allocates, and released when the handle is dropped or the
//! lent flow goes back to the proxy.

use crate::bindings::types::HostError;

/// Bytes held for one instance, against its limit.
#[derive(Debug)]
pub(crate) struct HostBudget {
    limit: usize,
    used: usize,
}

impl HostBudget {
    pub(crate) fn new(limit: usize) -> Self {
        Self { limit, used: 0 }
    }

    /// Takes `bytes` from the budget, or says why it cannot.
    pub(crate) fn reserve(&mut self, bytes: usize) -> Result<(), HostError> {
        match self.used.checked_add(bytes) {
            Some(total) if total <= self.limit => {
                self.used = total;
                Ok(())
            }
            _ => Err(HostError::OverBudget(format!(
                "the plugin's host memory budget ({} bytes, host_memory_mb) would be exceeded: \
                 {} bytes held, {bytes} more asked",
                self.limit, self.used
            ))),
        }
    }

    /// Gives back `bytes` taken earlier.
    pub(crate) fn release(&mut self, bytes: usize) {
        self.used = self.used.saturating_sub(bytes);
    }

    /// Bytes held now.
    #[cfg(test)]
    pub(crate) fn used(&self) -> usize {
        self.used
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserve_stops_at_the_limit_and_release_gives_back() {
        let mut budget = HostBudget::new(100);
        assert!(budget.reserve(60).is_ok());
        assert!(matches!(budget.reserve(41), Err(HostError::OverBudget(_))));
        assert!(budget.reserve(usize::MAX).is_err(), "no overflow");
        budget.release(60);
        assert_eq!(budget.used(), 0);
        assert!(budget.reserve(100).is_ok());
    }
}
