//! Layer normalisation over the last axis as one threaded pass per row, in place of the four ops
//! tract 0.23.9 decomposes it into.
//!
//! Why: tract runs `LayerNormalization` (before the gain and bias) as `Reduce<Sum>` over the last
//! axis, `Mul` by `1/n`, `x - mean` (`OptSubByScalar`) and `RmsNorm`: four ops, four passes over
//! memory, three allocations, and a thread hand-off each. MMS has three layer norms per encoder
//! layer (`[1, T, 1280]` at 1B): ~85 ms of a 1.4 s MMS-1B run. `FastLayerNorm` does each row's
//! sum, mean, subtraction and normalisation back to back, rows across threads, calling the same
//! tract-linalg kernels for the sum (`Func::ReduceSum`) and the normalisation (`rms_norm_f32`), and
//! the same IEEE product and difference in between, so the logits stay bit-identical.
//!
//! Upstream report: `docs/upstream/tract-broadcast-binops-and-norms.md` (3). Delete this pass once a
//! tract release runs a last-axis layer norm as one threaded pass.

use tract_linalg::multithread::par_chunks_mut;
use tract_linalg::routines::Func;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::binary::{OptBinByScalar, TypedBinOp};
use tract_onnx::tract_core::ops::nn::{Reduce, Reducer, RmsNorm};

use super::{replace_nodes, AccelOp, Replacement};

#[derive(Clone, Debug, PartialEq)]
pub struct FastLayerNorm {
    /// The constant the sum is multiplied by to give the mean (tract's `1/n`, as an f32).
    pub mean_scale: f32,
    pub eps: f32,
}

impl std::hash::Hash for FastLayerNorm {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.mean_scale.to_bits().hash(state);
        self.eps.to_bits().hash(state);
    }
}

impl Eq for FastLayerNorm {}

super::tract_op!(FastLayerNorm);

impl AccelOp for FastLayerNorm {
    fn describe(&self) -> Vec<String> {
        vec![format!(
            "mean = sum * {:e}, eps {:e}",
            self.mean_scale, self.eps
        )]
    }

    fn run(&self, mut inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        ensure!(inputs.len() == 1, "FastLayerNorm takes 1 input");
        // The input is the residual stream, read again later: tract's Sub copied it too.
        let mut x = inputs.remove(0).into_tensor();
        let row_len = x.shape().last().copied().unwrap_or(1);
        {
            let mut view = x.try_as_plain_ram_mut()?;
            layer_norm_rows(view.as_slice_mut::<f32>()?, row_len, self)?;
        }
        Ok(tvec!(x.into_tvalue()))
    }

    fn facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        Ok(tvec!(f32::fact(inputs[0].shape.clone())))
    }
}

/// Each `row_len` row of `data`: `x - sum(x) * mean_scale`, then tract's RMS normalisation.
pub fn layer_norm_rows(data: &mut [f32], row_len: usize, op: &FastLayerNorm) -> TractResult<()> {
    // tract's Reduce<Sum> uses its kernel from 4 values on, a plain sum below.
    ensure!(row_len >= 4, "rows of {row_len} values");
    ensure!(
        data.len().is_multiple_of(row_len),
        "{} values in rows of {row_len}",
        data.len()
    );
    let sum = Func::ReduceSum.reduce_f32()?;
    let rms_norm = tract_linalg::routines::rms_norm_f32()?;
    let total = data.len();
    par_chunks_mut(data, row_len, total, |_, rows| {
        for row in rows.chunks_exact_mut(row_len) {
            let mean = sum.run(row)? * op.mean_scale;
            row.iter_mut().for_each(|x| *x -= mean);
            rms_norm(row, op.eps);
        }
        Ok(())
    })
}

/// Replaces `RmsNorm(x - Reduce<Sum>(x) * c)` over the last axis, f32, where nothing else reads
/// the sum, the mean or the difference. Returns how many.
pub fn fuse_layer_norms(model: &mut TypedModel) -> TractResult<usize> {
    replace_nodes(model, "fused layer norm", |model, node| {
        Ok(matching(model, node)?.map(|(x, op)| Replacement::new(node, op, &[x])))
    })
}

/// The node feeding `node`'s input `slot`, if `node` is its only reader and it is not a model
/// output.
pub(super) fn sole_producer<'m>(
    model: &'m TypedModel,
    node: &TypedNode,
    slot: usize,
) -> Option<&'m TypedNode> {
    let outlet = *node.inputs.get(slot)?;
    let producer = model.node(outlet.node);
    let only_reader = producer.outputs.len() == 1 && producer.outputs[0].successors.len() == 1;
    let is_output = model.output_outlets().ok()?.contains(&outlet);
    (only_reader && !is_output).then_some(producer)
}

