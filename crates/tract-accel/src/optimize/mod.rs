//! Our passes over tract's model, for the int8 (dynamically quantised) exports, and the ops and
//! kernels they put in it. Each pass fixes one thing stock tract 0.23.9 does slowly, keeps the
//! logits bit-identical to the unmodified model (`crates/tract-accel/tests/bit_identity.rs` checks
//! each pass alone, and all together, against no pass), and is written up in an upstream report in
//! `docs/upstream/` (named in its module doc): delete the pass once a tract release fixes the cause.
//!
//! The passes, in the order a load runs them ([`Passes`] switches each):
//!
//! 1. `int8_tile`: before the first model is optimised, asks tract for its 16×16 VNNI tile on AMD
//!    (process-wide).
//! 2. `segments`: cuts the encoder into segments of about a layer, optimised in parallel and run as
//!    a chain (`crate::chain`). Each segment then goes through the rest.
//! 3. `rank_fix`, before `declutter`: each einsum takes its 2-D constant weight without the unit
//!    axis tract-onnx adds to it.
//! 4. `split_group_conv`, before codegen: each grouped int8 convolution becomes one per group.
//! 5. `attention`, before codegen: each self-attention becomes one op (`FusedAttention`, on
//!    `attention_kernel`).
//! 6. `early_fold`, inside codegen, in each of its rounds: `fold_weight_sums` and `fold_packs` ahead
//!    of tract's constant propagation.
//! 7. `fold_weight_sums`, on the optimised segment ([`apply`], as are the rest): constant weight
//!    sums folded into constants.
//! 8. `dynamic_quantize`: tract's `DynamicQuantizeLinearU8` replaced by a vectorised, threaded one.
//! 9. `fast_pack` and `fast_pack_f32`: threaded activation packers (int8 word-wise, f32 row copies).
//! 10. `fast_im2col`: 1-D int8 convolutions' patches unfolded on all threads.
//! 11. `dequantize`: each int8 matmul's `Cast → Mul [→ Add]` tail as one threaded op.
//! 12. `broadcast`: the f32 `Add`/`Sub` left on tract's broadcasting path, threaded.
//! 13. `rms_norm`: `RmsNorm` over a non-last axis, threaded and in place.
//! 14. `layer_norm`: each last-axis layer norm as one threaded pass.
//! 15. `fold_packs`: the constant weight packs still in the plan, folded.
//! 16. `vnni_matmul`: the int8 projections on our AVX-512 VNNI kernel (`vnni_kernel`).
//! 17. `neon_matmul`: the same projections, and the convolutions' products behind `Im2col`, on our
//!     NEON kernel (`neon_kernel`), on ARM64 without the dot product.
//!
//! Shared by them: `replace_nodes`, the loop of the passes that put one op in place of one node;
//! `AccelOp` with `tract_op!`, the skeleton of tract's op traits for our ops; `tasks`, the task
//! fan-out of our kernels.

mod attention;
mod attention_kernel;
mod broadcast;
mod dequantize;
mod dynamic_quantize;
mod early_fold;
mod fast_im2col;
mod fast_pack;
mod fast_pack_f32;
mod fold_packs;
mod fold_weight_sums;
mod int8_tile;
mod layer_norm;
mod neon_kernel;
mod neon_matmul;
mod rank_fix;
mod rms_norm;
pub mod segments;
mod split_group_conv;
mod tasks;
mod vnni_kernel;
mod vnni_matmul;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::ensure;

pub use attention::{fuse_attentions, FusedAttention};
pub use broadcast::FastBroadcast;
pub use dequantize::FastDequantize;
pub use dynamic_quantize::FastDynamicQuantizeLinearU8;
pub use early_fold::{codegen, EarlyFolds};
pub use fast_im2col::FastIm2col;
pub use fast_pack::FastPackI8K4;
pub use fast_pack_f32::FastPackF32;
pub use fold_weight_sums::fold_weight_sums;
pub use int8_tile::{is_amd, prefer_wide_int8_tile};
pub use layer_norm::FastLayerNorm;
pub use neon_matmul::NeonMatMul;
pub use rank_fix::fold_weight_rank_fixes;
pub use rms_norm::FastRmsNormInner;
pub use split_group_conv::split_grouped_convs;
pub use vnni_matmul::VnniMatMul;

