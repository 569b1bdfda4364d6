//! Parses an ONNX model whose weights sit in an external data file, reading the weights on several
//! threads straight into tract's tensors, the biggest ones while tract types the graph.
//!
//! Why: tract-onnx reads external initializers one by one on the parsing thread, each into a
//! zero-filled `Vec` (through the [`ModelDataResolver`](tract_onnx::data_resolver)) that it then
//! copies into a freshly allocated aligned tensor. At MMS-1B that was ~0.75 s of a ~1 s parse,
//! two thirds of it the kernel faulting in and clearing the tensors' new pages, with the second
//! core idle. Here each weight is `pread` once into its final tensor, by `threads` threads at a
//! time. Upstream report: `docs/upstream/tract-load-copies-weights.md`; delete this parser once a
//! tract release reads external weights as directly.
//!
//! How, through tract's public API only: the external initializers are taken out of the
//! `ModelProto` and declared as graph inputs of their type and shape, so tract's parser makes them
//! sources where their constants would have been. Most are put back as those constants as soon as
//! the graph is parsed ([`parse`]). The matmul weights (~98% of the bytes) are still being read
//! while the caller analyses and types the graph (`into_typed`, ~0.35 s at 1B on one thread): no
//! op's type or shape depends on a matmul operand's *values*, only the inference-time folding of
//! all-constant nodes does, and a matmul of a weight by an activation is never one. They become
//! constants of the typed model in [`PendingWeights::finish`].

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;

use anyhow::Context;
use tract_onnx::pb;
use tract_onnx::pb::tensor_proto::{DataLocation, DataType};
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::{bail, ensure, format_err, vector_size};
use tract_onnx::tract_core::ops::konst::Const;
use tract_onnx::tract_core::ops::source::TypedSource;
use tract_onnx::tract_hir::ops::source::Source;
use tract_onnx::Onnx;

/// Ops whose typing never needs an operand's value, so their weights may still be loading then.
const TYPED_WITHOUT_VALUES: &[&str] = &["MatMul", "MatMulInteger"];

/// One initializer whose bytes live in an external data file.
#[derive(Debug)]
struct External {
    name: String,
    dt: DatumType,
    shape: Vec<usize>,
    file: PathBuf,
    offset: u64,
    bytes: usize,
}

/// A parsed model: constants in place but for the weights still being read, which are sources
/// (inputs after the file's own) until [`PendingWeights::finish`].
pub struct Parsed {
    pub model: InferenceModel,
    pub weights: PendingWeights,
}

/// Parses `path` like `onnx.model_for_path`, reading the external weights on `threads` threads.
pub fn parse(onnx: &Onnx, path: &Path, threads: usize) -> TractResult<Parsed> {
    let dir = path.parent().unwrap_or(Path::new(""));
    let dir_str = dir
        .to_str()
        .ok_or_else(|| format_err!("model directory {dir:?} is not UTF-8"))?;
    let mut proto = onnx.proto_model_for_path(path)?;
    let (jobs, eager) = take_externals(&mut proto, dir)?;
    let files = open_files(&jobs)?;
    let loading = Arc::new(Loading {
        results: Mutex::new((0..jobs.len()).map(|_| None).collect()),
        jobs,
        eager,
        files,
        next: AtomicUsize::new(0),
        helper_died: AtomicBool::new(false),
        progress: Condvar::new(),
    });
    // No external weights (the embedded test models): nothing to read beside the parser.
    let helper_count = if loading.jobs.is_empty() {
        0
    } else {
        threads.max(1) - 1
    };
    let helpers = (0..helper_count)
        .filter_map(|_| {
            let loading = loading.clone();
            let all = loading.jobs.len();
            // Could not spawn: the calling thread reads what the helper would have.
            std::thread::Builder::new()
                .name("weights-load".into())
                .spawn(move || {
                    let read = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        loading.work(all)
                    }));
                    if read.is_err() {
                        // Under the results' lock, which `take` holds between checking this flag
                        // and waiting: the wake-up cannot fall in between and be lost.
                        let _results = loading
                            .results
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner);
                        loading.helper_died.store(true, Ordering::Relaxed);
                        loading.stop();
                        loading.progress.notify_all();
                    }
                })
                .ok()
        })
        .collect();
    let mut weights = PendingWeights {
        loading,
        helpers,
        file_inputs: 0,
    };
    // Graph first: it is quick, and the helpers are reading meanwhile.
    let parsed = onnx.parse(&proto, Some(dir_str))?;
    ensure!(
        parsed.unresolved_inputs.is_empty(),
        "Could not resolve inputs at top-level: {:?}",
        parsed.unresolved_inputs
    );
    let mut model = parsed.model;
    weights.loading.work(weights.loading.eager);
    let loaded = weights.loading.take(0..weights.loading.eager)?;
    substitute(&mut model, &weights.loading.jobs, loaded, |node| {
        node.op_is::<Source>()
    })?;
    // The weights still being read were declared last: the inputs before them are the file's
    // (fewer than it declares if it lists initializers among them, as older exporters do).
    let pending = weights.loading.jobs.len() - weights.loading.eager;
    weights.file_inputs = model
        .inputs
        .len()
        .checked_sub(pending)
        .context("fewer inputs than weights being read")?;
    Ok(Parsed { model, weights })
}

