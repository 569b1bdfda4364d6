//! Cuts the encoder into a chain of segments (about one transformer layer each) that tract optimises
//! separately, in parallel, and that run one after the other.
//!
//! Why: tract 0.23.9's optimiser costs more per rewrite the bigger the graph is. Every
//! `ModelPatch::apply` scans all nodes of the model for an op equal to each new one (comparing constant
//! weights byte by byte), and declutter recomputes the evaluation order of the whole graph between
//! rewrites; the int8 dequantisation alone applies thousands of patches. Profiled at MMS-1B on an idle
//! Zen 4: `ModelPatch::apply` was 67% of codegen, `eval_order_for_nodes` 39% of declutter, 10 s in all.
//! On a graph of one layer the same rewrites are cheap, and segments are independent work for the
//! load threads.
//!
//! The cut is exact, not an approximation: a boundary is a point of the evaluation order where one
//! activation alone is alive (the residual stream between layers); constants and model inputs are not
//! activations, each segment that reads one gets its own node for it (constants share their tensor).
//! Each segment is the original nodes, in the original order, with the original ops. What changes is
//! only that tract cannot fuse ops across a boundary, which at a residual stream it has nothing to fuse.
//!
//! Upstream report: `docs/upstream/tract-optimiser-superlinear.md`. Delete the split once a tract
//! release optimises MMS-1B unsplit in a few seconds (`Passes::split_layers` off gives the
//! comparison).

use std::collections::{HashMap, HashSet};

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::{bail, ensure};
use tract_onnx::tract_core::ops::konst::Const;

/// What feeds one input of a segment, in the segment's input order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feed {
    /// The output of the segment before.
    Previous,
    /// An input of the whole model (the audio, an adapter weight).
    ModelInput(usize),
}

/// One piece of the model: a standalone graph and where its inputs come from.
#[derive(Debug)]
pub struct Segment<M> {
    pub model: M,
    pub feeds: Vec<Feed>,
}

/// Splits `model` (one output) into segments of at least `min_nodes` computing nodes each, cut only
/// where a single activation crosses. A model with no such point is one segment.
pub fn split(model: &TypedModel, min_nodes: usize) -> TractResult<Vec<Segment<TypedModel>>> {
    ensure!(
        model.outputs.len() == 1,
        "splitting needs a model with one output"
    );
    let order = model.eval_order()?;
    let cuts = cut_points(model, &order, min_nodes.max(1))?;
    let mut segments = Vec::with_capacity(cuts.len() + 1);
    let mut start = 0;
    let mut incoming = None;
    for &(end, crossing) in &cuts {
        segments.push(build(model, &order[start..=end], incoming, crossing)?);
        start = end + 1;
        incoming = Some(crossing);
    }
    segments.push(build(model, &order[start..], incoming, model.outputs[0])?);
    Ok(segments)
}

/// Nodes that every segment may have its own copy of: constants and the model's inputs.
fn shareable(model: &TypedModel, node: &TypedNode) -> bool {
    node.op_is::<Const>() || model.inputs.iter().any(|o| o.node == node.id)
}

/// Positions in `order` after which exactly one activation is alive, with that activation, at least
/// `min_nodes` computing nodes (not constants or inputs) apart and never at the very end.
fn cut_points(
    model: &TypedModel,
    order: &[usize],
    min_nodes: usize,
) -> TractResult<Vec<(usize, OutletId)>> {
    let mut position = vec![usize::MAX; model.nodes.len()];
    for (pos, &id) in order.iter().enumerate() {
        position[id] = pos;
    }
    // Where each activation is last read (the model's output lives to the end).
    let mut expiring: HashMap<usize, Vec<OutletId>> = HashMap::new();
    let mut alive: HashSet<OutletId> = HashSet::new();
    let mut cuts = Vec::new();
    let mut since_cut = 0usize;
    for (pos, &id) in order.iter().enumerate() {
        let node = model.node(id);
        let work = !shareable(model, node);
        if work {
            since_cut += 1;
            for (slot, output) in node.outputs.iter().enumerate() {
                let outlet = OutletId::new(id, slot);
                let mut last = output
                    .successors
                    .iter()
                    .map(|s| position[s.node])
                    .filter(|&p| p != usize::MAX)
                    .max()
                    .unwrap_or(pos);
                if model.outputs.contains(&outlet) {
                    last = order.len();
                }
                if last > pos {
                    alive.insert(outlet);
                    expiring.entry(last).or_default().push(outlet);
                }
            }
        }
        for outlet in expiring.remove(&pos).unwrap_or_default() {
            alive.remove(&outlet);
        }
        // Cutting right after a computing node keeps every segment non-empty.
        if work && alive.len() == 1 && pos + 1 < order.len() && since_cut >= min_nodes {
            let crossing = *alive.iter().next().expect("one alive");
            cuts.push((pos, crossing));
            since_cut = 0;
        }
    }
    Ok(cuts)
}

