//! The arithmetic of `FusedAttention` on AVX-512F: per head, `softmax(scale · Q·Kᵀ)·V`.
//!
//! Layout: q, k, v and the output are `[T, H, D]` row-major (frames, heads, head dims): what the
//! encoder's projections produce and its output projection reads, so nothing is transposed but the
//! keys, once per head (`kt[head][i][n]`, frames padded to whole vectors with zeros).
//!
//! Work: a task is one head × a block of frames (rows). It computes the block's scores against all
//! frames into a per-thread scratch (48 rows × T: L2-sized at any length we accept), turns each row
//! into probabilities with the caller's softmax, and mixes the head's values with them straight into
//! the output. The score matrix of a head is never whole in memory.
//!
//! Exactness, which is why vectors run across output columns and never along a sum: each score is one
//! accumulator that takes `q[m][i]·k[n][i]` for `i` = 0, 1, … D−1 by fused multiply-add from zero,
//! then one product by the scale; each output value likewise takes `p[m][n]·v[n][d]` for `n` in
//! order. That is what tract's f32 matmul kernels do for each output of `MatMul → Mul` (one register
//! per output, `k` in order, `vfmadd231ps`, then its fused `scalarMul`), so the bits are the same.
//!
//! Goes with the `attention` pass (upstream report: `docs/upstream/tract-attention-products.md`).

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::{bail, ensure};

/// One attention: q, k, v as `frames × heads × head_dim` row-major.
pub struct Heads<'a> {
    pub q: &'a [f32],
    pub k: &'a [f32],
    pub v: &'a [f32],
    pub frames: usize,
    pub heads: usize,
    pub head_dim: usize,
    /// What each score is multiplied by after its sum (`1/√D` in MMS).
    pub scale: f32,
}

impl Heads<'_> {
    /// Checks every bound the unchecked kernel relies on.
    fn check(&self, out: &[f32]) -> TractResult<()> {
        let len = self
            .frames
            .checked_mul(self.heads)
            .and_then(|n| n.checked_mul(self.head_dim));
        ensure!(
            len.is_some_and(|n| [self.q.len(), self.k.len(), self.v.len(), out.len()]
                .iter()
                .all(|&l| l == n)),
            "attention buffers are not {} frames × {} heads × {} values",
            self.frames,
            self.heads,
            self.head_dim
        );
        Ok(())
    }
}

/// A softmax of one row of scores, in place (tract's, for its bits: see `attention`).
pub type RowSoftmax<'a> = &'a (dyn Fn(&mut [f32]) -> TractResult<()> + Sync);

