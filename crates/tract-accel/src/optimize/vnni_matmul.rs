//! The int8 projections (u8 activation × constant i8 weight) on our own AVX-512 VNNI kernel
//! (`vnni_kernel`), in place of tract's `OptMatMul`, with tract's exact i32 output.
//!
//! Why: after every other pass, tract's int8 kernel was the bulk of an MMS-1B run (0.78 s of 1.33 s at
//! 5 s of audio, Zen 4, 2 threads), against onnxruntime's 0.60 s for the same products. tract computes
//! a 16×16 (or 8×8) tile per kernel call over packed operands, with a fused-op interpreter around
//! each call; on the feed-forward shapes that reached ~270 GMAC/s. A 6-row × 64-feature tile that
//! reads the activation in place (four `k` of a row are one broadcast dword) and keeps a group of
//! weight panels in L2 reaches ~440 GMAC/s on the same shapes.
//!
//! What is replaced, exactly: an `OptMatMul` computing `Σ_k (x_u8 − 128) · w_i8 − v` (tract offsets
//! the u8 activation into i8, `OffsetU8asI8`, packs it, and subtracts the zero-point term `v` per
//! output feature, `rowSubF`) with the weight a constant `PackedI8K4` on the output's last (feature)
//! axis and the activation's `k` contiguous. We compute `(−128 · Σ_k w − v) + Σ_k x_u8 · w`
//! from the u8 activation: the same integer, and i32 arithmetic wraps alike in any order, so the
//! output is bit-identical (`crates/tract-accel/tests/bit_identity.rs`). The packed weight is tract's
//! own bytes, shared, not copied, when tract packed it in 16-row panels (its 16×16 tile); 8-row
//! panels are repacked once. Anything else — the convolutions behind `Im2col`, f32 products, CPUs
//! without AVX-512 VNNI (ARM64 included) — keeps tract's op.
//!
//! Upstream report: `docs/upstream/tract-int8-gemm-tile.md`. Delete this pass (and `vnni_kernel`)
//! once a tract release's int8 kernel is as fast on these projections.

use std::sync::Arc;

use tract_linalg::mmm::{EagerPackedInput, MMMInputValue, PackedMatrixStorage};
use tract_linalg::pack::PackedI8K4;
use tract_linalg::BinOp;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::element_wise::ElementWiseOp;
use tract_onnx::tract_core::ops::konst::Const;
use tract_onnx::tract_core::ops::matmul::optimized::{MatMulOperand, OptMatMul, ProtoFusedSpec};
use tract_onnx::tract_core::ops::quant::OffsetU8asI8;

use super::fast_pack::{FastPackI8K4, PackNode};
use super::vnni_kernel::{self, Product, PANEL};
use super::{replace_nodes, AccelOp, Replacement};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VnniMatMul {
    /// The output's fact (tract's `c_fact`): features on the last axis, rows on the one before.
    c_fact: TypedFact,
    m: usize,
    k: usize,
    /// The weight in 16-row `PackedI8K4` panels: tract's own blob, shared, when its tile has 16
    /// rows; else repacked once at load.
    weight: Arc<Blob>,
    /// `−128 · Σ_k w` per feature, padded to whole panels: the u8 → i8 offset tract applies to
    /// the activation, moved to the accumulators' start.
    offset_sums: Arc<Vec<i32>>,
    /// A second input, subtracted per feature (tract's `rowSubF`).
    subtract: bool,
}

super::tract_op!(VnniMatMul);

