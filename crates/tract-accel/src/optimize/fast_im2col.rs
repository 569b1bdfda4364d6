//! tract's `Im2col` for 1-D int8 convolutions, threaded over panels and four bytes at a time where
//! the taps allow, with tract's exact output.
//!
//! Why: after the other passes, unfolding the convolutions' patches was ~90 ms of a 1.0 s MMS-1B run
//! (5 s of audio, Zen 4, 2 threads), all on one thread: the positional convolution's 16 groups (kernel
//! 128, 2.5 MB of patches each) 53 ms, the feature extractor's seven 37 ms. tract writes the patches
//! k-outer, one value at a time through its packing writer (stride-2 convolutions), or one run of
//! frames at a time (stride 1), scattering into the kernel's `PackedI8K4` panels either way. Here each
//! task fills whole panels in their own order, so writes are sequential; with stride 1 and whole groups
//! of four taps in a kernel, the four `k` of a lane are four adjacent input bytes, one 32-bit load.
//!
//! Exactly tract's bytes: the same `PackedI8K4 { r }` layout (`out[(k/4)·r·4 + m·4 + k%4]` per panel
//! of `r` frames, `k = channel · kernel + tap`), the same zero-filled padding lanes, the same pad value
//! (the op's second input, else zero), the same batched storage. Unit tests compare the bytes with
//! tract's op across strides, kernels, padding and groups; `crates/tract-accel/tests/bit_identity.rs`
//! the logits.
//! Left to tract: anything but one spatial axis, `NCHW`/`CHW` data, explicit or no padding, one-byte
//! values, `PackedI8K4` output (tract's VNNI and ARM64 dot-product kernels; its AVX2 and ARM64 SMLAL
//! kernels, a Pi 4's, pack `PackedFormat`), batch 1.
//!
//! Upstream report: `docs/upstream/tract-im2col-1d-int8.md`. Delete this pass once a tract release
//! unfolds these patches on all threads, panel by panel.

use tract_linalg::mmm::{EagerPackedInput, MMMInputValue, PackedExoticFact, PackedMatrixStorage};
use tract_linalg::pack::PackedI8K4;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::cnn::conv::Im2Col;
use tract_onnx::tract_core::ops::cnn::PaddingSpec;
use tract_onnx::tract_core::ops::nn::DataFormat;

use super::tasks::{run_tasks, SharedOut};
use super::{replace_nodes, AccelOp, Replacement};

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FastIm2col {
    format: PackedI8K4,
    group: usize,
    channels_per_group: usize,
    kernel: usize,
    stride: usize,
    dilation: usize,
    pad_before: usize,
    pad_after: usize,
    /// Whether the input has a batch axis (`NCHW`; else `CHW`).
    has_n: bool,
    /// tract's output fact, kept as it is.
    output: TypedFact,
}

super::tract_op!(FastIm2col);

impl AccelOp for FastIm2col {
    fn describe(&self) -> Vec<String> {
        vec![format!(
            "groups {} × {} channels, kernel {} stride {} dilation {}, pad {}+{}, {}",
            self.group,
            self.channels_per_group,
            self.kernel,
            self.stride,
            self.dilation,
            self.pad_before,
            self.pad_after,
            self.format
        )]
    }

