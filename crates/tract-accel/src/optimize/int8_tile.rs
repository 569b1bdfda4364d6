//! Which of tract's AVX-512 VNNI int8 kernels runs the quantised matmuls.
//!
//! tract 0.23.9 has two: a ymm 8×8 tile and a zmm 16×16 tile. It takes the 16×16 one only when a
//! start-up probe finds two 512-bit FMA ports (Intel servers), on the reasoning that a core issuing
//! one 512-bit VPDPBUSD per cycle (AMD Zen 4's double-pumped AVX-512) gets the same multiply rate
//! from either tile. On Zen 4 the 16×16 tile is faster all the same for MMS's shapes: measured
//! here (Zen 4, 2 threads, 5 s of audio, MMS-1B int8) the whole run went from 1.54–1.55 s to
//! 1.41–1.46 s, the int8 matmuls from 0.86 s to 0.78 s. Why is not pinned down (the 16×16 tile
//! does twice the multiply-adds per loop iteration and per load; a plausible cause, not a measured
//! one). tract's own
//! measurement, on an Intel client core with one 512-bit port, found the 16×16 tile 4–11% slower
//! on its workloads: so this is decided per vendor, for the cores it was measured on, and not
//! applied elsewhere.
//!
//! Mechanism: tract's `TRACT_AVX512_FMA_UNITS` knob, set through its public API. It is process-wide
//! and tract reads it once, at the first int8 kernel selection of the process. A user who set the
//! environment variable keeps their choice. Both tiles accumulate in exact i32 arithmetic, so the
//! choice changes speed, never the logits.
//!
//! Upstream report: `docs/upstream/tract-vnni-tile-zen4.md`. Delete this once a tract release picks
//! the 16×16 tile on Zen 4 by itself (or measures the choice per core).

/// Asks tract for the 16×16 VNNI tile where it was measured faster (AMD with AVX-512 VNNI) and the
/// user has not chosen. Returns whether it did. Call before the first model is optimised.
pub fn prefer_wide_int8_tile() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use tract_linalg::knobs::TRACT_AVX512_FMA_UNITS;
        if TRACT_AVX512_FMA_UNITS.get().is_some()
            || !std::is_x86_feature_detected!("avx512vnni")
            || !is_amd()
        {
            return false;
        }
        TRACT_AVX512_FMA_UNITS.set(Some("2".to_string()));
        log::debug!("int8 matmuls: asking tract for its 16x16 AVX-512 VNNI tile (AMD core)");
        true
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether this CPU reports AMD's vendor string ("AuthenticAMD", CPUID leaf 0).
#[cfg(target_arch = "x86_64")]
pub fn is_amd() -> bool {
    // Older toolchains declare `__cpuid` unsafe, newer ones safe: hence the `allow`.
    #[allow(unused_unsafe)]
    // SAFETY: CPUID is part of the x86-64 baseline, so the instruction exists on every CPU this
    // code runs on, and leaf 0 (the highest leaf and the vendor string, in EBX, EDX, ECX) is
    // defined on all of them. It only writes registers.
    let leaf = unsafe { std::arch::x86_64::__cpuid(0) };
    let mut vendor = [0u8; 12];
    vendor[..4].copy_from_slice(&leaf.ebx.to_le_bytes());
    vendor[4..8].copy_from_slice(&leaf.edx.to_le_bytes());
    vendor[8..].copy_from_slice(&leaf.ecx.to_le_bytes());
    &vendor == b"AuthenticAMD"
}

/// Not x86: tract's ARM kernels are chosen by its own CPU detection.
#[cfg(not(target_arch = "x86_64"))]
pub fn is_amd() -> bool {
    false
}
