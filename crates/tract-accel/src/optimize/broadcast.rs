//! f32 `Add`/`Sub` that tract 0.23.9 leaves on its general broadcasting path, run row by row on all
//! threads, in the larger operand's buffer.
//!
//! Why: tract turns most binary ops into its fast threaded forms (`OptBinByScalar`,
//! `OptBinUnicast`), but not all. Left as plain `Add`/`Sub`, MMS-1B ran at ~2 ns per element: the
//! residual `Add` that closes each layer (`[1, T, 1280]` + `[1, T, 1280]`, 0.63 ms each, 30 ms a
//! run), the feature extractor's conv bias `Add` (`[1, 512, T]` + `[1, 512, 1]`) and its layer
//! norm's `x - mean` (`[1, 512, T]` − `[1, 1, T]`), 80 ms of a 1.5 s run on 2 threads in all.
//! `FastBroadcast` computes the same IEEE `a + b` or `a - b` per element, so the logits stay
//! bit-identical.
//!
//! Upstream report: `docs/upstream/tract-broadcast-binops-and-norms.md` (1). Delete this pass once
//! a tract release runs these `Add`/`Sub` shapes on its threaded binary ops.

use std::collections::HashMap;

use tract_linalg::multithread::par_chunks_mut;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::binary::TypedBinOp;

use super::AccelOp;

#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Arith {
    Add,
    Sub,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct FastBroadcast {
    pub arith: Arith,
    /// Which input has the output's shape (the other is broadcast over it): 0 for `a`, 1 for `b`.
    pub full: usize,
}

super::tract_op!(FastBroadcast);

impl AccelOp for FastBroadcast {
    fn describe(&self) -> Vec<String> {
        vec![format!("{:?}, input {} full", self.arith, self.full)]
    }

    fn run(&self, mut inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        ensure!(
            inputs.len() == 2 && self.full < 2,
            "FastBroadcast takes 2 inputs"
        );
        let small = inputs.remove(1 - self.full);
        // Written in place when this op holds the only reference; otherwise a copy, as tract makes.
        let mut out = inputs.remove(0).into_tensor();
        let rows = RowPlan::new(out.shape(), small.shape())?;
        let small = small.try_as_plain_ram()?;
        let small = small.as_slice::<f32>()?;
        {
            let mut view = out.try_as_plain_ram_mut()?;
            compute(self, view.as_slice_mut::<f32>()?, small, &rows)?;
        }
        Ok(tvec!(out.into_tvalue()))
    }

    fn facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        Ok(tvec!(f32::fact(inputs[self.full].shape.clone())))
    }
}

/// Where each row (the output's last axis) of the broadcast operand starts, and whether it is a
/// whole row or one value repeated along it.
#[derive(Debug, PartialEq, Eq)]
pub struct RowPlan {
    row_len: usize,
    /// The small operand varies along the last axis (else one value per row).
    small_is_row: bool,
    offsets: Vec<usize>,
}

impl RowPlan {
    pub fn new(out: &[usize], small: &[usize]) -> TractResult<RowPlan> {
        ensure!(small.len() <= out.len(), "{small:?} broadcast to {out:?}");
        let rank = out.len();
        // The small shape, left-padded with 1s to the output's rank.
        let padded: Vec<usize> = std::iter::repeat_n(1, rank - small.len())
            .chain(small.iter().copied())
            .collect();
        for (&o, &s) in out.iter().zip(&padded) {
            ensure!(s == o || s == 1, "{small:?} does not broadcast to {out:?}");
        }
        // Row-major strides of the small operand, 0 along its broadcast axes.
        let mut strides = vec![0; rank];
        let mut stride = 1;
        for axis in (0..rank).rev() {
            if padded[axis] != 1 {
                strides[axis] = stride;
            }
            stride *= padded[axis];
        }
        let row_len = out.last().copied().unwrap_or(1);
        let rows: usize = out[..rank.saturating_sub(1)].iter().product();
        let mut offsets = Vec::with_capacity(rows);
        for row in 0..rows {
            let (mut rest, mut offset) = (row, 0);
            for axis in (0..rank.saturating_sub(1)).rev() {
                offset += (rest % out[axis]) * strides[axis];
                rest /= out[axis];
            }
            offsets.push(offset);
        }
        Ok(RowPlan {
            row_len,
            small_is_row: padded.last().is_some_and(|&s| s != 1),
            offsets,
        })
    }
}