/// A standalone model of the nodes `span` (in evaluation order), fed by `incoming` (the previous
/// segment's output) and producing `outgoing`.
fn build(
    model: &TypedModel,
    span: &[usize],
    incoming: Option<OutletId>,
    outgoing: OutletId,
) -> TractResult<Segment<TypedModel>> {
    let mut segment = TypedModel {
        symbols: model.symbols.clone(),
        ..TypedModel::default()
    };
    let mut feeds = Vec::new();
    let mut wired: HashMap<OutletId, OutletId> = HashMap::new();
    if let Some(outlet) = incoming {
        let source = segment.add_source(
            "edgescribe.segment_input",
            model.outlet_fact(outlet)?.clone(),
        )?;
        wired.insert(outlet, source);
        feeds.push(Feed::Previous);
    }
    for &id in span {
        let node = model.node(id);
        if shareable(model, node) {
            continue; // wired where first read
        }
        let mut inputs = TVec::new();
        for &input in &node.inputs {
            if let Some(&outlet) = wired.get(&input) {
                inputs.push(outlet);
                continue;
            }
            let producer = model.node(input.node);
            let outlet = if let Some(ix) = model.inputs.iter().position(|o| *o == input) {
                feeds.push(Feed::ModelInput(ix));
                segment.add_source(&producer.name, model.outlet_fact(input)?.clone())?
            } else if producer.op_is::<Const>() {
                segment.wire_node(&producer.name, producer.op.clone(), &[])?[0]
            } else {
                bail!("{node} reads {producer} across a segment boundary");
            };
            wired.insert(input, outlet);
            inputs.push(outlet);
        }
        let outputs = segment.wire_node(&node.name, node.op.clone(), &inputs)?;
        for (slot, outlet) in outputs.into_iter().enumerate() {
            wired.insert(OutletId::new(id, slot), outlet);
        }
    }
    let Some(&output) = wired.get(&outgoing) else {
        bail!("segment does not compute its output {outgoing:?}");
    };
    segment.select_output_outlets(&[output])?;
    Ok(Segment {
        model: segment,
        feeds,
    })
}

