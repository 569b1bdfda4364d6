//! The int8 projections (u8 activation × constant i8 weight) on our NEON kernel (`neon_kernel`) on
//! ARM64 cores without the dot product (Raspberry Pi 4's Cortex-A72, Pi Zero 2's A53, Jetson
//! Nano's A57), in place of tract's `OptMatMul`, with tract's exact i32 output.
//!
//! Why: there tract's int8 kernel (`arm64simd_mmm_i32_8x8`) widens both operands to 16 bits and
//! multiplies with `SMLAL`/`SMLAL2`, 4 multiply-adds per instruction; onnxruntime's multiplies
//! 8-bit lanes (`SMULL`/`SMLAL2` into 16-bit pairs, `SADALP` into 32 bits): 16 per 3 instructions.
//! Measured in instructions counted under qemu-user as a Cortex-A72 (not times), 1 s of audio, 1
//! thread, per run (`docs/benchmarks.md`, 2026-12-02): MMS-300M 7.44 G → 5.15 G (onnxruntime: 6.52 G),
//! `smlal` + `smlal2` + `sshll` 5.59 G → 0.82 G (the convolutions, left on tract's kernel) beside our
//! 2.95 G of `smull` + `smlal2` + `sadalp`; the bundled model 83.0 M → 69.5 M.
//!
//! What is replaced, exactly: the products `vnni_matmul` describes (`Σ_k (x_u8 − 128) · w_i8 − v`,
//! matched by the same [`Int8Projection`]), when tract packed the weight for its non-dot-product
//! kernel (`PackedFormat` of i8: per panel of `r` features, for each `k`, `r` bytes) and the weight
//! holds no −128 (the kernel's 16-bit pairs cannot hold two products of −128 · −128; symmetric
//! int8 quantisation, onnxruntime's for weights, never produces one). The weight is repacked once
//! at load; the activation is offset and copied once per run (`neon_kernel::offset_activation`),
//! so the accumulators start at `−v` and the sums are tract's integers: bit-identical output
//! (`crates/tract-accel/tests/bit_identity.rs`, run under QEMU as a Cortex-A72). Anything else — the
//! convolutions behind `Im2col`, f32 products, cores with the dot product (tract's `SDOT` kernel,
//! `PackedI8K4` weights), x86 — keeps tract's op.
//!
//! Upstream report: `docs/upstream/tract-arm64-i8-no-dotprod.md`. Delete this pass (and
//! `neon_kernel`) once a tract release's non-dot-product int8 kernel multiplies 8-bit lanes.

use std::sync::Arc;

use tract_linalg::mmm::EagerPackedInput;
use tract_linalg::pack::PackedFormat;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

use super::neon_kernel::{self, Product, PANEL};
use super::vnni_matmul::Int8Projection;
use super::{replace_nodes, AccelOp, Replacement};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NeonMatMul {
    /// The output's fact (tract's `c_fact`): features on the last axis, rows on the one before.
    c_fact: TypedFact,
    m: usize,
    k: usize,
    /// The weight in the kernel's panels (`neon_kernel::pack_weight_from_panels`), packed once at load.
    weight: Arc<Vec<i8>>,
    /// A second input, subtracted per feature (tract's `rowSubF`).
    subtract: bool,
}

super::tract_op!(NeonMatMul);

impl AccelOp for NeonMatMul {
    fn describe(&self) -> Vec<String> {
        vec![format!(
            "u8 × i8, m: {} k: {}{}",
            self.m,
            self.k,
            if self.subtract { ", rowSubF" } else { "" }
        )]
    }

    fn run(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        ensure!(
            inputs.len() == 1 + self.subtract as usize,
            "NeonMatMul inputs"
        );
        let x = inputs[0].try_as_plain_ram()?;
        let x = x.as_slice::<u8>()?;
        ensure!(
            x.len() % self.k == 0,
            "activation of {} bytes, k = {}",
            x.len(),
            self.k
        );
        let rows = x.len() / self.k;
        // tract adds the u8 → i8 offset to the activation (`OffsetU8asI8`), so the start is −v.
        let mut start = vec![0i32; self.m.div_ceil(PANEL) * PANEL];
        if self.subtract {
            let v = inputs[1].try_as_plain_ram()?;
            let v = v.as_slice::<i32>()?;
            ensure!(v.len() == self.m, "per-feature term of {} values", v.len());
            start
                .iter_mut()
                .zip(v)
                .for_each(|(s, v)| *s = v.wrapping_neg());
        }
        let xs = neon_kernel::offset_activation(x, rows, self.k);
        let rank = self.c_fact.rank();
        let mut shape: TVec<usize> = tvec![1; rank];
        shape[rank - 2] = rows;
        shape[rank - 1] = self.m;
        // SAFETY: i32 has no drop and every bit pattern is valid; `multiply` writes every element
        // (`rows × m`: each row, each feature below `m`) or fails, and `c` is dropped unread.
        let mut c = unsafe { Tensor::uninitialized::<i32>(&shape)? };
        let product = Product {
            x: &xs,
            rows,
            kp: neon_kernel::padded_k(self.k),
            w: &self.weight,
            m: self.m,
            start: &start,
        };
        {
            let mut view = c.try_as_plain_ram_mut()?;
            neon_kernel::multiply(&product, view.as_slice_mut::<i32>()?)
                .map_err(|e| format_err!("NeonMatMul: {e}"))?;
        }
        Ok(tvec!(c.into_tvalue()))
    }