/// `out` becomes `out ∘ small` (`small ∘ out` when the full operand is `b`), `∘` the op's arithmetic.
fn compute(op: &FastBroadcast, out: &mut [f32], small: &[f32], rows: &RowPlan) -> TractResult<()> {
    match (op.arith, op.full) {
        (Arith::Add, 0) => apply(out, small, rows, |x, y| x + y),
        (Arith::Add, _) => apply(out, small, rows, |x, y| y + x),
        (Arith::Sub, 0) => apply(out, small, rows, |x, y| x - y),
        (Arith::Sub, _) => apply(out, small, rows, |x, y| y - x),
    }
}

/// `out[i] = op(out[i], small[broadcast(i)])` for every element, rows split across threads.
fn apply(
    out: &mut [f32],
    small: &[f32],
    rows: &RowPlan,
    op: impl Fn(f32, f32) -> f32 + Sync + Send,
) -> TractResult<()> {
    let row_len = rows.row_len;
    ensure!(
        out.len() == rows.offsets.len() * row_len,
        "row plan does not fit the output"
    );
    if out.is_empty() {
        return Ok(());
    }
    let needed = rows.offsets.iter().max().copied().unwrap_or(0)
        + if rows.small_is_row { row_len } else { 1 };
    ensure!(small.len() >= needed, "broadcast operand too short");
    par_chunks_mut(out, row_len, out.len(), |first_row, chunk| {
        for (row, values) in chunk.chunks_exact_mut(row_len).enumerate() {
            let offset = rows.offsets[first_row + row];
            if rows.small_is_row {
                let small = &small[offset..offset + row_len];
                values
                    .iter_mut()
                    .zip(small)
                    .for_each(|(x, &y)| *x = op(*x, y));
            } else {
                let y = small[offset];
                values.iter_mut().for_each(|x| *x = op(*x, y));
            }
        }
        Ok(())
    })
}

/// Replaces every f32 `Add`/`Sub` whose output has the shape of one input and whose other input
/// broadcasts to it. Returns how many were replaced.
pub fn replace_broadcasts(model: &mut TypedModel) -> TractResult<usize> {
    let mut patch = TypedModelPatch::new("threaded broadcast add/sub");
    let mut replaced = 0;
    // A replaced op may read another (the conv bias Add feeds the layer norm's Sub): it must read
    // the replacement, or the original stays in the plan and runs as well.
    let mut replacements: HashMap<OutletId, OutletId> = HashMap::new();
    for id in model.eval_order()? {
        let node = model.node(id);
        let Some(op) = matching(model, node)? else {
            continue;
        };
        let mut taps = TVec::new();
        for input in &node.inputs {
            taps.push(match replacements.get(input) {
                Some(wire) => *wire,
                None => patch.tap_model(model, *input)?,
            });
        }
        let wire = patch.wire_node(&node.name, op, &taps)?[0];
        patch.shunt_outside(model, node.id.into(), wire)?;
        replacements.insert(node.id.into(), wire);
        replaced += 1;
    }
    super::commit(patch, model, replaced)
}

