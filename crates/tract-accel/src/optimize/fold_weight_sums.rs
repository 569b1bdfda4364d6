//! Folds reductions of constant weights, left in the optimised model, into constants.
//!
//! Why: tract dequantises an int8 einsum `C = (A - a0)(B - b0)` into an integer product plus
//! zero-point terms, one of which is `a0 · Σ_k B`, wired as `Reduce<Sum>(Cast<i32>(B))`. `B` is a
//! constant weight, so this is a constant, but tract's constant propagation refuses to fold it: the
//! intermediate `Cast<i32>(B)` is four times the weight and exceeds `CONST_FOLD_MEM_BUDGET` (4 MiB,
//! since 0.23.5). The sums are then recomputed at every inference: 46% of an MMS-300M int8 run. The
//! reduction's *output* is small (one value per column), so folding the whole chain at once is always
//! a good trade.
//!
//! The fold evaluates the very ops the plan would have run, on the very constant, once: the result is
//! bit-identical by construction (checked against the unmodified model in
//! `crates/tract-accel/tests/bit_identity.rs`).
//!
//! Upstream report: `docs/upstream/tract-const-fold-weight-sums.md`. Delete this pass once a tract
//! release folds these reductions of constant weights itself.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::cast::Cast;
use tract_onnx::tract_core::ops::konst::Const;
use tract_onnx::tract_core::ops::nn::{Reduce, Reducer};

use super::{replace_nodes, Replacement};

/// Folds every `Reduce` fed, through single-input ops, by a constant; then keeps folding forward
/// through single-input successors while the value does not grow. Returns how many reductions were
/// folded. Run after `into_optimized` (the chains only exist once the einsums are dequantised).
pub fn fold_weight_sums(model: &mut TypedModel) -> TractResult<usize> {
    // Dropping the unreachable drops the casts and reductions (and their i32 copies' producers).
    replace_nodes(model, "fold constant reductions", |model, node| {
        if !node.op_is::<Reduce>() || node.inputs.len() != 1 {
            return Ok(None);
        }
        let Some((source, chain)) = constant_chain(model, node)? else {
            return Ok(None);
        };
        let Some(mut value) = eval_chain(model, source, &chain)? else {
            return Ok(None);
        };
        // Forward: the reduction is usually followed by axis fix-ups; fold them too while the
        // value stays no larger (never turn a small constant into a big one).
        let mut last = node;
        let size = |v: &TVec<TValue>| v[0].len() * v[0].datum_type().size_of();
        while let Some(succ) = model.single_succ(last.id)? {
            if succ.inputs.len() != 1 || succ.outputs.len() != 1 {
                break;
            }
            let Ok(Some(out)) = succ.op.eval_out_of_plan(value.clone()) else {
                break;
            };
            if out.len() != 1 || size(&out) > size(&value) {
                break;
            }
            value = out;
            last = succ;
        }
        let tensor = value.remove(0).into_arc_tensor();
        Ok(Some(Replacement::new(last, Const::new(tensor)?, &[])))
    })
}

/// Runs `chain` (nearest-to-output first) on `source`; `None` if an op cannot run outside a plan.
pub(super) fn eval_chain(
    model: &TypedModel,
    source: Arc<Tensor>,
    chain: &[usize],
) -> TractResult<Option<TVec<TValue>>> {
    if let Some(sums) = integer_sums(model, &source, chain)? {
        return Ok(Some(tvec!(sums.into_tvalue())));
    }
    let mut value: TVec<TValue> = tvec!(source.into_tvalue());
    for id in chain.iter().rev() {
        match model.node(*id).op.eval_out_of_plan(value)? {
            Some(out) if out.len() == 1 => value = out,
            _ => return Ok(None),
        }
    }
    Ok(Some(value))
}

