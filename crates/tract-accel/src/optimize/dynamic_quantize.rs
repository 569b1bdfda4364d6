//! A vectorised, multithreaded `DynamicQuantizeLinear` put in place of tract's scalar
//! `DynamicQuantizeLinearU8`, with bit-identical output.
//!
//! Why: tract 0.23.9 quantises each activation with `(x / scale).round_ties_even()`, which on baseline
//! x86_64 (no SSE4.1 in the target) is a libm `rintf` call per value, and finds the range with a
//! scalar fold: ~7 ns per element, 15% of an MMS int8 run.
//!
//! Upstream report: `docs/upstream/tract-dynamic-quantize-scalar.md`. Delete this replacement once
//! a tract release quantises as fast (vectorised rounding and range, on all threads).
//!
//! Bit-identity with the op replaced, value by value:
//! - range: the same `<`/`>` comparisons from the same `(0, 0)` start, per block then across blocks;
//!   both extremes are order-independent (NaN never compares, a `-0.0` never replaces the `+0.0` start).
//! - scale and zero point: tract's own formula, copied.
//! - value: the same IEEE division `x / scale`; then round-half-to-even through the `1.5 * 2^23`
//!   trick, exact for `|q| <= 2^22` (the sum lands in `[2^23, 2^24)` where the spacing is 1), and `q`
//!   is first clamped to ±512, which cannot change the saturated `u8` result. NaN quantises to the
//!   zero point, as tract's saturating `NaN as i32 == 0` does.
//! - when `scale` is zero or subnormal `x / scale` can exceed `i32`, where tract's `as i32 + zp` wraps
//!   in release builds (an overflow panic in debug): that case runs tract's scalar expression with
//!   explicit wrapping, so even that quirk is reproduced.

use tract_linalg::multithread::par_chunks_mut;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

use super::AccelOp;

/// Elements per block: the unit of threading and of the range reduction.
const BLOCK_ELEMENTS: usize = 16 * 1024;

#[derive(Clone, Debug, Default, Hash, PartialEq, Eq)]
pub struct FastDynamicQuantizeLinearU8;

super::tract_op!(FastDynamicQuantizeLinearU8);

impl AccelOp for FastDynamicQuantizeLinearU8 {
    fn run(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = inputs[0].cast_to::<f32>()?;
        let xs = input.try_as_plain_ram()?.as_slice::<f32>()?;
        let (min, max) = range(xs)?;
        let (scale, zero_point) = scale_and_zero_point(min, max);
        // SAFETY: u8 has no drop and every bit pattern is valid; `quantize` writes every value
        // (the tensor has the input's shape, so as many as `xs`), or fails and it is dropped unread.
        let mut dst = unsafe { Tensor::uninitialized_dt(u8::datum_type(), input.shape())? };
        quantize(
            xs,
            dst.try_as_plain_ram_mut()?.as_slice_mut::<u8>()?,
            scale,
            zero_point,
        )?;
        Ok(tvec!(
            dst.into_tvalue(),
            tensor0(scale).into_tvalue(),
            tensor0(zero_point).into_tvalue()
        ))
    }

    fn facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let mut quantized = inputs[0].clone();
        quantized.datum_type = u8::datum_type();
        quantized.konst = None;
        quantized.uniform = None;
        Ok(tvec!(
            quantized,
            f32::fact([0usize; 0]),
            u8::fact([0usize; 0])
        ))
    }
}

/// The fold tract runs, `(min, max)` of the values and 0, one block per task.
pub fn range(xs: &[f32]) -> TractResult<(f32, f32)> {
    let mut partial = vec![(0f32, 0f32); xs.len().div_ceil(BLOCK_ELEMENTS).max(1)];
    par_chunks_mut(&mut partial, 1, xs.len(), |first, out| {
        for (ix, slot) in out.iter_mut().enumerate() {
            let start = (first + ix) * BLOCK_ELEMENTS;
            let end = (start + BLOCK_ELEMENTS).min(xs.len());
            *slot = block_range(&xs[start.min(end)..end]);
        }
        Ok(())
    })?;
    Ok(partial.iter().fold((0f32, 0f32), |(lo, hi), &(blo, bhi)| {
        (
            if blo < lo { blo } else { lo },
            if bhi > hi { bhi } else { hi },
        )
    }))
}

/// Defines `fn $name(args) -> ret` running `$lanes` (an `#[inline(always)]` function of the same
/// signature) compiled for the widest vectors this CPU has: AVX-512, AVX2, or the build's baseline.
macro_rules! widest_vectors {
    ($(#[$doc:meta])* fn $name:ident($($arg:ident: $ty:ty),*) $(-> $ret:ty)? = $lanes:ident) => {
        $(#[$doc])*
        fn $name($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f")]
                fn avx512($($arg: $ty),*) $(-> $ret)? {
                    $lanes($($arg),*)
                }
                #[target_feature(enable = "avx2")]
                fn avx2($($arg: $ty),*) $(-> $ret)? {
                    $lanes($($arg),*)
                }
                if std::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU has the feature the function is compiled for.
                    return unsafe { avx512($($arg),*) };
                }
                if std::is_x86_feature_detected!("avx2") {
                    // SAFETY: as above.
                    return unsafe { avx2($($arg),*) };
                }
            }
            $lanes($($arg),*)
        }
    };
}

