//! The int8 projections (u8 activation × constant i8 weight) and the int8 convolutions' products
//! (tract's `Im2col` patches × constant i8 kernel) on our NEON kernel (`neon_kernel`) on ARM64
//! cores without the dot product (Raspberry Pi 4's Cortex-A72, Pi Zero 2's A53, Jetson Nano's
//! A57), in place of tract's `OptMatMul`, with tract's exact i32 output.
//!
//! Why: there tract's int8 kernel (`arm64simd_mmm_i32_8x8`) widens both operands to 16 bits and
//! multiplies with `SMLAL`/`SMLAL2`, 4 multiply-adds per instruction; onnxruntime's multiplies
//! 8-bit lanes (`SMULL`/`SMLAL2` into 16-bit pairs, `SADALP` into 32 bits): 16 per 3 instructions.
//! Measured in instructions counted under qemu-user as a Cortex-A72 (not times), 1 s of audio, 1
//! thread, per run (`docs/benchmarks.md`, 2026-12-02): MMS-300M 7.44 G → 5.15 G (onnxruntime: 6.52 G),
//! `smlal` + `smlal2` + `sshll` 5.59 G → 0.82 G (the convolutions, left on tract's kernel) beside our
//! 2.95 G of `smull` + `smlal2` + `sadalp`; the bundled model 83.0 M → 69.5 M.
//!
//! What is replaced, exactly: the products `vnni_matmul` describes (`Σ_k (x_u8 − 128) · w_i8 − v`,
//! matched by the same [`Int8Projection`]), when tract packed the weight for its non-dot-product
//! kernel (`PackedFormat` of i8: per panel of `r` features, for each `k`, `r` bytes) and the weight
//! holds no −128 (the kernel's 16-bit pairs cannot hold two products of −128 · −128; symmetric
//! int8 quantisation, onnxruntime's for weights, never produces one). The weight is repacked once
//! at load; the activation is offset and copied once per run (`neon_kernel::offset_activation`),
//! so the accumulators start at `−v` and the sums are tract's integers: bit-identical output
//! (`crates/tract-accel/tests/bit_identity.rs`, run under QEMU as a Cortex-A72).
//!
//! The convolutions (feature extractor, positional convolution once `split_group_conv` made it one
//! per group): tract lowers each to `Im2col` (patches packed for its kernel, i8 after its u8 → i8
//! offset) and an `OptMatMul` of the packed kernel by them, into an `NCHW` output (frames on the last
//! axis), with the bias and the zero points' terms fused after the product as i32 additions of
//! per-feature, per-frame or scalar values. We take the patches as tract packed them (its
//! `Im2col` stays, and so does its `QSumB`, which reads them too), copy them into the kernel's rows
//! once per run (`neon_kernel::unpack_activation`), start the accumulators at the per-feature and
//! scalar terms, add the per-frame ones after, and store feature-major: tract's integers again.
//! Left to tract: grouped convolutions (the positional one when not split), `k` below 16 (the first
//! feature-extractor convolution: one channel × kernel 10, which our 16-byte steps would pad by
//! 60%), and any fused op other than an i32 addition or subtraction.
//!
//! Anything else — f32 products, cores with the dot product (tract's `SDOT` kernel, `PackedI8K4`
//! weights), x86 — keeps tract's op.
//!
//! Upstream report: `docs/upstream/tract-arm64-i8-no-dotprod.md`. Delete this pass (and
//! `neon_kernel`) once a tract release's non-dot-product int8 kernel multiplies 8-bit lanes.

use std::sync::Arc;

use tract_linalg::mmm::{EagerPackedInput, MMMInputValue, PackedExoticFact, PackedMatrixStorage};
use tract_linalg::pack::PackedFormat;
use tract_linalg::BinOp;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::matmul::optimized::{MatMulOperand, OptMatMul, ProtoFusedSpec};

use super::neon_kernel::{self, Layout, Product, K_STEP, PANEL};
use super::vnni_matmul::{constant_weight, Int8Projection};
use super::{replace_nodes, AccelOp, Replacement};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NeonMatMul {
    /// The output's fact (tract's `c_fact`): one axis of rows, one of features, any other axis 1.
    c_fact: TypedFact,
    /// The output's features axis and rows axis (`layout` says which is last).
    m_axis: usize,
    row_axis: usize,
    m: usize,
    k: usize,
    /// The weight in the kernel's panels (`neon_kernel::pack_weight_from_panels`), packed once at load.
    weight: Arc<Vec<i8>>,
    /// What the first input is.
    activation: Activation,
    layout: Layout,
    /// The i32 terms tract fused into its product, one input each after the activation, in order.
    terms: Vec<Term>,
}

