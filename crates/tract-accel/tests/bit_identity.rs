//! Our passes over tract's int8 model (`src/optimize`: the split into segments before tract's
//! optimiser, the passes around its codegen) change speed, never results: each alone, and all
//! together, give encoder outputs bit-identical to stock tract *on this machine* (the reference is
//! recomputed here, never stored x86_64 floats, so this holds under QEMU on aarch64 too).

use std::path::{Path, PathBuf};

use tract_accel::optimize::{self, Passes};
use tract_accel::{Chain, LoadTimings};
use tract_linalg::multithread::{multithread_tract_scope, Executor};
use tract_onnx::prelude::*;

/// The repository's test fixtures (the tiny MMS-architecture export lives beside the daemon's tests).
fn repo_fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn tiny_model_dir() -> PathBuf {
    repo_fixtures().join("mms-tiny/int8")
}

/// The tiny export optimised with `passes`, as the recogniser loads it.
struct Tiny {
    chain: Chain,
    /// The recogniser's threads for the matrix products (`Engine` runs the chain the same way).
    executor: Executor,
    timings: LoadTimings,
    /// The adapter inputs' shapes, from the export's manifest.
    adapter_shapes: Vec<Vec<usize>>,
}

impl Tiny {
    fn load(passes: Passes, threads: usize) -> Tiny {
        let dir = tiny_model_dir();
        let manifest: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
        let adapter_shapes: Vec<Vec<usize>> = manifest["graph"]["adapter_inputs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                a["shape"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|d| d.as_u64().unwrap() as usize)
                    .collect()
            })
            .collect();
        let file = manifest["graph"]["file"].as_str().unwrap();
        let parsed = tract_accel::parse(&dir.join(file), threads).unwrap();
        // As the recogniser cuts an MMS encoder (`SEGMENT_MIN_NODES`).
        let (chain, timings) = parsed
            .optimise(&adapter_shapes, passes, threads, 64)
            .unwrap();
        let executor = if threads > 1 {
            Executor::multithread(threads)
        } else {
            Executor::SingleThread
        };
        Tiny {
            chain,
            executor,
            timings,
            adapter_shapes,
        }
    }

    fn op_count(&self, name: &str) -> usize {
        self.chain.op_count(name)
    }

    fn ops(&self) -> Vec<(String, String)> {
        self.chain.ops()
    }

    /// The encoder's output for `samples` with the adapter inputs drawn from `seed` (one "language").
    fn run(&self, samples: &[f32], seed: u64) -> Vec<u32> {
        let mut next = xorshift(seed);
        let mut inputs: TVec<TValue> = tvec![Tensor::from_shape(&[1, samples.len()], samples)
            .unwrap()
            .into()];
        for shape in &self.adapter_shapes {
            let len: usize = shape.iter().product();
            let values: Vec<f32> = (0..len).map(|_| (next() - 0.5) * 0.2).collect();
            inputs.push(Tensor::from_shape(shape, &values).unwrap().into());
        }
        let out = multithread_tract_scope(self.executor.clone(), || self.chain.run(inputs, None))
            .unwrap();
        bits(
            out.to_plain_array_view::<f32>()
                .unwrap()
                .as_slice()
                .unwrap(),
        )
    }
}

/// Uniform in [0, 1), deterministic per seed.
fn xorshift(seed: u64) -> impl FnMut() -> f32 {
    let mut x = seed | 1;
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x >> 40) as f32 / (1u64 << 24) as f32
    }
}

/// Speech-band test signals of lengths whose frame counts take both of tract's softmax paths
/// (frames % 4 == 0 and not), normalised as the recogniser normalises audio.
fn test_signals() -> Vec<(String, Vec<f32>)> {
    [8_000usize, 16_000, 20_800, 33_333]
        .iter()
        .enumerate()
        .map(|(i, &n)| {
            let mut noise = xorshift(0x5eed + i as u64);
            let raw: Vec<f32> = (0..n)
                .map(|t| {
                    let t = t as f32 / 16_000.0;
                    (t * 220.0 * (i + 1) as f32 * std::f32::consts::TAU).sin() * 0.3
                        + (t * 1_375.0 * std::f32::consts::TAU).sin() * 0.1
                        + (noise() - 0.5) * 0.05
                })
                .collect();
            let mean = raw.iter().sum::<f32>() / n as f32;
            let var = raw.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n as f32;
            let scale = 1.0 / (var + 1e-7).sqrt();
            (
                format!("{n} samples"),
                raw.iter().map(|v| (v - mean) * scale).collect(),
            )
        })
        .collect()
}

