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

    /// The bytes the instance's memories and tables hold now.
    pub(crate) fn in_use(&self) -> usize {
        self.memories + self.tables
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

    /// A real module with two memories and a table, run by wasmtime under
    /// the limiter: each memory alone fits the cap, both together do not.
    #[test]
    fn wasmtime_sums_the_memories_of_a_real_module() {
        let wat = r#"(module
            (memory (export "a") 1)
            (memory (export "b") 1)
            (table 1 funcref)
            (func (export "grow_a") (param i32) (result i32) local.get 0 memory.grow 0)
            (func (export "grow_b") (param i32) (result i32) local.get 0 memory.grow 1)
            (func (export "grow_t") (param i32) (result i32)
                ref.null func local.get 0 table.grow 0))"#;
        let mut config = wasmtime::Config::new();
        config.wasm_multi_memory(true);
        let engine = wasmtime::Engine::new(&config).unwrap();
        let module = wasmtime::Module::new(&engine, wat::parse_str(wat).unwrap()).unwrap();
        let page = 64 << 10;
        let run = |grows: &[(&str, i32)]| -> Vec<bool> {
            let mut store = wasmtime::Store::new(&engine, GuestMemoryLimiter::new(64 * page));
            store.limiter(|limiter| limiter);
            let instance = wasmtime::Instance::new(&mut store, &module, &[]).unwrap();
            grows
                .iter()
                .map(|&(export, by)| {
                    let grow = instance
                        .get_typed_func::<i32, i32>(&mut store, export)
                        .unwrap();
                    grow.call(&mut store, by).is_ok_and(|old| old >= 0)
                })
                .collect()
        };
        // 2 pages and a table element to start with; 64 pages in all.
        assert_eq!(run(&[("grow_a", 40)]), [true]);
        assert_eq!(run(&[("grow_b", 40)]), [true]);
        assert_eq!(
            run(&[("grow_a", 40), ("grow_b", 40)]),
            [true, false],
            "the second memory passes the sum"
        );
        assert_eq!(
            run(&[
                ("grow_a", 40),
                ("grow_t", (22 * page / TABLE_ELEMENT_BYTES) as i32)
            ]),
            [true, false],
            "a table counts too"
        );
    }
}