/// Parses `path` with every weight in place: [`parse`], then [`PendingWeights::finish`] on the
/// inference model (for callers that do not type the model at once).
#[cfg(test)]
pub fn model_for_path(onnx: &Onnx, path: &Path, threads: usize) -> TractResult<InferenceModel> {
    let Parsed { mut model, weights } = parse(onnx, path, threads)?;
    weights.finish(&mut model, |node| node.op_is::<Source>())?;
    Ok(model)
}

/// The ops of tract's graphs, inference and typed, as far as putting a constant in one goes.
pub trait GraphOp:
    std::fmt::Debug + std::fmt::Display + AsRef<dyn Op> + AsMut<dyn Op> + Clone + 'static + From<Const>
{
}

impl<O> GraphOp for O where
    O: std::fmt::Debug
        + std::fmt::Display
        + AsRef<dyn Op>
        + AsMut<dyn Op>
        + Clone
        + 'static
        + From<Const>
{
}

/// The weights still being read when [`parse`] returned.
pub struct PendingWeights {
    loading: Arc<Loading>,
    helpers: Vec<JoinHandle<()>>,
    file_inputs: usize,
}

impl PendingWeights {
    /// How many of the model's inputs are the file's own; the rest are weights until [`Self::finish`].
    pub fn file_inputs(&self) -> usize {
        self.file_inputs
    }

    /// Reads what is left (with the helpers), then puts each weight in `model` as a constant, where
    /// `is_source` tells the source it stands for, and leaves the model with the file's inputs.
    pub fn finish<F, O>(
        mut self,
        model: &mut Graph<F, O>,
        is_source: impl Fn(&Node<F, O>) -> bool,
    ) -> TractResult<()>
    where
        F: Fact + Clone + 'static + From<TypedFact>,
        O: GraphOp,
    {
        let all = self.loading.jobs.len();
        self.loading.work(all);
        let loaded = self.loading.take(self.loading.eager..all)?;
        for helper in std::mem::take(&mut self.helpers) {
            let _ = helper.join(); // all read: they are returning
        }
        substitute(model, &self.loading.jobs, loaded, is_source)
    }

    /// [`Self::finish`] on a typed model.
    pub fn finish_typed(self, model: &mut TypedModel) -> TractResult<()> {
        self.finish(model, |node| node.op_is::<TypedSource>())
    }
}

impl Drop for PendingWeights {
    /// Not finished (an error on the way): stop reading, and wait for the reads in progress.
    fn drop(&mut self) {
        self.loading.stop();
        for helper in std::mem::take(&mut self.helpers) {
            let _ = helper.join();
        }
    }
}

