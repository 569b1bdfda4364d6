//! A packer for f32 activations, threaded over the matrices of a batch, put in place of tract's
//! `OptMatMulPack` to its f32 `PackedFormat`, with the same layout.
//!
//! Why: attention's `softmax(QKᵀ)·V` packs `V` (`[T, heads, 80]`, `k` = T strided, `mn` = 80
//! contiguous) for tract's 64-row f32 kernel. tract 0.23.9 copies whole rows only for panels of
//! 16–128 bytes; a 64-float panel is 256 bytes, so it falls to its element-by-element writer:
//! 0.7 ms per pack, 35 ms of a 1.4 s MMS-1B run, on one thread, for 1.3 MB of data. The layout is
//! `out[p·panel_len + k·r + m % r] = src[k, m]` for panel `p = m / r`, the rest zero; the 16 heads
//! are independent matrices, packed on all threads. tract packs a batch's matrices one after the
//! other, each too small for its own threading: attention's other packs (`k` contiguous, where
//! tract's own packer is fast) took 39 ms a run; they are run by tract's packer, one matrix per
//! thread.
//!
//! Anything else (another format, a single matrix with a strided `mn`, a non-f32 type) keeps
//! tract's op.
//!
//! Upstream report: `docs/upstream/tract-pack-f32-wide-panels.md`. Delete this replacement once a
//! tract release copies whole rows for 64-row panels and packs a batch's matrices in parallel.

use tract_linalg::mmm::{
    EagerPackedInput, MMMInputFormat, MMMInputValue, PackedExoticFact, PackedMatrixStorage,
};
use tract_linalg::multithread::par_chunks_mut;
use tract_linalg::pack::PackedFormat;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

use super::fast_pack::{batch_offsets, packed_fact, packed_shape, PackNode};
use super::AccelOp;

#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct FastPackF32 {
    /// tract's packers for this input: one, or two picked by `mn` (1: a vector, else a matrix),
    /// as tract's `ModePicker::VecVsMat` does.
    packers: Vec<PackedFormat>,
    k_axis: usize,
    mn_axis: usize,
}

impl FastPackF32 {
    /// The replacement for `node` if it is an `OptMatMulPack` of f32 to f32 `PackedFormat`s.
    pub fn replacing(model: &TypedModel, node: &TypedNode) -> TractResult<Option<FastPackF32>> {
        let Some(pack) = PackNode::of(model, node)? else {
            return Ok(None);
        };
        let packers: Option<Vec<PackedFormat>> = pack
            .exotic
            .packers
            .iter()
            .map(|p| p.downcast_ref::<PackedFormat>().cloned())
            .collect();
        let Some(packers) = packers else {
            return Ok(None);
        };
        let f32_only = packers.iter().all(|p| p.dt == f32::datum_type());
        if !(1..=2).contains(&packers.len())
            || !f32_only
            || pack.input.datum_type != f32::datum_type()
        {
            return Ok(None);
        }
        // Where it is faster: `mn` contiguous (the copies), or a batch of matrices (threads).
        let batch = packed_shape(&pack.input.shape, pack.k_axis, pack.mn_axis);
        let batched = batch
            .iter()
            .product::<TDim>()
            .to_usize()
            .is_ok_and(|n| n > 1);
        if pack.mn_axis + 1 != pack.input.rank() && !batched {
            return Ok(None);
        }
        Ok(Some(FastPackF32 {
            packers,
            k_axis: pack.k_axis,
            mn_axis: pack.mn_axis,
        }))
    }

    fn output_shape<D: DimLike>(&self, input: &[D]) -> TVec<D> {
        packed_shape(input, self.k_axis, self.mn_axis)
    }
}

