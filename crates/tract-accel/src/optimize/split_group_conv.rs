//! A grouped int8 convolution as one convolution per group, before codegen: the same products in
//! a fraction of the memory.
//!
//! Why: tract lowers a quantised convolution to `Im2col` then a matmul, and its `Im2col` unfolds
//! *every* group's patches into one buffer before the first product. MMS's positional convolution
//! (1280 channels in 16 groups, kernel 128, one per utterance) unfolds to 16 × 80 × 128 bytes per
//! frame: 40 MB for 5 s of audio at 1B, the largest transient of a run and, on top of the weights,
//! what set the process's peak RSS (measured: live heap +42 MB at that node, the next largest +31 MB).
//! Cut per group, each group's patches (1/16 of that) are freed before the next group unfolds —
//! tract's plan runs each input branch of the `Concat` to its end before starting the next, and
//! frees a value after its last reader.
//!
//! The arithmetic is unchanged: each output channel still sums, in i32 and so exactly, the same
//! products over its own group's input channels, with the same zero-point terms; the outputs are
//! bit-identical. It runs before codegen because codegen is what builds the `Im2col`.
//!
//! Limits, each a reason to leave a convolution alone: float convolutions (tract unfolds those
//! lazily already), kernels that are not constants or not `OIHW` (ONNX's layout), zero points or
//! scales that are neither per tensor nor per output channel, and depthwise-like convolutions with
//! fewer than `MIN_CHANNELS_PER_GROUP` input channels per group (hundreds of tiny matmuls would cost
//! more time than their unfolding costs memory).
//!
//! Upstream report: `docs/upstream/tract-grouped-conv-im2col-memory.md`. Delete this pass once a
//! tract release unfolds a grouped convolution's patches one group at a time.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::array::{Slice, TypedConcat};
use tract_onnx::tract_core::ops::cnn::{Conv, KernelFormat, PoolSpec};

use super::commit;

/// Below this many input channels per group, leave the convolution whole (see the module doc).
const MIN_CHANNELS_PER_GROUP: usize = 8;

/// Inputs of tract's quantised `Conv`: x, kernel, bias, x0, x_scale, k0, k_scale, y0, y_scale.
const KERNEL: usize = 1;
const BIAS: usize = 2;
const K0: usize = 5;
const K_SCALE: usize = 6;
const QUANTISED_INPUTS: usize = 9;

/// Splits every grouped int8 convolution it can (see the module doc); returns how many.
pub fn split_grouped_convs(model: &mut TypedModel) -> TractResult<usize> {
    let mut patch = TypedModelPatch::new("one int8 convolution per group");
    let mut split = 0;
    for node in model.nodes() {
        let Some(conv) = node.op_as::<Conv>() else {
            continue;
        };
        let Some(plan) = GroupSplit::of(model, node, conv)? else {
            continue;
        };
        let taps = patch.taps(model, &node.inputs)?;
        let mut groups = TVec::with_capacity(conv.group);
        for group in 0..conv.group {
            let name = format!("{}.group{group}", node.name);
            let mut inputs = taps.clone();
            let (start, end) = (group * plan.in_per_group, (group + 1) * plan.in_per_group);
            inputs[0] = patch.wire_node(
                format!("{name}.x"),
                Slice::new(plan.c_axis, start, end),
                &[taps[0]],
            )?[0];
            let (start, end) = (group * plan.out_per_group, (group + 1) * plan.out_per_group);
            for (slot, tensor) in &plan.per_channel {
                let slice = tensor.slice(0, start, end)?;
                inputs[*slot] = patch.add_const(format!("{name}.input{slot}"), slice)?;
            }
            let op = Conv {
                pool_spec: PoolSpec {
                    input_channels: plan.in_per_group,
                    output_channels: plan.out_per_group,
                    ..conv.pool_spec.clone()
                },
                group: 1,
                ..conv.clone()
            };
            groups.push(patch.wire_node(&name, op, &inputs)?[0]);
        }
        let whole = patch.wire_node(
            format!("{}.groups", node.name),
            TypedConcat::new(plan.c_axis),
            &groups,
        )?[0];
        patch.shunt_outside(model, node.id.into(), whole)?;
        split += 1;
    }
    commit(patch, model, split)
}

