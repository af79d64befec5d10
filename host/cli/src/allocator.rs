//! witm's allocator: mimalloc, not glibc's malloc.
//!
//! A flow's memory is often freed on another worker thread than the one
//! that made it (a pooled server connection's task, the client's task), and
//! glibc then takes the other thread's arena lock: under load, two workers
//! waited on each other's arenas (1.0 to 2.1 futex calls per request with
//! add-header, 0.09 with mimalloc; bench/README.md). mimalloc frees to the
//! owner without a lock. Built without transparent huge pages (with them
//! it starts ~10 MiB larger).
#![allow(unsafe_code)]

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc's `mi_option_e` (v3): the crate
/// does not name it.
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Freed memory goes back to the system at once, as glibc does with large
/// blocks; mimalloc's default keeps it for 1 s (10 s for its arenas). A
/// plugin looping on a decompression bomb frees and takes hundreds of MiB
/// per event: with the delay, witm's peak RSS went past what the plugin's
/// budgets allow (510 MiB against 279 MiB; e2e
/// `budget_coding_bombs_stop_at_the_deadline`). Costs no measurable speed
/// (bench/ab.sh, add-header: 0.97x requests/s, within the noise, CPU per
/// request 36.4 against 37.4 µs). Call first thing in `main`, before any
/// other thread starts: mimalloc's options are not thread-safe.
pub(crate) fn return_freed_memory_at_once() {
    // SAFETY: sets one integer option; no other thread runs yet.
    unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY, 0) };
}
