//! Folds reductions of constant weights, left in the optimised model, into constants.
//!
//! Why: tract dequantises an int8 einsum `C = (A - a0)(B - b0)` into an integer product plus
//! zero-point terms, one of which is `a0 · Σ_k B`, wired as `Reduce<Sum>(Cast<i32>(B))`. `B` is a
//! constant weight, so this is a constant, but tract's constant propagation refuses to fold it: the
//! intermediate `Cast<i32>(B)` is four times the weight and exceeds `CONST_FOLD_MEM_BUDGET` (4 MiB,
//! since 0.23.5). The sums are then recomputed at every inference: 46% of an MMS-300M int8 run. The
//! reduction's *output* is small (one value per column), so folding the whole chain at once is always
//! a good trade. Written up as a ready-to-file upstream report (not filed: this machine has no
//! internet) in `docs/upstream/tract-const-fold-weight-sums.md`.
//!
//! The fold evaluates the very ops the plan would have run, on the very constant, once: the result is
//! bit-identical by construction (checked against the unmodified model in `tests/asr_optimize.rs`).

use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::konst::Const;
use tract_onnx::tract_core::ops::nn::Reduce;

/// Folds every `Reduce` fed, through single-input ops, by a constant; then keeps folding forward
/// through single-input successors while the value does not grow. Returns how many reductions were
/// folded. Run after `into_optimized` (the chains only exist once the einsums are dequantised).
pub fn fold_weight_sums(model: &mut TypedModel) -> TractResult<usize> {
    let mut patch = TypedModelPatch::new("fold constant reductions");
    let mut folded = 0;
    for node in model.nodes() {
        if !node.op_is::<Reduce>() || node.inputs.len() != 1 {
            continue;
        }
        let Some((source, chain)) = constant_chain(model, node)? else {
            continue;
        };
        let Some(mut value) = eval_chain(model, source, &chain)? else {
            continue;
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
        let wire = patch.wire_node(&last.name, Const::new(tensor)?, &[])?[0];
        patch.shunt_outside(model, last.id.into(), wire)?;
        folded += 1;
    }
    if folded > 0 {
        patch.apply(model)?;
        // Drops the now unreachable casts and reductions (and their i32 copies' producers).
        model.compact()?;
    }
    Ok(folded)
}

/// Runs `chain` (nearest-to-output first) on `source`; `None` if an op cannot run outside a plan.
fn eval_chain(
    model: &TypedModel,
    source: Arc<Tensor>,
    chain: &[usize],
) -> TractResult<Option<TVec<TValue>>> {
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
fn constant_chain(
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
