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

use std::time::Duration;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc's `mi_option_e` (v3): the crate
/// does not name it.
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
/// `mi_option_arena_purge_mult`: the delay of memory freed to an arena is
/// `PURGE_DELAY` times this (10 by default).
const ARENA_PURGE_MULT: libmimalloc_sys::mi_option_t = 24;
/// `mi_option_arena_max_object_size` (in KiB): larger blocks are the
/// system's own mappings, unmapped when freed.
const ARENA_MAX_OBJECT: libmimalloc_sys::mi_option_t = 45;
/// Blocks over this many KiB go straight to the system and back.
const LARGEST_KEPT_KIB: std::os::raw::c_long = 4 << 10;
/// How long freed memory stays with witm, unused, before it goes back to
/// the system.
const PURGE_DELAY_MS: std::os::raw::c_long = 10;
/// How often a thread of its own returns what has waited longer, when no
/// allocation does (mimalloc purges only as it allocates and frees).
const PURGE_EVERY: Duration = Duration::from_millis(100);

/// Freed memory goes back to the system 10 ms after it was freed, unless
/// it is taken again first (mimalloc's default for its pages, not its
/// 100 ms for its arenas); blocks over 4 MiB are the system's own mappings,
/// returned as they are freed.
///
/// - Not at once (a delay of 0, as before): every page a request's memory
///   emptied went back with an `madvise` and was faulted in again by the
///   next. Once each request's box was 6.5 KiB (mimalloc's small pages),
///   that was 0.7–0.9 page faults per proxied request under load (0.27
///   with 1 ms, 0.05 with 10 ms, 0.01 with 100 ms), a sixth of witm's CPU
///   per request with add-header (bench/README.md, eighth pass; e2e
///   `page_faults`).
/// - Large blocks at once: a plugin looping on a decompression bomb frees
///   and takes hundreds of MiB per event (e2e
///   `budget_coding_bombs_stop_at_the_deadline`: peak 510 MiB with
///   mimalloc's default, 408 of its bound 440 with 100 ms, 313 with 10 ms,
///   280 with 10 ms and this bound, 279 returning everything at once), and
///   loading a Python plugin reads, inflates and drops tens of MiB (peak
///   154 MiB with 10 ms alone, 117 with this bound, 113 at once).
///
/// Memory waiting when witm goes idle is returned by a thread that asks
/// mimalloc every [`PURGE_EVERY`]. Call first thing in `main`, before any
/// other thread starts: mimalloc's options are not thread-safe.
pub(crate) fn return_freed_memory_soon() {
    // SAFETY: sets three integer options; no other thread runs yet.
    unsafe {
        libmimalloc_sys::mi_option_set(PURGE_DELAY, PURGE_DELAY_MS);
        libmimalloc_sys::mi_option_set(ARENA_PURGE_MULT, 1);
        libmimalloc_sys::mi_option_set(ARENA_MAX_OBJECT, LARGEST_KEPT_KIB);
    }
    let purging = std::thread::Builder::new()
        .name("witm-purge".into())
        .spawn(|| {
            loop {
                std::thread::sleep(PURGE_EVERY);
                // SAFETY: takes no pointer; mimalloc's collection is
                // thread-safe for the arenas it purges.
                unsafe { libmimalloc_sys::mi_collect(false) };
            }
        });
    if let Err(e) = purging {
        // Memory is still returned as witm allocates; only idle returns wait.
        eprintln!("witm: no thread to return idle memory: {e}");
    }
}