/// Which of our passes to run after tract's optimiser. `Passes::default()` runs all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Passes {
    /// Optimise the encoder as a chain of segments (about a layer each, `segments`), in parallel.
    pub split_layers: bool,
    /// Fold `Reduce<Sum>(Cast<i32>(weight))` zero-point terms into constants, and pack constant
    /// weights tract left to be packed at every run: first in each round of tract's codegen, ahead of
    /// its constant propagation (`early_fold`), and once more after it.
    pub fold_weight_sums: bool,
    /// Before declutter, let each einsum take its 2-D constant weight as it is, rather than through
    /// the unit axis tract-onnx adds to it (which declutter adds and removes again by copying the
    /// weight twice, `rank_fix`).
    pub fold_rank_fixes: bool,
    /// Replace tract's scalar `DynamicQuantizeLinearU8` with a vectorised, multithreaded one.
    pub fast_dynamic_quantize: bool,
    /// Replace tract's byte-by-byte int8 activation packing with a threaded word-wise one, and its
    /// element-by-element f32 packing of 64-row panels with row copies.
    pub fast_pack: bool,
    /// Run each int8 matmul's `Cast → Mul(scale) [→ Add]` tail as one threaded op, in place.
    pub fuse_dequantize: bool,
    /// Run the f32 `Add`/`Sub` tract left on its general broadcasting path threaded, row by row.
    pub fast_broadcast: bool,
    /// Run `RmsNorm` over a non-last axis threaded and in place (tract copies twice, one thread).
    pub fast_rms_norm: bool,
    /// Run each last-axis layer norm (sum, mean, subtraction, RMS norm) as one threaded pass.
    pub fuse_layer_norm: bool,
    /// Before codegen, cut each grouped int8 convolution into one per group, so that their unfolded
    /// patches are not all in memory at once (`split_group_conv`).
    pub split_grouped_conv: bool,
    /// On AMD cores with AVX-512 VNNI, ask tract for its 16×16 int8 tile (`int8_tile`). Process-wide,
    /// decided at the first load.
    pub wide_int8_tile: bool,
    /// On x86-64 with AVX-512 VNNI, run the int8 projections on our own kernel (`vnni_matmul`).
    pub vnni_matmul: bool,
    /// On ARM64 without the dot product (Cortex-A72, A53, A57), run the int8 projections on our own
    /// NEON kernel (`neon_matmul`).
    pub neon_matmul: bool,
    /// Before codegen, on x86-64 with AVX-512F, run each self-attention (both f32 products, the
    /// scale and the softmax) as one op, a head × 48 frames per task (`attention`).
    pub fuse_attention: bool,
    /// Unfold 1-D int8 convolutions' patches on all threads, panel by panel (`fast_im2col`).
    pub fast_im2col: bool,
}

impl Passes {
    pub const ALL: Passes = Passes {
        split_layers: true,
        fold_weight_sums: true,
        fold_rank_fixes: true,
        fast_dynamic_quantize: true,
        fast_pack: true,
        fuse_dequantize: true,
        fast_broadcast: true,
        fast_rms_norm: true,
        fuse_layer_norm: true,
        split_grouped_conv: true,
        wide_int8_tile: true,
        vnni_matmul: true,
        neon_matmul: true,
        fuse_attention: true,
        fast_im2col: true,
    };
    /// Stock tract: the reference the passes are checked against.
    pub const NONE: Passes = Passes {
        split_layers: false,
        fold_weight_sums: false,
        fold_rank_fixes: false,
        fast_dynamic_quantize: false,
        fast_pack: false,
        fuse_dequantize: false,
        fast_broadcast: false,
        fast_rms_norm: false,
        fuse_layer_norm: false,
        split_grouped_conv: false,
        wide_int8_tile: false,
        vnni_matmul: false,
        neon_matmul: false,
        fuse_attention: false,
        fast_im2col: false,
    };
}

impl Default for Passes {
    fn default() -> Self {
        Passes::ALL
    }
}

/// What the passes changed, for the load log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Applied {
    pub folded_weight_sums: usize,
    pub folded_rank_fixes: usize,
    pub fast_dynamic_quantize: usize,
    pub fast_pack: usize,
    pub folded_packs: usize,
    pub fused_dequantize: usize,
    pub fast_broadcast: usize,
    pub fast_rms_norm: usize,
    pub fused_layer_norm: usize,
    pub split_grouped_convs: usize,
    pub vnni_matmul: usize,
    pub neon_matmul: usize,
    pub fused_attention: usize,
    pub fast_im2col: usize,
}

