//! Packs constant weights once at load where tract left the packing in the plan.
//!
//! Why: tract packs a constant weight for its matmul kernel at codegen only if constant propagation
//! reaches the pack, and that propagation gives up when an intermediate (an i8 re-layout or cast of
//! the weight) exceeds `CONST_FOLD_MEM_BUDGET` (4 MiB). At MMS-1B both feed-forward projections of
//! every layer (1280 × 5120 int8: 6.25 MiB) and the positional convolution's weight are then packed
//! again at every inference: 96 weight packs of 6.5 MB per run, through tract's scalar byte gather.
//! The same cause as `fold_weight_sums`.
//!
//! The fold evaluates the very ops the plan would have run (the chain, then the pack op) on the very
//! constant, once, and keeps the result as a constant with the pack's own fact: the matmul receives
//! the same packed bytes as before, so the logits are bit-identical
//! (`crates/tract-accel/tests/bit_identity.rs`).
//!
//! Upstream report: `docs/upstream/tract-const-fold-weight-sums.md`. Delete this pass once a tract
//! release packs constant weights at codegen whatever the size of the intermediates.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::EvalOp;
use tract_onnx::tract_core::ops::konst::Const;
use tract_onnx::tract_core::ops::matmul::pack::OptMatMulPack;

use super::fast_pack::FastPackI8K4;
use super::fold_weight_sums::{constant_chain, eval_chain};
use super::{replace_nodes, Replacement};

/// Replaces every pack fed (through single-input ops) by a constant with its packed value. Returns
/// how many.
pub fn fold_constant_packs(model: &mut TypedModel) -> TractResult<usize> {
    // Dropping the unreachable drops the unpacked weights and the ops between them and the pack.
    replace_nodes(model, "pack constant weights once", |model, node| {
        let is_pack = node.op_is::<OptMatMulPack>() || node.op_is::<FastPackI8K4>();
        if !is_pack || node.inputs.len() != 1 || node.outputs.len() != 1 {
            return Ok(None);
        }
        let Some(exotic) = node.outputs[0].fact.exotic_fact.clone() else {
            return Ok(None);
        };
        let Some((source, chain)) = constant_chain(model, node)? else {
            return Ok(None);
        };
        // tract's own pack op is a scalar byte gather (`fast_pack`); ours gives the same bytes.
        let fast = if node.op_is::<OptMatMulPack>() {
            FastPackI8K4::replacing(model, node)?
        } else {
            None
        };
        let value = match &fast {
            Some(fast) => match eval_chain(model, source, &chain[1..])? {
                Some(unpacked) => fast.eval_out_of_plan(unpacked)?,
                None => None,
            },
            None => eval_chain(model, source, &chain)?,
        };
        let Some(mut value) = value else {
            return Ok(None);
        };
        let packed = value.remove(0).into_arc_tensor();
        let konst = Const::new_with_exotic_fact(packed, exotic)?;
        Ok(Some(Replacement::new(node, konst, &[])))
    })
}