    fn run(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let x = &inputs[0];
        let dt = x.datum_type();
        ensure!(dt.size_of() == 1, "FastIm2col on {dt:?}");
        let shape = x.shape();
        ensure!(
            shape.len() == 2 + self.has_n as usize && (!self.has_n || shape[0] == 1),
            "FastIm2col: input of shape {shape:?}"
        );
        let (channels, width) = (shape[shape.len() - 2], shape[shape.len() - 1]);
        ensure!(
            channels == self.group * self.channels_per_group,
            "FastIm2col: {channels} channels"
        );
        // tract reads the pad value's first byte whatever its type (the int8 convolution's is the
        // activation's zero point as an i32, its low byte in memory on both our architectures).
        let pad = match inputs.get(1) {
            Some(pad) => *pad
                .try_as_plain_ram()?
                .as_bytes()
                .first()
                .context("FastIm2col: empty pad value")?,
            None => 0,
        };
        let x = x.try_as_plain_ram()?;
        let patches = Patches {
            op: self,
            x: x.as_bytes(),
            width,
            frames: self.frames(width),
            pad,
            k_offsets: (0..self.k())
                .map(|k| (k / self.kernel) * width + (k % self.kernel) * self.dilation)
                .collect(),
        };
        let panel_bytes = self.format.single_panel_len(self.k());
        let panels = patches.frames.div_ceil(self.format.r);
        let mut values: TVec<Box<dyn MMMInputValue>> = TVec::with_capacity(self.group);
        for group in 0..self.group {
            // SAFETY: the alignment is tract's (a power of two, 16); every byte is written by its
            // panel's task (`Patches::panel`) before the blob is read.
            let mut blob = unsafe {
                Blob::new_for_size_and_align(panels * panel_bytes, self.format.alignment())
            };
            let shared = SharedOut::new(blob.as_bytes_mut());
            run_tasks(panels, |panel| {
                // SAFETY: `panel < panels`, so the `panel_bytes` bytes at `panel · panel_bytes` are
                // inside the blob (`panels × panel_bytes` bytes, borrowed by `shared` until
                // `run_tasks` returns), and no other task's panel overlaps them.
                let bytes = unsafe {
                    std::slice::from_raw_parts_mut(
                        shared.get().add(panel * panel_bytes),
                        panel_bytes,
                    )
                };
                patches.panel(group, panel, bytes);
            });
            values.push(Box::new(EagerPackedInput {
                fact: PackedExoticFact {
                    format: Box::new(self.format.clone()),
                    k: self.k(),
                    mn: patches.frames.to_dim(),
                },
                packed: Arc::new(blob),
                panel_bytes: if patches.frames > 0 { panel_bytes } else { 0 },
                mn: patches.frames,
            }));
        }
        let output = PackedMatrixStorage::new_batched(&[1, self.group], values).into_tensor(dt);
        Ok(tvec!(output.into_tvalue()))
    }

    fn facts(&self, _inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        Ok(tvec!(self.output.clone()))
    }
}

impl FastIm2col {
    /// Rows of the unfolded matrix: each group's channels × taps.
    fn k(&self) -> usize {
        self.channels_per_group * self.kernel
    }

    /// Output frames for an input of `width` (floor division, as explicit padding has it).
    fn frames(&self, width: usize) -> usize {
        let padded = width + self.pad_before + self.pad_after;
        let span = self.dilation * (self.kernel - 1) + 1;
        if padded < span {
            0
        } else {
            (padded - span) / self.stride + 1
        }
    }
}

/// One evaluation's patches.
struct Patches<'a> {
    op: &'a FastIm2col,
    x: &'a [u8],
    width: usize,
    frames: usize,
    pad: u8,
    /// Per `k`, its channel's start in the group plus its tap's offset: where frame 0 reads, before
    /// the padding is taken off.
    k_offsets: Vec<usize>,
}