/// The frame count as a symbol of its own in every segment after the first: returned as the symbol and
/// its expression in `samples` (what the first segment's output length is), to be set at run time.
///
/// Why: past the feature extractor every shape is the audio length `S` through seven strided
/// convolutions, `(((S − 10)/5 + 1 − 3)/2 + 1 …)`, floor divisions tract keeps symbolic. Every shape
/// comparison its optimiser makes on them (each binary op's broadcast check, each axis change, at each
/// round) simplifies that nest again: `TDim::simplify` was ~10% of an MMS-1B load's CPU. Writing
/// `S = stride · T + (window − stride)` makes the nest reduce to `T` exactly, the divisions all being
/// whole, so the later segments see `[1, T, 1280]`.
///
/// Exact, not an approximation: for any audio length the later segments' shapes are functions of the
/// frame count alone, and `T` is set to that count (the first segment's output length) at run time.
/// The rename is only made if the substituted length simplifies to `T` itself, and if no later segment
/// reads the audio; otherwise nothing changes (`None`).
pub fn name_frames(
    segments: &mut [Segment<TypedModel>],
    samples: &Symbol,
) -> TractResult<Option<(Symbol, TDim)>> {
    let [first, later @ ..] = segments else {
        return Ok(None);
    };
    if later.is_empty()
        || later
            .iter()
            .any(|s| s.feeds.iter().any(|f| matches!(f, Feed::ModelInput(0))))
    {
        return Ok(None);
    }
    let output = first.model.output_fact(0)?;
    let Some(frames) = output
        .shape
        .iter()
        .find(|d| d.symbols().contains(samples))
        .cloned()
    else {
        return Ok(None);
    };
    let Some((stride, window)) = stride_and_window(&frames, samples) else {
        return Ok(None);
    };
    let symbol = first.model.symbols.sym("edgescribe_frames");
    let length = TDim::from(symbol.clone()) * stride + (window - stride);
    if frames.substitute(samples, &length)?.simplify() != TDim::from(symbol.clone()) {
        return Ok(None);
    }
    let subs = HashMap::from([(samples.clone(), length)]);
    // All or nothing: an op tract cannot rewrite leaves every segment as it was (slower to optimise,
    // the same model), rather than failing the load.
    let renamed: TractResult<Vec<TypedModel>> =
        later.iter().map(|s| s.model.set_symbols(&subs)).collect();
    match renamed {
        Ok(renamed) => {
            for (segment, model) in later.iter_mut().zip(renamed) {
                segment.model = model;
            }
            Ok(Some((symbol, frames)))
        }
        Err(e) => {
            log::debug!("frame count left as an expression of the audio length: {e:#}");
            Ok(None)
        }
    }
}