impl AccelOp for VnniMatMul {
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
            "VnniMatMul inputs"
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
        let mut start = self.offset_sums.as_ref().clone();
        if self.subtract {
            let v = inputs[1].try_as_plain_ram()?;
            let v = v.as_slice::<i32>()?;
            ensure!(v.len() == self.m, "per-feature term of {} values", v.len());
            start
                .iter_mut()
                .zip(v)
                .for_each(|(s, v)| *s = s.wrapping_sub(*v));
        }
        let rank = self.c_fact.rank();
        let mut shape: TVec<usize> = tvec![1; rank];
        shape[rank - 2] = rows;
        shape[rank - 1] = self.m;
        // SAFETY: i32 has no drop and every bit pattern is valid; `multiply` writes every element
        // (`rows × m`: each row, each feature below `m`) or fails, and `c` is dropped unread.
        let mut c = unsafe { Tensor::uninitialized::<i32>(&shape)? };
        let product = Product {
            x,
            rows,
            k: self.k,
            w: self.weight.as_bytes(),
            m: self.m,
            start: &start,
        };
        {
            let mut view = c.try_as_plain_ram_mut()?;
            vnni_kernel::multiply(&product, view.as_slice_mut::<i32>()?)
                .map_err(|e| format_err!("VnniMatMul: {e}"))?;
        }
        Ok(tvec!(c.into_tvalue()))
    }

    fn facts(&self, _inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        Ok(tvec!(self.c_fact.clone()))
    }
}

/// Replaces every `OptMatMul` of the shape described in the module doc, when this CPU has AVX-512
/// VNNI. Returns how many.
pub fn replace_matmuls(model: &mut TypedModel) -> TractResult<usize> {
    if !vnni_kernel::supported() {
        return Ok(0);
    }
    replace_nodes(model, "VNNI int8 matmuls", replacement)
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
    let Some(r) = weight.fact.format.downcast_ref::<PackedI8K4>().map(|f| f.r) else {
        return Ok(None);
    };
    if !k.is_multiple_of(4)
        || r == 0
        || weight.panel_bytes != k * r
        || weight.packed.len() < m.div_ceil(r) * weight.panel_bytes
    {
        return Ok(None);
    }
    // tract's 16-row panels are the kernel's as they are; other tiles' (8 rows on most CPUs) are
    // repacked once, and tract's copy is dropped with the op it fed.
    let packed = if r == PANEL {
        weight.packed.clone()
    } else {
        Arc::new(repack(weight.packed.as_bytes(), r, m, k))
    };
    let op = VnniMatMul {
        c_fact: c_fact.clone(),
        m,
        k,
        offset_sums: Arc::new(offset_sums(packed.as_bytes(), m, k)),
        weight: packed,
        subtract,
    };
    Ok(Some(Replacement::new(node, op, &inputs)))
}

/// An int8 projection as tract optimised it, whatever its kernel's packing: an `OptMatMul`
/// computing `Σ_k (x_u8 − 128) · w_i8 [− v]` (module doc) into an i32 output with the features on
/// its last axis and any axis before the rows 1, from a constant packed weight and the u8
/// activation behind tract's `OffsetU8asI8` and pack. Shared by the passes that take these
/// products onto our kernels (`vnni_matmul`, `neon_matmul`), which check the packing themselves.
pub(super) struct Int8Projection<'m> {
    pub c_fact: &'m TypedFact,
    /// Output features.
    pub m: usize,
    /// Products per output (> 0).
    pub k: usize,
    /// tract's packed weight (`m` rows of `k`), in its kernel's format.
    pub weight: &'m EagerPackedInput,
    /// The replacement's inputs: the u8 activation (`k` on its last axis), then `v` if any.
    pub inputs: TVec<OutletId>,
    /// Whether there is a per-feature `v` to subtract (tract's `rowSubF`).
    pub subtract: bool,
}

