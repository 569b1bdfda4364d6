//! Each encoder layer's self-attention as one op (`FusedAttention`), in place of the two f32
//! einsums, the scale and the softmax tract runs it as.
//!
//! Why: after the int8 passes, the attention products were the second-largest cost of an MMS-1B run
//! (0.25 s of 1.09 s at 5 s of audio, Zen 4, 2 threads; onnxruntime ~0.09 s). tract runs each
//! product as a general matmul over 16 heads: it packs both activations at every run (four packs per
//! layer), writes the whole `[16, T, T]` score tensor, runs the softmax over it as a separate op and
//! reads it back. `FusedAttention` does one head × 48 frames per task: their scores (in L2), their
//! softmax, their share of the output, reading q and v where the projections left them.
//!
//! Bit-identical to tract: the kernel (`attention_kernel`) keeps tract's order of multiply-adds for
//! every output, and the softmax here is tract 0.23.9's own for a contiguous f32 row — the same
//! tract-linalg kernels, chosen by the same rule (`TractSoftmax`).
//! `crates/tract-accel/tests/bit_identity.rs` checks it on the whole model, the unit tests below on
//! the pattern alone, against stock tract.
//!
//! What is matched, after declutter: `EinSum(q, k)` (`mhd,nhd->hmn`) → `Mul` by a scalar constant →
//! `Softmax` over the last axis → `EinSum(·, v)` (`hmn,nhd->mhd`, with or without a leading unit
//! output axis), q, k and v `[T, H, D]` f32, each intermediate read by nothing else. Anything else —
//! masks, other layouts, CPUs without AVX-512F (ARM64 included) — keeps tract's ops.
//!
//! Upstream report: `docs/upstream/tract-attention-products.md`. Delete this pass (and
//! `attention_kernel`) once a tract release runs an attention without packing its activations at
//! every run and without the whole score tensor between the products and the softmax.

use tract_linalg::element_wise::ElementWise;
use tract_linalg::reduce::{MapReduce, Reduce};
use tract_linalg::routines::{Func, SoftmaxRowsF32};
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::einsum::EinSum;
use tract_onnx::tract_core::ops::nn::{Softmax, SoftmaxKind};

use super::attention_kernel::{self, Heads};
use super::layer_norm::{product_by_constant, sole_producer};
use super::{replace_nodes, AccelOp, Replacement};

#[derive(Clone, Debug, PartialEq)]
pub struct FusedAttention {
    heads: usize,
    head_dim: usize,
    /// The scores' scale (the `Mul` after the first product).
    scale: f32,
    /// Unit axes ahead of `[T, H, D]` in the output (the second einsum's).
    unit_axes: usize,
}

impl std::hash::Hash for FusedAttention {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (self.heads, self.head_dim, self.unit_axes).hash(state);
        self.scale.to_bits().hash(state);
    }
}

impl Eq for FusedAttention {}

super::tract_op!(FusedAttention);

impl AccelOp for FusedAttention {
    fn describe(&self) -> Vec<String> {
        vec![format!(
            "{} heads × {}, scale {:e}",
            self.heads, self.head_dim, self.scale
        )]
    }

    fn run(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        ensure!(inputs.len() == 3, "FusedAttention takes q, k and v");
        let shape = inputs[0].shape();
        ensure!(
            shape.len() == 3 && shape[1] == self.heads && shape[2] == self.head_dim,
            "FusedAttention: q of shape {shape:?}"
        );
        let frames = shape[0];
        let (q, k, v) = (
            inputs[0].try_as_plain_ram()?,
            inputs[1].try_as_plain_ram()?,
            inputs[2].try_as_plain_ram()?,
        );
        let heads = Heads {
            q: q.as_slice::<f32>()?,
            k: k.as_slice::<f32>()?,
            v: v.as_slice::<f32>()?,
            frames,
            heads: self.heads,
            head_dim: self.head_dim,
            scale: self.scale,
        };
        let mut out_shape: TVec<usize> = tvec![1; self.unit_axes];
        out_shape.extend_from_slice(shape);
        // SAFETY: f32 has no drop and every bit pattern is valid; `attend` writes every value (each
        // frame × head × head dim, as many as `out_shape` holds) or fails, and `out` is dropped
        // unread.
        let mut out = unsafe { Tensor::uninitialized::<f32>(&out_shape)? };
        let softmax = TractSoftmax::new()?;
        {
            let mut view = out.try_as_plain_ram_mut()?;
            attention_kernel::attend(&heads, &|row| softmax.apply(row), view.as_slice_mut()?)
                .context("FusedAttention")?;
        }
        Ok(tvec!(out.into_tvalue()))
    }

    fn facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let mut shape: TVec<TDim> = tvec![TDim::from(1); self.unit_axes];
        shape.extend(inputs[0].shape.iter().cloned());
        Ok(tvec!(f32::fact(shape)))
    }
}