/// The smallest audio length giving one frame (`window`) and the samples per further frame
/// (`stride`), by evaluating the length expression; `None` unless it is that kind of step function.
fn stride_and_window(frames: &TDim, samples: &Symbol) -> Option<(i64, i64)> {
    let at = |s: i64| {
        frames
            .eval_to_i64(&SymbolValues::default().with(samples, s))
            .ok()
    };
    // The least `s` in 1..2^24 with `at(s) >= target`, if the expression is monotone there.
    let least = |target: i64| {
        let (mut lo, mut hi) = (1i64, 1i64 << 24);
        if at(hi)? < target {
            return None;
        }
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if at(mid)? >= target {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        Some(lo)
    };
    let window = least(1)?;
    let stride = least(2)? - window;
    (stride > 0).then_some((stride, window))
}

/// The whole model as its only segment (no split), fed by the model's inputs in order.
pub fn whole(model: TypedModel) -> Vec<Segment<TypedModel>> {
    let feeds = (0..model.inputs.len()).map(Feed::ModelInput).collect();
    vec![Segment { model, feeds }]
}

#[cfg(test)]
mod tests {
    use super::*;
    use tract_onnx::tract_core::ops::math;

    /// x → a = x + 1 → b = a · 2 → c = a + b (a and b both alive) → d = c · x (x is an input) → out.
    fn residual() -> TractResult<TypedModel> {
        let mut model = TypedModel::default();
        let s = model.symbols.sym("S");
        let x = model.add_source("x", f32::fact([s.to_dim()]))?;
        let one = model.add_const("one", tensor1(&[1f32]))?;
        let two = model.add_const("two", tensor1(&[2f32]))?;
        let a = model.wire_node("a", math::add(), &[x, one])?[0];
        let b = model.wire_node("b", math::mul(), &[a, two])?[0];
        let c = model.wire_node("c", math::add(), &[a, b])?[0];
        let d = model.wire_node("d", math::mul(), &[c, x])?[0];
        model.select_output_outlets(&[d])?;
        Ok(model)
    }

    fn op_names(segment: &Segment<TypedModel>) -> Vec<String> {
        let order = segment.model.eval_order().unwrap();
        order
            .iter()
            .map(|&id| segment.model.node(id).name.clone())
            .filter(|n| ["a", "b", "c", "d"].contains(&n.as_str()))
            .collect()
    }

    #[test]
    fn cuts_only_where_one_activation_crosses_and_the_chain_computes_the_same() -> TractResult<()> {
        let model = residual()?;
        let segments = split(&model, 1)?;
        let names: Vec<Vec<String>> = segments.iter().map(op_names).collect();
        // Never between b and c: `a` and `b` are both alive there.
        assert_eq!(names, [vec!["a"], vec!["b", "c"], vec!["d"]]);
        assert_eq!(segments[0].feeds, [Feed::ModelInput(0)]);
        assert_eq!(segments[1].feeds, [Feed::Previous]);
        assert_eq!(segments[2].feeds, [Feed::Previous, Feed::ModelInput(0)]);

        let x = tensor1(&[0.5f32, -3.0, 7.25]);
        let want = model
            .clone()
            .into_runnable()?
            .run(tvec!(x.clone().into()))?;
        let mut previous: Option<TValue> = None;
        for segment in segments {
            let inputs = segment
                .feeds
                .iter()
                .map(|f| match f {
                    Feed::Previous => previous.clone().unwrap(),
                    Feed::ModelInput(_) => x.clone().into(),
                })
                .collect();
            previous = Some(segment.model.into_runnable()?.run(inputs)?.remove(0));
        }
        assert_eq!(*previous.unwrap(), *want[0]);
        Ok(())
    }

    /// x[S] → a = every 320th sample (⌈S/320⌉ frames) → b = a + 1 → c = b · 2: like the encoder,
    /// everything after the first node has a length that is an expression of S.
    fn strided() -> TractResult<(TypedModel, Symbol)> {
        let mut model = TypedModel::default();
        let s = model.symbols.sym("S");
        let x = model.add_source("x", f32::fact([s.to_dim()]))?;
        let one = model.add_const("one", tensor1(&[1f32]))?;
        let two = model.add_const("two", tensor1(&[2f32]))?;
        let down = tract_onnx::tract_core::ops::Downsample {
            axis: 0,
            stride: 320,
            modulo: 0,
        };
        let a = model.wire_node("a", down, &[x])?[0];
        let b = model.wire_node("b", math::add(), &[a, one])?[0];
        let c = model.wire_node("c", math::mul(), &[b, two])?[0];
        model.select_output_outlets(&[c])?;
        Ok((model, s))
    }

    #[test]
    fn later_segments_get_a_frame_symbol_and_compute_the_same() -> TractResult<()> {
        let (model, s) = strided()?;
        let mut segments = split(&model, 1)?;
        assert_eq!(segments.len(), 3);
        let (frames, length) = name_frames(&mut segments, &s)?.expect("named");
        let t = TDim::from(frames.clone());
        for later in &segments[1..] {
            let input = later.model.input_fact(0)?;
            assert_eq!(
                input.shape.to_tvec().as_slice(),
                std::slice::from_ref(&t),
                "no S left in the shapes"
            );
        }
        for samples in [1usize, 319, 320, 321, 16000, 80_001] {
            let x = Tensor::from_shape(&[samples], &vec![0.25f32; samples])?;
            let want = model
                .clone()
                .into_runnable()?
                .run(tvec!(x.clone().into()))?;
            let values = SymbolValues::default().with(&s, samples as i64);
            let count = length.eval_to_i64(&values)?;
            assert_eq!(count as usize, samples.div_ceil(320));
            let mut value: TValue = x.into();
            for segment in &segments {
                let plan = segment.model.clone().into_runnable()?;
                let mut state = plan.spawn()?;
                state.turn_state.resolved_symbols.set(&s, samples as i64);
                state.turn_state.resolved_symbols.set(&frames, count);
                value = state.run(tvec!(value))?.remove(0);
            }
            assert_eq!(*value, *want[0], "{samples} samples");
        }
        Ok(())
    }

    #[test]
    fn no_frame_symbol_when_a_later_segment_reads_the_audio() -> TractResult<()> {
        // `residual` reads x again in its last segment.
        let model = residual()?;
        let s = model.symbols.sym("S");
        let mut segments = split(&model, 1)?;
        assert!(name_frames(&mut segments, &s)?.is_none());
        Ok(())
    }

    #[test]
    fn min_nodes_merges_pieces_and_no_cut_leaves_one_segment() -> TractResult<()> {
        let model = residual()?;
        assert_eq!(split(&model, 2)?.len(), 2); // after c
        assert_eq!(split(&model, 4)?.len(), 1);
        Ok(())
    }
}
