//! The process's memory allocator: jemalloc, and when to give freed memory back to the system.
//!
//! Why not glibc's malloc: loading a 1B model allocates ~1 GB of unpacked weights, packs each into a
//! new buffer and frees the original, on two threads. glibc either keeps the freed middle of its
//! heaps (RSS after load 1.3–1.5 GB for a 963 MB file, measured with its default thresholds or one
//! arena), or, with every big buffer in its own mapping, unmaps each on free and faults the next one
//! in page by page: 2.1 M page faults and 4.3 s of kernel time, and a 4.4 s load. jemalloc reuses
//! freed pages for a short while, then returns them: 0.9 M faults and a 2.8 s load, with RSS after
//! load at the model's size, and in a run its size classes keep the transients from creeping (glibc's
//! RSS grew ~2 MB per encoder layer through a run while the live heap stayed flat).
//!
//! Settings (`MALLOC_CONF`): freed pages go back to the system after `DIRTY_DECAY_MS` without reuse,
//! directly (no "muzzy" second stage, whose pages still count towards RSS until the kernel needs
//! them). [`release_freed_memory`] returns them at once, after the load and when the daemon goes idle.
//! `_RJEM_MALLOC_CONF` in the environment overrides these, for experiments.

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc reads its settings from this symbol (a NUL-terminated C string; tikv-jemallocator's
/// documented way to set them at build time).
#[allow(non_upper_case_globals)]
#[export_name = "_rjem_malloc_conf"]
pub static malloc_conf: &[u8] = b"dirty_decay_ms:300,muzzy_decay_ms:0\0";

/// jemalloc's `MALLCTL_ARENAS_ALL`: "every arena" in `arena.<i>.*` controls.
const ALL_ARENAS: &str = "4096";

/// Returns the pages of freed memory jemalloc still holds to the system now, instead of after its
/// decay time: after the model load (the unpacked weights), and when the recogniser goes idle (a
/// run's activations), so that an idle daemon's RSS is what it keeps live. Costs page faults the
/// next time that memory is used. Returns whether jemalloc did it; a failure only means the pages go
/// back after their decay time instead, so callers may ignore it (it is logged).
pub fn release_freed_memory() -> bool {
    let name = format!("arena.{ALL_ARENAS}.purge\0");
    // SAFETY: a NUL-terminated control name; `purge` reads and writes no value (null pointers, 0 len).
    let status = unsafe {
        tikv_jemalloc_sys::mallctl(
            name.as_ptr().cast(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            0,
        )
    };
    if status != 0 {
        log::debug!("jemalloc purge failed (error {status}); freed memory returns after its decay");
    }
    status == 0
}
