//! Folds the unit axis tract adds to each constant weight into the op that consumes the weight,
//! before `declutter`, so that declutter does not copy every weight twice.
//!
//! Why: tract-onnx expands each `MatMulInteger` into an einsum whose operands must have the same
//! rank, so it wires `AxisOp::Add(0)` (a `.fix-rank` node) on the 2-D weight. Then, in tract 0.23.9's
//! declutter, `PropConst` evaluates that `Add(0)` on the constant (`AxisOp::eval` takes the tensor
//! out of an `Arc` the graph still holds: a deep copy), and `ChangeAxes` next pushes the unit axis
//! back out as `Rm(0)` through `Const::change_axes` (another deep copy) into the einsum's axes.
//! Profiled at MMS-1B (2 threads, Zen 4): those two copies of every weight, with their page faults,
//! were over half of declutter's time, ~0.45 thread-seconds of a 2.3 s load.
//!
//! Here the einsum takes the 2-D weight as it is: its axes are rewritten through its own
//! `change_axes` with the inverse of the `AxisOp` (what `ChangeAxes` does in the end), and the
//! `AxisOp` is bypassed; the weight tensor is not touched. The einsum computes the same thing (the
//! axis was of size 1), so the logits stay bit-identical (`crates/tract-accel/tests/bit_identity.rs`).
//!
//! Upstream report: `docs/upstream/tract-load-copies-weights.md`. Delete this pass once a tract
//! release's declutter stops copying constant weights (the test
//! `the_einsum_takes_the_weight_itself_and_computes_the_same` fails then, saying so).

use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::change_axes::{AxisOp, InOut};
use tract_onnx::tract_core::ops::konst::Const;

use super::{replace_nodes, Replacement};

/// Rewrites every `Const → AxisOp → consumer` chain whose consumer accepts the inverse axis change
/// on that input alone. Returns how many were folded.
pub fn fold_weight_rank_fixes(model: &mut TypedModel) -> TractResult<usize> {
    let mut total = 0;
    // `wire_rank_broadcast` stacks one `Add(0)` per missing axis: each round removes one.
    loop {
        let folded = replace_nodes(model, "fold weight rank fixes", |model, node| {
            let Some(Fold {
                consumer,
                substitute,
                weight,
                slot,
            }) = foldable(model, node)?
            else {
                return Ok(None);
            };
            // The consumer's inputs, the constant in place of the `AxisOp`.
            let mut inputs = consumer.inputs.clone();
            inputs[slot] = weight;
            Ok(Some(Replacement::new(consumer, substitute, &inputs)))
        })?;
        if folded == 0 {
            return Ok(total);
        }
        total += folded;
    }
}

/// An `AxisOp` on a constant, to be bypassed.
struct Fold<'m> {
    /// The `AxisOp`'s only consumer.
    consumer: &'m TypedNode,
    /// The consumer's op with the axis change taken into its own axes.
    substitute: Box<dyn TypedOp>,
    /// The constant's outlet.
    weight: OutletId,
    /// The consumer's input the constant goes to.
    slot: usize,
}

