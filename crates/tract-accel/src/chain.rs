//! The optimised encoder as a chain of plans (see `optimize::segments`): optimised in parallel at
//! load, run one after the other per utterance.

use std::collections::HashMap;
use std::time::Instant;

use rayon::prelude::*;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::{bail, format_err};

use crate::optimize::segments::{self, Feed, Segment};
use crate::optimize::{self, Applied, Passes};

/// Seconds per optimisation step, summed over segments (thread-seconds when they ran in parallel).
#[derive(Debug, Clone, Copy, Default)]
pub struct StepSeconds {
    pub declutter_s: f64,
    pub codegen_s: f64,
    pub passes_s: f64,
    pub plan_s: f64,
}

impl std::ops::AddAssign for StepSeconds {
    fn add_assign(&mut self, other: StepSeconds) {
        let StepSeconds {
            declutter_s,
            codegen_s,
            passes_s,
            plan_s,
        } = other;
        self.declutter_s += declutter_s;
        self.codegen_s += codegen_s;
        self.passes_s += passes_s;
        self.plan_s += plan_s;
    }
}

pub struct Chain {
    segments: Vec<Segment<Arc<TypedSimplePlan>>>,
    /// The audio length symbol: later segments see only activations, whose shapes are expressions of
    /// it that tract cannot solve backwards (a strided convolution's floor division), so it is set
    /// for them from the audio.
    samples: Symbol,
    /// The frame-count symbol of the segments after the first, with its expression in `samples`
    /// (`segments::name_frames`), when the split could name it.
    frames: Option<(Symbol, TDim)>,
}

impl Chain {
    /// Optimises every segment with tract's declutter and codegen, then our `passes`, on up to
    /// `threads` threads. Each segment's unoptimised graph (and with it the unpacked weights it alone
    /// holds) is dropped as soon as its plan exists.
    pub fn optimise(
        segments: Vec<Segment<TypedModel>>,
        samples: Symbol,
        passes: Passes,
        threads: usize,
    ) -> TractResult<(Chain, StepSeconds, Applied)> {
        let mut segments = segments;
        let frames = segments::name_frames(&mut segments, &samples)?;
        match &frames {
            Some((symbol, length)) => {
                log::debug!("frames after the first segment: {symbol} = {length}")
            }
            None => log::debug!("frames after the first segment: left as expressions of {samples}"),
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads.clamp(1, segments.len().max(1)))
            .thread_name(|n| format!("model-load-{n}"))
            .build()
            .map_err(|e| format_err!("starting the model-load threads: {e}"))?;
        // Each segment is moved into its task and its unoptimised graph (with the unpacked weights it
        // alone holds) dropped as soon as its plan exists; `collect` keeps the chain's order.
        let optimised: Vec<_> = pool.install(|| {
            segments
                .into_par_iter()
                .map(|segment| {
                    let (plan, steps, applied) = optimise_one(segment.model, passes)?;
                    let segment = Segment {
                        model: plan,
                        feeds: segment.feeds,
                    };
                    Ok((segment, steps, applied))
                })
                .collect::<TractResult<_>>()
        })?;
        let mut steps = StepSeconds::default();
        let mut applied = Applied::default();
        let mut segments = Vec::with_capacity(optimised.len());
        for (segment, s, a) in optimised {
            steps += s;
            applied += a;
            segments.push(segment);
        }
        let chain = Chain {
            segments,
            samples,
            frames,
        };
        Ok((chain, steps, applied))
    }

    /// Whether the segments after the first run on a frame-count symbol (`segments::name_frames`).
    pub fn frames_named(&self) -> bool {
        self.frames.is_some()
    }

    /// Every node of every segment's optimised graph.
    pub fn nodes(&self) -> impl Iterator<Item = &TypedNode> {
        self.segments.iter().flat_map(|s| s.model.model().nodes())
    }

    /// How many nodes run the op called `name` (e.g. `FastPackI8K4`): which passes found work.
    pub fn op_count(&self, name: &str) -> usize {
        self.nodes().filter(|n| n.op.name() == name).count()
    }

    /// Every node as (op name, its info lines joined), for tests and diagnostics.
    pub fn ops(&self) -> Vec<(String, String)> {
        self.nodes()
            .map(|n| {
                let info = n.op.info().unwrap_or_default().join("; ");
                (n.op.name().to_string(), info)
            })
            .collect()
    }

    /// The matrix-multiplication kernels tract chose on this CPU (e.g. `arm64simd_mmm_i32_8x8_dot`
    /// on a Cortex-A76), read from the ops' info.
    pub fn kernels(&self) -> std::collections::BTreeSet<String> {
        let mut names = std::collections::BTreeSet::new();
        for node in self.nodes() {
            for line in node.op.info().unwrap_or_default() {
                names.extend(
                    line.split(|c: char| !(c.is_alphanumeric() || c == '_'))
                        .filter(|w| w.contains("mmm") || w.contains("mmv"))
                        .map(str::to_string),
                );
            }
        }
        names
    }

