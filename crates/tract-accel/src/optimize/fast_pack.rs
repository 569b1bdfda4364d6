//! A threaded, four-bytes-at-a-time packer for int8 activations, put in place of tract's
//! `OptMatMulPack` where its format is `PackedI8K4` (the int8 kernels' layout), with byte-identical
//! output.
//!
//! Why: tract 0.23.9 packs an activation with `PackedI8K4::pack_view`, a scalar byte-by-byte gather
//! (for each `k`, one byte of each of `r` rows) on one thread: 0.57 s of a 2.95 s MMS-1B run on two
//! threads (674 packs). The layout is `out[(k/4)·r·4 + m·4 + k%4] = src[m, k]` per panel of `r` rows,
//! zero-padded: when `k` is the contiguous axis each group of four `k` is one 4-byte copy, and panels
//! are independent. The same op packs the constant weights that `fold_packs` folds at load, whose
//! `mn` axis is the contiguous one (ONNX stores `[k, n]`): there four `k` rows make each feature's
//! 4-byte group.
//!
//! A matrix with neither axis contiguous keeps tract's packer; another format or a non-byte type
//! keeps tract's op.
//!
//! Upstream report: `docs/upstream/tract-pack-i8k4-scalar.md`. Delete this replacement once a tract
//! release packs `PackedI8K4` as fast (word-wise copies, threaded over panels).

use tract_linalg::mmm::{
    EagerPackedInput, MMMInputFormat, MMMInputValue, PackedExoticFact, PackedMatrixStorage,
};
use tract_linalg::multithread::par_chunks_mut;
use tract_linalg::pack::PackedI8K4;
use tract_onnx::prelude::tract_ndarray::Dimension;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::matmul::pack::{DynPackedExoticFact, OptMatMulPack};

use super::AccelOp;

#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct FastPackI8K4 {
    packer: PackedI8K4,
    k_axis: usize,
    mn_axis: usize,
}

/// An `OptMatMulPack` node as the replacements see it: its input's fact, the output's packing fact,
/// and which input axes are `k` and `mn`.
pub(super) struct PackNode<'m> {
    pub input: &'m TypedFact,
    pub exotic: &'m DynPackedExoticFact,
    pub k_axis: usize,
    pub mn_axis: usize,
}

impl<'m> PackNode<'m> {
    pub fn of(model: &'m TypedModel, node: &'m TypedNode) -> TractResult<Option<PackNode<'m>>> {
        if !node.op_is::<OptMatMulPack>() || node.inputs.len() != 1 || node.outputs.len() != 1 {
            return Ok(None);
        }
        let output = &node.outputs[0].fact;
        let Some(exotic) = output
            .exotic_fact
            .as_ref()
            .and_then(|e| e.downcast_ref::<DynPackedExoticFact>())
        else {
            return Ok(None);
        };
        let input = model.outlet_fact(node.inputs[0])?;
        let mapping = node.op.axes_mapping(&[input], &[output])?;
        Ok(Some(PackNode {
            input,
            exotic,
            k_axis: mapping.axis('K')?.inputs[0][0],
            mn_axis: mapping.axis('M')?.inputs[0][0],
        }))
    }
}

/// The packed output's shape: the input's without its `k` and `mn` axes (the batch of matrices).
pub(super) fn packed_shape<D: DimLike>(input: &[D], k_axis: usize, mn_axis: usize) -> TVec<D> {
    let mut shape: TVec<D> = input.into();
    shape.remove(mn_axis.max(k_axis));
    shape.remove(mn_axis.min(k_axis));
    shape
}

/// The element offset of each matrix of a batch (the input's coordinates with `k` and `mn` at 0),
/// in the order tract's pack op packs them.
pub(super) fn batch_offsets(
    shape: &[usize],
    strides: &[isize],
    k_axis: usize,
    mn_axis: usize,
) -> Vec<isize> {
    let mut batch: TVec<usize> = shape.into();
    batch[k_axis] = 1;
    batch[mn_axis] = 1;
    tract_ndarray::indices(&*batch)
        .into_iter()
        .map(|coord| {
            let coord = coord.as_array_view();
            coord
                .iter()
                .zip(strides)
                .map(|(x, s)| *x as isize * s)
                .sum()
        })
        .collect()
}