impl std::ops::AddAssign for Applied {
    /// Totals over segments. Destructured, so a new field cannot be left out of the total.
    fn add_assign(&mut self, other: Applied) {
        let Applied {
            folded_weight_sums,
            folded_rank_fixes,
            fast_dynamic_quantize,
            fast_pack,
            folded_packs,
            fused_dequantize,
            fast_broadcast,
            fast_rms_norm,
            fused_layer_norm,
            split_grouped_convs,
            vnni_matmul,
            neon_matmul,
            fused_attention,
            fast_im2col,
        } = other;
        self.folded_weight_sums += folded_weight_sums;
        self.folded_rank_fixes += folded_rank_fixes;
        self.fast_dynamic_quantize += fast_dynamic_quantize;
        self.fast_pack += fast_pack;
        self.folded_packs += folded_packs;
        self.fused_dequantize += fused_dequantize;
        self.fast_broadcast += fast_broadcast;
        self.fast_rms_norm += fast_rms_norm;
        self.fused_layer_norm += fused_layer_norm;
        self.split_grouped_convs += split_grouped_convs;
        self.vnni_matmul += vnni_matmul;
        self.neon_matmul += neon_matmul;
        self.fused_attention += fused_attention;
        self.fast_im2col += fast_im2col;
    }
}

/// Runs the selected passes that must see the model before tract's `declutter`.
pub fn before_declutter(model: &mut TypedModel, passes: Passes) -> TractResult<Applied> {
    let mut applied = Applied::default();
    if passes.fold_rank_fixes {
        applied.folded_rank_fixes = fold_weight_rank_fixes(model)?;
    }
    Ok(applied)
}

/// Runs the selected passes that must see the model before tract's codegen (after `declutter`).
pub fn before_codegen(model: &mut TypedModel, passes: Passes) -> TractResult<Applied> {
    let mut applied = Applied::default();
    if passes.split_grouped_conv {
        applied.split_grouped_convs = split_grouped_convs(model)?;
    }
    if passes.fuse_attention {
        applied.fused_attention = fuse_attentions(model)?;
    }
    Ok(applied)
}

/// Runs the selected passes on a model tract has already optimised (`into_optimized`).
pub fn apply(model: &mut TypedModel, passes: Passes) -> TractResult<Applied> {
    let mut applied = Applied::default();
    if passes.fold_weight_sums {
        applied.folded_weight_sums = fold_weight_sums(model)?;
    }
    if passes.fast_dynamic_quantize {
        applied.fast_dynamic_quantize = replace_dynamic_quantize(model)?;
    }
    if passes.fast_pack {
        applied.fast_pack = replace_packs(model)?;
    }
    if passes.fast_im2col {
        applied.fast_im2col = fast_im2col::replace_im2cols(model)?;
    }
    if passes.fuse_dequantize {
        applied.fused_dequantize = dequantize::fuse_dequantize(model)?;
    }
    if passes.fast_broadcast {
        // After the fused dequantisation, which takes the residual Adds it can fuse.
        applied.fast_broadcast = broadcast::replace_broadcasts(model)?;
    }
    if passes.fast_rms_norm {
        applied.fast_rms_norm = rms_norm::replace_inner_rms_norms(model)?;
    }
    if passes.fuse_layer_norm {
        applied.fused_layer_norm = layer_norm::fuse_layer_norms(model)?;
    }
    if passes.fold_weight_sums {
        // The same const-folding budget leaves weight packs in the plan (see `fold_packs`).
        applied.folded_packs = fold_packs::fold_constant_packs(model)?;
    }
    if passes.vnni_matmul {
        // Last: it takes the packed weights as constants, folded or not.
        applied.vnni_matmul = vnni_matmul::replace_matmuls(model)?;
    }
    if passes.neon_matmul {
        // As `vnni_matmul` (which never takes a product on ARM64): after the folded packs.
        applied.neon_matmul = neon_matmul::replace_matmuls(model)?;
    }
    Ok(applied)
}

/// tract's op type is private to `tract-onnx` (`ops::quant`), so it is recognised by its name, which
/// is unique to it; its contract (one f32 input; u8 values, f32 scale, u8 zero point) is checked
/// against the node's facts before replacing.
const TRACT_DYNAMIC_QUANTIZE: &str = "DynamicQuantizeLinearU8";