fn matching(model: &TypedModel, node: &TypedNode) -> TractResult<Option<FastBroadcast>> {
    let Some(op) = node.op_as::<TypedBinOp>() else {
        return Ok(None);
    };
    let arith = match op.0.name() {
        "Add" => Arith::Add,
        "Sub" => Arith::Sub,
        _ => return Ok(None),
    };
    if op.1.is_some() || node.inputs.len() != 2 {
        return Ok(None);
    }
    let facts = [
        model.outlet_fact(node.inputs[0])?,
        model.outlet_fact(node.inputs[1])?,
    ];
    let output = model.outlet_fact(node.id.into())?;
    if facts.iter().any(|f| f.datum_type != f32::datum_type())
        || output.datum_type != f32::datum_type()
    {
        return Ok(None);
    }
    let Some(full) = (0..2).find(|&i| facts[i].shape == output.shape) else {
        return Ok(None);
    };
    let (out, small) = (&output.shape, &facts[1 - full].shape);
    if small.rank() > out.rank() {
        return Ok(None);
    }
    let offset = out.rank() - small.rank();
    let broadcasts = small
        .iter()
        .zip(out.iter().skip(offset))
        .all(|(s, o)| s.is_one() || s == o);
    Ok(broadcasts.then_some(FastBroadcast { arith, full }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The textbook broadcast: every output index mapped back into the small operand.
    fn reference(out: &[usize], big: &[f32], small_shape: &[usize], small: &[f32]) -> Vec<f32> {
        let rank = out.len();
        let padded: Vec<usize> = std::iter::repeat_n(1, rank - small_shape.len())
            .chain(small_shape.iter().copied())
            .collect();
        (0..big.len())
            .map(|flat| {
                let (mut rest, mut index, mut stride) = (flat, 0, 1);
                let mut coords = vec![0; rank];
                for axis in (0..rank).rev() {
                    coords[axis] = rest % out[axis];
                    rest /= out[axis];
                }
                for axis in (0..rank).rev() {
                    let c = if padded[axis] == 1 { 0 } else { coords[axis] };
                    index += c * stride;
                    stride *= padded[axis];
                }
                small[index]
            })
            .collect()
    }

    #[test]
    fn matches_elementwise_add_and_sub_for_every_broadcast_shape_on_threads() {
        let mut next = crate::optimize::test_rng(0x9e37_79b9_7f4a_7c15);
        let mut value = move || ((next() >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 1e3;
        let out = [1usize, 37, 1031];
        let cases: [&[usize]; 6] = [
            &[1, 37, 1031], // residual: same shape
            &[1, 37, 1],    // conv bias: one value per row
            &[1, 1, 1031],  // layer norm mean over the middle axis: one row for all
            &[37, 1031],    // lower rank
            &[1031],
            &[],
        ];
        let executor = tract_linalg::multithread::Executor::multithread(2);
        tract_linalg::multithread::multithread_tract_scope(executor, || {
            for small_shape in cases {
                let big: Vec<f32> = (0..out.iter().product()).map(|_| value()).collect();
                let small: Vec<f32> = (0..small_shape.iter().product()).map(|_| value()).collect();
                let spread = reference(&out, &big, small_shape, &small);
                let rows = RowPlan::new(&out, small_shape).unwrap();
                for full in [0, 1] {
                    for arith in [Arith::Add, Arith::Sub] {
                        let mut got = big.clone();
                        compute(&FastBroadcast { arith, full }, &mut got, &small, &rows).unwrap();
                        let want: Vec<u32> = big
                            .iter()
                            .zip(&spread)
                            .map(|(&b, &s)| {
                                let (a, b) = if full == 0 { (b, s) } else { (s, b) };
                                match arith {
                                    Arith::Add => a + b,
                                    Arith::Sub => a - b,
                                }
                                .to_bits()
                            })
                            .collect();
                        let got: Vec<u32> = got.iter().map(|v| v.to_bits()).collect();
                        assert!(got == want, "{small_shape:?} {arith:?} full {full}");
                    }
                }
            }
        });
    }

    #[test]
    fn rejects_shapes_that_do_not_broadcast() {
        assert!(RowPlan::new(&[1, 4, 5], &[1, 3, 5]).is_err());
        assert!(RowPlan::new(&[4, 5], &[1, 4, 5]).is_err());
    }
}