const SPLIT_ONLY: Passes = Passes {
    split_layers: true,
    fold_weight_sums: false,
    fast_dynamic_quantize: false,
    fast_pack: false,
    fuse_dequantize: false,
    ..Passes::NONE
};
const FOLD_ONLY: Passes = Passes {
    split_layers: false,
    fold_weight_sums: true,
    fast_dynamic_quantize: false,
    fast_pack: false,
    fuse_dequantize: false,
    ..Passes::NONE
};
const QUANTIZE_ONLY: Passes = Passes {
    split_layers: false,
    fold_weight_sums: false,
    fast_dynamic_quantize: true,
    fast_pack: false,
    fuse_dequantize: false,
    ..Passes::NONE
};
const PACK_ONLY: Passes = Passes {
    split_layers: false,
    fold_weight_sums: false,
    fast_dynamic_quantize: false,
    fast_pack: true,
    fuse_dequantize: false,
    ..Passes::NONE
};
const DEQUANTIZE_ONLY: Passes = Passes {
    split_layers: false,
    fold_weight_sums: false,
    fast_dynamic_quantize: false,
    fast_pack: false,
    fuse_dequantize: true,
    ..Passes::NONE
};
const BROADCAST_ONLY: Passes = Passes {
    fast_broadcast: true,
    ..Passes::NONE
};
const RMS_NORM_ONLY: Passes = Passes {
    fast_rms_norm: true,
    ..Passes::NONE
};
const LAYER_NORM_ONLY: Passes = Passes {
    fuse_layer_norm: true,
    ..Passes::NONE
};
const VNNI_ONLY: Passes = Passes {
    vnni_matmul: true,
    ..Passes::NONE
};
const NEON_ONLY: Passes = Passes {
    neon_matmul: true,
    ..Passes::NONE
};
const RANK_FIX_ONLY: Passes = Passes {
    fold_rank_fixes: true,
    ..Passes::NONE
};
const ATTENTION_ONLY: Passes = Passes {
    fuse_attention: true,
    ..Passes::NONE
};
const IM2COL_ONLY: Passes = Passes {
    fast_im2col: true,
    ..Passes::NONE
};
const SPLIT_CONV_ONLY: Passes = Passes {
    split_grouped_conv: true,
    ..Passes::NONE
};

/// Whether this CPU runs our VNNI kernel: then the pass must take every int8 projection. Detected
/// here, not asked of the library, so a detection bug there cannot make the expectation vanish.
/// On CPUs with AMX-INT8 (Intel Xeon since Sapphire Rapids) tract runs its AMX tile kernel instead,
/// whose weights are packed its own way (`PackedAmxA`), and the pass leaves it alone: one AMX
/// instruction multiplies whole tiles. tract's own probe says whether it does (it also needs the
/// kernel's permission to use the tile registers).
fn has_vnni() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use tract_linalg::isa::{native, Isa};
        std::is_x86_feature_detected!("avx512f")
            && std::is_x86_feature_detected!("avx512bw")
            && std::is_x86_feature_detected!("avx512vnni")
            && !native().has(Isa::X86_64AmxInt8)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether the NEON int8 pass must take every int8 projection here: ARM64 without the dot product
/// (QEMU's Cortex-A72), where tract packs for its `SMLAL` kernel. Detected here, as `has_vnni`.
fn has_neon_int8() -> bool {
    #[cfg(target_arch = "aarch64")]
    {
        !std::arch::is_aarch64_feature_detected!("dotprod")
    }
    #[cfg(not(target_arch = "aarch64"))]
    {
        false
    }
}

/// Whether this CPU runs our attention kernel: then the pass must take each layer's attention.
fn has_avx512f() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

fn bits(values: &[f32]) -> Vec<u32> {
    values.iter().map(|v| v.to_bits()).collect()
}

