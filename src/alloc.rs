//! The binary's memory allocator: jemalloc, and when to give freed memory back to the system. Part of
//! the binary, not the library, so that tests and other users of the library keep their own; the
//! library tells it what phase it is in through `edgescribe::memory` ([`JEMALLOC_HOOKS`]).
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
//! Settings: freed pages go back to the system directly (no "muzzy" second stage, whose pages still
//! count towards RSS until the kernel needs them), after [`LOAD_DECAY_MS`] without reuse while a model
//! loads (enough for the next segment's packed weights to reuse the previous one's freed originals,
//! short enough not to pile up ~1 GB of them), and after [`INFERENCE_DECAY_MS`] once it has loaded:
//! a run reuses the previous run's activations instead of faulting them in again (measured at 1B:
//! runs 3–4% faster than with 300 ms, same peak RSS), and [`release_freed_memory`] returns them at
//! once when the recogniser goes idle: that costs the next run ~4% in page faults, and keeps the 1B
//! peak at 1.14× the file instead of 1.17× (runs back to back without it). `_RJEM_MALLOC_CONF` in
//! the environment overrides the startup settings, for experiments.

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc reads its settings from this symbol (a NUL-terminated C string; tikv-jemallocator's
/// documented way to set them at build time).
#[allow(non_upper_case_globals)]
#[export_name = "_rjem_malloc_conf"]
pub static malloc_conf: &[u8] = b"dirty_decay_ms:300,muzzy_decay_ms:0\0";

/// How long freed pages are kept for reuse while a model loads (the startup setting above).
pub const LOAD_DECAY_MS: isize = 300;
/// How long freed pages are kept for reuse between and during runs (see the module doc).
pub const INFERENCE_DECAY_MS: isize = 10_000;

/// The library's phases, mapped to jemalloc's settings.
pub struct JemallocHooks;

pub static JEMALLOC_HOOKS: JemallocHooks = JemallocHooks;

impl edgescribe::memory::MemoryHooks for JemallocHooks {
    /// Before loading a model: freed pages kept [`LOAD_DECAY_MS`]. Process-wide, as are the two
    /// below; two loads at once only change how long freed memory lingers, never a result.
    fn loading(&self) {
        keep_freed_memory_for(LOAD_DECAY_MS);
    }

    /// After loading a model: the freed unpacked weights go back now, and freed pages are kept
    /// [`INFERENCE_DECAY_MS`] from here on.
    fn inference(&self) {
        release_freed_memory();
        keep_freed_memory_for(INFERENCE_DECAY_MS);
    }

    fn release_freed(&self) -> bool {
        release_freed_memory()
    }
}

/// Returns the pages of freed memory jemalloc still holds to the system now, instead of after its
/// decay time: after the model load (the unpacked weights), and when the recogniser goes idle (a
/// run's activations), so that an idle daemon's RSS is what it keeps live. Costs page faults the
/// next time that memory is used. Returns whether jemalloc did it; a failure only means the pages go
/// back after their decay time instead, so callers may ignore it (it is logged).
pub fn release_freed_memory() -> bool {
    // SAFETY: a NUL-terminated control name (4096 is jemalloc's `MALLCTL_ARENAS_ALL`: every arena);
    // `purge` reads and writes no value (null pointers, 0 length).
    let status = unsafe {
        tikv_jemalloc_sys::mallctl(
            c"arena.4096.purge".as_ptr(),
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

/// Sets how long jemalloc keeps freed pages for reuse before returning them, in every arena and for
/// arenas created later: `ms` milliseconds, or never with -1. Returns how many arenas took it.
pub fn keep_freed_memory_for(ms: isize) -> usize {
    let mut ms = ms;
    let ms_ptr: *mut isize = &mut ms;
    let set = |name: String| {
        let name = format!("{name}\0");
        // SAFETY: a NUL-terminated control name and a pointer to an ssize_t of the size given; the
        // value is only read by jemalloc during the call.
        unsafe {
            tikv_jemalloc_sys::mallctl(
                name.as_ptr().cast(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                ms_ptr.cast(),
                std::mem::size_of::<isize>(),
            ) == 0
        }
    };
    set("arenas.dirty_decay_ms".into());
    let mut arenas: u32 = 0;
    let mut len = std::mem::size_of::<u32>();
    // SAFETY: reads an unsigned int into `arenas`, whose size is given in `len`.
    let status = unsafe {
        tikv_jemalloc_sys::mallctl(
            c"arenas.narenas".as_ptr(),
            (&mut arenas as *mut u32).cast(),
            &mut len,
            std::ptr::null_mut(),
            0,
        )
    };
    if status != 0 {
        return 0;
    }
    // Arenas no thread has used yet refuse the setting; they will take the default set above.
    (0..arenas)
        .filter(|i| set(format!("arena.{i}.dirty_decay_ms")))
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rss_kb() -> u64 {
        edgescribe::asr::process_status_kb("VmRSS:").expect("VmRSS in /proc/self/status")
    }

    /// jemalloc holds freed memory for reuse, and gives it back to the system when asked (after the
    /// model load, and when the recogniser goes idle). The binary's only other unit tests allocate
    /// little, so no other test's allocations move the RSS it reads.
    #[test]
    fn freed_memory_goes_back_to_the_system_when_asked() {
        const BLOCKS: usize = 128;
        // As after a model load: freed pages kept 10 s, so only the release below returns them.
        // This thread's arena exists (the harness allocated on it), so at least that one takes it.
        assert!(keep_freed_memory_for(INFERENCE_DECAY_MS) >= 1);
        let before = rss_kb();
        // 1 MiB blocks, written so that they are resident: under jemalloc's oversize threshold
        // (8 MiB), so once freed they stay in its arenas until their decay time, or until released.
        let blocks: Vec<Vec<u8>> = (0..BLOCKS).map(|i| vec![i as u8 | 1; 1 << 20]).collect();
        let grown = rss_kb();
        assert!(
            grown >= before + 100 * 1024,
            "RSS {before} → {grown} kB after writing {BLOCKS} MiB"
        );
        drop(blocks);
        assert!(release_freed_memory());
        let after = rss_kb();
        assert!(
            after + 100 * 1024 <= grown,
            "RSS {grown} kB with the blocks, {after} kB after freeing them and releasing"
        );
    }

    /// The startup setting is a byte string jemalloc reads before `main`; `LOAD_DECAY_MS` restates it.
    #[test]
    fn the_startup_decay_is_the_load_decay() {
        let conf = std::str::from_utf8(malloc_conf).unwrap();
        assert!(
            conf.contains(&format!("dirty_decay_ms:{LOAD_DECAY_MS},")),
            "{conf}"
        );
    }
}
