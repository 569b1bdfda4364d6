//! RMS normalisation over a non-last axis (the feature extractor's layer norms, over channels of a
//! `[1, 512, T]` activation), threaded and in place.
//!
//! Why: tract 0.23.9's `RmsNorm` has a fused kernel only when the normalised axis is the last one.
//! Otherwise it copies the input (`MeanOfSquares` squares a copy), sums the squares single-threaded,
//! and multiplies into a third tensor. On MMS-1B's first conv layer (`[1, 512, 16000]` for 5 s,
//! 33 MB per copy) that was 16–35 ms per run and two transient copies, the largest allocations of a
//! run: they set the process's peak memory. `FastRmsNormInner` computes the same IEEE operations in
//! the same order (squares summed one channel after the other from zero, times `outer·inner /
//! len`, plus eps, `sqrt().recip()`, times the input), in the input's own buffer.
//!
//! Upstream report: `docs/upstream/tract-broadcast-binops-and-norms.md` (2). Delete this pass once a
//! tract release normalises over a non-last axis threaded, without copies.

use tract_linalg::multithread::par_chunks_mut;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::nn::RmsNorm;

use super::{replace_nodes, AccelOp, Replacement};

#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct FastRmsNormInner {
    pub axis: usize,
    pub eps: Arc<Tensor>,
}

super::tract_op!(FastRmsNormInner);

impl AccelOp for FastRmsNormInner {
    fn describe(&self) -> Vec<String> {
        vec![format!("axis: {}, eps: {:?}", self.axis, self.eps)]
    }

    fn run(&self, mut inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        ensure!(inputs.len() == 1, "FastRmsNormInner takes 1 input");
        let mut x = inputs.remove(0).into_tensor();
        let eps = self.eps.cast_to_scalar::<f32>()?;
        let shape = x.shape().to_vec();
        ensure!(self.axis < shape.len(), "axis {} of {shape:?}", self.axis);
        let channels = shape[self.axis];
        let inner: usize = shape[self.axis + 1..].iter().product();
        {
            let mut view = x.try_as_plain_ram_mut()?;
            rms_norm_inner(view.as_slice_mut::<f32>()?, channels, inner, eps)?;
        }
        Ok(tvec!(x.into_tvalue()))
    }

    fn facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        Ok(tvec!(f32::fact(inputs[0].shape.clone())))
    }
}

/// Normalises `data`, laid out `[outer, channels, inner]`, over its channels, in place.
pub fn rms_norm_inner(
    data: &mut [f32],
    channels: usize,
    inner: usize,
    eps: f32,
) -> TractResult<()> {
    let block = channels * inner;
    if block == 0 {
        return Ok(());
    }
    ensure!(
        data.len().is_multiple_of(block),
        "{} values are not [_, {channels}, {inner}]",
        data.len()
    );
    // tract's mean: the sum times (output length / input length), both as f32.
    let outer = data.len() / block;
    let norm = (outer * inner) as f32 / data.len() as f32;
    let mut scale = vec![0f32; inner];
    for o in 0..outer {
        let slab = &mut data[o * block..][..block];
        {
            let slab: &[f32] = slab;
            // Each output position sums its channels in channel order, as tract's column sum does;
            // positions are split across threads.
            par_chunks_mut(&mut scale, 1, block, |first, sums| {
                sums.iter_mut().for_each(|s| *s = 0.0);
                for c in 0..channels {
                    let row = &slab[c * inner + first..][..sums.len()];
                    sums.iter_mut().zip(row).for_each(|(s, &x)| *s += x * x);
                }
                sums.iter_mut()
                    .for_each(|s| *s = (*s * norm + eps).sqrt().recip());
                Ok(())
            })?;
        }
        let scale = &scale;
        par_chunks_mut(slab, inner, block, |_, rows| {
            for row in rows.chunks_exact_mut(inner) {
                // tract multiplies scale by input; IEEE products commute.
                row.iter_mut().zip(scale).for_each(|(x, &s)| *x *= s);
            }
            Ok(())
        })?;
    }
    Ok(())
}

/// Replaces every f32 `RmsNorm` over an axis that is not the last. Returns how many.
pub fn replace_inner_rms_norms(model: &mut TypedModel) -> TractResult<usize> {
    replace_nodes(model, "threaded inner-axis RmsNorm", |model, node| {
        let Some(op) = node.op_as::<RmsNorm>() else {
            return Ok(None);
        };
        let input = model.outlet_fact(node.inputs[0])?;
        if input.datum_type != f32::datum_type() || op.axis + 1 >= input.rank() || op.eps.len() != 1
        {
            return Ok(None);
        }
        let fast = FastRmsNormInner {
            axis: op.axis,
            eps: op.eps.clone(),
        };
        Ok(Some(Replacement::new(node, fast, &node.inputs)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tract_onnx::tract_core::ops::nn::RmsNorm;

    #[test]
    fn matches_tracts_rms_norm_bit_for_bit_on_threads() {
        let mut next = crate::optimize::test_rng(0x5851_f42d_4c95_7f2d);
        let executor = tract_linalg::multithread::Executor::multithread(2);
        tract_linalg::multithread::multithread_tract_scope(executor, || {
            for shape in [[1usize, 37, 1031], [3, 5, 40_000], [2, 512, 7]] {
                let len: usize = shape.iter().product();
                let values: Vec<f32> = (0..len)
                    .map(|_| ((next() >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 40.0)
                    .collect();
                let input = Tensor::from_shape(&shape, &values).unwrap();
                let eps = Arc::new(tensor0(1e-5f32));
                let tract = RmsNorm {
                    axis: 1,
                    eps: eps.clone(),
                };
                let want = tract
                    .eval(
                        &EvalContext::out_of_plan(),
                        tvec!(input.clone().into_tvalue()),
                    )
                    .unwrap();
                let fast = FastRmsNormInner { axis: 1, eps };
                let got = fast
                    .eval(&EvalContext::out_of_plan(), tvec!(input.into_tvalue()))
                    .unwrap();
                let bits = |t: &TValue| -> Vec<u32> {
                    let t = t.try_as_plain_ram().unwrap();
                    t.as_slice::<f32>()
                        .unwrap()
                        .iter()
                        .map(|v| v.to_bits())
                        .collect()
                };
                assert!(bits(&want[0]) == bits(&got[0]), "{shape:?}");
            }
        });
    }
}