/// How one convolution is cut: channels per group, the channel axis (the same in input and output),
/// and the constant inputs that hold one value per output channel, to be sliced per group.
struct GroupSplit {
    in_per_group: usize,
    out_per_group: usize,
    c_axis: usize,
    per_channel: Vec<(usize, Arc<Tensor>)>,
}

impl GroupSplit {
    fn of(model: &TypedModel, node: &TypedNode, conv: &Conv) -> TractResult<Option<GroupSplit>> {
        let (inputs, outputs, group) = (conv.input_channels(), conv.output_channels(), conv.group);
        if group < 2
            || conv.q_params.is_none()
            || conv.kernel_fmt != KernelFormat::OIHW
            || node.inputs.len() != QUANTISED_INPUTS
            || !inputs.is_multiple_of(group)
            || !outputs.is_multiple_of(group)
            || inputs / group < MIN_CHANNELS_PER_GROUP
        {
            return Ok(None);
        }
        let x = model.outlet_fact(node.inputs[0])?;
        let c_axis = conv
            .pool_spec
            .data_format
            .shape(x.shape.to_tvec())?
            .c_axis();
        let mut per_channel = Vec::new();
        for slot in [KERNEL, BIAS, K0, K_SCALE] {
            let fact = model.outlet_fact(node.inputs[slot])?;
            let per_tensor = fact.shape.volume().is_one();
            let per_output = fact.rank() >= 1 && fact.shape[0] == outputs.to_dim();
            match (&fact.konst, slot) {
                // The kernel is sliced whatever its size; it must be a constant.
                (Some(k), KERNEL) if per_output => per_channel.push((slot, k.clone())),
                (_, KERNEL) => return Ok(None),
                (_, _) if per_tensor => {}
                (Some(v), _) if per_output && fact.rank() == 1 => {
                    per_channel.push((slot, v.clone()))
                }
                _ => return Ok(None),
            }
        }
        Ok(Some(GroupSplit {
            in_per_group: inputs / group,
            out_per_group: outputs / group,
            c_axis,
            per_channel,
        }))
    }
}

#[cfg(test)]
mod tests {
    use tract_onnx::tract_core::ops::cnn::PaddingSpec;
    use tract_onnx::tract_core::ops::nn::DataFormat;

    use super::*;
    use crate::optimize::test_rng;

    const FRAMES: usize = 37;
    const KERNEL_LEN: usize = 5;

    /// How the zero point and scale of the kernel are given.
    #[derive(Clone, Copy)]
    enum KernelQuant {
        PerTensor,
        PerOutputChannel,
    }

