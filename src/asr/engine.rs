//! The base model: loaded and optimised once, then shared read-only (`Arc<Engine>`) by every thread.

use std::path::{Path, PathBuf};

use tract_linalg::multithread::{multithread_tract_scope, Executor};
use tract_onnx::prelude::*;

use tract_accel::{Chain, LoadTimings, NodeTimes, Passes, ProfileKey};

use super::adapter::LanguagePack;
use super::ctc::{greedy_decode, Decoded};
use super::features::normalize_into;
use super::manifest::Manifest;
use super::vocab::Vocabularies;
use super::AsrError;

#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Threads for the recogniser's matrix products (1: run on the calling thread only). Default:
    /// [`super::threads::default_threads`], fitted to the board.
    pub threads: usize,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            threads: super::threads::default_threads(),
        }
    }
}

/// Logits of one utterance for one language.
#[derive(Debug, Clone)]
pub struct Logits {
    /// Row-major `frames × vocab`.
    pub values: Vec<f32>,
    pub frames: usize,
    pub vocab: usize,
}

pub struct Engine {
    dir: PathBuf,
    manifest: Manifest,
    vocabs: Vocabularies,
    chain: Chain,
    executor: Executor,
    load_timings: LoadTimings,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// Smallest segment, in computing nodes (not constants) of the unoptimised graph. An MMS-1B encoder
/// is cut into ~100 segments by this (two per layer): small enough that tract's optimiser is cheap,
/// and running them as a chain costs nothing measurable (run time within noise of the unsplit plan).
const SEGMENT_MIN_NODES: usize = 64;

impl Engine {
    /// Loads the export in `dir` (see `models/export.py`) and optimises it for every input length.
    pub fn load(dir: &Path, options: &EngineOptions) -> Result<Engine, AsrError> {
        Engine::load_with_passes(dir, options, Passes::ALL)
    }

    /// [`Engine::load`] with a choice of our passes over tract's optimised model (see
    /// [`tract_accel::optimize`]); `Passes::NONE` is stock tract, the reference they are tested against.
    pub fn load_with_passes(
        dir: &Path,
        options: &EngineOptions,
        passes: Passes,
    ) -> Result<Engine, AsrError> {
        if !dir.is_dir() {
            return Err(AsrError::model_file(
                dir,
                "not a directory (expected an export of models/export.py)",
            ));
        }
        let manifest = Manifest::load(dir)?;
        let onnx_path = manifest.check_file(dir, &manifest.graph.file)?;
        let vocab_path = manifest.check_file(dir, &manifest.vocab.file)?;
        let vocabs = Vocabularies::load(&vocab_path, &manifest.vocab)?;
        crate::memory::loading();
        let (chain, load_timings) = build_chain(
            &manifest,
            &onnx_path,
            &dir.join(super::manifest::MANIFEST_FILE),
            passes,
            options.threads.max(1),
        )?;
        // The unpacked weights are freed: their pages go back now, so that RSS after the load is the
        // model; from here on freed activations are kept for the next run (see `crate::memory`).
        crate::memory::inference();
        let executor = if options.threads > 1 {
            Executor::multithread_with_name(options.threads, "edgescribe-asr")
        } else {
            Executor::SingleThread
        };
        Ok(Engine {
            dir: dir.to_path_buf(),
            manifest,
            vocabs,
            chain,
            executor,
            load_timings,
        })
    }