/// tract 0.23.9's softmax of one contiguous f32 row (`Softmax::eval_t`, trailing axes, natural
/// strides): its whole-row kernel when the row's length is a multiple of 4 and this CPU has one,
/// else max, `exp(x − max)` with the sum, and the product by the sum's reciprocal, by the same
/// tract-linalg kernels.
struct TractSoftmax {
    rows: Option<SoftmaxRowsF32>,
    max: Box<dyn Reduce<f32>>,
    exp_sum: Box<dyn MapReduce<f32, f32>>,
    scale: Box<dyn ElementWise<f32, f32>>,
}

impl TractSoftmax {
    fn new() -> TractResult<TractSoftmax> {
        Ok(TractSoftmax {
            rows: tract_linalg::routines::softmax_rows_f32(),
            max: Func::ReduceMax.reduce_f32()?,
            exp_sum: Func::Softmax2.map_reduce_f32()?,
            scale: Func::MulByScalar.ew_f32_param()?,
        })
    }

    fn apply(&self, row: &mut [f32]) -> TractResult<()> {
        if row.is_empty() {
            return Ok(());
        }
        if let Some(kernel) = self.rows.filter(|_| row.len().is_multiple_of(4)) {
            kernel(row, row.len());
            return Ok(());
        }
        let max = self.max.run(row)?;
        let sum = self.exp_sum.run_with_params(row, max)?;
        self.scale.run_with_params(row, sum.recip())
    }
}

/// Replaces every attention of the pattern in the module doc, when this CPU runs the kernel.
/// Returns how many.
pub fn fuse_attentions(model: &mut TypedModel) -> TractResult<usize> {
    if !attention_kernel::supported() {
        return Ok(0);
    }
    replace_nodes(model, "fused attention", matching)
}

/// The einsum's axes with its letters renamed `a`, `b`, … in order of first appearance, so that a
/// layout is recognised whatever letters tract gave it.
fn canonical(einsum: &EinSum) -> String {
    let expr = einsum.axes.to_string();
    let mut seen: Vec<char> = Vec::new();
    expr.chars()
        .map(|c| {
            if !c.is_ascii_alphabetic() {
                return c;
            }
            let ix = seen.iter().position(|&s| s == c).unwrap_or_else(|| {
                seen.push(c);
                seen.len() - 1
            });
            (b'a' + ix as u8) as char
        })
        .collect()
}

/// A plain f32 einsum of two inputs (no quantisation) in one of `layouts`.
fn f32_einsum<'m>(node: &'m TypedNode, layouts: &[&str]) -> Option<&'m EinSum> {
    let einsum = node.op_as::<EinSum>()?;
    let plain = einsum.q_params.is_none()
        && einsum.operating_dt == f32::datum_type()
        && node.inputs.len() == 2;
    (plain && layouts.contains(&canonical(einsum).as_str())).then_some(einsum)
}

