//! The process's allocator (src/alloc.rs): jemalloc holds freed memory for reuse, and gives it back
//! to the system when asked (after the model load, and when the recogniser goes idle). Alone in its
//! test binary, so that no other test's allocations move the RSS it reads.

use edgescribe::alloc::{keep_freed_memory_for, release_freed_memory, INFERENCE_DECAY_MS};
use edgescribe::asr::process_status_kb;

fn rss_kb() -> u64 {
    process_status_kb("VmRSS:").expect("VmRSS in /proc/self/status")
}

#[test]
fn freed_memory_goes_back_to_the_system_when_asked() {
    const BLOCKS: usize = 128;
    // As after a model load: freed pages kept 10 s, so only the release below returns them. This
    // thread's arena exists (the harness allocated on it), so at least that one takes the setting.
    assert!(keep_freed_memory_for(INFERENCE_DECAY_MS) >= 1);
    let before = rss_kb();
    // 1 MiB blocks, written so that they are resident: under jemalloc's oversize threshold (8 MiB),
    // so once freed they stay in its arenas for reuse until their decay time, or until released.
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