/// The op's first input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Activation {
    /// A projection's u8 activation, rows × `k`, before tract's `OffsetU8asI8` and pack.
    OffsetU8,
    /// A convolution's i8 patches, as tract's `Im2col` packed them (`PackedFormat`, one group).
    PackedI8,
}

/// A term added to (or, `negate`, subtracted from) every output, of one value per feature, per row
/// (frame), or one for all. i32 sums wrap, so adding them before, during or after the products
/// gives tract's bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Term {
    PerFeature { negate: bool },
    PerRow { negate: bool },
    Scalar { negate: bool },
}

super::tract_op!(NeonMatMul);

impl AccelOp for NeonMatMul {
    fn describe(&self) -> Vec<String> {
        let x = match self.activation {
            Activation::OffsetU8 => "u8",
            Activation::PackedI8 => "packed i8 patches",
        };
        vec![format!(
            "{x} × i8, m: {} k: {}, {:?}, terms {:?}",
            self.m, self.k, self.layout, self.terms
        )]
    }

    fn run(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        ensure!(inputs.len() == 1 + self.terms.len(), "NeonMatMul inputs");
        let (xs, rows) = match self.activation {
            Activation::OffsetU8 => {
                let x = inputs[0].try_as_plain_ram()?;
                let x = x.as_slice::<u8>()?;
                ensure!(
                    x.len() % self.k == 0,
                    "activation of {} bytes, k = {}",
                    x.len(),
                    self.k
                );
                let rows = x.len() / self.k;
                (neon_kernel::offset_activation(x, rows, self.k), rows)
            }
            Activation::PackedI8 => self.unpacked_patches(&inputs[0])?,
        };
        // The per-feature and scalar terms start the accumulators; the per-row ones are added after.
        let mut start = vec![0i32; self.m.div_ceil(PANEL) * PANEL];
        let mut per_row: Vec<(&[i32], bool)> = Vec::new();
        let values: Vec<_> = inputs[1..]
            .iter()
            .map(|v| v.try_as_plain_ram())
            .collect::<TractResult<_>>()?;
        for (term, value) in self.terms.iter().zip(&values) {
            let v = value.as_slice::<i32>()?;
            let sign = |negate: bool, v: i32| if negate { v.wrapping_neg() } else { v };
            match *term {
                Term::PerFeature { negate } => {
                    ensure!(v.len() == self.m, "per-feature term of {} values", v.len());
                    start
                        .iter_mut()
                        .zip(v)
                        .for_each(|(s, &v)| *s = s.wrapping_add(sign(negate, v)));
                }
                Term::Scalar { negate } => {
                    ensure!(v.len() == 1, "scalar term of {} values", v.len());
                    let v = sign(negate, v[0]);
                    start.iter_mut().for_each(|s| *s = s.wrapping_add(v));
                }
                Term::PerRow { negate } => {
                    ensure!(v.len() == rows, "per-row term of {} values", v.len());
                    per_row.push((v, negate));
                }
            }
        }
        let mut shape: TVec<usize> = tvec![1; self.c_fact.rank()];
        shape[self.m_axis] = self.m;
        shape[self.row_axis] = rows;
        // SAFETY: i32 has no drop and every bit pattern is valid; `multiply` writes every element
        // (`rows × m`: each row, each feature below `m`) or fails, and `c` is dropped unread.
        let mut c = unsafe { Tensor::uninitialized::<i32>(&shape)? };
        let product = Product {
            x: &xs,
            rows,
            kp: neon_kernel::padded_k(self.k),
            w: &self.weight,
            m: self.m,
            start: &start,
            layout: self.layout,
        };
        {
            let mut view = c.try_as_plain_ram_mut()?;
            let out = view.as_slice_mut::<i32>()?;
            neon_kernel::multiply(&product, out).map_err(|e| format_err!("NeonMatMul: {e}"))?;
            for (v, negate) in per_row {
                add_per_row(out, self.m, v, negate, self.layout);
            }
        }
        Ok(tvec!(c.into_tvalue()))
    }