/// Packs the matrix at element `offset` of `src`: `k` rows `k_stride` apart, `mn` contiguous.
fn pack_contiguous_mn(
    packer: &PackedFormat,
    src: &[f32],
    offset: usize,
    k: usize,
    mn: usize,
    k_stride: usize,
) -> TractResult<Box<dyn MMMInputValue>> {
    let r = packer.r;
    let panel_len = packer.single_panel_len(k);
    let panels = mn.div_ceil(r);
    ensure!(
        mn == 0 || k == 0 || offset + (k - 1) * k_stride + mn <= src.len(),
        "packing past the end of the input"
    );
    let len = panels * panel_len;
    // SAFETY: tract's alignment (a power of two); every byte is zeroed just below before anything
    // reads it.
    let mut blob = unsafe { Blob::new_for_size_and_align(len * 4, packer.alignment_bytes) };
    let bytes = blob.as_bytes_mut();
    // Zeroed as bytes (0.0 is all zero bits), so the f32 view below is of initialised memory.
    bytes.fill(0);
    // An empty blob has no allocation (its slice's pointer is dangling, aligned for bytes only).
    let out: &mut [f32] = if len == 0 {
        &mut []
    } else {
        let ptr = bytes.as_mut_ptr().cast::<f32>();
        ensure!(
            ptr.is_aligned() && bytes.len() == len * 4,
            "f32 panels in a blob aligned to {} bytes",
            packer.alignment_bytes
        );
        // SAFETY: `ptr` is non-null (an allocation of `len · 4 > 0` bytes) and aligned for f32
        // (checked), the blob's `len · 4` bytes are `len` initialised f32s (zeroed above, and any
        // bits are a valid f32), and `bytes`, whose borrow of the blob this takes over, is not
        // used again.
        unsafe { std::slice::from_raw_parts_mut(ptr, len) }
    };
    for (p, panel) in out.chunks_exact_mut(panel_len.max(1)).enumerate() {
        let m0 = p * r;
        let width = r.min(mn - m0);
        for kk in 0..k {
            let from = offset + kk * k_stride + m0;
            panel[kk * r..kk * r + width].copy_from_slice(&src[from..from + width]);
        }
    }
    Ok(Box::new(EagerPackedInput {
        fact: PackedExoticFact {
            format: Box::new(packer.clone()),
            mn: mn.to_dim(),
            k,
        },
        packed: blob.into(),
        panel_bytes: panel_len * 4,
        mn,
    }))
}

super::tract_op!(FastPackF32);

impl AccelOp for FastPackF32 {
    fn describe(&self) -> Vec<String> {
        vec![format!(
            "{:?}. k axis: {}, mn axis: {}",
            self.packers, self.k_axis, self.mn_axis
        )]
    }

    fn run(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = args_1!(inputs);
        let shape = input.shape();
        let strides = input.strides();
        let (k, mn) = (shape[self.k_axis], shape[self.mn_axis]);
        // tract's ModePicker::VecVsMat: the second packer unless `mn` is a single vector.
        let packer = &self.packers[if self.packers.len() == 2 {
            (mn > 1) as usize
        } else {
            0
        }];
        let output_shape = self.output_shape(shape);
        let offsets = batch_offsets(shape, strides, self.k_axis, self.mn_axis);
        let (k_stride, mn_stride) = (strides[self.k_axis], strides[self.mn_axis]);
        let copies =
            (mn_stride == 1 || mn <= 1) && k_stride >= 0 && offsets.iter().all(|&o| o >= 0);
        let plain = input.try_as_plain_ram()?;
        let src = plain.as_slice::<f32>()?;
        let mut values: Vec<Option<Box<dyn MMMInputValue>>> =
            (0..offsets.len()).map(|_| None).collect();
        // The batch's matrices (attention's heads) are independent: one per task.
        par_chunks_mut(&mut values, 1, src.len(), |first, chunk| {
            for (ix, slot) in chunk.iter_mut().enumerate() {
                let offset = offsets[first + ix];
                *slot = Some(if copies {
                    pack_contiguous_mn(packer, src, offset as usize, k, mn, k_stride as usize)?
                } else {
                    // SAFETY: the view is the input's own bytes with its own shape and strides, at
                    // the byte offset of a batch coordinate inside the shape (`k` and `mn` at 0):
                    // the elements the packer reads along `k` and `mn` from there are the
                    // input's. tract's op builds the same view.
                    let view =
                        unsafe { TensorView::from_bytes(&input, offset * 4, shape, strides) };
                    packer.prepare_one_view(&view, self.k_axis, self.mn_axis)?
                });
            }
            Ok(())
        })?;
        let values: TVec<Box<dyn MMMInputValue>> = values.into_iter().flatten().collect();
        let packed =
            PackedMatrixStorage::new_batched(&output_shape, values).into_tensor(input.datum_type());
        Ok(tvec!(packed.into_tvalue()))
    }