    pub fn load_timings(&self) -> LoadTimings {
        self.load_timings
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn vocabularies(&self) -> &Vocabularies {
        &self.vocabs
    }

    /// The matrix-multiplication kernels tract chose for this model on this CPU (e.g.
    /// `arm64simd_mmm_i32_8x8_dot` on a Cortex-A76), for diagnostics and the architecture tests.
    pub fn kernels(&self) -> std::collections::BTreeSet<String> {
        self.chain.kernels()
    }

    /// How many nodes of the optimised model run the op called `name` (e.g. `FastPackI8K4`): which
    /// of our passes found something to do, for the tests and diagnostics.
    pub fn op_count(&self, name: &str) -> usize {
        self.chain.op_count(name)
    }

    /// Every node of the optimised model as (op name, op info lines), for tests and diagnostics.
    pub fn ops(&self) -> Vec<(String, String)> {
        self.chain.ops()
    }

    /// Loads a language from the model directory's `adapters/`.
    pub fn language(&self, lang: &str) -> Result<LanguagePack, AsrError> {
        self.vocabs.get(lang)?;
        self.language_from(lang, &self.manifest.adapter_path(&self.dir, lang))
    }

    /// Loads a language from an adapter file anywhere (e.g. the adapter cache).
    pub fn language_from(&self, lang: &str, adapter: &Path) -> Result<LanguagePack, AsrError> {
        let vocab = self.vocabs.get(lang)?.clone();
        LanguagePack::load(&self.manifest, lang, vocab, adapter)
    }

    /// Runs the model on 16 kHz mono samples (any scale; they are normalised here).
    pub fn logits(&self, pack: &LanguagePack, samples: &[f32]) -> Result<Logits, AsrError> {
        let inputs = self.inputs(pack, samples)?;
        let hidden =
            multithread_tract_scope(self.executor.clone(), || self.chain.run(inputs, None))
                .map_err(AsrError::engine)?;
        let hidden = hidden
            .to_plain_array_view::<f32>()
            .map_err(AsrError::engine)?;
        let (frames, width) = match hidden.shape() {
            [1, t, h] => (*t, *h),
            other => {
                return Err(AsrError::engine(format!(
                    "encoder output has shape {other:?}, expected [1, T, H]"
                )))
            }
        };
        let hidden = hidden
            .into_shape_with_order((frames, width))
            .map_err(AsrError::engine)?;
        let n_vocab = pack.vocab.len();
        let weight = tract_ndarray::ArrayView2::from_shape((n_vocab, width), &pack.head_weight)
            .map_err(AsrError::engine)?;
        let mut logits = hidden.dot(&weight.t());
        logits += &tract_ndarray::ArrayView1::from(&pack.head_bias);
        Ok(Logits {
            values: logits.into_raw_vec_and_offset().0,
            frames,
            vocab: n_vocab,
        })
    }

    /// The graph inputs for `samples` (normalised) and the pack's adapters.
    fn inputs(&self, pack: &LanguagePack, samples: &[f32]) -> Result<TVec<TValue>, AsrError> {
        let min_samples = self.manifest.min_samples();
        if samples.len() < min_samples {
            return Err(AsrError::AudioTooShort {
                samples: samples.len(),
                min_samples,
            });
        }
        let mut normalized = Vec::with_capacity(samples.len());
        normalize_into(samples, self.manifest.audio.normalize_eps, &mut normalized);
        let audio =
            Tensor::from_shape(&[1, normalized.len()], &normalized).map_err(AsrError::engine)?;
        let mut inputs: TVec<TValue> = tvec![audio.into()];
        inputs.extend(pack.inputs.iter().cloned());
        Ok(inputs)
    }

    /// Runs the encoder once on `samples`, timing every node: seconds and node count per key
    /// (op name, or each node: see [`ProfileKey`]), slowest first. For `edgescribe bench
    /// --profile`: where the time goes, on this CPU.
    pub fn profile(
        &self,
        pack: &LanguagePack,
        samples: &[f32],
        by: ProfileKey,
    ) -> Result<Vec<(String, f64, usize)>, AsrError> {
        let inputs = self.inputs(pack, samples)?;
        let mut per_op = NodeTimes::default();
        multithread_tract_scope(self.executor.clone(), || {
            self.chain.run(inputs, Some((&mut per_op, by)))
        })
        .map_err(AsrError::engine)?;
        let mut per_op: Vec<(String, f64, usize)> =
            per_op.into_iter().map(|(k, (t, n))| (k, t, n)).collect();
        per_op.sort_by(|a, b| b.1.total_cmp(&a.1));
        Ok(per_op)
    }

    /// Logits, then greedy CTC decoding.
    pub fn transcribe(&self, pack: &LanguagePack, samples: &[f32]) -> Result<Decoded, AsrError> {
        let logits = self.logits(pack, samples)?;
        Ok(greedy_decode(&logits.values, &pack.vocab))
    }
}

/// Parses the ONNX graph, checks it against the manifest and optimises it once for every input
/// length (`tract_accel::load`).
fn build_chain(
    manifest: &Manifest,
    onnx_path: &Path,
    manifest_path: &Path,
    passes: Passes,
    threads: usize,
) -> Result<(Chain, LoadTimings), AsrError> {
    let mismatch = |reason: String| AsrError::ManifestMismatch {
        path: manifest_path.to_path_buf(),
        reason,
    };
    let parsed = tract_accel::parse(onnx_path, threads).map_err(|e| {
        AsrError::model_file(onnx_path, format!("not a loadable ONNX graph: {e:#}"))
    })?;
    let graph = &manifest.graph;
    let names = parsed.input_names().map_err(AsrError::engine)?;
    let expected: Vec<&str> = std::iter::once(graph.input.as_str())
        .chain(graph.adapter_inputs.iter().map(|a| a.name.as_str()))
        .collect();
    if names.len() != expected.len() {
        return Err(mismatch(format!(
            "the graph has {} inputs, the manifest lists {}",
            names.len(),
            expected.len()
        )));
    }
    if let Some((got, want)) = names.iter().zip(&expected).find(|(g, w)| g != *w) {
        return Err(mismatch(format!(
            "graph input {got:?} where the manifest expects {want:?}"
        )));
    }
    let outputs = parsed.output_count().map_err(AsrError::engine)?;
    if outputs != 1 {
        return Err(mismatch(format!(
            "the graph has {outputs} outputs, expected 1"
        )));
    }
    for (ix, spec) in graph.adapter_inputs.iter().enumerate() {
        if let Some(declared) = parsed
            .declared_input_shape(ix + 1)
            .map_err(AsrError::engine)?
        {
            if declared != spec.shape {
                return Err(mismatch(format!(
                    "input {} is {declared:?} in the graph, {:?} in the manifest",
                    spec.name, spec.shape
                )));
            }
        }
    }
    let shapes: Vec<Vec<usize>> = graph
        .adapter_inputs
        .iter()
        .map(|a| a.shape.clone())
        .collect();
    let (chain, timings) = parsed
        .optimise(&shapes, passes, threads, SEGMENT_MIN_NODES)
        .map_err(|e| AsrError::model_file(onnx_path, format!("loading its graph: {e:#}")))?;
    let hidden = tract_accel::load::output_width(&chain).map_err(AsrError::engine)?;
    if hidden != Some(manifest.lm_head.hidden_size) {
        return Err(mismatch(format!(
            "the encoder outputs width {hidden:?}, the manifest's head takes {}",
            manifest.lm_head.hidden_size
        )));
    }
    log::debug!("model loaded: {timings:?}");
    Ok((chain, timings))
}