    fn facts(&self, _inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        Ok(tvec!(self.c_fact.clone()))
    }
}
impl NeonMatMul {
    /// The convolution's patches in the kernel's rows, and how many rows: one group's
    /// `PackedFormat` i8 blob (`Activation::PackedI8`).
    fn unpacked_patches(&self, input: &TValue) -> TractResult<(Vec<i8>, usize)> {
        let storage = input.try_storage_as::<PackedMatrixStorage>()?;
        let [value] = storage.values() else {
            bail!(
                "NeonMatMul: {} packed patch matrices",
                storage.values().len()
            );
        };
        let patches = value
            .downcast_ref::<EagerPackedInput>()
            .context("NeonMatMul: patches not packed ahead")?;
        let format = patches
            .fact
            .format
            .downcast_ref::<PackedFormat>()
            .context("NeonMatMul: patches not in PackedFormat")?;
        ensure!(
            format.dt.size_of() == 1 && patches.fact.k == self.k,
            "NeonMatMul: patches of {:?}, k = {}",
            format.dt,
            patches.fact.k
        );
        let rows = patches.mn;
        let xs = neon_kernel::unpack_activation(
            patches.packed.as_bytes(),
            format.r,
            patches.panel_bytes,
            rows,
            self.k,
        )
        .context("NeonMatMul: patch blob shorter than its panels")?;
        Ok((xs, rows))
    }
}

/// Adds (or, `negate`, subtracts) `v[row]` to the `m` features of each row of the output `c`
/// (`v.len()` rows × `m`, in `layout`).
fn add_per_row(c: &mut [i32], m: usize, v: &[i32], negate: bool, layout: Layout) {
    let sign = |v: i32| if negate { v.wrapping_neg() } else { v };
    if m == 0 || v.is_empty() {
        return;
    }
    match layout {
        Layout::RowMajor => {
            for (row, &v) in c.chunks_exact_mut(m).zip(v) {
                let v = sign(v);
                row.iter_mut().for_each(|c| *c = c.wrapping_add(v));
            }
        }
        Layout::FeatureMajor => {
            for feature in c.chunks_exact_mut(v.len()) {
                feature
                    .iter_mut()
                    .zip(v)
                    .for_each(|(c, &v)| *c = c.wrapping_add(sign(v)));
            }
        }
    }
}

/// Replaces every `OptMatMul` of the shapes described in the module doc, on ARM64 without the dot
/// product. Returns how many.
pub fn replace_matmuls(model: &mut TypedModel) -> TractResult<usize> {
    if !neon_kernel::supported() {
        return Ok(0);
    }
    replace_nodes(
        model,
        "NEON int8 matmuls",
        |model, node| match projection(model, node)? {
            Some(replacement) => Ok(Some(replacement)),
            None => patch_product(model, node),
        },
    )
}

/// A projection's op in place of `node`, reading the u8 activation, then the per-feature term if any.
fn projection(model: &TypedModel, node: &TypedNode) -> TractResult<Option<Replacement>> {
    let Some(Int8Projection {
        c_fact,
        m,
        k,
        weight,
        inputs,
        subtract,
    }) = Int8Projection::of(model, node)?
    else {
        return Ok(None);
    };
    let Some(weight) = repacked_weight(weight, m, k) else {
        return Ok(None);
    };
    let rank = c_fact.rank();
    let op = NeonMatMul {
        c_fact: c_fact.clone(),
        m_axis: rank - 1,
        row_axis: rank - 2,
        m,
        k,
        weight: Arc::new(weight),
        activation: Activation::OffsetU8,
        layout: Layout::RowMajor,
        terms: if subtract {
            vec![Term::PerFeature { negate: true }]
        } else {
            vec![]
        },
    };
    Ok(Some(Replacement::new(node, op, &inputs)))
}