impl Patches<'_> {
    /// Input position of frame `t`'s tap `tap`, if inside the input.
    fn position(&self, t: usize, tap: usize) -> Option<usize> {
        (t * self.op.stride + tap * self.op.dilation)
            .checked_sub(self.op.pad_before)
            .filter(|&p| p < self.width)
    }

    /// Writes every byte of panel `panel` of group `group`: for each four `k`, the panel's frames;
    /// zeros in the lanes past the last frame or the last `k`, as tract's zero-filled buffer has.
    fn panel(&self, group: usize, panel: usize, out: &mut [u8]) {
        let op = self.op;
        let r = op.format.r;
        let first = panel * r;
        let frames = (self.frames - first).min(r);
        if frames < r || !op.k().is_multiple_of(4) {
            out.fill(0);
        }
        let channel0 = group * op.channels_per_group;
        // Four taps of one channel, adjacent in the input: one 32-bit copy per lane.
        let quads = op.stride == 1 && op.dilation == 1 && op.kernel.is_multiple_of(4);
        // Every tap of every frame of the panel inside the input (no padding to write): plain reads.
        let last_tap = (op.kernel - 1) * op.dilation;
        let interior = first * op.stride >= op.pad_before
            && (first + frames - 1) * op.stride + last_tap < self.width + op.pad_before;
        if interior && !quads {
            let x = &self.x[channel0 * self.width..][..op.channels_per_group * self.width];
            let base = first * op.stride - op.pad_before;
            for (step, chunk) in out.chunks_exact_mut(r * 4).enumerate() {
                let k0 = step * 4;
                let Some(offsets) = self.k_offsets.get(k0..(k0 + 4).min(op.k())) else {
                    break;
                };
                for (lane, dst) in chunk.chunks_exact_mut(4).take(frames).enumerate() {
                    let at = base + lane * op.stride;
                    for (d, offset) in dst.iter_mut().zip(offsets) {
                        *d = x[offset + at];
                    }
                }
            }
            return;
        }
        for (step, chunk) in out.chunks_exact_mut(r * 4).enumerate() {
            let k0 = step * 4;
            if k0 >= op.k() {
                break;
            }
            if quads {
                let (channel, tap) = (k0 / op.kernel, k0 % op.kernel);
                let row = &self.x[(channel0 + channel) * self.width..][..self.width];
                for (lane, dst) in chunk.chunks_exact_mut(4).take(frames).enumerate() {
                    let t = first + lane;
                    match (self.position(t, tap), self.position(t, tap + 3)) {
                        (Some(p), Some(_)) => dst.copy_from_slice(&row[p..p + 4]),
                        _ => {
                            for (j, d) in dst.iter_mut().enumerate() {
                                *d = self.position(t, tap + j).map_or(self.pad, |p| row[p]);
                            }
                        }
                    }
                }
                continue;
            }
            for j in 0..4.min(op.k() - k0) {
                let (channel, tap) = ((k0 + j) / op.kernel, (k0 + j) % op.kernel);
                let row = &self.x[(channel0 + channel) * self.width..][..self.width];
                for lane in 0..frames {
                    chunk[lane * 4 + j] = self
                        .position(first + lane, tap)
                        .map_or(self.pad, |p| row[p]);
                }
            }
        }
    }
}

/// Replaces every `Im2col` of the kind in the module doc. Returns how many.
pub fn replace_im2cols(model: &mut TypedModel) -> TractResult<usize> {
    replace_nodes(model, "threaded 1-D int8 im2col", |model, node| {
        Ok(replacement(model, node)?.map(|op| Replacement::new(node, op, &node.inputs)))
    })
}