/// `node` as a plain `Mul` (no output type override) of two inputs, one of them a scalar f32
/// constant: the other input's slot and the constant, in either operand order (IEEE products
/// commute).
pub(super) fn product_by_constant(model: &TypedModel, node: &TypedNode) -> Option<(usize, f32)> {
    let is_mul = node
        .op_as::<TypedBinOp>()
        .is_some_and(|op| op.0.name() == "Mul" && op.1.is_none());
    if !is_mul || node.inputs.len() != 2 {
        return None;
    }
    match (
        scalar_f32(model, node.inputs[0]),
        scalar_f32(model, node.inputs[1]),
    ) {
        (None, Some(c)) => Some((0, c)),
        (Some(c), None) => Some((1, c)),
        _ => None,
    }
}

fn scalar_f32(model: &TypedModel, outlet: OutletId) -> Option<f32> {
    let konst = model.outlet_fact(outlet).ok()?.konst.clone()?;
    if konst.len() != 1 || konst.datum_type() != f32::datum_type() {
        return None;
    }
    konst.cast_to_scalar::<f32>().ok()
}

fn matching(
    model: &TypedModel,
    norm: &TypedNode,
) -> TractResult<Option<(OutletId, FastLayerNorm)>> {
    let Some(rms) = norm.op_as::<RmsNorm>() else {
        return Ok(None);
    };
    let fact = model.outlet_fact(norm.inputs[0])?;
    let last = fact.rank().saturating_sub(1);
    if fact.datum_type != f32::datum_type() || fact.rank() == 0 || rms.axis != last {
        return Ok(None);
    }
    if !fact.shape[last].to_usize().is_ok_and(|n| n >= 4) || rms.eps.len() != 1 {
        return Ok(None);
    }
    let eps = rms.eps.cast_to_scalar::<f32>()?;
    // x - mean, by tract's per-row scalar op.
    let Some(sub) = sole_producer(model, norm, 0) else {
        return Ok(None);
    };
    let is_sub = sub
        .op_as::<OptBinByScalar>()
        .is_some_and(|op| op.binop.name() == "Sub");
    if !is_sub || sub.inputs.len() != 2 {
        return Ok(None);
    }
    let x = sub.inputs[0];
    // mean = sum * c (either operand order: IEEE products commute).
    let Some(mul) = sole_producer(model, sub, 1) else {
        return Ok(None);
    };
    let Some((sum_slot, mean_scale)) = product_by_constant(model, mul) else {
        return Ok(None);
    };
    let Some(reduce) = sole_producer(model, mul, sum_slot) else {
        return Ok(None);
    };
    let is_sum_of_x = reduce
        .op_as::<Reduce>()
        .is_some_and(|op| op.reducer == Reducer::Sum && op.axes.as_slice() == [last])
        && reduce.inputs.len() == 1
        && reduce.inputs[0] == x;
    if !is_sum_of_x || model.outlet_fact(mul.id.into())?.datum_type != f32::datum_type() {
        return Ok(None);
    }
    Ok(Some((x, FastLayerNorm { mean_scale, eps })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tract_onnx::tract_core::ops::nn::RmsNorm;

    /// tract's four ops, each evaluated as tract evaluates it, against the fused pass.
    #[test]
    fn matches_tracts_four_ops_bit_for_bit_on_threads() {
        let mut next = crate::optimize::test_rng(0x6a09_e667_f3bc_c908);
        let executor = tract_linalg::multithread::Executor::multithread(2);
        tract_linalg::multithread::multithread_tract_scope(executor, || {
            for shape in [[1usize, 249, 1280], [2, 3, 37], [1, 5000, 4]] {
                let len: usize = shape.iter().product();
                let values: Vec<f32> = (0..len)
                    .map(|_| ((next() >> 40) as f32 / (1u64 << 24) as f32 - 0.3) * 9.0)
                    .collect();
                let x = Tensor::from_shape(&shape, &values).unwrap();
                let n = shape[2];
                let scale = 1.0 / n as f32;
                let eps = 1e-5f32;
                let ctx = EvalContext::out_of_plan();
                let sum = Reduce::new(tvec!(2), Reducer::Sum)
                    .eval(&ctx, tvec!(x.clone().into_tvalue()))
                    .unwrap()
                    .remove(0);
                let mean: Vec<f32> = sum
                    .try_as_plain_ram()
                    .unwrap()
                    .as_slice::<f32>()
                    .unwrap()
                    .iter()
                    .map(|s| s * scale)
                    .collect();
                let d: Vec<f32> = values
                    .iter()
                    .enumerate()
                    .map(|(i, v)| v - mean[i / n])
                    .collect();
                let d = Tensor::from_shape(&shape, &d).unwrap();
                let rms = RmsNorm {
                    axis: 2,
                    eps: Arc::new(tensor0(eps)),
                };
                let want = rms.eval(&ctx, tvec!(d.into_tvalue())).unwrap().remove(0);
                let mut got = values.clone();
                let op = FastLayerNorm {
                    mean_scale: scale,
                    eps,
                };
                layer_norm_rows(&mut got, n, &op).unwrap();
                let want: Vec<u32> = want
                    .try_as_plain_ram()
                    .unwrap()
                    .as_slice::<f32>()
                    .unwrap()
                    .iter()
                    .map(|v| v.to_bits())
                    .collect();
                let got: Vec<u32> = got.iter().map(|v| v.to_bits()).collect();
                assert!(want == got, "{shape:?}");
            }
        });
    }
}
