//! The dequantisation after each int8 matmul in one threaded pass, in the matmul's own buffer.
//!
//! Why: onnxruntime's dynamic quantisation leaves `MatMulInteger → Cast<f32> → Mul(scale)` (and,
//! on the residual branches, `→ Add(residual)`) and tract 0.23.9 runs each of those as its own
//! single-threaded op, allocating a new tensor for each; the `Mul` by a computed `[1, 1]` scale
//! takes tract's general broadcasting path, ~1.5 ns per element. At 1B that tail (Cast, Mul, Add) was
//! 0.4 s of a 2.1 s run. `FastDequantize` computes `(acc as f32) * scale [+ addend]` per element: the same IEEE
//! operations in the same order (cast exact or rounded the same way, one rounded product, one
//! rounded sum; both commutative), so the logits stay bit-identical.
//!
//! Upstream report: `docs/upstream/tract-dequantize-tail.md`. Delete this pass once a tract release
//! fuses or threads this tail.

use tract_linalg::multithread::par_chunks_mut;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::binary::TypedBinOp;
use tract_onnx::tract_core::ops::cast::Cast;

use super::AccelOp;

#[derive(Clone, Debug, Default, Hash, PartialEq, Eq)]
pub struct FastDequantize {
    /// A third input of the output's shape is added (the residual connection).
    pub add: bool,
}

super::tract_op!(FastDequantize);

impl AccelOp for FastDequantize {
    fn describe(&self) -> Vec<String> {
        vec![if self.add {
            "cast, scale, add"
        } else {
            "cast, scale"
        }
        .into()]
    }

    fn run(&self, mut inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let addend = if self.add { inputs.pop() } else { None };
        ensure!(inputs.len() == 2, "FastDequantize takes 2 or 3 inputs");
        let scale = inputs.pop().context("scale")?;
        let scale = scale.try_as_plain_ram()?.as_slice::<f32>()?;
        ensure!(scale.len() == 1, "the scale is a single value");
        let scale = scale[0];
        // The matmul's output is read by this op alone: its i32 buffer becomes the f32 result.
        let mut out = inputs.pop().context("accumulator")?.into_tensor();
        ensure!(out.datum_type() == i32::datum_type());
        if let Some(addend) = &addend {
            ensure!(addend.shape() == out.shape(), "addend shape");
        }
        {
            let mut view = out.try_as_plain_ram_mut()?;
            let acc = view.as_slice_mut::<i32>()?;
            match &addend {
                None => dequantize(acc, scale, None)?,
                Some(addend) => {
                    let addend = addend.try_as_plain_ram()?;
                    dequantize(acc, scale, Some(addend.as_slice::<f32>()?))?
                }
            }
        }
        // SAFETY: the tensor is plain memory (viewed as such above) of i32, which has the size and
        // alignment of f32; shape and strides stay valid, and every element now holds an f32's
        // bits (any 32 bits are a valid f32 in any case).
        unsafe { out.set_datum_type(f32::datum_type()) };
        Ok(tvec!(out.into_tvalue()))
    }

    fn facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        Ok(tvec!(f32::fact(inputs[0].shape.clone())))
    }
}

/// In place: each `i32` becomes the bits of `(acc as f32) * scale (+ addend)`.
pub fn dequantize(acc: &mut [i32], scale: f32, addend: Option<&[f32]>) -> TractResult<()> {
    let len = acc.len();
    if let Some(addend) = addend {
        ensure!(addend.len() == len);
    }
    par_chunks_mut(acc, 1, len, |first, chunk| {
        match addend {
            None => chunk
                .iter_mut()
                .for_each(|a| *a = ((*a as f32) * scale).to_bits() as i32),
            Some(addend) => {
                let addend = &addend[first..first + chunk.len()];
                chunk
                    .iter_mut()
                    .zip(addend)
                    .for_each(|(a, &b)| *a = ((*a as f32) * scale + b).to_bits() as i32)
            }
        }
        Ok(())
    })
}