/// Every test signal with four adapter sets ("languages") through the tiny int8 fixture, with
/// `passes` and `threads`.
fn tiny_logits(passes: Passes, threads: usize) -> Vec<(String, Vec<u32>)> {
    let engine = Tiny::load(passes, threads);
    let segments = engine.timings.segments;
    if passes.split_layers {
        // Two encoder layers: the residual stream offers cuts between and within them.
        assert!(
            segments >= 3,
            "the tiny encoder was cut into {segments} segments"
        );
    } else {
        assert_eq!(segments, 1);
    }
    // The later segments' shapes in a frame symbol of their own, only when there are later segments.
    assert_eq!(engine.timings.frames_named, passes.split_layers);
    // Every int8 projection's weight (q, k, v, out, the feed-forward pair, in both layers, and the
    // feature projection) reaches its einsum through tract's unit axis, unless folded.
    let rank_fixes = engine.timings.rank_fixes_folded;
    if passes.fold_rank_fixes {
        assert!(rank_fixes >= 13, "{rank_fixes} weights' rank fixes folded");
    } else {
        assert_eq!(rank_fixes, 0);
    }
    let quantizers = engine.op_count("FastDynamicQuantizeLinearU8");
    assert!(
        passes.fast_dynamic_quantize == (quantizers > 0),
        "{quantizers} fast quantizers with {passes:?}"
    );
    // Each of the two encoder layers' self-attention, as one op.
    let attentions = engine.op_count("FusedAttention");
    let fused_attention = passes.fuse_attention && has_avx512f();
    assert_eq!(attentions, if fused_attention { 2 } else { 0 });
    if !passes.fast_pack {
        assert_eq!(engine.op_count("FastPackI8K4"), 0);
        assert_eq!(engine.op_count("FastPackF32"), 0);
    } else if !fused_attention {
        // Attention's f32 products pack their activations at run time.
        assert!(engine.op_count("FastPackF32") > 0);
    }
    // Every int8 matmul of the tiny model ends in the Cast → Mul tail, and the two residual
    // branches of each layer in an Add.
    let ops = engine.ops();
    let int8_matmuls = ops
        .iter()
        .filter(|(name, info)| name == "OptMatMul" && info.contains(",I32,"))
        .count()
        + engine.op_count("VnniMatMul")
        + engine.op_count("NeonMatMul");
    let dequantizers = engine.op_count("FastDequantize");
    // Split per group, the positional convolution's 4 matmuls meet in a Concat before one tail.
    let sharing_a_tail = if passes.split_grouped_conv { 4 - 1 } else { 0 };
    if passes.fuse_dequantize {
        assert!(int8_matmuls > 0);
        assert_eq!(
            dequantizers + sharing_a_tail,
            int8_matmuls,
            "int8 matmuls without a fused tail"
        );
        let with_add = ops
            .iter()
            .filter(|(name, info)| name == "FastDequantize" && info.ends_with("add"))
            .count();
        assert!(with_add >= 4, "{with_add} residual adds fused");
    } else {
        assert_eq!(dequantizers, 0);
    }
    // The tiny model keeps f32 Adds/Subs on tract's broadcasting path (the feature extractor's
    // conv bias and layer norm, each layer's adapter residual): threaded ones replace them.
    let broadcasts = engine.op_count("FastBroadcast");
    if passes.fast_broadcast {
        assert!(broadcasts >= 4, "{broadcasts} threaded broadcasts");
    } else {
        assert_eq!(broadcasts, 0);
    }
    // The feature extractor's layer norms normalise over channels, a non-last axis.
    let inner_norms = engine.op_count("FastRmsNormInner");
    assert!(
        passes.fast_rms_norm == (inner_norms > 0),
        "{inner_norms} inner-axis norms"
    );
    // Each encoder layer's layer norms (and the encoder's), over the last axis.
    let layer_norms = engine.op_count("FastLayerNorm");
    if passes.fuse_layer_norm {
        assert!(layer_norms >= 6, "{layer_norms} fused layer norms");
        assert_eq!(engine.op_count("OptSubByScalar"), 0, "{ops:#?}");
    } else {
        assert_eq!(layer_norms, 0);
    }
    // Every projection (q, k, v, out, both feed-forward, the adapters' if quantised) of the tiny
    // model's two layers; the convolutions stay tract's.
    let vnni = engine.op_count("VnniMatMul");
    if passes.vnni_matmul && has_vnni() {
        assert!(vnni >= 12, "{vnni} VNNI matmuls");
    } else {
        assert_eq!(vnni, 0);
    }
    // The same projections on ARM64 without the dot product (and none with it: tract's SDOT kernel),
    // and the convolutions' products: the feature extractor's but the first (one channel × kernel
    // 10: `k` below the kernel's 16-byte step), and the positional convolution's 4 groups once split
    // (grouped, it stays tract's).
    let neon = engine.op_count("NeonMatMul");
    let neon_convs = ops
        .iter()
        .filter(|(name, info)| name == "NeonMatMul" && info.contains("patches"))
        .count();
    if passes.neon_matmul && has_neon_int8() {
        assert!(
            neon - neon_convs >= 12,
            "{neon} NEON matmuls, {neon_convs} convolutions"
        );
        let positional = if passes.split_grouped_conv { 4 } else { 0 };
        assert_eq!(neon_convs, 7 - 1 + positional, "{ops:#?}");
    } else {
        assert_eq!(neon, 0);
    }
    // The positional convolution (4 groups of 8 channels in the tiny model) unfolds once per group
    // when split, once in all otherwise; the feature extractor's 7 convolutions once each.
    let (stock_im2cols, fast_im2cols) = (engine.op_count("Im2col"), engine.op_count("FastIm2col"));
    // Every one of them is 1-D and int8. With tract's VNNI kernels (PackedI8K4 activations) ours
    // takes them all; kernels that pack another format (AVX2, ARM64 without dot products) keep
    // tract's.
    if !passes.fast_im2col {
        assert_eq!(fast_im2cols, 0);
    } else if has_vnni() {
        assert_eq!(stock_im2cols, 0, "{ops:#?}");
    }
    let im2cols = stock_im2cols + fast_im2cols;
    let feature_convs = 7;
    if passes.split_grouped_conv {
        assert_eq!(im2cols, feature_convs + 4, "{ops:#?}");
    } else {
        assert_eq!(im2cols, feature_convs + 1, "{ops:#?}");
    }
    let mut all = Vec::new();
    for (name, samples) in test_signals() {
        for lang in 0..4u64 {
            all.push((
                format!("{name}/adapters {lang}"),
                engine.run(&samples, lang + 1),
            ));
        }
    }
    all
}