/// Walks up from `reduce` through single-input, single-output ops to a constant; returns the constant
/// and the ops between, nearest first (the reduction itself included).
pub(super) fn constant_chain(
    model: &TypedModel,
    reduce: &TypedNode,
) -> TractResult<Option<(Arc<Tensor>, Vec<usize>)>> {
    let mut chain = vec![reduce.id];
    let mut outlet = reduce.inputs[0];
    loop {
        if let Some(konst) = &model.outlet_fact(outlet)?.konst {
            return Ok(Some((konst.clone(), chain)));
        }
        let prec = model.node(outlet.node);
        if prec.inputs.len() != 1 || prec.outputs.len() != 1 || chain.len() > 8 {
            return Ok(None);
        }
        chain.push(prec.id);
        outlet = prec.inputs[0];
    }
}

/// The common chain `Reduce<Sum>(Cast<i32>(w))` over one axis of an `i8`/`u8` weight, summed
/// directly: the generic evaluation (an i32 copy of the weight, then ndarray's strided fold) took
/// 3.9 thread-seconds of an MMS-1B load, this takes a pass over the weight. Integer sums are exact in
/// any order (`|Σ| <= 255 · k`, far from `i32` range for any real `k`), so the result is the same.
/// `None` when the chain is anything else.
fn integer_sums(
    model: &TypedModel,
    source: &Tensor,
    chain: &[usize],
) -> TractResult<Option<Tensor>> {
    let [reduce, cast] = chain else {
        return Ok(None);
    };
    let (Some(reduce), Some(cast)) = (
        model.node(*reduce).op_as::<Reduce>(),
        model.node(*cast).op_as::<Cast>(),
    ) else {
        return Ok(None);
    };
    if reduce.reducer != Reducer::Sum || reduce.axes.len() != 1 || cast.to != i32::datum_type() {
        return Ok(None);
    }
    let axis = reduce.axes[0];
    let shape = source.shape();
    if axis >= shape.len() || shape[axis] >= 1 << 23 {
        return Ok(None);
    }
    let sums = match source.datum_type() {
        DatumType::I8 => sum_axis(source.try_as_plain_ram()?.as_slice::<i8>()?, shape, axis),
        DatumType::U8 => sum_axis(source.try_as_plain_ram()?.as_slice::<u8>()?, shape, axis),
        _ => return Ok(None),
    };
    let mut out_shape: TVec<usize> = shape.into();
    out_shape[axis] = 1;
    Ok(Some(Tensor::from_shape(&out_shape, &sums)?))
}

/// Sums a row-major tensor of `shape` over `axis`, as `[outer, len, inner]` so that the inner loop
/// runs over contiguous memory.
fn sum_axis<T: Copy + Into<i32>>(values: &[T], shape: &[usize], axis: usize) -> Vec<i32> {
    let outer: usize = shape[..axis].iter().product();
    let len = shape[axis];
    let inner: usize = shape[axis + 1..].iter().product();
    let mut sums = vec![0i32; outer * inner];
    for o in 0..outer {
        let out = &mut sums[o * inner..(o + 1) * inner];
        for l in 0..len {
            let row = &values[(o * len + l) * inner..(o * len + l + 1) * inner];
            for (acc, &v) in out.iter_mut().zip(row) {
                *acc += v.into();
            }
        }
    }
    sums
}

#[cfg(test)]
mod tests {
    use super::sum_axis;

    #[test]
    fn sums_over_each_axis_of_a_3d_tensor() {
        // shape [2, 3, 2], values 0..12
        let values: Vec<i8> = (0..12).collect();
        assert_eq!(sum_axis(&values, &[2, 3, 2], 0), [6, 8, 10, 12, 14, 16]);
        assert_eq!(sum_axis(&values, &[2, 3, 2], 1), [6, 9, 24, 27]);
        assert_eq!(sum_axis(&values, &[2, 3, 2], 2), [1, 5, 9, 13, 17, 21]);
        let bytes: Vec<u8> = vec![255; 6];
        assert_eq!(sum_axis(&bytes, &[3, 2], 0), [765, 765]);
    }
}