/// `node` as a [`Fold`], if it is an `AxisOp` on a constant it alone reads.
fn foldable<'m>(model: &'m TypedModel, node: &'m TypedNode) -> TractResult<Option<Fold<'m>>> {
    let Some(axis_op) = node.op_as::<AxisOp>() else {
        return Ok(None);
    };
    let [weight] = node.inputs[..] else {
        return Ok(None);
    };
    let source = model.node(weight.node);
    if !source.op_is::<Const>() || source.outputs[weight.slot].successors.len() != 1 {
        return Ok(None);
    }
    let Some(consumer) = model.single_succ(node.id)? else {
        return Ok(None);
    };
    let slots: Vec<usize> = consumer
        .inputs
        .iter()
        .enumerate()
        .filter(|(_, i)| i.node == node.id)
        .map(|(ix, _)| ix)
        .collect();
    let [slot] = slots[..] else {
        return Ok(None);
    };
    let inverse = axis_op.recip();
    let Some(consequence) = consumer
        .op
        .change_axes(model, consumer, InOut::In(slot), &inverse)?
    else {
        return Ok(None);
    };
    let Some(substitute) = consequence.substitute_op else {
        return Ok(None);
    };
    // The change must stay on that input: nothing else in the graph may have to move.
    if consequence.wire_changes.len() != 1
        || consequence.wire_changes[0] != (InOut::In(slot), inverse)
    {
        return Ok(None);
    }
    // The consumer must compute what it did, in the same types and shapes.
    let mut facts: TVec<&TypedFact> = model.node_input_facts(consumer.id)?;
    facts[slot] = model.outlet_fact(weight)?;
    let Ok(outputs) = substitute.output_facts(&facts) else {
        return Ok(None);
    };
    let same = outputs.len() == consumer.outputs.len()
        && outputs
            .iter()
            .zip(&consumer.outputs)
            .all(|(new, old)| new.datum_type == old.fact.datum_type && new.shape == old.fact.shape);
    Ok(same.then_some(Fold {
        consumer,
        substitute,
        weight,
        slot,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tract_onnx::tract_core::ops::einsum::EinSum;

    /// `x [1, T, K] · W [K, N]` as tract-onnx wires a matmul of a 3-D activation by a 2-D weight.
    fn matmul(k: usize, n: usize) -> (TypedModel, Arc<Tensor>) {
        let mut model = TypedModel::default();
        let t = model.symbols.sym("T");
        let x = model
            .add_source("x", f32::fact([1.to_dim(), t.to_dim(), k.to_dim()]))
            .unwrap();
        let values: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.37).sin()).collect();
        let weight = tensor1(&values)
            .into_shape(&[k, n])
            .unwrap()
            .into_arc_tensor();
        let w = model.add_const("w", weight.clone()).unwrap();
        let w = model.wire_node("w.fix-rank", AxisOp::Add(0), &[w]).unwrap()[0];
        let einsum = EinSum::new("bmk,bkn->bmn".parse().unwrap(), f32::datum_type());
        let y = model.wire_node("y", einsum, &[x, w]).unwrap();
        model.select_output_outlets(&y).unwrap();
        (model, weight)
    }

    fn run(model: TypedModel, t: usize, k: usize) -> Vec<u32> {
        let x: Vec<f32> = (0..t * k).map(|i| (i as f32 * 0.11).cos()).collect();
        let x = tensor1(&x).into_shape(&[1, t, k]).unwrap();
        let plan = model.into_optimized().unwrap().into_runnable().unwrap();
        let y = plan.run(tvec!(x.into())).unwrap();
        let y = y[0].to_plain_array_view::<f32>().unwrap();
        y.iter().map(|v| v.to_bits()).collect()
    }

    #[test]
    fn the_einsum_takes_the_weight_itself_and_computes_the_same() {
        let (k, n) = (24, 40);
        let (stock, _) = matmul(k, n);
        let (mut folded, weight) = matmul(k, n);
        assert_eq!(fold_weight_rank_fixes(&mut folded).unwrap(), 1);
        assert!(folded.nodes().iter().all(|n| !n.op_is::<AxisOp>()));
        let einsum = folded.nodes().iter().find(|n| n.op_is::<EinSum>()).unwrap();
        let w = folded.node(einsum.inputs[1].node);
        assert!(
            Arc::ptr_eq(w.op_as::<Const>().unwrap().val(), &weight),
            "the weight tensor is the one parsed, not a copy"
        );
        // Declutter has nothing left to copy: the weight is still the parsed tensor afterwards.
        let shares = |model: &TypedModel, weight: &Arc<Tensor>| {
            model
                .nodes()
                .iter()
                .filter_map(|n| n.op_as::<Const>())
                .any(|c| Arc::ptr_eq(c.val(), weight))
        };
        folded.declutter().unwrap();
        assert!(shares(&folded, &weight), "declutter copied the weight");
        // Without the fold, tract's declutter does copy it (else this pass has no reason to be).
        let (mut copied, parsed) = matmul(k, n);
        copied.declutter().unwrap();
        assert!(
            !shares(&copied, &parsed),
            "stock declutter kept the weight: drop this pass"
        );
        for t in [1, 7] {
            assert_eq!(
                run(folded.clone(), t, k),
                run(stock.clone(), t, k),
                "T = {t}"
            );
        }
    }

    #[test]
    fn a_weight_read_elsewhere_too_is_left_alone() {
        // Read by the AxisOp and as an output: the AxisOp must stay for the einsum.
        let (mut shared, _) = matmul(8, 4);
        let w = shared.node_by_name("w").unwrap().id;
        let mut outputs = shared.output_outlets().unwrap().to_vec();
        outputs.push(OutletId::new(w, 0));
        shared.select_output_outlets(&outputs).unwrap();
        let extra = shared.wire_node(
            "w.neg",
            tract_onnx::tract_core::ops::math::neg(),
            &[OutletId::new(w, 0)],
        );
        assert!(extra.is_ok());
        assert_eq!(fold_weight_rank_fixes(&mut shared).unwrap(), 0);
    }
}