/// What the reading threads share: the jobs (those before `eager` first) and their results.
struct Loading {
    jobs: Vec<External>,
    /// The jobs needed before the graph is typed come first, up to here.
    eager: usize,
    files: HashMap<PathBuf, (File, u64)>,
    /// The next job nobody has taken; past the end once reading should stop.
    next: AtomicUsize,
    results: Mutex<Vec<Option<TractResult<Tensor>>>>,
    helper_died: AtomicBool,
    progress: Condvar,
}

impl Loading {
    /// Reads jobs, the next untaken one each time, while it is before `upto`.
    fn work(&self, upto: usize) {
        let take = |n: usize| (n < upto).then_some(n + 1);
        while let Ok(ix) = self
            .next
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, take)
        {
            let job = &self.jobs[ix];
            let tensor = read(job, &self.files)
                .with_context(|| format!("reading initializer {:?}", job.name));
            if tensor.is_err() {
                self.stop();
            }
            let mut results = self.results.lock().unwrap_or_else(PoisonError::into_inner);
            results[ix] = Some(tensor);
            self.progress.notify_all();
        }
    }

    fn stop(&self) {
        self.next.store(self.jobs.len(), Ordering::Relaxed);
    }

    /// Waits for the jobs in `range` (being read by other threads) and takes them, or the first error.
    fn take(&self, range: std::ops::Range<usize>) -> TractResult<Vec<(usize, Tensor)>> {
        let mut results = self.results.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if let Some(ix) = range
                .clone()
                .find(|&ix| matches!(results[ix], Some(Err(_))))
            {
                if let Some(Err(e)) = results[ix].take() {
                    return Err(e);
                }
            }
            if results[range.clone()].iter().all(Option::is_some) {
                break;
            }
            if self.helper_died.load(Ordering::Relaxed) {
                bail!("a weights-load thread panicked");
            }
            results = self
                .progress
                .wait(results)
                .unwrap_or_else(PoisonError::into_inner);
        }
        range
            .map(|ix| match results[ix].take() {
                Some(Ok(tensor)) => Ok((ix, tensor)),
                _ => Err(format_err!(
                    "initializer {:?} read twice",
                    self.jobs[ix].name
                )),
            })
            .collect()
    }
}

/// Puts each loaded weight in place of its source, and drops those sources from the inputs.
fn substitute<F, O>(
    model: &mut Graph<F, O>,
    jobs: &[External],
    loaded: Vec<(usize, Tensor)>,
    is_source: impl Fn(&Node<F, O>) -> bool,
) -> TractResult<()>
where
    F: Fact + Clone + 'static + From<TypedFact>,
    O: GraphOp,
{
    let mut replaced = HashSet::new();
    for (ix, tensor) in loaded {
        let name = &jobs[ix].name;
        let id = model.node_id_by_name(name)?;
        ensure!(
            is_source(model.node(id)),
            "initializer {name} did not become a source"
        );
        let node = model.node_mut(id);
        let value = tensor.into_arc_tensor();
        let fact = TypedFact::try_from(value.clone())?;
        node.op = Const::new(value)?.into();
        node.outputs[0].fact = fact.into();
        replaced.insert(id);
    }
    let inputs: Vec<OutletId> = model
        .input_outlets()?
        .iter()
        .filter(|o| !replaced.contains(&o.node))
        .copied()
        .collect();
    model.set_input_outlets(&inputs)?;
    Ok(())
}