widest_vectors! {
    /// The block's range (see `quantize_block`).
    fn block_range(xs: &[f32]) -> (f32, f32) = range_lanes
}

/// Sixteen independent lanes so the compiler can keep them in vector registers; each lane is
/// tract's comparison, and lanes are merged with the same comparison.
#[inline(always)]
fn range_lanes(xs: &[f32]) -> (f32, f32) {
    const LANES: usize = 16;
    let mut lo = [0f32; LANES];
    let mut hi = [0f32; LANES];
    let chunks = xs.chunks_exact(LANES);
    let tail = chunks.remainder();
    for chunk in chunks {
        for l in 0..LANES {
            let v = chunk[l];
            lo[l] = if v < lo[l] { v } else { lo[l] };
            hi[l] = if v > hi[l] { v } else { hi[l] };
        }
    }
    let mut acc = (0f32, 0f32);
    for (&l, &h) in lo.iter().zip(&hi).chain(tail.iter().map(|v| (v, v))) {
        acc.0 = if l < acc.0 { l } else { acc.0 };
        acc.1 = if h > acc.1 { h } else { acc.1 };
    }
    acc
}

/// tract 0.23.9's `scale_and_zero_point`, from the range.
pub fn scale_and_zero_point(min: f32, max: f32) -> (f32, u8) {
    let scale = (max - min) / u8::MAX as f32;
    let zero_point = (-min / scale)
        .round_ties_even()
        .max(u8::MIN as f32)
        .min(u8::MAX as f32);
    (scale, zero_point as u8)
}

pub fn quantize(xs: &[f32], ys: &mut [u8], scale: f32, zero_point: u8) -> TractResult<()> {
    ensure!(xs.len() == ys.len());
    if !scale.is_normal() && scale.is_finite() {
        // Zero or subnormal scale: the quotient can leave i32; reproduce tract's release arithmetic.
        for (x, y) in xs.iter().zip(ys.iter_mut()) {
            *y = ((x / scale).round_ties_even() as i32)
                .wrapping_add(zero_point as i32)
                .clamp(u8::MIN as i32, u8::MAX as i32) as u8;
        }
        return Ok(());
    }
    // Rows of one element: tract splits them into a few contiguous runs per thread.
    par_chunks_mut(ys, 1, xs.len(), |first, out| {
        quantize_block(&xs[first..first + out.len()], out, scale, zero_point);
        Ok(())
    })
}

widest_vectors! {
    /// The lanes below compiled for the widest vectors this CPU has. Measured inside a 1B run on
    /// Zen 4: the baseline (SSE2) build took ~1.5 ns per value, the AVX-512 build ~0.1 ns (why the
    /// SSE2 build is that much slower in the graph than in isolation was not pinned down).
    fn quantize_block(xs: &[f32], ys: &mut [u8], scale: f32, zero_point: u8) = quantize_lanes
}

#[inline(always)]
fn quantize_lanes(xs: &[f32], ys: &mut [u8], scale: f32, zero_point: u8) {
    // A subnormal `x` makes the division take a microcode assist. With `scale >= 2 * MIN_POSITIVE`,
    // `|x / scale| < 0.5` for any subnormal `x`, which rounds (ties to even) to the zero point:
    // dividing 0 instead gives the same byte. Compared as bits: a float comparison can assist too.
    let zero_below: u32 = if scale >= 2.0 * f32::MIN_POSITIVE {
        f32::MIN_POSITIVE.to_bits()
    } else {
        0
    };
    // Fixed-width lanes, every step a select or clamp: the loop compiles to branch-free vector code.
    const LANES: usize = 16;
    let mut xs_chunks = xs.chunks_exact(LANES);
    let mut ys_chunks = ys.chunks_exact_mut(LANES);
    for (x, y) in (&mut xs_chunks).zip(&mut ys_chunks) {
        for l in 0..LANES {
            y[l] = quantize_one(x[l], scale, zero_point, zero_below);
        }
    }
    for (&x, y) in xs_chunks.remainder().iter().zip(ys_chunks.into_remainder()) {
        *y = quantize_one(x, scale, zero_point, zero_below);
    }
}