fn replacement(model: &TypedModel, node: &TypedNode) -> TractResult<Option<FastIm2col>> {
    let Some(im2col) = node.op_as::<Im2Col>() else {
        return Ok(None);
    };
    let spec = &im2col.pool_spec;
    let has_n = match spec.data_format {
        DataFormat::NCHW => true,
        DataFormat::CHW => false,
        _ => return Ok(None),
    };
    let (pad_before, pad_after) = match &spec.padding {
        PaddingSpec::Valid => (0, 0),
        PaddingSpec::Explicit(before, after) if before.len() == 1 && after.len() == 1 => {
            (before[0], after[0])
        }
        _ => return Ok(None),
    };
    let x = model.outlet_fact(node.inputs[0])?;
    let output = model.outlet_fact(node.id.into())?;
    let Some(packed) = output
        .exotic_fact
        .as_ref()
        .and_then(|f| f.downcast_ref::<PackedExoticFact>())
    else {
        return Ok(None);
    };
    let Some(format) = packed.format.downcast_ref::<PackedI8K4>() else {
        return Ok(None);
    };
    let group = im2col.group;
    let kernel = spec.kernel_shape.first().copied().unwrap_or(0);
    let fits = spec.rank() == 1
        && x.datum_type.size_of() == 1
        && x.rank() == 2 + has_n as usize
        && (!has_n || x.shape[0].is_one())
        && node.inputs.len() <= 2
        && kernel > 0
        && group > 0
        && spec.input_channels.is_multiple_of(group)
        && x.shape[x.rank() - 2] == spec.input_channels.to_dim()
        && format.r > 0
        && packed.k == spec.input_channels / group * kernel;
    if !fits {
        return Ok(None);
    }
    if let Some(&pad) = node.inputs.get(1) {
        if !model.outlet_fact(pad)?.shape.volume().is_one() {
            return Ok(None);
        }
    }
    Ok(Some(FastIm2col {
        format: format.clone(),
        group,
        channels_per_group: spec.input_channels / group,
        kernel,
        stride: spec.strides()[0],
        dilation: spec.dilations()[0],
        pad_before,
        pad_after,
        has_n,
        output: output.clone(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optimize::{test_int8_conv, test_rng};

    fn packed_values(value: &TValue) -> Vec<(usize, usize, Vec<u8>)> {
        let storage = value.try_storage_as::<PackedMatrixStorage>().unwrap();
        storage
            .values()
            .iter()
            .map(|v| {
                let eager = v.downcast_ref::<EagerPackedInput>().unwrap();
                (
                    eager.mn,
                    eager.panel_bytes,
                    eager.packed.as_bytes().to_vec(),
                )
            })
            .collect()
    }

    /// The MMS shapes (kernel 10 stride 5; 3 and 2 stride 2; the positional 128 with 64 of padding
    /// each side, grouped) and edges around them, on one and two threads: tract's bytes.
    #[test]
    fn unfolds_the_same_bytes_as_tracts_im2col() -> TractResult<()> {
        for (channels, groups, kernel, stride, pad, frames) in [
            (1, 1, 10, 5, 0, 103),
            (8, 1, 3, 2, 0, 41),
            (8, 1, 2, 2, 0, 40),
            (32, 4, 16, 1, 8, 37),
            (32, 4, 16, 1, 8, 5),
            (12, 3, 8, 1, 3, 50),
            (6, 1, 5, 3, 2, 29),
        ] {
            let mut rng = test_rng((channels * 7 + kernel * 3 + stride + pad) as u64);
            let model = test_int8_conv(channels, groups, kernel, stride, pad, frames, || {
                rng() as i8
            })?
            .into_optimized()?;
            let node = model
                .nodes()
                .iter()
                .find(|n| n.op_is::<Im2Col>())
                .expect("tract unfolds an int8 convolution");
            let op = replacement(&model, node)?;
            let k4 = model
                .outlet_fact(node.id.into())?
                .exotic_fact
                .as_ref()
                .and_then(|f| f.downcast_ref::<PackedExoticFact>())
                .is_some_and(|f| f.format.is::<PackedI8K4>());
            // Kernels packing `PackedFormat` (AVX2, ARM64 without dot products) keep tract's op.
            let Some(op) = op.filter(|_| k4) else {
                assert!(!k4, "a 1-D int8 im2col into PackedI8K4 was left to tract");
                assert!(replacement(&model, node)?.is_none());
                eprintln!("tract packs this kernel's activations in another format: left to tract");
                continue;
            };
            let mut rng = test_rng(frames as u64);
            // i8: what tract's offset from u8 (`OffsetU8asI8`) hands the op.
            let x: Vec<i8> = (0..channels * frames).map(|_| rng() as i8).collect();
            let x = Tensor::from_shape(&[1, channels, frames], &x)?;
            let mut inputs: TVec<TValue> = tvec![x.into_tvalue()];
            if let Some(&pad) = node.inputs.get(1) {
                inputs.push(model.outlet_fact(pad)?.konst.clone().unwrap().into_tvalue());
            }
            for threads in [1, 2] {
                let executor = tract_linalg::multithread::Executor::multithread(threads);
                let (want, got) =
                    tract_linalg::multithread::multithread_tract_scope(executor, || {
                        let ctx = EvalContext::out_of_plan();
                        (
                            node.op.eval(&ctx, inputs.clone()),
                            op.eval(&ctx, inputs.clone()),
                        )
                    });
                let (want, got) = (want?, got?);
                assert!(
                    packed_values(&want[0]) == packed_values(&got[0]),
                    "c {channels} g {groups} kernel {kernel} stride {stride} pad {pad} frames {frames}, {threads} threads"
                );
            }
        }
        Ok(())
    }
}