    fn facts(&self, _inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        Ok(tvec!(self.c_fact.clone()))
    }
}

/// Replaces every `OptMatMul` of the shape described in the module doc, on ARM64 without the dot
/// product. Returns how many.
pub fn replace_matmuls(model: &mut TypedModel) -> TractResult<usize> {
    if !neon_kernel::supported() {
        return Ok(0);
    }
    replace_nodes(model, "NEON int8 matmuls", replacement)
}

/// The op in place of `node`, reading the u8 activation, then the per-feature term if any.
fn replacement(model: &TypedModel, node: &TypedNode) -> TractResult<Option<Replacement>> {
    let Some(Int8Projection {
        c_fact,
        m,
        k,
        weight,
        inputs,
        subtract,
    }) = Int8Projection::of(model, node)?
    else {
        return Ok(None);
    };
    let Some(weight) = repacked_weight(weight, m, k) else {
        return Ok(None);
    };
    let op = NeonMatMul {
        c_fact: c_fact.clone(),
        m,
        k,
        weight: Arc::new(weight),
        subtract,
    };
    Ok(Some(Replacement::new(node, op, &inputs)))
}

/// tract's `PackedFormat` i8 weight (`m × k`) in the kernel's panels, or `None` for another format,
/// a blob shorter than its panels, or a weight holding a −128.
fn repacked_weight(weight: &EagerPackedInput, m: usize, k: usize) -> Option<Vec<i8>> {
    let format = weight.fact.format.downcast_ref::<PackedFormat>()?;
    let r = format.r;
    let panel_bytes = weight.panel_bytes;
    let fits = r > 0
        && format.dt.unquantized() == i8::datum_type()
        && k.checked_mul(r).is_some_and(|n| panel_bytes >= n)
        && m.div_ceil(r)
            .checked_mul(panel_bytes)
            .is_some_and(|n| weight.packed.len() >= n);
    if !fits {
        return None;
    }
    neon_kernel::pack_weight_from_panels(weight.packed.as_bytes(), r, panel_bytes, m, k)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tract_linalg::mmm::MMMInputFormat;

    /// tract's own packing of a weight, unpacked into the kernel's panels: the same `w[j][k]`.
    #[test]
    fn repacks_tracts_non_dot_product_format() {
        let (m, k) = (13usize, 21usize);
        let mut rng = crate::optimize::test_rng(11);
        let w: Vec<i8> = (0..m * k)
            .map(|_| ((rng() % 255) as i16 - 127) as i8)
            .collect();
        // ONNX stores the weight `[k, m]`, as tract packs it.
        let t = Tensor::from_shape(&[k, m], &transpose(&w, m, k)).unwrap();
        for r in [8, 64] {
            let format = PackedFormat::new(DatumType::I8, r, 16);
            let value = format.prepare_one(&t, 0, 1).unwrap();
            let eager = value.downcast_ref::<EagerPackedInput>().unwrap();
            let got = repacked_weight(eager, m, k).unwrap();
            assert_eq!(
                got,
                neon_kernel::pack_weight(m, k, |j, kk| w[j * k + kk]).unwrap()
            );
        }
        let mut with_min = w.clone();
        with_min[5 * k + 20] = i8::MIN;
        let t = Tensor::from_shape(&[k, m], &transpose(&with_min, m, k)).unwrap();
        let value = PackedFormat::new(DatumType::I8, 8, 16)
            .prepare_one(&t, 0, 1)
            .unwrap();
        let eager = value.downcast_ref::<EagerPackedInput>().unwrap();
        assert!(repacked_weight(eager, m, k).is_none());
    }

    /// `w` (`m × k`, row-major) as `k × m`.
    fn transpose(w: &[i8], m: usize, k: usize) -> Vec<i8> {
        (0..k * m).map(|i| w[(i % m) * k + i / m]).collect()
    }
}