impl<'m> Int8Projection<'m> {
    pub fn of(model: &'m TypedModel, node: &'m TypedNode) -> TractResult<Option<Self>> {
        let Some(mm) = node.op_as::<OptMatMul>() else {
            return Ok(None);
        };
        let c = &mm.c_fact;
        let rank = c.rank();
        if c.datum_type != i32::datum_type()
            || rank < 2
            || mm.c_m_axis != Some(rank - 1)
            || mm.c_n_axis != Some(rank - 2)
            || c.shape.iter().take(rank - 2).any(|d| !d.is_one())
        {
            return Ok(None);
        }
        let Ok(m) = c.shape[rank - 1].to_usize() else {
            return Ok(None);
        };
        let (weight, activation, subtract) = match mm.micro_ops.as_slice() {
            [ProtoFusedSpec::AddMatMul { a, b, .. }, ProtoFusedSpec::Store(_)] => (a, b, None),
            [ProtoFusedSpec::AddMatMul { a, b, .. }, ProtoFusedSpec::BinPerRow(v, BinOp::SubF, _), ProtoFusedSpec::Store(_)] => {
                (a, b, Some(*v))
            }
            _ => return Ok(None),
        };
        let Some(weight) = constant_weight(model, node, weight)? else {
            return Ok(None);
        };
        let k = weight.k();
        if weight.mn != m || k == 0 {
            return Ok(None);
        }
        let Some(x) = offset_activation(model, node, activation, k)? else {
            return Ok(None);
        };
        let mut inputs = tvec![x];
        if let Some(v) = subtract {
            let outlet = node.inputs[v];
            let fact = model.outlet_fact(outlet)?;
            if fact.datum_type != i32::datum_type() || fact.shape.volume() != m.to_dim() {
                return Ok(None);
            }
            inputs.push(outlet);
        }
        Ok(Some(Int8Projection {
            c_fact: c,
            m,
            k,
            weight,
            inputs,
            subtract: subtract.is_some(),
        }))
    }
}

/// The packed weight, if the operand is a constant (baked into the op, or a `Const` input).
pub(super) fn constant_weight<'m>(
    model: &'m TypedModel,
    node: &'m TypedNode,
    operand: &'m MatMulOperand,
) -> TractResult<Option<&'m EagerPackedInput>> {
    let value: &dyn MMMInputValue = match operand {
        MatMulOperand::Const(value) => &**value,
        MatMulOperand::Input(ix) => {
            let Some(konst) = model.node(node.inputs[*ix].node).op_as::<Const>() else {
                return Ok(None);
            };
            let Ok(storage) = konst.val().try_storage_as::<PackedMatrixStorage>() else {
                return Ok(None);
            };
            let [value] = storage.values() else {
                return Ok(None);
            };
            &**value
        }
    };
    Ok(value.downcast_ref::<EagerPackedInput>())
}

/// The u8 activation behind the operand: `pack(OffsetU8asI8(x))`, `x`'s `k` (of length `k`) its
/// last axis, its rows the one before, any other axis 1.
fn offset_activation(
    model: &TypedModel,
    node: &TypedNode,
    operand: &MatMulOperand,
    k: usize,
) -> TractResult<Option<OutletId>> {
    let MatMulOperand::Input(ix) = operand else {
        return Ok(None);
    };
    let pack = model.node(node.inputs[*ix].node);
    let axes = match pack.op_as::<FastPackI8K4>() {
        Some(fast) => Some(fast.axes()),
        None => PackNode::of(model, pack)?.map(|p| (p.k_axis, p.mn_axis)),
    };
    let Some((k_axis, mn_axis)) = axes else {
        return Ok(None);
    };
    let offset = model.node(pack.inputs[0].node);
    let is_offset = offset
        .op_as::<ElementWiseOp>()
        .is_some_and(|e| e.0.downcast_ref::<OffsetU8asI8>().is_some());
    if !is_offset || offset.inputs.len() != 1 {
        return Ok(None);
    }
    let x = offset.inputs[0];
    let fact = model.outlet_fact(x)?;
    let rank = fact.rank();
    let layout_ok = fact.datum_type == u8::datum_type()
        && rank >= 2
        && k_axis == rank - 1
        && mn_axis == rank - 2
        && fact.shape[rank - 1] == k.to_dim()
        && fact.shape.iter().take(rank - 2).all(|d| d.is_one());
    Ok(layout_ok.then_some(x))
}