    fn facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let packers = self.packers.iter().map(|p| Box::new(p.clone()) as _);
        Ok(tvec!(packed_fact(
            inputs[0],
            self.k_axis,
            self.mn_axis,
            packers.collect()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::super::fast_pack::packed_bytes;
    use super::*;
    use tract_onnx::prelude::tract_ndarray::Dimension;

    /// An empty matrix (`mn` = 0) packs to no bytes. The copying path once built its f32 slice on
    /// the empty blob's dangling, byte-aligned pointer: undefined behaviour (an abort in debug).
    #[test]
    fn packs_an_empty_matrix() {
        let fast = FastPackF32 {
            packers: vec![PackedFormat::new(f32::datum_type(), 64, 256)],
            k_axis: 0,
            mn_axis: 1,
        };
        for shape in [[5usize, 0], [0, 0]] {
            let input = Tensor::from_shape::<f32>(&shape, &[]).unwrap();
            let got = fast
                .eval(&EvalContext::out_of_plan(), tvec!(input.into_tvalue()))
                .unwrap();
            assert_eq!(packed_bytes(&got[0]), [Vec::<u8>::new()], "{shape:?}");
        }
    }

    /// Against tract's own packer (which zero-fills its padding in debug builds, as tests are),
    /// byte for byte: attention's layout and others, whole and partial panels, 1 and 2 threads.
    #[test]
    fn packs_byte_identical_to_tract() {
        let mut next = crate::optimize::test_rng(0x2545_f491_4f6c_dd1d);
        // (shape, k axis, mn axis)
        let cases: [(&[usize], usize, usize); 6] = [
            (&[37, 5, 80], 0, 2), // attention's V: [T, heads, 80], mn contiguous
            (&[37, 5, 80], 2, 0), // attention's Q: k contiguous
            (&[4, 5, 6], 0, 1),   // neither: tract's own packer
            (&[9, 130], 0, 1),
            (&[1, 1, 64], 0, 2),
            (&[7, 1], 0, 1), // a vector: tract's first packer
        ];
        for threads in [1, 2] {
            let executor = tract_linalg::multithread::Executor::multithread(threads);
            tract_linalg::multithread::multithread_tract_scope(executor, || {
                for (shape, k_axis, mn_axis) in cases {
                    let len: usize = shape.iter().product();
                    let values: Vec<f32> = (0..len).map(|_| next() as u32 as f32).collect();
                    let input = Tensor::from_shape(shape, &values).unwrap();
                    for r in [64usize, 3, 16] {
                        let packers = vec![
                            PackedFormat::new(f32::datum_type(), 1, 4),
                            PackedFormat::new(f32::datum_type(), r, 256),
                        ];
                        let fast = FastPackF32 {
                            packers: packers.clone(),
                            k_axis,
                            mn_axis,
                        };
                        let got = fast
                            .eval(
                                &EvalContext::out_of_plan(),
                                tvec!(input.clone().into_tvalue()),
                            )
                            .unwrap();
                        let mut batch: TVec<usize> = shape.into();
                        batch[k_axis] = 1;
                        batch[mn_axis] = 1;
                        let mn = shape[mn_axis];
                        let packer = &packers[(mn > 1) as usize];
                        let want: Vec<Vec<u8>> = tract_ndarray::indices(&*batch)
                            .into_iter()
                            .map(|coord| {
                                let offset: isize = coord
                                    .as_array_view()
                                    .iter()
                                    .zip(input.strides())
                                    .map(|(x, s)| *x as isize * s * 4)
                                    .sum();
                                // SAFETY: as in `eval`: a batch coordinate's byte offset, the
                                // input's own shape and strides.
                                let view = unsafe {
                                    TensorView::from_bytes(&input, offset, shape, input.strides())
                                };
                                let v = packer.prepare_one_view(&view, k_axis, mn_axis).unwrap();
                                let eager = v.downcast_ref::<EagerPackedInput>().unwrap();
                                eager.packed.as_bytes().to_vec()
                            })
                            .collect();
                        assert!(
                            packed_bytes(&got[0]) == want,
                            "{shape:?} k {k_axis} mn {mn_axis} r {r}"
                        );
                    }
                }
            });
        }
    }
}