fn assert_same(label: &str, want: &[(String, Vec<u32>)], got: &[(String, Vec<u32>)]) {
    assert_eq!(want.len(), got.len());
    for ((name, w), (_, g)) in want.iter().zip(got) {
        let differing = w.iter().zip(g).filter(|(a, b)| a != b).count();
        assert!(
            w.len() == g.len() && differing == 0,
            "{label}: {name}: {differing} of {} logits differ from stock tract",
            w.len()
        );
    }
}

#[test]
fn tiny_int8_logits_are_bit_identical_with_each_pass_and_all() {
    for threads in [1, 2] {
        let stock = tiny_logits(Passes::NONE, threads);
        assert_same("split", &stock, &tiny_logits(SPLIT_ONLY, threads));
        assert_same("fold", &stock, &tiny_logits(FOLD_ONLY, threads));
        assert_same("quantize", &stock, &tiny_logits(QUANTIZE_ONLY, threads));
        assert_same("pack", &stock, &tiny_logits(PACK_ONLY, threads));
        assert_same("dequantize", &stock, &tiny_logits(DEQUANTIZE_ONLY, threads));
        assert_same("broadcast", &stock, &tiny_logits(BROADCAST_ONLY, threads));
        assert_same("rms norm", &stock, &tiny_logits(RMS_NORM_ONLY, threads));
        assert_same("layer norm", &stock, &tiny_logits(LAYER_NORM_ONLY, threads));
        assert_same("vnni", &stock, &tiny_logits(VNNI_ONLY, threads));
        assert_same("neon", &stock, &tiny_logits(NEON_ONLY, threads));
        assert_same("split conv", &stock, &tiny_logits(SPLIT_CONV_ONLY, threads));
        assert_same("rank fix", &stock, &tiny_logits(RANK_FIX_ONLY, threads));
        assert_same("attention", &stock, &tiny_logits(ATTENTION_ONLY, threads));
        assert_same("im2col", &stock, &tiny_logits(IM2COL_ONLY, threads));
        assert_same("all", &stock, &tiny_logits(Passes::ALL, threads));
    }
}