/// A convolution's op in place of `node`: an `OptMatMul` of a constant i8 weight (features) by
/// one group of i8 patches packed in `PackedFormat` (rows: tract's `Im2col` output), into an i32
/// output with one features axis, one rows axis, any other axis 1, and after the product only
/// i32 additions or subtractions of per-feature, per-row or scalar values (the bias and the zero
/// points' terms). `k` below one step (the first feature-extractor convolution: one channel, kernel
/// 10) stays on tract's kernel, which does not pad it to 16.
fn patch_product(model: &TypedModel, node: &TypedNode) -> TractResult<Option<Replacement>> {
    let Some(mm) = node.op_as::<OptMatMul>() else {
        return Ok(None);
    };
    let c = &mm.c_fact;
    let (Some(m_axis), Some(row_axis)) = (mm.c_m_axis, mm.c_n_axis) else {
        return Ok(None);
    };
    let others_one = (0..c.rank())
        .filter(|&a| a != m_axis && a != row_axis)
        .all(|a| c.shape[a].is_one());
    if c.datum_type != i32::datum_type()
        || m_axis == row_axis
        || m_axis.max(row_axis) >= c.rank()
        || !others_one
    {
        return Ok(None);
    }
    let Ok(m) = c.shape[m_axis].to_usize() else {
        return Ok(None);
    };
    let [ProtoFusedSpec::AddMatMul { a, b, .. }, fused @ .., ProtoFusedSpec::Store(stores)] =
        mm.micro_ops.as_slice()
    else {
        return Ok(None);
    };
    let Some(weight) = constant_weight(model, node, a)? else {
        return Ok(None);
    };
    let k = weight.k();
    if stores.len() != 1 || weight.mn != m || k < K_STEP {
        return Ok(None);
    }
    let MatMulOperand::Input(b) = b else {
        return Ok(None);
    };
    let patches = node.inputs[*b];
    let fact = model.outlet_fact(patches)?;
    let packed_i8 = fact
        .exotic_fact
        .as_ref()
        .and_then(|f| f.downcast_ref::<PackedExoticFact>())
        .is_some_and(|p| {
            p.k == k
                && p.format
                    .downcast_ref::<PackedFormat>()
                    .is_some_and(|f| f.dt.unquantized() == i8::datum_type())
        });
    if !packed_i8 || !fact.shape.volume().is_one() {
        return Ok(None);
    }
    let mut inputs = tvec![patches];
    let mut terms = Vec::with_capacity(fused.len());
    for spec in fused {
        let (ix, op, len) = match spec {
            ProtoFusedSpec::BinPerRow(ix, op, _) => (*ix, *op, m.to_dim()),
            ProtoFusedSpec::BinPerCol(ix, op, _) => (*ix, *op, c.shape[row_axis].clone()),
            ProtoFusedSpec::BinScalar(ix, op) => (*ix, *op, 1.to_dim()),
            _ => return Ok(None),
        };
        // tract applies `op(value, acc)`: `Add` is acc + value, `SubF` acc − value.
        let negate = match op {
            BinOp::Add => false,
            BinOp::SubF => true,
            _ => return Ok(None),
        };
        let outlet = node.inputs[ix];
        let value = model.outlet_fact(outlet)?;
        if value.datum_type != i32::datum_type() || value.shape.volume() != len {
            return Ok(None);
        }
        terms.push(match spec {
            ProtoFusedSpec::BinPerRow(..) => Term::PerFeature { negate },
            ProtoFusedSpec::BinPerCol(..) => Term::PerRow { negate },
            _ => Term::Scalar { negate },
        });
        inputs.push(outlet);
    }
    let Some(weight) = repacked_weight(weight, m, k) else {
        return Ok(None);
    };
    let op = NeonMatMul {
        c_fact: c.clone(),
        m_axis,
        row_axis,
        m,
        k,
        weight: Arc::new(weight),
        activation: Activation::PackedI8,
        layout: if m_axis < row_axis {
            Layout::FeatureMajor
        } else {
            Layout::RowMajor
        },
        terms,
    };
    Ok(Some(Replacement::new(node, op, &inputs)))
}