/// The fused op, reading q, k and v, in place of `node` if it is the second product of an
/// attention.
fn matching(model: &TypedModel, node: &TypedNode) -> TractResult<Option<Replacement>> {
    // `hmn,nhd->mhd`, with or without a leading unit axis in the output.
    let Some(mix) = f32_einsum(node, &["abc,cad->bad", "abc,cad->ebad"]) else {
        return Ok(None);
    };
    let unit_axes = mix.axes.rank(InOut::Out(0)) - 3;
    let out = model.outlet_fact(node.id.into())?;
    if out.shape.iter().take(unit_axes).any(|d| !d.is_one()) {
        return Ok(None);
    }
    let Some(softmax) = sole_producer(model, node, 0) else {
        return Ok(None);
    };
    let is_softmax = softmax.op_as::<Softmax>().is_some_and(|op| {
        op.axes.as_slice() == [2] && op.kind == SoftmaxKind::Softmax && op.quant_output_dt.is_none()
    });
    if !is_softmax {
        return Ok(None);
    }
    let Some(mul) = sole_producer(model, softmax, 0) else {
        return Ok(None);
    };
    // Scores × scale.
    let Some((scores_slot, scale)) = product_by_constant(model, mul) else {
        return Ok(None);
    };
    let Some(scores) = sole_producer(model, mul, scores_slot) else {
        return Ok(None);
    };
    // `mhd,nhd->hmn`.
    if f32_einsum(scores, &["abc,dbc->bad"]).is_none() {
        return Ok(None);
    }
    let inputs = tvec![scores.inputs[0], scores.inputs[1], node.inputs[1]];
    let q = model.outlet_fact(inputs[0])?;
    let same_shape = inputs
        .iter()
        .map(|&i| model.outlet_fact(i))
        .collect::<TractResult<Vec<_>>>()?
        .iter()
        .all(|f| f.datum_type == f32::datum_type() && f.shape == q.shape && f.rank() == 3);
    if !same_shape || model.outlet_fact(mul.id.into())?.datum_type != f32::datum_type() {
        return Ok(None);
    }
    let (Ok(heads), Ok(head_dim)) = (q.shape[1].to_usize(), q.shape[2].to_usize()) else {
        return Ok(None);
    };
    let op = FusedAttention {
        heads,
        head_dim,
        scale,
        unit_axes,
    };
    Ok(Some(Replacement::new(node, op, &inputs)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optimize::test_rng;

    const HEADS: usize = 3;

    /// The decluttered pattern as tract-onnx leaves an MMS layer's attention, at `head_dim`.
    fn attention(head_dim: usize, unit_axis: bool) -> TractResult<TypedModel> {
        let mut model = TypedModel::default();
        let t = model.symbols.sym("T");
        let shape = [t.to_dim(), HEADS.to_dim(), head_dim.to_dim()];
        let q = model.add_source("q", f32::fact(shape.clone()))?;
        let k = model.add_source("k", f32::fact(shape.clone()))?;
        let v = model.add_source("v", f32::fact(shape))?;
        let scores = model.wire_node(
            "scores",
            EinSum::new("mhd,nhd->hmn".parse()?, f32::datum_type()),
            &[q, k],
        )?;
        let scale = model.add_const("scale", tensor3(&[[[1.0 / (head_dim as f32).sqrt()]]]))?;
        let scaled = model.wire_node(
            "scaled",
            tract_onnx::tract_core::ops::math::mul(),
            &[scores[0], scale],
        )?;
        let probs = model.wire_node(
            "probs",
            Softmax::new(tvec![2], None, SoftmaxKind::Softmax),
            &scaled,
        )?;
        let mix = if unit_axis {
            "hmn,nhd->amhd"
        } else {
            "hmn,nhd->mhd"
        };
        let out = model.wire_node(
            "mix",
            EinSum::new(mix.parse()?, f32::datum_type()),
            &[probs[0], v],
        )?;
        model.select_output_outlets(&out)?;
        Ok(model)
    }

    fn run(model: TypedModel, inputs: &[Tensor]) -> TractResult<Tensor> {
        let plan = model.into_optimized()?.into_runnable()?;
        let out = plan.run(inputs.iter().map(|t| t.clone().into()).collect())?;
        Ok(out[0].clone().into_tensor())
    }

    fn inputs(frames: usize, head_dim: usize) -> TractResult<Vec<Tensor>> {
        let mut rng = test_rng(frames as u64 * 131 + head_dim as u64);
        (0..3)
            .map(|_| {
                let values: Vec<f32> = (0..frames * HEADS * head_dim)
                    .map(|_| ((rng() >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 6.0)
                    .collect();
                Tensor::from_shape(&[frames, HEADS, head_dim], &values)
            })
            .collect()
    }

    /// Bit for bit against stock tract's einsums and softmax: head dims of MMS-1B (80) and the tiny
    /// model (16), frames that are and are not multiples of 4 (tract's two softmax paths), one frame,
    /// on one and two threads.
    #[test]
    fn matches_tracts_einsums_and_softmax_bit_for_bit() -> TractResult<()> {
        for unit_axis in [false, true] {
            for head_dim in [16, 80] {
                let stock = attention(head_dim, unit_axis)?;
                let mut fused = stock.clone();
                let count = fuse_attentions(&mut fused)?;
                if !attention_kernel::supported() {
                    assert_eq!(count, 0);
                    continue;
                }
                assert_eq!(count, 1);
                assert_eq!(
                    fused.nodes().iter().filter(|n| n.op_is::<EinSum>()).count(),
                    0
                );
                for frames in [1, 4, 7, 64, 249] {
                    let x = inputs(frames, head_dim)?;
                    for threads in [1, 2] {
                        let executor = tract_linalg::multithread::Executor::multithread(threads);
                        let (want, got) =
                            tract_linalg::multithread::multithread_tract_scope(executor, || {
                                (run(stock.clone(), &x), run(fused.clone(), &x))
                            });
                        let (want, got) = (want?, got?);
                        assert_eq!(want.shape(), got.shape());
                        let (want, got) = (want.try_as_plain_ram()?, got.try_as_plain_ram()?);
                        let (w, g) = (want.as_slice::<f32>()?, got.as_slice::<f32>()?);
                        let differing = w
                            .iter()
                            .zip(g)
                            .filter(|(a, b)| a.to_bits() != b.to_bits())
                            .count();
                        assert_eq!(
                            differing, 0,
                            "d {head_dim}, {frames} frames, {threads} threads, unit axis {unit_axis}"
                        );
                    }
                }
            }
        }
        Ok(())
    }

    /// Scores read by anything else (here: also a model output) stay tract's.
    #[test]
    fn leaves_an_attention_whose_scores_are_read_elsewhere() -> TractResult<()> {
        let mut model = attention(16, false)?;
        let scores = model.node_by_name("scores")?.id;
        let mut outputs = model.output_outlets()?.to_vec();
        outputs.push(scores.into());
        model.select_output_outlets(&outputs)?;
        assert_eq!(fuse_attentions(&mut model)?, 0);
        Ok(())
    }
}