/// The fact of a pack op's output for input `input`: its type, the batch's shape, and the packing
/// of each matrix by `packers` (one picked at run time, as tract's `ModePicker`, when two).
pub(super) fn packed_fact(
    input: &TypedFact,
    k_axis: usize,
    mn_axis: usize,
    packers: Vec<Box<dyn MMMInputFormat>>,
) -> TypedFact {
    let exotic = DynPackedExoticFact {
        k: input.shape[k_axis].clone(),
        mn: input.shape[mn_axis].clone(),
        packers,
    };
    input
        .datum_type
        .fact(packed_shape(&input.shape, k_axis, mn_axis))
        .with_exotic_fact(exotic)
}

/// The bytes of each packed matrix of a pack op's output, for comparing packers in tests.
#[cfg(test)]
pub(super) fn packed_bytes(value: &TValue) -> Vec<Vec<u8>> {
    let storage = value.try_storage_as::<PackedMatrixStorage>().unwrap();
    storage
        .values()
        .iter()
        .map(|v| {
            let eager = v.downcast_ref::<EagerPackedInput>().unwrap();
            eager.packed.as_bytes().to_vec()
        })
        .collect()
}

impl FastPackI8K4 {
    /// The replacement for `node` if it is an `OptMatMulPack` to `PackedI8K4` of a byte type.
    pub fn replacing(model: &TypedModel, node: &TypedNode) -> TractResult<Option<FastPackI8K4>> {
        let Some(pack) = PackNode::of(model, node)? else {
            return Ok(None);
        };
        // One packer is tract's `ModePicker::Single` (two would pick by size at run time).
        let [packer] = pack.exotic.packers.as_slice() else {
            return Ok(None);
        };
        let Some(packer) = packer.downcast_ref::<PackedI8K4>() else {
            return Ok(None);
        };
        if pack.input.datum_type.size_of() != 1 {
            return Ok(None);
        }
        Ok(Some(FastPackI8K4 {
            packer: packer.clone(),
            k_axis: pack.k_axis,
            mn_axis: pack.mn_axis,
        }))
    }

    /// The input's `k` and `mn` axes.
    pub fn axes(&self) -> (usize, usize) {
        (self.k_axis, self.mn_axis)
    }

    fn output_shape<D: DimLike>(&self, input: &[D]) -> TVec<D> {
        packed_shape(input, self.k_axis, self.mn_axis)
    }

    /// Packs the matrix at byte `offset` of `src`: `mn` rows `mn_stride` bytes apart, `k` contiguous
    /// (an activation): each group of four `k` is one 4-byte copy.
    fn pack_contiguous_k(
        &self,
        src: &[u8],
        offset: usize,
        k: usize,
        mn: usize,
        mn_stride: usize,
    ) -> TractResult<Box<dyn MMMInputValue>> {
        ensure!(
            mn == 0 || offset + (mn - 1) * mn_stride + k <= src.len(),
            "packing past the end of the input"
        );
        let r = self.packer.r;
        self.pack_panels(k, mn, |m0, panel| {
            for lm in 0..r.min(mn - m0) {
                let start = offset + (m0 + lm) * mn_stride;
                let row = &src[start..start + k];
                let mut groups = row.chunks_exact(4);
                for (kb, group) in groups.by_ref().enumerate() {
                    let at = kb * r * 4 + lm * 4;
                    panel[at..at + 4].copy_from_slice(group);
                }
                let tail = groups.remainder();
                if !tail.is_empty() {
                    let at = (k / 4) * r * 4 + lm * 4;
                    panel[at..at + tail.len()].copy_from_slice(tail);
                }
            }
        })
    }

