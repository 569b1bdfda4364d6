//! Loading an export: parse ([`parse`]), let the caller check the graph's inputs against what it
//! expects, then type, split and optimise it into a [`Chain`] ([`Parsed::optimise`]).

use std::path::Path;
use std::time::Instant;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::DimLike;

use crate::chain::Chain;
use crate::optimize::{segments, Passes};
use crate::{onnx_parse, weights_file};

/// Where load time went, in seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct LoadTimings {
    /// ONNX parse, weights read, types and shapes inferred.
    pub parse_s: f64,
    /// Cutting the graph into segments (`optimize::segments`).
    pub split_s: f64,
    /// How many segments.
    pub segments: usize,
    /// Wall time to optimise every segment (in parallel), the four steps below.
    pub optimise_s: f64,
    /// tract's `declutter` passes, summed over segments.
    pub declutter_s: f64,
    /// tract's codegen passes (kernel selection, weight packing), summed over segments.
    pub codegen_s: f64,
    /// Our passes ([`crate::optimize`]), the one before codegen and those after, summed over segments.
    pub passes_s: f64,
    /// Execution plans, summed over segments.
    pub plan_s: f64,
    /// Whether the segments after the first see the frame count as a symbol of its own
    /// (`optimize::segments::name_frames`), which keeps their shape arithmetic cheap.
    pub frames_named: bool,
    /// How many constant weights their einsum takes without tract's unit axis (`optimize::rank_fix`).
    pub rank_fixes_folded: usize,
}

/// An export parsed, its biggest weights possibly still being read on other threads.
pub struct Parsed {
    model: InferenceModel,
    weights: onnx_parse::PendingWeights,
    started: Instant,
}

/// Parses the ONNX file at `path` (weights inline or in an external data file beside it), reading
/// the external weights on `threads` threads.
pub fn parse(path: &Path, threads: usize) -> TractResult<Parsed> {
    let started = Instant::now();
    // onnxruntime's quantiser writes value_info that tract 0.23 rejects; the graph's own types suffice.
    let mut onnx = tract_onnx::onnx().with_ignore_value_info(true);
    onnx.provider = Arc::new(weights_file::PreadResolver::default());
    let onnx_parse::Parsed { model, weights } = onnx_parse::parse(&onnx, path, threads)?;
    // `onnx` goes here, and with it the resolver's open weights file, if the graph had external
    // data the parallel read leaves to tract (none in an MMS export).
    Ok(Parsed {
        model,
        weights,
        started,
    })
}

impl Parsed {
    /// The names of the file's own inputs, in order (not the weights still being read).
    pub fn input_names(&self) -> TractResult<Vec<String>> {
        Ok(self
            .model
            .input_outlets()?
            .iter()
            .take(self.weights.file_inputs())
            .map(|o| self.model.node(o.node).name.clone())
            .collect())
    }

    /// How many outputs the graph has.
    pub fn output_count(&self) -> TractResult<usize> {
        Ok(self.model.output_outlets()?.len())
    }

    /// The concrete shape the file declares for input `ix`, if it declares one.
    pub fn declared_input_shape(&self, ix: usize) -> TractResult<Option<Vec<usize>>> {
        Ok(self
            .model
            .input_fact(ix)?
            .shape
            .as_concrete_finite()
            .ok()
            .flatten()
            .map(|s| s.to_vec()))
    }

    /// Types the model for f32 audio `[1, S]` (S symbolic: one plan serves every length; measured
    /// ~9% faster than planning per length) as input 0 and f32 inputs of `other_inputs`' shapes
    /// after it, then optimises it: cut into segments of at least `segment_min_nodes` computing
    /// nodes when `passes.split_layers`, optimised on `threads` threads with our `passes`.
    pub fn optimise(
        self,
        other_inputs: &[Vec<usize>],
        passes: Passes,
        threads: usize,
        segment_min_nodes: usize,
    ) -> TractResult<(Chain, LoadTimings)> {
        let Parsed {
            mut model,
            weights,
            started,
        } = self;
        let mut timings = LoadTimings::default();
        let mut clock = started;
        let mut lap = move || {
            let elapsed = clock.elapsed().as_secs_f64();
            clock = Instant::now();
            log::debug!(
                "load step {elapsed:.2} s, RSS {:?} kB, peak so far {:?} kB",
                process_status_kb("VmRSS:"),
                process_status_kb("VmHWM:")
            );
            elapsed
        };
        if passes.wide_int8_tile {
            crate::optimize::prefer_wide_int8_tile();
        }
        let samples = model.symbols.sym("S");
        model.set_input_fact(0, f32::fact([1.to_dim(), samples.to_dim()]).into())?;
        for (ix, shape) in other_inputs.iter().enumerate() {
            model.set_input_fact(ix + 1, f32::fact(shape).into())?;
        }
        let mut typed = model.into_typed()?;
        weights.finish_typed(&mut typed)?;
        timings.parse_s = lap();
        let segments = if passes.split_layers {
            let segments = segments::split(&typed, segment_min_nodes)?;
            // The segments share the constants' tensors: with `typed` gone the weights live only
            // there, and each is freed as soon as its segment has packed it (measured at 1B:
            // keeping `typed` to the end made the peak 2.2 GB).
            drop(typed);
            segments
        } else {
            segments::whole(typed)
        };
        timings.split_s = lap();
        timings.segments = segments.len();
        let (chain, steps, applied) = Chain::optimise(segments, samples, passes, threads.max(1))?;
        timings.optimise_s = lap();
        timings.declutter_s = steps.declutter_s;
        timings.codegen_s = steps.codegen_s;
        timings.passes_s = steps.passes_s;
        timings.plan_s = steps.plan_s;
        timings.frames_named = chain.frames_named();
        timings.rank_fixes_folded = applied.folded_rank_fixes;
        log::debug!("our passes over tract's model: {applied:?}");
        Ok((chain, timings))
    }
}

/// The width of the chain's output's last axis (the encoder's hidden size), when concrete.
pub fn output_width(chain: &Chain) -> TractResult<Option<usize>> {
    Ok(chain
        .output_fact()?
        .shape
        .last()
        .and_then(|d| d.to_usize().ok()))
}

/// A line of the process's status in kB (`VmRSS:` now, `VmHWM:` the peak so far), for the load log:
/// which step makes the peak.
pub fn process_status_kb(key: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