fn wide_matmul() -> PathBuf {
    fixtures().join("int8-wide-matmul/model.int8.onnx")
}

/// The wide fixture, typed and optimised by stock tract, with the activation's time axis symbolic.
fn wide_optimized() -> TypedModel {
    let onnx = tract_onnx::onnx().with_ignore_value_info(true);
    optimized(onnx.model_for_path(wide_matmul()).unwrap())
}

/// The wide fixture with `columns` output columns instead of 1408: the same graph, a patterned int8
/// weight and bias of the new width built here (a 4+ MiB weight would weigh as much in the repository).
fn wider_optimized(columns: usize) -> TypedModel {
    optimized(wider_model(columns))
}

fn wider_model(columns: usize) -> InferenceModel {
    let onnx = tract_onnx::onnx().with_ignore_value_info(true);
    let mut proto = onnx.proto_model_for_path(wide_matmul()).unwrap();
    let graph = proto.graph.as_mut().unwrap();
    for init in &mut graph.initializer {
        match init.name.as_str() {
            "w_quantized" => {
                init.dims = vec![768, columns as i64];
                init.raw_data = (0..768 * columns)
                    .map(|i| ((i * 37 + i / columns * 11) % 255) as u8 ^ 0x80)
                    .collect();
            }
            "b" => {
                init.dims = vec![columns as i64];
                init.raw_data = (0..columns)
                    .flat_map(|j| ((j % 97) as f32 * 0.01 - 0.3).to_le_bytes())
                    .collect();
            }
            _ => {}
        }
    }
    onnx.model_for_proto_model(&proto).unwrap()
}

fn optimized(model: InferenceModel) -> TypedModel {
    let mut model = decluttered(model);
    model.optimize().unwrap();
    model
}

fn decluttered(mut model: InferenceModel) -> TypedModel {
    let s = model.symbols.sym("S");
    model
        .set_input_fact(0, f32::fact([1.to_dim(), s.to_dim(), 768.to_dim()]).into())
        .unwrap();
    let mut model = model.into_typed().unwrap();
    model.declutter().unwrap();
    model
}

fn run(model: TypedModel, input: &Tensor) -> Vec<u32> {
    let plan = model.into_runnable().unwrap();
    let out = plan.run(tvec![input.clone().into()]).unwrap();
    bits(
        out[0]
            .try_as_plain_ram()
            .unwrap()
            .as_slice::<f32>()
            .unwrap(),
    )
}

fn activations(frames: usize) -> Tensor {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let values: Vec<f32> = (0..frames * 768)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.45) * 6.0
        })
        .collect();
    Tensor::from_shape(&[1, frames, 768], &values).unwrap()
}

fn assert_bits_eq(want: &[u32], got: &[u32], label: &str) {
    let differing = want.iter().zip(got).filter(|(a, b)| a != b).count();
    assert!(
        want.len() == got.len() && differing == 0,
        "{label}: {differing} of {} outputs differ from stock tract",
        want.len()
    );
}

fn count_ops(model: &TypedModel, name: &str) -> usize {
    model.nodes().iter().filter(|n| n.op.name() == name).count()
}

/// Where the fold matters: a weight whose i32 copy exceeds tract's constant-folding budget, as in every
/// feed-forward projection of MMS-300M and 1B. Stock tract keeps `Reduce<Sum>(Cast<i32>(W))` in the plan;
/// the pass turns it into a constant and the output does not change by one bit.
/// Every activation pack tract does in the int8 kernels' `PackedI8K4` layout is taken over (which
/// packs use it depends on the CPU's kernels: on x86_64 with AVX-512 VNNI and arm64 with dot product,
/// all the int8 ones; on a Cortex-A72 none, and then nothing is replaced).
#[test]
fn fast_pack_takes_over_every_i8k4_pack() {
    let stock = Tiny::load(Passes::NONE, 1);
    let eligible = stock
        .ops()
        .iter()
        .filter(|(name, info)| name == "OptMatMulPack" && info.contains("PackedI8K4"))
        .count();
    let packed = Tiny::load(PACK_ONLY, 1);
    assert_eq!(packed.op_count("FastPackI8K4"), eligible);
    eprintln!("{eligible} PackedI8K4 packs on this CPU");
}