/// Whether this CPU runs the kernel.
pub fn supported() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Computes the attention of `p` into `out` (`frames × heads × head_dim`), on the current tract
/// executor's threads.
pub fn attend(p: &Heads, softmax: RowSoftmax, out: &mut [f32]) -> TractResult<()> {
    if !supported() {
        bail!("this CPU has no AVX-512F");
    }
    p.check(out)?;
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: `supported()` found AVX-512F and `p.check(out)` passed just above: what
        // `x86::attend` requires.
        unsafe { x86::attend(p, softmax, out) }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (p.scale, softmax, out);
        bail!("no attention kernel for this architecture")
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::super::tasks::{run_tasks, SharedOut};
    use super::*;
    use std::arch::x86_64::*;
    use std::cell::RefCell;
    use std::ops::Range;
    use std::sync::Mutex;

    const LANES: usize = 16;
    /// Score tile: rows × vectors of 16 frames (24 of the 32 zmm registers accumulate).
    const SCORE_ROWS: usize = 6;
    const SCORE_VECS: usize = 4;
    /// Output tile: rows × vectors of 16 head dims (4 × 80: one MMS-1B head in 20 accumulators).
    const MIX_ROWS: usize = 4;
    const MIX_VECS: usize = 5;
    /// Rows of one task: a multiple of both tiles' rows; 16 heads × ⌈T/48⌉ tasks balance two to
    /// eight threads, and 48 rows of scores stay in L2 (48 KiB per thousand frames).
    const TASK_ROWS: usize = 48;

    thread_local! {
        /// Each pool thread's scores, grown to the longest block it has seen.
        static SCORES: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    }

    /// # Safety
    /// `p.check(out)` passed (q, k, v and `out` all hold `frames × heads × head_dim` values) and the
    /// CPU has AVX-512F.
    pub unsafe fn attend(p: &Heads, softmax: RowSoftmax, out: &mut [f32]) -> TractResult<()> {
        let (frames, heads, dim) = (p.frames, p.heads, p.head_dim);
        if frames == 0 || heads == 0 || dim == 0 {
            return Ok(());
        }
        let stride = frames.next_multiple_of(LANES);
        // Zeroed: the padding frames' scores are computed, never read, but must not read garbage.
        let mut kt = vec![0f32; heads * dim * stride];
        {
            let shared = SharedOut::new(&mut kt);
            run_tasks(heads, |head| {
                // SAFETY: `kt` holds `heads × dim × stride` values, borrowed by `shared` until
                // `run_tasks` returns; task `head` writes only that head's `dim × stride` of them.
                unsafe { transpose_keys(p, head, stride, shared.get()) }
            });
        }
        let blocks = frames.div_ceil(TASK_ROWS);
        let failure = Mutex::new(None);
        let shared = SharedOut::new(out);
        run_tasks(heads * blocks, |task| {
            let (head, block) = (task / blocks, task % blocks);
            let rows = block * TASK_ROWS..((block + 1) * TASK_ROWS).min(frames);
            let block = Block {
                p,
                kt: &kt,
                stride,
                head,
                rows,
            };
            // SAFETY: this function's contract (checked buffers, AVX-512F) is `run`'s; `out` is
            // borrowed by `shared` until `run_tasks` returns, and task (head, block) writes only
            // its rows × that head's values of it, which no other task writes.
            if let Err(e) = unsafe { block.run(softmax, shared.get()) } {
                if let Ok(mut first) = failure.lock() {
                    first.get_or_insert(e);
                }
            }
        });
        match failure.into_inner() {
            Ok(None) => Ok(()),
            Ok(Some(e)) => Err(e),
            Err(_) => bail!("an attention task panicked"),
        }
    }

    /// `kt[head][i][n] = k[n][head][i]` for every frame `n`.
    ///
    /// # Safety
    /// `kt` points to `heads × head_dim × stride` writable values (`stride >= frames`), `p.k` holds
    /// `frames × heads × head_dim`, and no other thread reads or writes this head's part of `kt`.
    unsafe fn transpose_keys(p: &Heads, head: usize, stride: usize, kt: *mut f32) {
        let (heads, dim) = (p.heads, p.head_dim);
        for (n, key) in p.k.chunks_exact(dim).skip(head).step_by(heads).enumerate() {
            for (i, &value) in key.iter().enumerate() {
                // SAFETY: `head < heads`, `i < dim` and `n < frames <= stride`, so the index is
                // below `heads · dim · stride`, in this head's part of `kt`, which only this
                // task touches.
                unsafe { *kt.add((head * dim + i) * stride + n) = value };
            }
        }
    }

    /// One task: a head over a block of rows.
    struct Block<'a> {
        p: &'a Heads<'a>,
        kt: &'a [f32],
        stride: usize,
        head: usize,
        rows: Range<usize>,
    }

    impl Block<'_> {
        /// # Safety
        /// As `attend`'s (`out` points to the checked `frames × heads × head_dim` output, the CPU
        /// has AVX-512F), and no other thread reads or writes these rows of this head in `out`.
        unsafe fn run(&self, softmax: RowSoftmax, out: *mut f32) -> TractResult<()> {
            // A vector of slack per row for its shift (`row_at`), and one to align the start.
            let need = self.rows.len() * (self.stride + LANES) + LANES;
            SCORES.with(|cell| {
                // A task that finds the scratch taken (never, unless rayon nests a task in the
                // softmax) gets its own.
                let mut own = Vec::new();
                let mut taken = cell.try_borrow_mut();
                let scores = match taken.as_deref_mut() {
                    Ok(scores) => scores,
                    Err(_) => &mut own,
                };
                if scores.len() < need {
                    scores.resize(need, 0.0);
                }
                let aligned = scores.as_ptr().align_offset(LANES * 4).min(LANES);
                let scores = &mut scores[aligned..need];
                // SAFETY: the CPU has AVX-512F (this function's contract), and `scores` holds at
                // least `rows × (stride + LANES)` values (`aligned <= LANES`): every row at
                // `row_at` with its `stride` columns.
                unsafe { self.scores(scores) };
                for i in 0..self.rows.len() {
                    let at = self.row_at(i);
                    softmax(&mut scores[at..at + self.p.frames])?;
                }
                // SAFETY: AVX-512F, and `out` as this function's contract has it: only this
                // task writes these rows of this head. `scores` holds every row, as above.
                unsafe { self.mix(scores, out) };
                Ok(())
            })
        }

        /// Where the block's row `i` of scores starts in the (64-byte aligned) scratch: its own
        /// slot, shifted to sit where tract's `[H, T, T]` score tensor (64-byte aligned) has it
        /// modulo 64 bytes. tract's softmax kernels take a row's unaligned head and tail apart
        /// from its aligned body, so the shift is what makes their sum, and the bits, the same.
        fn row_at(&self, i: usize) -> usize {
            let frames = self.p.frames;
            let tracts = (self.head * frames + self.rows.start + i) * frames;
            i * (self.stride + LANES) + tracts % LANES
        }

        /// The block's scaled scores against every frame, each row at `row_at`.
        ///
        /// # Safety
        /// The CPU has AVX-512F, `p` passed `check`, and `scores` holds at least
        /// `rows × (stride + LANES)` values.
        #[target_feature(enable = "avx512f")]
        unsafe fn scores(&self, scores: &mut [f32]) {
            let (p, stride) = (self.p, self.stride);
            // Every row pointer is derived from this one base pointer: re-indexing `scores` for
            // each would reborrow it and invalidate the pointers taken before (Stacked Borrows).
            let base = scores.as_mut_ptr();
            let q_stride = p.heads * p.head_dim;
            let kt = self.kt[self.head * p.head_dim * stride..].as_ptr();
            let scale = _mm512_set1_ps(p.scale);
            let mut row = self.rows.start;
            while row < self.rows.end {
                let rows = (self.rows.end - row).min(SCORE_ROWS);
                let tile = ScoreTile {
                    q: p.q[(row * p.heads + self.head) * p.head_dim..].as_ptr(),
                    q_stride,
                    kt,
                    stride,
                    dim: p.head_dim,
                    scale,
                    s: std::array::from_fn(|r| {
                        let i = (row - self.rows.start + r).min(self.rows.len() - 1);
                        // SAFETY: `row_at(i) + stride <= (i + 1) · (stride + LANES)`, within
                        // `scores` (this function's contract).
                        unsafe { base.add(self.row_at(i)) }
                    }),
                };
                let mut col = 0;
                while col < stride {
                    let vecs = ((stride - col) / LANES).min(SCORE_VECS);
                    // SAFETY: AVX-512F (this function's contract). The tile reads q rows
                    // `row..row + rows` (< frames) of this head, and the keys' columns
                    // `col..col + vecs · LANES` (<= stride) of this head's `dim` rows of `kt`;
                    // it writes those columns of its `rows` score rows, inside `scores`.
                    unsafe {
                        match rows {
                            6 => tile.cols::<6>(col, vecs),
                            5 => tile.cols::<5>(col, vecs),
                            4 => tile.cols::<4>(col, vecs),
                            3 => tile.cols::<3>(col, vecs),
                            2 => tile.cols::<2>(col, vecs),
                            _ => tile.cols::<1>(col, vecs),
                        }
                    }
                    col += vecs * LANES;
                }
                row += rows;
            }
        }

        /// `out[m][head] = Σ_n scores[m][n] · v[n][head]` for the block's rows.
        ///
        /// # Safety
        /// The CPU has AVX-512F, `p` passed `check` against `out`, `scores` holds every row of the
        /// block at `row_at` (`frames` values each), and no other thread reads or writes these rows
        /// of this head in `out`.
        #[target_feature(enable = "avx512f")]
        unsafe fn mix(&self, scores: &[f32], out: *mut f32) {
            let (p, dim) = (self.p, self.p.head_dim);
            let base = scores.as_ptr();
            let v_stride = p.heads * dim;
            let mut row = self.rows.start;
            while row < self.rows.end {
                let rows = (self.rows.end - row).min(MIX_ROWS);
                let mut col = 0;
                while col < dim {
                    let width = (dim - col).min(MIX_VECS * LANES);
                    let vecs = width.div_ceil(LANES);
                    let tail = width - (vecs - 1) * LANES;
                    // SAFETY: `row < frames`, `head < heads` and `col < dim`: inside `out`, which
                    // holds `frames × heads × dim` values (this function's contract).
                    let o = unsafe { out.add((row * p.heads + self.head) * dim + col) };
                    let tile = MixTile {
                        s: std::array::from_fn(|r| {
                            let i = (row - self.rows.start + r).min(self.rows.len() - 1);
                            // SAFETY: row `i` of the block is inside `scores` (this function's
                            // contract).
                            unsafe { base.add(self.row_at(i)) }
                        }),
                        v: p.v[self.head * dim + col..].as_ptr(),
                        v_stride,
                        frames: p.frames,
                        tail_mask: if tail == LANES { !0 } else { (1 << tail) - 1 },
                        o,
                    };
                    // SAFETY: AVX-512F (this function's contract). The tile reads `frames`
                    // probabilities from each of its score rows (inside `scores`), this head's
                    // values `col..col + width` of v for every frame, and writes those values of
                    // out for rows `row..row + rows` (< frames): `col + width <= dim`, the lanes
                    // past `width` masked off (not accessed), so inside v and out; only this task
                    // writes those values of out.
                    unsafe {
                        match rows {
                            4 => tile.cols::<4>(vecs),
                            3 => tile.cols::<3>(vecs),
                            2 => tile.cols::<2>(vecs),
                            _ => tile.cols::<1>(vecs),
                        }
                    }
                    col += width;
                }
                row += rows;
            }
        }
    }

    /// Up to `SCORE_ROWS` rows of scores: `s[r][n] = (Σ_i q[r][i] · kt[i][n]) · scale`.
    struct ScoreTile {
        /// The tile's first row of q, rows `q_stride` apart, `dim` values each.
        q: *const f32,
        q_stride: usize,
        /// The head's transposed keys: `dim` rows of `stride` frames.
        kt: *const f32,
        stride: usize,
        dim: usize,
        scale: __m512,
        /// Each row's scores (past the tile's rows: repeats of its last, never written).
        s: [*mut f32; SCORE_ROWS],
    }

    impl ScoreTile {
        /// The tile's `R` rows × `vecs` (1 to `SCORE_VECS`) vectors of columns from `col`.
        ///
        /// # Safety
        /// As `tile`'s, with `P = vecs`.
        #[target_feature(enable = "avx512f")]
        unsafe fn cols<const R: usize>(&self, col: usize, vecs: usize) {
            // SAFETY: this function's contract is `tile`'s for `P = vecs.clamp(1, 4)`.
            unsafe {
                match vecs {
                    4 => self.tile::<R, 4>(col),
                    3 => self.tile::<R, 3>(col),
                    2 => self.tile::<R, 2>(col),
                    _ => self.tile::<R, 1>(col),
                }
            }
        }

        /// Scores of the first `R` rows (`R <= SCORE_ROWS`) for columns `col..col + P · LANES`.
        ///
        /// # Safety
        /// The CPU has AVX-512F; `q` is readable for `R` rows of `dim` values `q_stride` apart;
        /// `kt` for `dim` rows of at least `col + P · LANES` values `stride` apart; `s[r]`, for
        /// `r < R`, is writable for `col + P · LANES` values that no other thread accesses.
        #[target_feature(enable = "avx512f")]
        unsafe fn tile<const R: usize, const P: usize>(&self, col: usize) {
            let mut acc = [[_mm512_setzero_ps(); P]; R];
            for i in 0..self.dim {
                let mut keys = [_mm512_setzero_ps(); P];
                for (pi, key) in keys.iter_mut().enumerate() {
                    // SAFETY: row `i < dim` of `kt`, columns below `col + P · LANES` (contract).
                    *key =
                        unsafe { _mm512_loadu_ps(self.kt.add(i * self.stride + col + pi * LANES)) };
                }
                for (r, row_acc) in acc.iter_mut().enumerate() {
                    // SAFETY: row `r < R` of q, value `i < dim` (contract).
                    let q = _mm512_set1_ps(unsafe { *self.q.add(r * self.q_stride + i) });
                    for (a, key) in row_acc.iter_mut().zip(&keys) {
                        *a = _mm512_fmadd_ps(q, *key, *a);
                    }
                }
            }
            for (r, row_acc) in acc.iter().enumerate() {
                for (pi, a) in row_acc.iter().enumerate() {
                    let at = col + pi * LANES;
                    // SAFETY: row `r < R`, columns below `col + P · LANES` (contract).
                    unsafe { _mm512_storeu_ps(self.s[r].add(at), _mm512_mul_ps(*a, self.scale)) };
                }
            }
        }
    }

    /// Up to `MIX_ROWS` rows × up to `MIX_VECS` vectors of output: `o[r][d] = Σ_n s[r][n] · v[n][d]`.
    struct MixTile {
        /// Each row's probabilities (past the tile's rows: repeats of its last, never read).
        s: [*const f32; MIX_ROWS],
        /// The head's values from the tile's first column, frames `v_stride` apart.
        v: *const f32,
        v_stride: usize,
        frames: usize,
        /// The lanes of the last vector inside the head.
        tail_mask: __mmask16,
        /// The tile's first output, rows `v_stride` apart (the same layout as v).
        o: *mut f32,
    }

    impl MixTile {
        /// The tile's `R` rows × `vecs` (1 to `MIX_VECS`) vectors of head dims.
        ///
        /// # Safety
        /// As `tile`'s, with `P = vecs`.
        #[target_feature(enable = "avx512f")]
        unsafe fn cols<const R: usize>(&self, vecs: usize) {
            // SAFETY: this function's contract is `tile`'s for `P = vecs.clamp(1, 5)`.
            unsafe {
                match vecs {
                    5 => self.tile::<R, 5>(),
                    4 => self.tile::<R, 4>(),
                    3 => self.tile::<R, 3>(),
                    2 => self.tile::<R, 2>(),
                    _ => self.tile::<R, 1>(),
                }
            }
        }

        /// Output rows `0..R` (`R <= MIX_ROWS`), `P` vectors of head dims, the last masked by
        /// `tail_mask`.
        ///
        /// # Safety
        /// The CPU has AVX-512F; `s[r]`, for `r < R`, is readable for `frames` values; `v` for
        /// `frames` rows `v_stride` apart and `o` writable for `R` rows `v_stride` apart, each of
        /// `(P − 1) · LANES` values plus the lanes of `tail_mask`; no other thread accesses those
        /// values of `o`.
        #[target_feature(enable = "avx512f")]
        unsafe fn tile<const R: usize, const P: usize>(&self) {
            let mask = |pi: usize| if pi + 1 == P { self.tail_mask } else { !0 };
            let mut acc = [[_mm512_setzero_ps(); P]; R];
            for n in 0..self.frames {
                let mut values = [_mm512_setzero_ps(); P];
                for (pi, value) in values.iter_mut().enumerate() {
                    let at = n * self.v_stride + pi * LANES;
                    // SAFETY: frame `n < frames` of v, the lanes of `mask(pi)` only (contract);
                    // masked-off lanes are not accessed.
                    *value = unsafe { _mm512_maskz_loadu_ps(mask(pi), self.v.add(at)) };
                }
                for (r, row_acc) in acc.iter_mut().enumerate() {
                    // SAFETY: row `r < R`, frame `n < frames` (contract).
                    let weight = _mm512_set1_ps(unsafe { *self.s[r].add(n) });
                    for (a, value) in row_acc.iter_mut().zip(&values) {
                        *a = _mm512_fmadd_ps(weight, *value, *a);
                    }
                }
            }
            for (r, row_acc) in acc.iter().enumerate() {
                for (pi, a) in row_acc.iter().enumerate() {
                    let at = r * self.v_stride + pi * LANES;
                    // SAFETY: output row `r < R`, the lanes of `mask(pi)` only (contract).
                    unsafe { _mm512_mask_storeu_ps(self.o.add(at), mask(pi), *a) };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same sums in the same order, one value at a time, with a plain softmax.
    fn reference(p: &Heads) -> Vec<f32> {
        let (t, h, d) = (p.frames, p.heads, p.head_dim);
        let at = |m: usize, head: usize, i: usize| (m * h + head) * d + i;
        let mut out = vec![0f32; t * h * d];
        for head in 0..h {
            for m in 0..t {
                let mut row: Vec<f32> = (0..t)
                    .map(|n| {
                        let dot = (0..d).fold(0f32, |acc, i| {
                            p.q[at(m, head, i)].mul_add(p.k[at(n, head, i)], acc)
                        });
                        dot * p.scale
                    })
                    .collect();
                plain_softmax(&mut row).unwrap();
                for i in 0..d {
                    out[at(m, head, i)] =
                        (0..t).fold(0f32, |acc, n| row[n].mul_add(p.v[at(n, head, i)], acc));
                }
            }
        }
        out
    }

    fn plain_softmax(row: &mut [f32]) -> TractResult<()> {
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        row.iter_mut().for_each(|x| *x = (*x - max).exp());
        let sum: f32 = row.iter().sum();
        row.iter_mut().for_each(|x| *x /= sum);
        Ok(())
    }

    fn random(len: usize, seed: u64) -> Vec<f32> {
        let mut rng = crate::optimize::test_rng(seed);
        (0..len)
            .map(|_| (rng() >> 40) as f32 / (1u64 << 24) as f32 * 4.0 - 2.0)
            .collect()
    }

    /// Frames around every tile and task edge, head dims around every vector edge (MMS-1B's 80,
    /// 300M's 64, the tiny model's 16), on one and two threads: bit for bit.
    #[test]
    fn matches_the_same_sums_in_order_around_every_edge() {
        let len = 3 * 5 * 24;
        let (q, k, v) = (random(len, 1), random(len, 2), random(len, 3));
        let heads = Heads {
            q: &q,
            k: &k,
            v: &v,
            frames: 3,
            heads: 5,
            head_dim: 24,
            scale: 0.2,
        };
        if !supported() {
            // The pass never builds the op on such a CPU (`attention::fuse_attentions`).
            assert!(attend(&heads, &plain_softmax, &mut vec![0.0; len]).is_err());
            eprintln!("no AVX-512F here: only the refusal is checked");
            return;
        }
        for (frames, heads, head_dim) in [
            (1, 1, 1),
            (3, 5, 24),
            (7, 2, 16),
            (49, 3, 80),
            (97, 2, 64),
            (130, 1, 100),
            (250, 4, 80),
        ] {
            let len = frames * heads * head_dim;
            let seed = len as u64;
            let (q, k, v) = (
                random(len, seed),
                random(len, seed + 1),
                random(len, seed + 2),
            );
            let p = Heads {
                q: &q,
                k: &k,
                v: &v,
                frames,
                heads,
                head_dim,
                scale: 1.0 / (head_dim as f32).sqrt(),
            };
            let want = reference(&p);
            for threads in [1, 2] {
                let mut got = vec![f32::NAN; len];
                let executor = tract_linalg::multithread::Executor::multithread(threads);
                tract_linalg::multithread::multithread_tract_scope(executor, || {
                    attend(&p, &plain_softmax, &mut got).unwrap()
                });
                let differing = want
                    .iter()
                    .zip(&got)
                    .filter(|(a, b)| a.to_bits() != b.to_bits())
                    .count();
                assert_eq!(
                    differing, 0,
                    "{frames}×{heads}×{head_dim} on {threads} threads"
                );
            }
        }
    }

    #[test]
    fn refuses_buffers_of_the_wrong_length() {
        let (q, short) = (vec![0f32; 24], vec![0f32; 23]);
        let p = Heads {
            q: &q,
            k: &q,
            v: &short,
            frames: 2,
            heads: 3,
            head_dim: 4,
            scale: 1.0,
        };
        assert!(p.check(&q).is_err());
        assert!(Heads { v: &q, ..p }.check(&q).is_ok());
        assert!(Heads { v: &q, ..p }.check(&short).is_err());
    }
}