fn replace_dynamic_quantize(model: &mut TypedModel) -> TractResult<usize> {
    replace_nodes(model, "vectorised DynamicQuantizeLinear", |model, node| {
        if node.op.name() != TRACT_DYNAMIC_QUANTIZE || node.inputs.len() != 1 {
            return Ok(None);
        }
        let input = model.outlet_fact(node.inputs[0])?;
        let outputs: Vec<DatumType> = node.outputs.iter().map(|o| o.fact.datum_type).collect();
        ensure!(
            input.datum_type == f32::datum_type()
                && outputs == [u8::datum_type(), f32::datum_type(), u8::datum_type()],
            "{node}: not the DynamicQuantizeLinear contract this replacement implements"
        );
        Ok(Some(Replacement::new(
            node,
            FastDynamicQuantizeLinearU8,
            &node.inputs,
        )))
    })
}

fn replace_packs(model: &mut TypedModel) -> TractResult<usize> {
    replace_nodes(model, "threaded int8 packing", |model, node| {
        let op: Box<dyn TypedOp> = if let Some(op) = FastPackI8K4::replacing(model, node)? {
            Box::new(op)
        } else if let Some(op) = FastPackF32::replacing(model, node)? {
            Box::new(op)
        } else {
            return Ok(None);
        };
        Ok(Some(Replacement::new(node, op, &node.inputs)))
    })
}

/// One op in place of one node, as a pass's matcher finds it (see [`replace_nodes`]).
pub(crate) struct Replacement {
    /// The node replaced: the new node takes its name, and its outputs, slot by slot.
    replaces: usize,
    op: Box<dyn TypedOp>,
    /// The new node's inputs, outlets of the model.
    inputs: TVec<OutletId>,
}

impl Replacement {
    /// `op`, reading `inputs`, in place of `node`.
    pub fn new(
        node: &TypedNode,
        op: impl Into<Box<dyn TypedOp>>,
        inputs: &[OutletId],
    ) -> Replacement {
        Replacement {
            replaces: node.id,
            op: op.into(),
            inputs: inputs.into(),
        }
    }
}

/// The loop of a pass that puts one op in place of one node, wherever its pattern matches: walks
/// `model`'s nodes in order, asks `matching` for each node's replacement (a `Replacement` of this
/// node or of another one the pattern ends at), wires each into one patch named `name` (the new
/// node reading its inputs from the model, its outputs taking over the replaced node's), commits
/// the patch ([`commit`]) and returns how many nodes were replaced.
pub(crate) fn replace_nodes(
    model: &mut TypedModel,
    name: &str,
    mut matching: impl FnMut(&TypedModel, &TypedNode) -> TractResult<Option<Replacement>>,
) -> TractResult<usize> {
    let mut patch = TypedModelPatch::new(name);
    let mut replaced = 0;
    for node in model.nodes() {
        let Some(Replacement {
            replaces,
            op,
            inputs,
        }) = matching(model, node)?
        else {
            continue;
        };
        let taps = patch.taps(model, &inputs)?;
        let wires = patch.wire_node(&model.node(replaces).name, op, &taps)?;
        for (slot, wire) in wires.into_iter().enumerate() {
            patch.shunt_outside(model, OutletId::new(replaces, slot), wire)?;
        }
        replaced += 1;
    }
    commit(patch, model, replaced)
}

/// Applies `patch` if it changed anything (`changes` nodes), then drops what became unreachable (the
/// replaced ops, and the constants only they read). Returns `changes`.
pub(crate) fn commit(
    patch: TypedModelPatch,
    model: &mut TypedModel,
    changes: usize,
) -> TractResult<usize> {
    if changes > 0 {
        patch.apply(model)?;
        model.compact()?;
    }
    Ok(changes)
}

/// What differs between our ops; `tract_op!` turns it into tract's `Op`, `EvalOp` and `TypedOp`.
/// Our ops are named after their type, are pure functions of their inputs (no state, the
/// evaluation context unread, so they evaluate out of a plan too: constant folding, tests), and
/// validate accurately (tract's default).
pub(crate) trait AccelOp {
    /// One-line hints for model dumps (tract's `Op::info`).
    fn describe(&self) -> Vec<String> {
        vec![]
    }