    /// Packs the matrix at byte `offset` of `src`: `k` rows `k_stride` bytes apart, `mn` contiguous
    /// (a weight `[k, n]` as ONNX stores it, folded once at load): each `k` row's slice of the panel
    /// lands every fourth byte.
    fn pack_contiguous_mn(
        &self,
        src: &[u8],
        offset: usize,
        k: usize,
        mn: usize,
        k_stride: usize,
    ) -> TractResult<Box<dyn MMMInputValue>> {
        ensure!(
            mn == 0 || k == 0 || offset + (k - 1) * k_stride + mn <= src.len(),
            "packing past the end of the input"
        );
        let r = self.packer.r;
        self.pack_panels(k, mn, |m0, panel| {
            let width = r.min(mn - m0);
            let row = |kk: usize| &src[offset + kk * k_stride + m0..][..width];
            // Four `k` rows at a time: each feature's four bytes are one 4-byte store.
            for kb in 0..k / 4 {
                let (r0, r1, r2, r3) = (
                    row(4 * kb),
                    row(4 * kb + 1),
                    row(4 * kb + 2),
                    row(4 * kb + 3),
                );
                let out = &mut panel[kb * r * 4..][..width * 4];
                for (l, group) in out.chunks_exact_mut(4).enumerate() {
                    group.copy_from_slice(&[r0[l], r1[l], r2[l], r3[l]]);
                }
            }
            for kk in (k / 4) * 4..k {
                let lanes = panel[(kk / 4) * r * 4 + kk % 4..].iter_mut().step_by(4);
                lanes.zip(row(kk)).for_each(|(out, &byte)| *out = byte);
            }
        })
    }

    /// The packed value, its panels (zeroed, then `fill(first row, panel)`) on all threads.
    fn pack_panels(
        &self,
        k: usize,
        mn: usize,
        fill: impl Fn(usize, &mut [u8]) + Sync + Send,
    ) -> TractResult<Box<dyn MMMInputValue>> {
        let r = self.packer.r;
        let panel_bytes = k.div_ceil(4) * 4 * r;
        let panels = mn.div_ceil(r);
        // SAFETY: tract's alignment (a power of two); every byte is written below (each panel zeroed,
        // then its values copied over) before the blob is read.
        let mut blob =
            unsafe { Blob::new_for_size_and_align(panels * panel_bytes, self.packer.alignment()) };
        par_chunks_mut(
            blob.as_bytes_mut(),
            panel_bytes.max(1),
            mn * k,
            |first_panel, out| {
                for (ix, panel) in out.chunks_exact_mut(panel_bytes.max(1)).enumerate() {
                    panel.fill(0);
                    fill((first_panel + ix) * r, panel);
                }
                Ok(())
            },
        )?;
        Ok(Box::new(EagerPackedInput {
            fact: PackedExoticFact {
                format: Box::new(self.packer.clone()),
                mn: mn.to_dim(),
                k,
            },
            packed: blob.into(),
            panel_bytes,
            mn,
        }))
    }
}

super::tract_op!(FastPackI8K4);

impl AccelOp for FastPackI8K4 {
    fn describe(&self) -> Vec<String> {
        vec![format!(
            "{}. k axis: {}, mn axis: {}",
            self.packer, self.k_axis, self.mn_axis
        )]
    }