#[inline(always)]
fn quantize_one(x: f32, scale: f32, zero_point: u8, zero_below: u32) -> u8 {
    // 1.5 * 2^23: adding then subtracting it rounds to the nearest integer, ties to even.
    const ROUND: f32 = 12_582_912.0;
    // 2^23: an integer `v` in [0, 255] added to it is the low byte of the sum's bits (no saturating
    // float-to-int `as`, which does not vectorise).
    const TO_BITS: f32 = 8_388_608.0;
    let x = if x.to_bits() & 0x7fff_ffff < zero_below {
        0.0
    } else {
        x
    };
    let q = x / scale;
    let q = if q.is_nan() { 0.0 } else { q };
    let q = q.clamp(-512.0, 512.0);
    let v = ((q + ROUND) - ROUND) + zero_point as f32;
    let v = v.clamp(u8::MIN as f32, u8::MAX as f32);
    (v + TO_BITS).to_bits() as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    /// tract 0.23.9's scalar path, verbatim, as the reference.
    fn reference(xs: &[f32]) -> (Vec<u8>, f32, u8) {
        let (min, max) = xs.iter().fold((0f32, 0f32), |(a_min, a_max), &v| {
            if v < a_min {
                (v, a_max)
            } else if v > a_max {
                (a_min, v)
            } else {
                (a_min, a_max)
            }
        });
        let (scale, zp) = scale_and_zero_point(min, max);
        let ys = xs
            .iter()
            .map(|x| {
                (((x / scale).round_ties_even() as i32).wrapping_add(zp as i32)).clamp(0, 255) as u8
            })
            .collect();
        (ys, scale, zp)
    }

    fn fast(xs: &[f32]) -> (Vec<u8>, f32, u8) {
        let (min, max) = range(xs).unwrap();
        let (scale, zp) = scale_and_zero_point(min, max);
        let mut ys = vec![0u8; xs.len()];
        quantize(xs, &mut ys, scale, zp).unwrap();
        (ys, scale, zp)
    }

    fn assert_same(xs: &[f32]) {
        let (r, rs, rz) = reference(xs);
        let (f, fs, fz) = fast(xs);
        assert_eq!(rs.to_bits(), fs.to_bits(), "scale for {xs:?}");
        assert_eq!(rz, fz, "zero point");
        assert_eq!(r, f, "values");
    }

    #[test]
    fn the_multithreaded_path_matches_tract() {
        let executor = tract_linalg::multithread::Executor::multithread(2);
        let xs: Vec<f32> = (0..3 * BLOCK_ELEMENTS + 5)
            .map(|i| ((i * 7919 % 10007) as f32 - 4000.5) * 1e-3)
            .collect();
        tract_linalg::multithread::multithread_tract_scope(executor, || assert_same(&xs));
    }

    #[test]
    fn ties_and_the_onnx_examples_match_tract() {
        assert_same(&[0., 2., -3., -2.5, 1.34, 0.5]);
        assert_same(&[-1., -2.1, -1.3, -2.5, -3.34, -4.]);
        assert_same(&[-127., 128., 0.5, 1.5, 2.5, -0.5, -1.5]);
        assert_same(&[-253., 257.]);
    }

    #[test]
    fn degenerate_inputs_match_tract() {
        assert_same(&[]);
        assert_same(&[0.0; 37]);
        assert_same(&[-0.0, 0.0, f32::NAN, 1.0]);
        assert_same(&[f32::INFINITY, -1.0, 2.0]);
        assert_same(&[f32::NEG_INFINITY, f32::INFINITY, 3.0, f32::NAN]);
        assert_same(&[f32::MAX, f32::MIN, 0.25]);
        assert_same(&[1e-43, -2e-44, 3e-45, 0.0]);
        assert_same(&[f32::from_bits(1), f32::from_bits(7), 0.0]);
        // Subnormals among normal values (a GELU's far negative tail): quantised as 0 is.
        let tiny = f32::from_bits(0x0000_0400);
        assert_same(&[-1.0, tiny, -tiny, 2.0, f32::from_bits(0x007f_ffff), -0.0]);
        // Subnormals with a scale just above and at the bound where they are no longer skipped.
        assert_same(&[
            f32::MIN_POSITIVE * 255.0 * 2.0,
            -tiny,
            tiny,
            f32::from_bits(0x007f_ffff),
        ]);
        assert_same(&[
            f32::MIN_POSITIVE * 255.0,
            -tiny,
            f32::from_bits(0x007f_ffff),
        ]);
        // scale underflows to 0 and the zero point saturates at 255: tract's `as i32 + zp` wraps.
        assert_same(&[-f32::from_bits(1), f32::from_bits(1), 0.0]);
    }

    #[test]
    fn random_activations_match_tract_across_blocks() {
        // Spans several blocks and an uneven tail.
        let mut next = crate::optimize::test_rng(0x9e37_79b9_7f4a_7c15);
        for len in [
            1,
            7,
            8,
            9,
            1000,
            BLOCK_ELEMENTS + 3,
            5 * BLOCK_ELEMENTS + 17,
        ] {
            let xs: Vec<f32> = (0..len)
                .map(|_| ((next() >> 40) as f32 / (1u64 << 24) as f32 - 0.3) * 13.7)
                .collect();
            assert_same(&xs);
            // Exact ties on the quantisation grid.
            let (_, scale, _) = reference(&xs);
            let ties: Vec<f32> = xs
                .iter()
                .map(|x| ((x / scale).floor() + 0.5) * scale)
                .collect();
            assert_same(&ties);
        }
    }
}