    /// The output fact of the last segment: the encoder's output.
    pub fn output_fact(&self) -> TractResult<&TypedFact> {
        match self.segments.last() {
            Some(last) => last.model.model().output_fact(0),
            None => bail!("empty chain"),
        }
    }

    /// Runs the segments in order on the model's `inputs` (audio `[1, S]` first) and returns the
    /// encoder output. With `profile`, times every node (seconds and count per key).
    pub fn run(
        &self,
        inputs: TVec<TValue>,
        mut profile: Option<(&mut NodeTimes, ProfileKey)>,
    ) -> TractResult<TValue> {
        let samples = match inputs.first().map(|t| t.shape()) {
            Some([1, samples]) => *samples as i64,
            other => bail!("audio input has shape {other:?}, expected [1, S]"),
        };
        let frames = match &self.frames {
            Some((symbol, length)) => {
                let values = SymbolValues::default().with(&self.samples, samples);
                Some((symbol, length.eval_to_i64(&values)?))
            }
            None => None,
        };
        let mut previous: Option<TValue> = None;
        for segment in &self.segments {
            let mut feeds = TVec::with_capacity(segment.feeds.len());
            for feed in &segment.feeds {
                feeds.push(match feed {
                    Feed::Previous => previous
                        .clone()
                        .ok_or_else(|| format_err!("first segment fed by a previous one"))?,
                    Feed::ModelInput(ix) => inputs
                        .get(*ix)
                        .cloned()
                        .ok_or_else(|| format_err!("model input {ix} missing"))?,
                });
            }
            let mut state = segment.model.spawn()?;
            state
                .turn_state
                .resolved_symbols
                .set(&self.samples, samples);
            if let Some((symbol, frames)) = frames {
                state.turn_state.resolved_symbols.set(symbol, frames);
            }
            let mut outputs = match profile.as_mut() {
                None => state.run(feeds)?,
                Some((per_key, by)) => {
                    let by = *by;
                    state.run_plan_with_eval(feeds, |ctx, op_state, node, values| {
                        let key = match by {
                            ProfileKey::Op => node.op.name().to_string(),
                            ProfileKey::Node => {
                                let inputs: Vec<String> = values
                                    .iter()
                                    .map(|v| format!("{:?}{:?}", v.datum_type(), v.shape()))
                                    .collect();
                                let info = node.op.info().unwrap_or_default().join("; ");
                                format!(
                                    "{}\t{}\t{info}\t{}",
                                    node.op.name(),
                                    node.name,
                                    inputs.join(" ")
                                )
                            }
                        };
                        let t0 = Instant::now();
                        let out = tract_onnx::tract_core::plan::eval(ctx, op_state, node, values);
                        let entry = per_key.entry(key).or_default();
                        entry.0 += t0.elapsed().as_secs_f64();
                        entry.1 += 1;
                        out
                    })?
                }
            };
            previous = Some(outputs.remove(0));
        }
        previous.ok_or_else(|| format_err!("empty chain"))
    }
}

/// Seconds and node count per profile key.
pub type NodeTimes = HashMap<String, (f64, usize)>;

/// What `Chain::run` times its nodes by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProfileKey {
    /// The op's name: where the time goes, by kind of work.
    Op,
    /// Op, node name, op info and input types/shapes, tab-separated: which node, on what.
    Node,
}

fn optimise_one(
    mut model: TypedModel,
    passes: Passes,
) -> TractResult<(Arc<TypedSimplePlan>, StepSeconds, Applied)> {
    let mut steps = StepSeconds::default();
    let mut clock = Instant::now();
    let mut lap = || {
        let elapsed = clock.elapsed().as_secs_f64();
        clock = Instant::now();
        elapsed
    };
    let mut applied = optimize::before_declutter(&mut model, passes)?;
    steps.passes_s = lap();
    model.declutter()?;
    steps.declutter_s = lap();
    applied += optimize::before_codegen(&mut model, passes)?;
    steps.passes_s += lap();
    // tract's codegen, with our weight folds ahead of its constant propagation (`early_fold`).
    let early = optimize::codegen(&mut model, passes.fold_weight_sums)?;
    applied.folded_weight_sums += early.weight_sums;
    applied.folded_packs += early.packs;
    steps.codegen_s = lap();
    applied += optimize::apply(&mut model, passes)?;
    steps.passes_s += lap();
    let plan = model.into_runnable()?;
    steps.plan_s = lap();
    Ok((plan, steps, applied))
}