    fn run(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = args_1!(inputs);
        let shape = input.shape();
        let strides = input.strides();
        let (k, mn) = (shape[self.k_axis], shape[self.mn_axis]);
        let output_shape = self.output_shape(shape);
        let mut values: TVec<Box<dyn MMMInputValue>> =
            TVec::with_capacity(output_shape.iter().product());
        for offset in batch_offsets(shape, strides, self.k_axis, self.mn_axis) {
            let (k_stride, mn_stride) = (strides[self.k_axis], strides[self.mn_axis]);
            let forward = offset >= 0 && k_stride >= 0 && mn_stride >= 0;
            values.push(if forward && (k_stride == 1 || k <= 1) {
                let bytes = input.as_bytes();
                self.pack_contiguous_k(bytes, offset as usize, k, mn, mn_stride as usize)?
            } else if forward && (mn_stride == 1 || mn <= 1) {
                let bytes = input.as_bytes();
                self.pack_contiguous_mn(bytes, offset as usize, k, mn, k_stride as usize)?
            } else {
                // SAFETY: the view is the input's own bytes with its own shape and strides, at the
                // offset of a batch coordinate inside the shape (`k` and `mn` at 0): the elements
                // the packer reads along `k` and `mn` from there are the input's. tract's op builds
                // the same view.
                let view = unsafe { TensorView::from_bytes(&input, offset, shape, strides) };
                self.packer.pack_view(&view, self.k_axis, self.mn_axis)?
            });
        }
        let packed =
            PackedMatrixStorage::new_batched(&output_shape, values).into_tensor(input.datum_type());
        Ok(tvec!(packed.into_tvalue()))
    }

    fn facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let packers = vec![Box::new(self.packer.clone()) as _];
        Ok(tvec!(packed_fact(
            inputs[0],
            self.k_axis,
            self.mn_axis,
            packers
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every shape class (k and mn multiples of 4 and r or not, a batch axis, mn before or after k)
    /// gives tract's exact bytes.
    #[test]
    fn packs_like_tract_for_every_shape_class() {
        let mut seed = 7u32;
        for (shape, k_axis, mn_axis) in [
            (vec![1usize, 250, 1280], 2, 1),
            (vec![1, 13, 7], 2, 1),
            (vec![3, 9, 16], 2, 1),
            (vec![1, 1, 5], 2, 1),
            // mn contiguous, k strided (weights as ONNX stores them): every fourth byte.
            (vec![2, 6, 11], 1, 2),
            (vec![1, 7, 13], 1, 2),
            (vec![9, 16], 0, 1),
            (vec![1, 1280, 640], 1, 2),
            // Neither contiguous: tract's own packer.
            (vec![4, 5, 3], 0, 1),
        ] {
            let len: usize = shape.iter().product();
            let values: Vec<i8> = (0..len)
                .map(|_| {
                    seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                    (seed >> 16) as i8
                })
                .collect();
            let input = tract_ndarray::ArrayD::from_shape_vec(shape.clone(), values)
                .unwrap()
                .into_tensor();
            for r in [4, 8, 16] {
                let ours = FastPackI8K4 {
                    packer: PackedI8K4::new(r),
                    k_axis,
                    mn_axis,
                };
                let mut tracts = Vec::new();
                // Offsets computed here as tract's op does, not by `batch_offsets`: the reference
                // stays independent of the code under test.
                let mut batch = shape.clone();
                batch[k_axis] = 1;
                batch[mn_axis] = 1;
                for coord in tract_ndarray::indices(&*batch) {
                    let offset: isize = coord
                        .as_array_view()
                        .iter()
                        .zip(input.strides())
                        .map(|(x, s)| *x as isize * s)
                        .sum();
                    // SAFETY: as in `eval`: a batch coordinate's offset, the input's own shape and
                    // strides.
                    let view = unsafe {
                        TensorView::from_bytes(&input, offset, input.shape(), input.strides())
                    };
                    let packed = ours.packer.pack_view(&view, k_axis, mn_axis).unwrap();
                    let eager = packed.downcast_ref::<EagerPackedInput>().unwrap();
                    tracts.push(eager.packed.as_bytes().to_vec());
                }
                let run = || {
                    ours.eval(
                        &EvalContext::out_of_plan(),
                        tvec!(input.clone().into_tvalue()),
                    )
                    .unwrap()
                };
                assert_eq!(packed_bytes(&run()[0]), tracts, "{shape:?} r={r}");
                // Panels split between threads: the same bytes.
                let threaded = tract_linalg::multithread::multithread_tract_scope(
                    tract_linalg::multithread::Executor::multithread(2),
                    run,
                );
                assert_eq!(
                    packed_bytes(&threaded[0]),
                    tracts,
                    "{shape:?} r={r}, 2 threads"
                );
            }
        }
    }
}