/// Past 4 MiB of int8 weight (MMS-1B's feed-forward projections), stock tract packs the weight at
/// every run; the fold packs it once at load, with the same bytes.
#[test]
fn weight_packs_over_tracts_budget_are_folded_bit_identically() {
    let stock = wider_optimized(5600); // 768 × 5600 int8 = 4.1 MiB
    let mut folded = stock.clone();
    let applied = optimize::apply(&mut folded, FOLD_ONLY).unwrap();
    // Checked where it was measured; other CPUs' kernels may pack differently.
    if cfg!(target_arch = "x86_64") {
        assert_eq!(
            applied.folded_packs, 1,
            "stock tract no longer packs the weight in the plan: is the fold still needed?"
        );
    }
    for frames in [1, 49] {
        let input = activations(frames);
        assert_bits_eq(
            &run(stock.clone(), &input),
            &run(folded.clone(), &input),
            &format!("{frames} frames"),
        );
    }
}

#[test]
fn weight_sums_over_tracts_budget_are_folded_bit_identically() {
    let stock = wide_optimized();
    assert_eq!(
        count_ops(&stock, "Reduce<Sum>"),
        1,
        "stock tract no longer leaves the weight sum in the plan: is the pass still needed?"
    );
    let mut folded = stock.clone();
    let applied = optimize::apply(&mut folded, FOLD_ONLY).unwrap();
    assert_eq!(applied.folded_weight_sums, 1);
    assert_eq!(count_ops(&folded, "Reduce<Sum>"), 0);
    for frames in [1, 49, 250] {
        let input = activations(frames);
        assert_bits_eq(
            &run(stock.clone(), &input),
            &run(folded.clone(), &input),
            &format!("{frames} frames"),
        );
    }
}

/// Our folds inside tract's codegen, ahead of its constant propagation (`optimize::codegen`): they
/// catch the weight sum and, past the budget, the weight pack while tract's rounds are still running
/// (so `PropConst` never builds the weight's i32 copy), leave nothing for the later passes to fold,
/// and change no output bit against stock codegen, with the i32 copy under tract's 4 MiB budget (256
/// columns, which stock tract folds itself) and over it.
#[test]
fn codegen_folds_weight_sums_and_packs_before_tracts_constant_propagation() {
    for columns in [256, 1408, 5600] {
        let decluttered = decluttered(wider_model(columns));
        let mut stock = decluttered.clone();
        stock.optimize().unwrap();
        let mut early = decluttered;
        let folds = optimize::codegen(&mut early, true).unwrap();
        assert_eq!(folds.weight_sums, 1, "{columns} columns");
        if cfg!(target_arch = "x86_64") && columns == 5600 {
            assert_eq!(
                folds.packs, 1,
                "the 4.1 MiB weight's pack, over tract's budget"
            );
        }
        assert_eq!(count_ops(&early, "Reduce<Sum>"), 0);
        let mut after = early.clone();
        let left = optimize::apply(&mut after, FOLD_ONLY).unwrap();
        assert_eq!(
            (left.folded_weight_sums, left.folded_packs),
            (0, 0),
            "{columns} columns: folds left for after codegen"
        );
        for frames in [1, 49] {
            let input = activations(frames);
            assert_bits_eq(
                &run(stock.clone(), &input),
                &run(early.clone(), &input),
                &format!("{columns} columns, {frames} frames"),
            );
        }
    }
}