    /// x (u8, `[1, c, FRAMES]`) → int8 convolution in `groups` groups → i32, as tract holds an ONNX
    /// `ConvInteger` after declutter (zero points as i32); random constants from `seed`.
    fn grouped_conv(
        c: usize,
        o: usize,
        groups: usize,
        quant: KernelQuant,
        seed: u64,
    ) -> TractResult<TypedModel> {
        let mut rng = test_rng(seed);
        let mut model = TypedModel::default();
        let x = model.add_source("x", u8::fact([1, c, FRAMES]))?;
        let weights: Vec<i8> = (0..o * c / groups * KERNEL_LEN)
            .map(|_| rng() as i8)
            .collect();
        let bias: Vec<i32> = (0..o).map(|_| (rng() % 2001) as i32 - 1000).collect();
        let k0 = match quant {
            KernelQuant::PerTensor => tensor0(-3i32),
            KernelQuant::PerOutputChannel => {
                tensor1(&(0..o).map(|_| (rng() % 9) as i32 - 4).collect::<Vec<_>>())
            }
        };
        let k_scale = match quant {
            KernelQuant::PerTensor => tensor0(0.25f32),
            KernelQuant::PerOutputChannel => tensor1(&vec![0.25f32; o]),
        };
        let consts = [
            (
                "kernel",
                Tensor::from_shape(&[o, c / groups, KERNEL_LEN], &weights)?,
            ),
            ("bias", tensor1(&bias)),
            ("x0", tensor0(131i32)),
            ("x_scale", tensor0(0.5f32)),
            ("k0", k0),
            ("k_scale", k_scale),
            ("y0", tensor0(0i32)),
            ("y_scale", tensor0(1f32)),
        ];
        let mut inputs = vec![x];
        for (name, value) in consts {
            inputs.push(model.add_const(name, value)?);
        }
        let conv = Conv {
            pool_spec: PoolSpec {
                data_format: DataFormat::NCHW,
                kernel_shape: tvec![KERNEL_LEN],
                padding: PaddingSpec::Explicit(tvec![2], tvec![2]),
                dilations: None,
                strides: None,
                input_channels: c,
                output_channels: o,
            },
            kernel_fmt: KernelFormat::OIHW,
            group: groups,
            q_params: Some(i32::datum_type()),
        };
        let y = model.wire_node("conv", conv, &inputs)?;
        model.select_output_outlets(&y)?;
        Ok(model)
    }

    fn run(model: TypedModel, x: &Tensor) -> TractResult<Tensor> {
        let out = model
            .into_optimized()?
            .into_runnable()?
            .run(tvec![x.clone().into()])?;
        Ok(out[0].clone().into_tensor())
    }

    fn im2cols(model: &TypedModel) -> TractResult<usize> {
        let optimized = model.clone().into_optimized()?;
        Ok(optimized
            .nodes()
            .iter()
            .filter(|n| n.op.name() == "Im2col")
            .count())
    }

    fn input(c: usize) -> TractResult<Tensor> {
        let mut rng = test_rng(99);
        let x: Vec<u8> = (0..c * FRAMES).map(|_| rng() as u8).collect();
        Tensor::from_shape(&[1, c, FRAMES], &x)
    }

    #[test]
    fn each_group_gets_its_own_convolution_and_the_i32_output_is_the_same() -> TractResult<()> {
        for quant in [KernelQuant::PerTensor, KernelQuant::PerOutputChannel] {
            let (c, o, groups) = (32, 12, 4);
            let whole = grouped_conv(c, o, groups, quant, 5)?;
            let mut split = whole.clone();
            assert_eq!(split_grouped_convs(&mut split)?, 1);
            assert_eq!(
                split
                    .nodes()
                    .iter()
                    .filter(|n| n.op_as::<Conv>().is_some_and(|c| c.group == 1))
                    .count(),
                groups
            );
            // One unfolding per group after codegen, where there was one for them all.
            assert_eq!(im2cols(&whole)?, 1);
            assert_eq!(im2cols(&split)?, groups);
            let x = input(c)?;
            let want = run(whole, &x)?;
            let got = run(split, &x)?;
            assert_eq!(want.shape(), [1, o, FRAMES]);
            assert_eq!(want, got, "the split convolution's i32 output differs");
        }
        Ok(())
    }

    #[test]
    fn leaves_narrow_groups_and_ungrouped_convolutions_alone() -> TractResult<()> {
        // 4 input channels per group: below MIN_CHANNELS_PER_GROUP.
        let mut narrow = grouped_conv(16, 8, 4, KernelQuant::PerTensor, 1)?;
        assert_eq!(split_grouped_convs(&mut narrow)?, 0);
        let mut ungrouped = grouped_conv(16, 8, 1, KernelQuant::PerTensor, 2)?;
        assert_eq!(split_grouped_convs(&mut ungrouped)?, 0);
        Ok(())
    }
}