/// Replaces every `Cast<i32 → f32> → Mul(by one value)` chain, with the `Add` of a same-shaped
/// tensor that follows it when there is one. Returns how many chains were replaced.
pub fn fuse_dequantize(model: &mut TypedModel) -> TractResult<usize> {
    // An Add of two dequantised products would match from both sides: it is fused once, by the
    // first, and the other side becomes a plain `Cast → Mul` chain feeding it.
    let mut claimed = std::collections::HashSet::new();
    let mut chains = Vec::new();
    for cast in model.nodes() {
        let Some(mut chain) = match_chain(model, cast)? else {
            continue;
        };
        if chain.addend.is_some() && !claimed.insert(chain.last) {
            chain.addend = None;
            chain.last = chain.mul;
        }
        chains.push((cast.id, chain));
    }
    // Wired in evaluation order, so a chain whose addend is another chain's output reads that
    // chain's replacement (tapping the original would keep the replaced ops in the plan, running).
    let position: std::collections::HashMap<usize, usize> = model
        .eval_order()?
        .into_iter()
        .enumerate()
        .map(|(at, node)| (node, at))
        .collect();
    chains.sort_by_key(|(_, chain)| position.get(&chain.last).copied().unwrap_or(usize::MAX));
    let mut patch = TypedModelPatch::new("fused dequantisation");
    let mut replacements = std::collections::HashMap::<OutletId, OutletId>::new();
    for (cast, chain) in &chains {
        let cast = model.node(*cast);
        let mut taps = patch.taps(model, &[cast.inputs[0], chain.scale])?;
        if let Some(addend) = chain.addend {
            taps.push(match replacements.get(&addend) {
                Some(wire) => *wire,
                None => patch.tap_model(model, addend)?,
            });
        }
        let op = FastDequantize {
            add: chain.addend.is_some(),
        };
        let wire = patch.wire_node(&cast.name, op, &taps)?[0];
        patch.shunt_outside(model, chain.last.into(), wire)?;
        replacements.insert(chain.last.into(), wire);
    }
    super::commit(patch, model, chains.len())
}

struct Matched {
    scale: OutletId,
    addend: Option<OutletId>,
    mul: usize,
    /// The node whose output the fused op replaces: the Add, or else the Mul.
    last: usize,
}

/// The single consumer of `node`'s single output, if there is exactly one and it is not a model
/// output (whose value must stay observable).
fn sole_successor(model: &TypedModel, node: usize) -> Option<&TypedNode> {
    let outlet = OutletId::new(node, 0);
    let n = model.node(node);
    if n.outputs.len() != 1 || n.outputs[0].successors.len() != 1 {
        return None;
    }
    if model.output_outlets().ok()?.contains(&outlet) {
        return None;
    }
    Some(model.node(n.outputs[0].successors[0].node))
}

/// `node` as a plain (no output type override) binary op called `name`, with its other input.
fn bin_op_other_input(node: &TypedNode, name: &str, from: usize) -> Option<OutletId> {
    let op = node.op_as::<TypedBinOp>()?;
    if op.0.name() != name || op.1.is_some() || node.inputs.len() != 2 {
        return None;
    }
    match (node.inputs[0].node == from, node.inputs[1].node == from) {
        (true, false) => Some(node.inputs[1]),
        (false, true) => Some(node.inputs[0]),
        _ => None,
    }
}