/// tract's `PackedFormat` i8 weight (`m × k`) in the kernel's panels, or `None` for another format,
/// a blob shorter than its panels, or a weight holding a −128.
fn repacked_weight(weight: &EagerPackedInput, m: usize, k: usize) -> Option<Vec<i8>> {
    let format = weight.fact.format.downcast_ref::<PackedFormat>()?;
    let r = format.r;
    let panel_bytes = weight.panel_bytes;
    let fits = r > 0
        && format.dt.unquantized() == i8::datum_type()
        && k.checked_mul(r).is_some_and(|n| panel_bytes >= n)
        && m.div_ceil(r)
            .checked_mul(panel_bytes)
            .is_some_and(|n| weight.packed.len() >= n);
    if !fits {
        return None;
    }
    neon_kernel::pack_weight_from_panels(weight.packed.as_bytes(), r, panel_bytes, m, k)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tract_linalg::mmm::MMMInputFormat;

    /// tract's own packing of a weight, unpacked into the kernel's panels: the same `w[j][k]`.
    #[test]
    fn repacks_tracts_non_dot_product_format() {
        let (m, k) = (13usize, 21usize);
        let mut rng = crate::optimize::test_rng(11);
        let w: Vec<i8> = (0..m * k)
            .map(|_| ((rng() % 255) as i16 - 127) as i8)
            .collect();
        // ONNX stores the weight `[k, m]`, as tract packs it.
        let t = Tensor::from_shape(&[k, m], &transpose(&w, m, k)).unwrap();
        for r in [8, 64] {
            let format = PackedFormat::new(DatumType::I8, r, 16);
            let value = format.prepare_one(&t, 0, 1).unwrap();
            let eager = value.downcast_ref::<EagerPackedInput>().unwrap();
            let got = repacked_weight(eager, m, k).unwrap();
            assert_eq!(
                got,
                neon_kernel::pack_weight(m, k, |j, kk| w[j * k + kk]).unwrap()
            );
        }
        let mut with_min = w.clone();
        with_min[5 * k + 20] = i8::MIN;
        let t = Tensor::from_shape(&[k, m], &transpose(&with_min, m, k)).unwrap();
        let value = PackedFormat::new(DatumType::I8, 8, 16)
            .prepare_one(&t, 0, 1)
            .unwrap();
        let eager = value.downcast_ref::<EagerPackedInput>().unwrap();
        assert!(repacked_weight(eager, m, k).is_none());
    }

    /// Convolutions of one group, as tract unfolds them (`Im2col`, then its matmul with the bias
    /// and the zero points' terms fused): the positional convolution's kind (stride 1, padded), the
    /// feature extractor's (kernel 3 and 2, stride 2), a single frame. Where tract packs the patches
    /// for its non-dot-product kernel (ARM64 without the dot product, x86 without VNNI) the product
    /// is ours, with tract's bits (the portable twin off ARM64); on the ARM64 cores the pass serves it
    /// must be taken. `k` below a step, or a −128 in the weight, keeps tract's op everywhere.
    #[test]
    fn takes_convolution_products_bit_identically() -> TractResult<()> {
        use crate::optimize::{test_int8_conv, test_rng};
        for (channels, kernel, stride, pad, frames, min_weight, taken) in [
            (8, 16, 1, 8, 37, false, true),
            (16, 3, 2, 0, 41, false, true),
            (32, 2, 2, 0, 40, false, true),
            (6, 4, 1, 2, 1, false, true),
            (1, 10, 5, 0, 103, false, false),
            (8, 16, 1, 8, 37, true, false),
        ] {
            let label = format!("{channels} channels, kernel {kernel} stride {stride} pad {pad}, {frames} frames, −128 {min_weight}");
            let mut rng = test_rng((channels * 7 + kernel * 3 + frames) as u64);
            let mut first = min_weight;
            let stock = test_int8_conv(channels, 1, kernel, stride, pad, frames, || {
                if std::mem::take(&mut first) {
                    i8::MIN
                } else {
                    ((rng() % 255) as i16 - 127) as i8
                }
            })?
            .into_optimized()?;
            let mut fast = stock.clone();
            let replaced = replace_nodes(&mut fast, "test", patch_product)?;
            if !taken {
                assert_eq!(replaced, 0, "{label}");
                continue;
            }
            if neon_kernel::supported() {
                assert_eq!(replaced, 1, "{label}");
            }
            if replaced == 0 {
                // tract packs the patches for a dot-product kernel here (`PackedI8K4`).
                continue;
            }
            let x: Vec<u8> = (0..channels * frames).map(|_| rng() as u8).collect();
            let x = Tensor::from_shape(&[1, channels, frames], &x)?;
            for threads in [1, 2] {
                let executor = tract_linalg::multithread::Executor::multithread(threads);
                let (want, got) =
                    tract_linalg::multithread::multithread_tract_scope(executor, || {
                        let run = |model: &TypedModel| {
                            model
                                .clone()
                                .into_runnable()?
                                .run(tvec![x.clone().into_tvalue()])
                        };
                        (run(&stock), run(&fast))
                    });
                let (want, got) = (want?, got?);
                assert_eq!(want[0], got[0], "{label}, {threads} threads");
            }
        }
        Ok(())
    }

    /// `w` (`m × k`, row-major) as `k × m`.
    fn transpose(w: &[i8], m: usize, k: usize) -> Vec<i8> {
        (0..k * m).map(|i| w[(i % m) * k + i / m]).collect()
    }
}
