//! The guest memory cap of one instance: a component may hold several core
//! instances, each with its own linear memory, and may grow tables; the cap
//! (`memory_mb`) is for the sum of all of them, not for each.

use wasmtime::ResourceLimiter;

/// What one table element is counted as (a function reference and its
/// bookkeeping in wasmtime).
pub(crate) const TABLE_ELEMENT_BYTES: usize = 16;

/// Sums every memory and table of a store against one limit.
pub(crate) struct GuestMemoryLimiter {
    limit: usize,
    memories: usize,
    tables: usize,
}

impl GuestMemoryLimiter {
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            limit,
            memories: 0,
            tables: 0,
        }
    }

    fn grow(&mut self, what: &str, by: usize) -> wasmtime::Result<bool> {
        let total = self.memories + self.tables;
        if total.checked_add(by).is_none_or(|t| t > self.limit) {
            // An error, not `Ok(false)`: the call traps and the instance is
            // replaced, as with the memory cap before (a guest allocator
            // would abort on a failed grow anyway).
            return Err(wasmtime::format_err!(
                "memory cap reached: {} bytes for all of the instance's memories and tables \
                 (memory_mb); {} in memories, {} in tables, {what} asked {by} more",
                self.limit,
                self.memories,
                self.tables
            ));
        }
        Ok(true)
    }
}

impl ResourceLimiter for GuestMemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let by = desired.saturating_sub(current);
        let granted = self.grow("a memory", by)?;
        self.memories += by;
        Ok(granted)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let by = desired
            .saturating_sub(current)
            .saturating_mul(TABLE_ELEMENT_BYTES);
        let granted = self.grow("a table", by)?;
        self.tables += by;
        Ok(granted)
    }

    fn instances(&self) -> usize {
        16
    }

    fn tables(&self) -> usize {
        64
    }

    fn memories(&self) -> usize {
        16
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memories_and_tables_count_against_one_sum() {
        let mut limiter = GuestMemoryLimiter::new(10 << 20);
        assert!(limiter.memory_growing(0, 4 << 20, None).unwrap());
        assert!(
            limiter.memory_growing(0, 4 << 20, None).unwrap(),
            "a second memory"
        );
        assert!(
            limiter.memory_growing(0, 4 << 20, None).is_err(),
            "a third memory passes the sum, though each is under the cap"
        );
        let elements = (2 << 20) / TABLE_ELEMENT_BYTES;
        assert!(limiter.table_growing(0, elements, None).unwrap());
        assert!(limiter.table_growing(elements, elements + 1, None).is_err());
    }
}