fn match_chain(model: &TypedModel, cast: &TypedNode) -> TractResult<Option<Matched>> {
    let Some(op) = cast.op_as::<Cast>() else {
        return Ok(None);
    };
    let input = model.outlet_fact(cast.inputs[0])?;
    if op.to != f32::datum_type() || input.datum_type != i32::datum_type() {
        return Ok(None);
    }
    let shape = &input.shape;
    let Some(mul) = sole_successor(model, cast.id) else {
        return Ok(None);
    };
    let Some(scale) = bin_op_other_input(mul, "Mul", cast.id) else {
        return Ok(None);
    };
    let scale_fact = model.outlet_fact(scale)?;
    let one_value =
        scale_fact.shape.iter().all(|d| d.is_one()) && scale_fact.rank() <= shape.rank();
    if scale_fact.datum_type != f32::datum_type() || !one_value {
        return Ok(None);
    }
    if model.outlet_fact(mul.id.into())?.shape != *shape {
        return Ok(None);
    }
    let mut matched = Matched {
        scale,
        addend: None,
        mul: mul.id,
        last: mul.id,
    };
    if let Some(add) = sole_successor(model, mul.id) {
        if let Some(addend) = bin_op_other_input(add, "Add", mul.id) {
            let fact = model.outlet_fact(addend)?;
            if fact.datum_type == f32::datum_type()
                && fact.shape == *shape
                && model.outlet_fact(add.id.into())?.shape == *shape
            {
                matched.addend = Some(addend);
                matched.last = add.id;
            }
        }
    }
    Ok(Some(matched))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// tract's three ops, one after the other, as the reference.
    fn reference(acc: &[i32], scale: f32, addend: Option<&[f32]>) -> Vec<u32> {
        acc.iter()
            .enumerate()
            .map(|(i, &a)| {
                let product = (a as f32) * scale;
                addend.map_or(product, |b| b[i] + product).to_bits()
            })
            .collect()
    }

    #[test]
    fn matches_cast_mul_add_value_by_value_on_threads() {
        let mut next = crate::optimize::test_rng(0x2545_f491_4f6c_dd1d);
        let acc: Vec<i32> = (0..100_003)
            .map(|i| match i % 5 {
                // Past 2^24 the cast itself rounds.
                0 => (next() as i32) | 0x0100_0001,
                _ => (next() >> 44) as i32 - (1 << 19),
            })
            .collect();
        let addend: Vec<f32> = (0..acc.len())
            .map(|_| ((next() >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 7.0)
            .collect();
        let executor = tract_linalg::multithread::Executor::multithread(2);
        tract_linalg::multithread::multithread_tract_scope(executor, || {
            for scale in [3.7e-4f32, 1.0, -2.5e-7] {
                for addend in [None, Some(addend.as_slice())] {
                    let mut out = acc.clone();
                    dequantize(&mut out, scale, addend).unwrap();
                    let got: Vec<u32> = out.iter().map(|&v| v as u32).collect();
                    assert_eq!(got, reference(&acc, scale, addend), "scale {scale}");
                }
            }
        });
    }

    /// `Add` of two dequantised products (both sides match the chain): fused once, with the other
    /// side's plain `Cast → Mul` feeding it as the addend, and the same bits out.
    #[test]
    fn an_add_of_two_dequantised_products_is_fused_once() {
        use tract_onnx::tract_core::ops::{cast::cast, math};
        let mut model = TypedModel::default();
        let mut product = |name: &str, scale: f32| -> TractResult<OutletId> {
            let acc = model.add_source(format!("{name}.acc"), i32::fact([2, 3]))?;
            let scale = model.add_const(format!("{name}.scale"), tensor2(&[[scale]]))?;
            let cast = model.wire_node(format!("{name}.cast"), cast(f32::datum_type()), &[acc])?;
            Ok(model.wire_node(format!("{name}.mul"), math::mul(), &[cast[0], scale])?[0])
        };
        let (a, b) = (product("a", 0.37).unwrap(), product("b", -2.5e-3).unwrap());
        let sum = model.wire_node("sum", math::add(), &[a, b]).unwrap()[0];
        model.select_output_outlets(&[sum]).unwrap();

        let mut fused = model.clone();
        assert_eq!(fuse_dequantize(&mut fused).unwrap(), 2);
        let adds: Vec<bool> = fused
            .nodes()
            .iter()
            .filter_map(|n| n.op_as::<FastDequantize>().map(|op| op.add))
            .collect();
        assert_eq!(adds.iter().filter(|add| **add).count(), 1, "{adds:?}");
        assert_eq!(adds.len(), 2);
        assert!(!fused.nodes().iter().any(|n| n.op_is::<TypedBinOp>()));

        let inputs = || {
            tvec![
                tensor2(&[[1i32, -7, 1 << 25], [40_000, 0, -3]]).into_tvalue(),
                tensor2(&[[5i32, 9, -11], [123_457, -(1 << 26) - 1, 2]]).into_tvalue(),
            ]
        };
        let run = |m: TypedModel| {
            let out = m.into_runnable().unwrap().run(inputs()).unwrap();
            let out = out[0].try_as_plain_ram().unwrap();
            out.as_slice::<f32>()
                .unwrap()
                .iter()
                .map(|v| v.to_bits())
                .collect::<Vec<_>>()
        };
        assert_eq!(run(model), run(fused));
    }
}