#[test]
fn every_dynamic_quantize_is_replaced_and_the_wide_output_is_unchanged() {
    let stock = wide_optimized();
    let mut fast = stock.clone();
    let applied = optimize::apply(&mut fast, Passes::ALL).unwrap();
    assert_eq!(applied.fast_dynamic_quantize, 1);
    assert_eq!(count_ops(&fast, "DynamicQuantizeLinearU8"), 0);
    assert_eq!(count_ops(&fast, "FastDynamicQuantizeLinearU8"), 1);
    // 250 frames x 768 is above tract's threading threshold: the multithreaded path runs.
    let executor = tract_linalg::multithread::Executor::multithread(2);
    for frames in [1, 49, 250] {
        let input = activations(frames);
        let want = run(stock.clone(), &input);
        let got = tract_linalg::multithread::multithread_tract_scope(executor.clone(), || {
            run(fast.clone(), &input)
        });
        assert_bits_eq(&want, &got, &format!("{frames} frames"));
    }
}

/// Each f32 Add/Sub the broadcast pass takes is replaced, not duplicated: when one replaced op
/// reads another (the conv bias Add feeds the layer norm's Sub), the original must not stay in the
/// plan to feed it.
#[test]
fn threaded_broadcasts_replace_the_ops_they_take() {
    let load = |passes| Tiny::load(passes, 1);
    let count = |engine: &Tiny| engine.op_count("Add") + engine.op_count("Sub");
    let stock = load(Passes::NONE);
    let threaded = load(BROADCAST_ONLY);
    let replaced = threaded.op_count("FastBroadcast");
    assert!(replaced >= 4, "{replaced} threaded broadcasts");
    assert_eq!(count(&threaded) + replaced, count(&stock));
}

/// The wide projection (768 → 1408 features: 22 whole groups of 64) and a wider one (5600: a
/// partial group), at row counts around the kernel's tiles, on one and two threads: our VNNI
/// kernel gives stock tract's bits.
#[test]
fn vnni_matmul_takes_the_projection_bit_identically() {
    for (label, stock) in [("1408", wide_optimized()), ("5600", wider_optimized(5600))] {
        let mut fast = stock.clone();
        let applied = optimize::apply(&mut fast, Passes::ALL).unwrap();
        if !has_vnni() {
            assert_eq!(applied.vnni_matmul, 0);
            continue;
        }
        assert_eq!(applied.vnni_matmul, 1, "{label}");
        assert_eq!(count_ops(&fast, "VnniMatMul"), 1);
        for threads in [1, 2] {
            let executor = tract_linalg::multithread::Executor::multithread(threads);
            for frames in [1, 7, 49, 250] {
                let input = activations(frames);
                let want = run(stock.clone(), &input);
                let got =
                    tract_linalg::multithread::multithread_tract_scope(executor.clone(), || {
                        run(fast.clone(), &input)
                    });
                assert_bits_eq(
                    &want,
                    &got,
                    &format!("{label}: {frames} frames, {threads} threads"),
                );
            }
        }
    }
}

/// On ARM64 without the dot product: the wide projection (768 → 1408 features, weights in −127..=127)
/// on our NEON kernel, at row counts around its tiles and tasks, on one and two threads, with stock
/// tract's bits; `wider_model`'s patterned weight holds −128 (which the kernel's 16-bit pairs cannot
/// hold), so it keeps tract's op, with the same bits.
#[test]
fn neon_matmul_takes_the_projection_bit_identically() {
    for (label, stock, taken) in [
        ("1408", wide_optimized(), true),
        // 256 columns: tract packs the weight at load (under its budget), so only the −128 refuses it.
        ("256 with −128", wider_optimized(256), false),
    ] {
        let mut fast = stock.clone();
        let applied = optimize::apply(&mut fast, NEON_ONLY).unwrap();
        let neon = has_neon_int8() && taken;
        assert_eq!(applied.neon_matmul, neon as usize, "{label}");
        assert_eq!(count_ops(&fast, "NeonMatMul"), neon as usize, "{label}");
        if !has_neon_int8() {
            continue;
        }
        for threads in [1, 2] {
            let executor = tract_linalg::multithread::Executor::multithread(threads);
            for frames in [1, 5, 33, 250] {
                let input = activations(frames);
                let want = run(stock.clone(), &input);
                let got =
                    tract_linalg::multithread::multithread_tract_scope(executor.clone(), || {
                        run(fast.clone(), &input)
                    });
                assert_bits_eq(
                    &want,
                    &got,
                    &format!("{label}: {frames} frames, {threads} threads"),
                );
            }
        }
    }
}