/// Moves the external initializers out of `proto`'s graph and declares them as graph inputs.
/// Returns them, those needed to type the graph first, and how many those are.
///
/// They are declared after the file's own inputs and in name order: where tract's parser would have
/// placed their constants, so the graph's node order changes only relative to the in-file ones.
fn take_externals(proto: &mut pb::ModelProto, dir: &Path) -> TractResult<(Vec<External>, usize)> {
    let Some(graph) = proto.graph.as_mut() else {
        return Ok((vec![], 0));
    };
    let declared: HashSet<String> = graph.input.iter().map(|i| i.name.clone()).collect();
    let (mut taken, kept): (Vec<pb::TensorProto>, Vec<pb::TensorProto>) =
        std::mem::take(&mut graph.initializer)
            .into_iter()
            .partition(|t| is_plain_external(t) && !declared.contains(&t.name));
    graph.initializer = kept;
    taken.sort_by(|a, b| a.name.cmp(&b.name));
    let late = readable_late(graph);
    let mut eager = Vec::with_capacity(taken.len());
    let mut deferred = Vec::new();
    for t in &taken {
        let external = describe(t, dir).with_context(|| format!("initializer {:?}", t.name))?;
        graph.input.push(input_of(t));
        if late.contains(t.name.as_str()) {
            deferred.push(external);
        } else {
            eager.push(external);
        }
    }
    let needed_first = eager.len();
    eager.append(&mut deferred);
    Ok((eager, needed_first))
}

/// The names only ever read by ops in [`TYPED_WITHOUT_VALUES`]: they may be read after typing.
/// None if any node has a subgraph, whose reads this does not follow.
fn readable_late(graph: &pb::GraphProto) -> HashSet<String> {
    let mut late = HashSet::new();
    let mut other = HashSet::new();
    for node in &graph.node {
        if node
            .attribute
            .iter()
            .any(|a| a.g.is_some() || !a.graphs.is_empty())
        {
            return HashSet::new();
        }
        let set = if TYPED_WITHOUT_VALUES.contains(&node.op_type.as_str()) {
            &mut late
        } else {
            &mut other
        };
        set.extend(node.input.iter().cloned());
    }
    late.retain(|name| !other.contains(name));
    late
}

/// External, not also inline (tract reads `raw_data` first), and of a type read as raw bytes.
fn is_plain_external(t: &pb::TensorProto) -> bool {
    t.data_location == Some(DataLocation::External as i32)
        && t.raw_data.is_empty()
        && DataType::try_from(t.data_type)
            .ok()
            .and_then(|d| DatumType::try_from(d).ok())
            .is_some_and(|dt| {
                use DatumType::*;
                matches!(
                    dt,
                    U8 | U16 | U32 | U64 | I8 | I16 | I32 | I64 | F16 | F32 | F64
                )
            })
}

fn describe(t: &pb::TensorProto, dir: &Path) -> TractResult<External> {
    let dt = DatumType::try_from(DataType::try_from(t.data_type)?)?;
    let shape = t
        .dims
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| format_err!("negative dimension {d}")))
        .collect::<TractResult<Vec<usize>>>()?;
    let bytes = shape
        .iter()
        .try_fold(dt.size_of(), |acc, &d| acc.checked_mul(d))
        .filter(|&b| b <= isize::MAX as usize)
        .ok_or_else(|| format_err!("shape {shape:?} of {dt:?} is too large"))?;
    let key = |k: &str| {
        t.external_data
            .iter()
            .find(|e| e.key == k)
            .map(|e| e.value.as_str())
    };
    let location = key("location").context("no external data location")?;
    let offset: u64 = key("offset").map(str::parse).transpose()?.unwrap_or(0);
    if let Some(length) = key("length").map(str::parse::<usize>).transpose()? {
        ensure!(
            length == bytes,
            "external data length {length} but shape {shape:?} of {dt:?} is {bytes} bytes"
        );
    }
    let file = resolve_inside(dir, location)?;
    Ok(External {
        name: t.name.clone(),
        dt,
        shape,
        file,
        offset,
        bytes,
    })
}

/// The data file, which must be inside the model's directory (as tract-onnx requires).
fn resolve_inside(dir: &Path, location: &str) -> TractResult<PathBuf> {
    let relative = Path::new(location);
    if relative
        .components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        bail!(
            "external data location {location:?} is not a relative path inside the model directory"
        );
    }
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let dir = dir
        .canonicalize()
        .with_context(|| format!("canonicalizing {dir:?}"))?;
    let file = dir.join(relative);
    let file = file
        .canonicalize()
        .with_context(|| format!("canonicalizing {file:?}"))?;
    ensure!(
        file.starts_with(&dir),
        "external data {file:?} resolves outside the model directory {dir:?}"
    );
    Ok(file)
}