/// A `PackedI8K4 { r }` weight (`m × k`) in `PackedI8K4 { r: 16 }` layout: per panel, for each four
/// `k`, `r` features × 4 bytes; zero-padded to whole panels.
fn repack(packed: &[u8], r: usize, m: usize, k: usize) -> Blob {
    let panels = m.div_ceil(PANEL);
    // SAFETY: 64 is a power of two; the blob's bytes are uninitialised until zeroed just below,
    // before anything reads them.
    let mut blob = unsafe { Blob::new_for_size_and_align(panels * k * PANEL, 64) };
    let out = blob.as_bytes_mut();
    out.fill(0);
    for j in 0..m {
        let from = (j / r) * k * r + (j % r) * 4;
        let to = (j / PANEL) * k * PANEL + (j % PANEL) * 4;
        for step in 0..k / 4 {
            let (src, dst) = (from + step * r * 4, to + step * PANEL * 4);
            out[dst..dst + 4].copy_from_slice(&packed[src..src + 4]);
        }
    }
    blob
}

/// `−128 · Σ_k w[j][k]` per feature `j` of a `PackedI8K4 { r: 16 }` weight, padded to whole panels
/// (the padding lanes are zero weights: zero sums).
fn offset_sums(packed: &[u8], m: usize, k: usize) -> Vec<i32> {
    let panels = m.div_ceil(PANEL);
    let mut sums = Vec::with_capacity(panels * PANEL);
    for panel in packed.chunks_exact(k * PANEL).take(panels) {
        // Byte-wise over each 64-byte step (one add per byte, which vectorises: 1 GB of weights
        // at MMS-1B), then the four bytes of each lane.
        let mut bytes = [0i32; PANEL * 4];
        for step in panel.chunks_exact(PANEL * 4) {
            bytes
                .iter_mut()
                .zip(step)
                .for_each(|(s, &b)| *s += b as i8 as i32);
        }
        sums.extend(
            bytes
                .chunks_exact(4)
                .map(|lane| lane.iter().sum::<i32>().wrapping_mul(-128)),
        );
    }
    sums
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_sums_read_each_lane_of_the_k4_layout() {
        // Two features, k = 8: panel bytes are [k/4][16 lanes][4].
        let (m, k) = (2, 8);
        let mut packed = vec![0u8; k * PANEL];
        let w = [[1i8, 2, 3, 4, -5, 6, 7, 8], [-1, -1, -1, -1, 10, 0, 0, 0]];
        for (j, row) in w.iter().enumerate() {
            for (kk, &v) in row.iter().enumerate() {
                packed[(kk / 4) * PANEL * 4 + j * 4 + kk % 4] = v as u8;
            }
        }
        let sums = offset_sums(&packed, m, k);
        assert_eq!(sums.len(), PANEL);
        assert_eq!(&sums[..3], &[-128 * 26, -128 * 6, 0]);
    }

    /// An 8-row-panel weight (tract's 8×8 tile) lands in 16-row panels byte for byte.
    #[test]
    fn repacks_eight_row_panels_into_sixteen() {
        let (m, k, r) = (21usize, 12usize, 8usize);
        let mut rng = crate::optimize::test_rng(5);
        let w: Vec<u8> = (0..m * k).map(|_| rng() as u8).collect();
        let pack = |r: usize| {
            let mut out = vec![0u8; m.div_ceil(r) * k * r];
            for j in 0..m {
                for kk in 0..k {
                    out[(j / r) * k * r + (kk / 4) * r * 4 + (j % r) * 4 + kk % 4] = w[j * k + kk];
                }
            }
            out
        };
        let repacked = repack(&pack(r), r, m, k);
        assert_eq!(repacked.as_bytes(), pack(PANEL).as_slice());
    }
}
