//! tract's codegen with our constant folds (`fold_weight_sums`, `fold_packs`) run ahead of its own
//! constant propagation, in every round of its optimiser.
//!
//! Why: tract 0.23.9's `PropConst` evaluates a node on its constant inputs *before* it weighs the
//! result against `CONST_FOLD_MEM_BUDGET` (4 MiB). Each quantised einsum's codegen leaves
//! `Reduce<Sum>(Cast<i32>(W))` and a weight pack on the constant weight, so every round of the
//! optimiser (it repeats its passes until nothing changes) casts each weight to an i32 copy four times
//! its size, and packs the bigger ones, only to throw the result away when it is over the budget; the
//! weights under it are summed through ndarray's generic strided fold. Profiled at MMS-300M (2 threads,
//! Zen 4): `PropConst` was two thirds of the optimiser's time, most of it those casts, the page faults
//! of their copies, the folds and the packs. Our folds do the same work once, directly on the int8
//! weight, before `PropConst` gets to it: the chains they replace are gone when it walks the graph.
//!
//! The values are the same: integer sums are exact in any order, and the packs are the pack op's own
//! output (`fold_packs`). `crates/tract-accel/tests/bit_identity.rs` checks the logits against stock
//! tract bit for bit.
//!
//! Upstream report: `docs/upstream/tract-const-fold-weight-sums.md` (its `PropConst` addendum).
//! Delete this pass once a tract release weighs a constant fold against its budget before
//! evaluating it, or folds these chains itself (then `fold_weight_sums` and `fold_packs` go too).

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::format_err;
use tract_onnx::tract_core::optim::{Optimizer, OptimizerSession, TypedPass};

use super::fold_packs::fold_constant_packs;
use super::fold_weight_sums::fold_weight_sums;

/// What the early folds did over a whole codegen (all rounds).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EarlyFolds {
    pub weight_sums: usize,
    pub packs: usize,
}

/// tract's codegen (`TypedModel::optimize`), with `fold_early` our folds first in each round.
pub fn codegen(model: &mut TypedModel, fold_early: bool) -> TractResult<EarlyFolds> {
    let mut optimizer = Optimizer::codegen();
    if !fold_early {
        model.optimize_with_session(&mut optimizer.session())?;
        return Ok(EarlyFolds::default());
    }
    // The optimiser clones its passes each round, so the counts travel in a shared cell.
    let counts = Arc::new(std::sync::Mutex::new(EarlyFolds::default()));
    optimizer.add_pass(
        0,
        Box::new(FoldBeforePropConst {
            counts: counts.clone(),
        }),
    );
    model.optimize_with_session(&mut optimizer.session())?;
    drop(optimizer);
    let counts = *counts
        .lock()
        .map_err(|_| format_err!("poisoned fold counts"))?;
    Ok(counts)
}

#[derive(Debug, Clone)]
struct FoldBeforePropConst {
    counts: Arc<std::sync::Mutex<EarlyFolds>>,
}

impl TypedPass for FoldBeforePropConst {
    fn reset(&mut self) -> TractResult<()> {
        Ok(())
    }

    fn next(
        &mut self,
        _session: &mut OptimizerSession,
        _model: &TypedModel,
    ) -> TractResult<Option<TypedModelPatch>> {
        // Whole-graph folds, one patch each: done in `run_direct`, not patch by patch.
        Ok(None)
    }

    fn run_direct(&mut self, model: &mut TypedModel) -> TractResult<bool> {
        let weight_sums = fold_weight_sums(model)?;
        let packs = fold_constant_packs(model)?;
        let mut counts = self
            .counts
            .lock()
            .map_err(|_| format_err!("poisoned fold counts"))?;
        counts.weight_sums += weight_sums;
        counts.packs += packs;
        Ok(weight_sums + packs > 0)
    }
}