/// The graph input tract's parser turns into a source of the initializer's type and shape.
fn input_of(t: &pb::TensorProto) -> pb::ValueInfoProto {
    use pb::tensor_shape_proto::{dimension, Dimension};
    let dim = t
        .dims
        .iter()
        .map(|&d| Dimension {
            value: Some(dimension::Value::DimValue(d)),
            ..Default::default()
        })
        .collect();
    let tensor = pb::type_proto::Tensor {
        elem_type: t.data_type,
        shape: Some(pb::TensorShapeProto { dim }),
    };
    pb::ValueInfoProto {
        name: t.name.clone(),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(tensor)),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn open_files(externals: &[External]) -> TractResult<HashMap<PathBuf, (File, u64)>> {
    let mut files = HashMap::new();
    for e in externals {
        if !files.contains_key(&e.file) {
            let file = File::open(&e.file).with_context(|| format!("opening {:?}", e.file))?;
            let size = file.metadata()?.len();
            files.insert(e.file.clone(), (file, size));
        }
    }
    Ok(files)
}

fn read(e: &External, files: &HashMap<PathBuf, (File, u64)>) -> TractResult<Tensor> {
    let (file, size) = files.get(&e.file).context("data file not opened")?;
    ensure!(
        e.offset
            .checked_add(e.bytes as u64)
            .is_some_and(|end| end <= *size),
        "{} bytes at {} run past the end of {:?} ({size} bytes)",
        e.bytes,
        e.offset,
        e.file
    );
    // tract's own parser allocates the same way (`Tensor::from_raw_dt`): uninitialised, aligned
    // for its kernels.
    // SAFETY: `e.dt` is a plain number type (`is_plain_external`), with no drop and every bit
    // pattern valid, and the tensor is `e.bytes` long (the same product of its shape, `describe`):
    // `read_exact_at` below writes every byte of it, or fails and the tensor is dropped unread.
    let mut tensor = unsafe { Tensor::uninitialized_aligned_dt(e.dt, &e.shape, vector_size())? };
    if e.bytes > 0 {
        file.read_exact_at(tensor.as_bytes_mut(), e.offset)
            .with_context(|| {
                format!("reading {} bytes at {} of {:?}", e.bytes, e.offset, e.file)
            })?;
    }
    Ok(tensor)
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;
    use tract_onnx::pb::StringStringEntryProto;

    /// A directory of its own per test, under the process id.
    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir()
            .join(format!("edgescribe-onnx-parse-{}", std::process::id()))
            .join(name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn f32_tensor(name: &str, dims: &[i64], values: &[f32]) -> pb::TensorProto {
        pb::TensorProto {
            name: name.into(),
            dims: dims.to_vec(),
            data_type: DataType::Float as i32,
            raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ..Default::default()
        }
    }

    /// Moves `t`'s bytes to the end of `data`, 64-byte aligned, and points `t` at them.
    fn externalise(t: &mut pb::TensorProto, data: &mut Vec<u8>, location: &str) {
        let entry = |key: &str, value: String| StringStringEntryProto {
            key: key.into(),
            value,
        };
        data.resize(data.len().next_multiple_of(64), 0);
        t.external_data = vec![
            entry("location", location.into()),
            entry("offset", data.len().to_string()),
            entry("length", t.raw_data.len().to_string()),
        ];
        t.data_location = Some(DataLocation::External as i32);
        data.append(&mut t.raw_data);
    }

    /// `y = (x · W1 + b) · W2 + c`, with `W1`, `W2` and `b` external and `c` (a scalar) inline.
    fn write_model(dir: &Path, edit: impl FnOnce(&mut pb::GraphProto)) -> PathBuf {
        let ramp = |n: usize, k: f32| (0..n).map(|i| (i as f32 * k).sin()).collect::<Vec<_>>();
        let mut initializer = vec![
            f32_tensor("w1", &[4, 8], &ramp(32, 0.37)),
            f32_tensor("b", &[8], &ramp(8, 1.3)),
            f32_tensor("w2", &[8, 3], &ramp(24, 0.71)),
            f32_tensor("c", &[], &[0.25]),
        ];
        let mut data = Vec::new();
        for t in &mut initializer[..3] {
            externalise(t, &mut data, "model.onnx.data");
        }
        let node = |op: &str, inputs: &[&str], output: &str| pb::NodeProto {
            op_type: op.into(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![output.into()],
            name: output.into(),
            ..Default::default()
        };
        let mut x = input_of(&f32_tensor("x", &[2, 4], &[0.0; 8]));
        x.name = "x".into();
        let mut graph = pb::GraphProto {
            node: vec![
                node("MatMul", &["x", "w1"], "h"),
                node("Add", &["h", "b"], "hb"),
                node("MatMul", &["hb", "w2"], "z"),
                node("Add", &["z", "c"], "y"),
            ],
            initializer,
            input: vec![x],
            output: vec![pb::ValueInfoProto {
                name: "y".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        edit(&mut graph);
        let proto = pb::ModelProto {
            ir_version: 8,
            opset_import: vec![pb::OperatorSetIdProto {
                domain: String::new(),
                version: 13,
            }],
            graph: Some(graph),
            ..Default::default()
        };
        std::fs::write(dir.join("model.onnx.data"), &data).unwrap();
        let path = dir.join("model.onnx");
        std::fs::write(&path, proto.encode_to_vec()).unwrap();
        path
    }

    fn run(model: InferenceModel) -> Vec<u32> {
        run_typed(model.into_typed().unwrap())
    }

    fn run_typed(model: TypedModel) -> Vec<u32> {
        let plan = model.into_optimized().unwrap().into_runnable().unwrap();
        let x = tract_ndarray::Array2::from_shape_fn((2, 4), |(i, j)| (i * 4 + j) as f32 - 3.5);
        let y = plan.run(tvec!(x.into_tensor().into())).unwrap();
        let y = y[0].to_plain_array_view::<f32>().unwrap();
        y.iter().map(|v| v.to_bits()).collect()
    }

    fn consts<F: Fact + Clone + 'static, O: GraphOp>(
        model: &Graph<F, O>,
    ) -> Vec<(String, Arc<Tensor>)> {
        let mut consts: Vec<_> = model
            .nodes()
            .iter()
            .filter_map(|n| Some((n.name.clone(), n.op_as::<Const>()?.val().clone())))
            .collect();
        consts.sort_by(|a, b| a.0.cmp(&b.0));
        consts
    }

    #[test]
    fn gives_tracts_constants_inputs_and_outputs_on_any_thread_count() {
        let path = write_model(&scratch("same"), |_| {});
        let onnx = tract_onnx::onnx();
        let stock = onnx.model_for_path(&path).unwrap();
        let want_inputs: Vec<String> = stock
            .inputs
            .iter()
            .map(|o| stock.node(o.node).name.clone())
            .collect();
        assert_eq!(want_inputs, ["x"]);
        let want_consts = consts(&stock);
        assert_eq!(want_consts.len(), 4, "w1, b, w2 and c");
        let want = run(stock);
        for threads in [1, 2, 5] {
            let ours = model_for_path(&onnx, &path, threads).unwrap();
            let inputs: Vec<String> = ours
                .inputs
                .iter()
                .map(|o| ours.node(o.node).name.clone())
                .collect();
            assert_eq!(inputs, want_inputs, "{threads} threads");
            assert_eq!(consts(&ours), want_consts, "{threads} threads");
            assert_eq!(run(ours), want, "{threads} threads");
        }
    }

    #[test]
    fn matmul_weights_are_read_while_the_graph_is_typed() {
        let path = write_model(&scratch("typed"), |_| {});
        let onnx = tract_onnx::onnx();
        let stock = onnx.model_for_path(&path).unwrap().into_typed().unwrap();
        let Parsed { model, weights } = parse(&onnx, &path, 2).unwrap();
        assert_eq!(weights.file_inputs(), 1);
        let pending: Vec<&str> = model.inputs[1..]
            .iter()
            .map(|o| model.node(o.node).name.as_str())
            .collect();
        assert_eq!(
            pending,
            ["w1", "w2"],
            "the matmuls' weights, still being read"
        );
        let mut typed = model.into_typed().unwrap();
        weights.finish_typed(&mut typed).unwrap();
        assert_eq!(typed.inputs.len(), 1);
        // tract names a constant it types `<name>.0`; a weight put in after typing keeps its own.
        let mut want = consts(&stock);
        for (name, _) in &mut want {
            if let Some(weight) = name.strip_suffix(".0").filter(|w| w.starts_with('w')) {
                *name = weight.to_string();
            }
        }
        assert_eq!(consts(&typed), want);
        assert_eq!(run_typed(typed), run_typed(stock));
    }

    #[test]
    fn a_matmul_weight_also_read_by_another_op_is_in_place_before_typing() {
        let path = write_model(&scratch("shared"), |graph| {
            let mut neg = graph.node[0].clone();
            neg.op_type = "Neg".into();
            neg.input = vec!["w2".into()];
            neg.output = vec!["w2_negated".into()];
            neg.name = "w2_negated".into();
            graph.node.push(neg);
        });
        let Parsed { model, weights } = parse(&tract_onnx::onnx(), &path, 2).unwrap();
        assert_eq!(weights.file_inputs(), 1);
        let pending: Vec<&str> = model.inputs[1..]
            .iter()
            .map(|o| model.node(o.node).name.as_str())
            .collect();
        assert_eq!(pending, ["w1"]);
    }

    #[test]
    fn an_initializer_also_declared_as_an_input_is_left_to_tract() {
        // Older exporters list initializers among the graph inputs: tract makes them constants.
        let path = write_model(&scratch("declared"), |graph| {
            let w2 = graph.initializer.iter().find(|t| t.name == "w2").unwrap();
            let mut declared = input_of(w2);
            declared.name = "w2".into();
            graph.input.push(declared);
        });
        let onnx = tract_onnx::onnx();
        let ours = model_for_path(&onnx, &path, 2).unwrap();
        assert_eq!(ours.inputs.len(), 1, "w2 is a constant, not an input");
        assert_eq!(consts(&ours), consts(&onnx.model_for_path(&path).unwrap()));
    }

    #[test]
    fn bad_external_data_is_an_error_naming_the_initializer() {
        let onnx = tract_onnx::onnx();
        type Edit = fn(&mut pb::TensorProto);
        let cases: [(&str, Edit); 3] = [
            ("past the end", |t| {
                t.external_data[1].value = "1000000".into();
            }),
            ("length", |t| {
                t.external_data[2].value = "12".into();
            }),
            ("inside the model directory", |t| {
                t.external_data[0].value = "../model.onnx.data".into();
            }),
        ];
        for (want, edit) in cases {
            let dir = scratch(&want.replace(' ', "-"));
            let path = write_model(&dir, |graph| {
                edit(
                    graph
                        .initializer
                        .iter_mut()
                        .find(|t| t.name == "w2")
                        .unwrap(),
                )
            });
            let err = format!("{:#}", model_for_path(&onnx, &path, 2).unwrap_err());
            assert!(
                err.contains("\"w2\"") && err.contains(want),
                "{want}: {err}"
            );
        }
        let dir = scratch("no-data-file");
        let path = write_model(&dir, |_| {});
        std::fs::remove_file(dir.join("model.onnx.data")).unwrap();
        assert!(model_for_path(&onnx, &path, 2).is_err());
    }
}