    /// The outputs for `inputs` (tract's `EvalOp::eval`).
    fn run(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>>;

    /// The output facts for input facts `inputs` (tract's `TypedOp::output_facts`).
    fn facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>>;
}

/// tract's `Op`, `EvalOp` and `TypedOp` for `$op`, an [`AccelOp`] (and `Clone + Debug + Hash +
/// PartialEq`, as tract's op traits require).
macro_rules! tract_op {
    ($op:ident) => {
        impl tract_onnx::tract_core::internal::Op for $op {
            fn name(&self) -> tract_onnx::tract_core::internal::StaticName {
                stringify!($op).into()
            }

            fn info(&self) -> tract_onnx::prelude::TractResult<Vec<String>> {
                Ok($crate::optimize::AccelOp::describe(self))
            }

            fn as_typed(&self) -> Option<&dyn tract_onnx::tract_core::internal::TypedOp> {
                Some(self)
            }
        }

        impl tract_onnx::tract_core::internal::EvalOp for $op {
            fn eval(
                &self,
                _ctx: &tract_onnx::tract_core::internal::EvalContext,
                inputs: tract_onnx::prelude::TVec<tract_onnx::prelude::TValue>,
            ) -> tract_onnx::prelude::TractResult<
                tract_onnx::prelude::TVec<tract_onnx::prelude::TValue>,
            > {
                $crate::optimize::AccelOp::run(self, inputs)
            }

            fn eval_out_of_plan(
                &self,
                inputs: tract_onnx::prelude::TVec<tract_onnx::prelude::TValue>,
            ) -> tract_onnx::prelude::TractResult<
                Option<tract_onnx::prelude::TVec<tract_onnx::prelude::TValue>>,
            > {
                $crate::optimize::AccelOp::run(self, inputs).map(Some)
            }
        }

        impl tract_onnx::tract_core::internal::TypedOp for $op {
            fn as_op(&self) -> &dyn tract_onnx::tract_core::internal::Op {
                self
            }

            fn as_op_mut(&mut self) -> &mut dyn tract_onnx::tract_core::internal::Op {
                self
            }

            fn output_facts(
                &self,
                inputs: &[&tract_onnx::prelude::TypedFact],
            ) -> tract_onnx::prelude::TractResult<
                tract_onnx::prelude::TVec<tract_onnx::prelude::TypedFact>,
            > {
                $crate::optimize::AccelOp::facts(self, inputs)
            }
        }
    };
}
pub(crate) use tract_op;

/// An int8 convolution as tract holds an ONNX `ConvInteger` (u8 x `[1, channels, frames]`, i8 kernel
/// from `weight`, i32 out with a bias and constant zero points, scales multiplying to 1 so that
/// tract fuses no rescaling into the product), before optimisation: for the unit tests of the
/// passes that take convolutions.
#[cfg(test)]
pub(crate) fn test_int8_conv(
    channels: usize,
    groups: usize,
    kernel: usize,
    stride: usize,
    pad: usize,
    frames: usize,
    mut weight: impl FnMut() -> i8,
) -> TractResult<TypedModel> {
    use tract_onnx::tract_core::ops::cnn::{Conv, KernelFormat, PaddingSpec, PoolSpec};
    use tract_onnx::tract_core::ops::nn::DataFormat;
    let mut model = TypedModel::default();
    let x = model.add_source("x", u8::fact([1, channels, frames]))?;
    let out_channels = 2 * groups;
    let weights: Vec<i8> = (0..out_channels * channels / groups * kernel)
        .map(|_| weight())
        .collect();
    let bias: Vec<i32> = (0..out_channels as i32).map(|o| o * 37 - 50).collect();
    let consts = [
        (
            "kernel",
            Tensor::from_shape(&[out_channels, channels / groups, kernel], &weights)?,
        ),
        ("bias", tensor1(&bias)),
        ("x0", tensor0(131i32)),
        ("x_scale", tensor0(0.5f32)),
        ("k0", tensor0(-3i32)),
        ("k_scale", tensor0(0.25f32)),
        ("y0", tensor0(0i32)),
        ("y_scale", tensor0(0.125f32)),
    ];
    let mut inputs = vec![x];
    for (name, value) in consts {
        inputs.push(model.add_const(name, value)?);
    }
    let op = Conv {
        pool_spec: PoolSpec {
            data_format: DataFormat::NCHW,
            kernel_shape: tvec![kernel],
            padding: PaddingSpec::Explicit(tvec![pad], tvec![pad]),
            dilations: None,
            strides: Some(tvec![stride]),
            input_channels: channels,
            output_channels: out_channels,
        },
        kernel_fmt: KernelFormat::OIHW,
        group: groups,
        q_params: Some(i32::datum_type()),
    };
    let y = model.wire_node("conv", op, &inputs)?;
    model.select_output_outlets(&y)?;
    Ok(model)
}

/// xorshift64: deterministic test data without a dependency, for the passes' unit tests.
#[cfg(test)]
pub(crate) fn test_rng(mut state: u64) -> impl FnMut() -> u64 {
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    }
}
