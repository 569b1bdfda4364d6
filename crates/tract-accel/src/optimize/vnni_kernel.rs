//! The u8 × i8 → i32 product behind `VnniMatMul`, on AVX-512 VNNI (`vpdpbusd`).
//!
//! Layout: the weight is tract's `PackedI8K4 { r: 16 }` (per panel of 16 output features, for each
//! group of four `k`, 16 × 4 bytes: one zmm register, one `vpdpbusd` operand as it is); the
//! activation is row-major u8 with `k` contiguous, so four `k` of a row are one broadcast dword;
//! the output is row-major, features contiguous. A tile is `R` rows × `P` panels in `R·P`
//! accumulators (6 × 4: 24 of the 32 zmm registers); a task is one group of `P` panels over a block
//! of rows, so the group's weights (64 features × k) stay in L2 while the rows stream past them.
//!
//! Integer products and sums are exact (wrapping, as tract's kernel), so any order of accumulation
//! gives tract's bits.
//!
//! Goes with the `vnni_matmul` pass (upstream report: `docs/upstream/tract-int8-gemm-tile.md`).

/// Output features per panel: one zmm register of i32.
pub const PANEL: usize = 16;

/// One product: `c[row][j] = start[j] + Σ_k x[row][k] · w[j][k]` for every row and `j < m`.
pub struct Product<'a> {
    /// `rows × k` activations, row-major.
    pub x: &'a [u8],
    pub rows: usize,
    /// A multiple of 4 (checked when the op is built).
    pub k: usize,
    /// The packed weight: `panels` panels of `k · 16` bytes.
    pub w: &'a [u8],
    pub m: usize,
    /// The accumulators' start, per feature, padded with zeros to whole panels.
    pub start: &'a [i32],
}

impl Product<'_> {
    fn panels(&self) -> usize {
        self.m.div_ceil(PANEL)
    }

    #[cfg(target_arch = "x86_64")]
    fn panel_bytes(&self) -> usize {
        self.k * PANEL
    }

    /// Checks every bound the unchecked kernel relies on (products checked for overflow, so a
    /// wrapped size cannot pass for a small one).
    fn check(&self, c: &[i32]) -> Result<(), &'static str> {
        let panels = self.panels();
        if !self.k.is_multiple_of(4) {
            return Err("k is not a multiple of 4");
        }
        let holds = |len: usize, a: usize, b: usize| a.checked_mul(b).is_some_and(|n| len >= n);
        let panel_bytes = self.k.checked_mul(PANEL).ok_or("k is too large")?;
        if !holds(self.x.len(), self.rows, self.k)
            || !holds(self.w.len(), panels, panel_bytes)
            || !holds(self.start.len(), panels, PANEL)
            || !holds(c.len(), self.rows, self.m)
        {
            return Err("a buffer is shorter than the product needs");
        }
        Ok(())
    }
}

/// Whether this CPU runs the kernel.
pub fn supported() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx512f")
            && std::is_x86_feature_detected!("avx512bw")
            && std::is_x86_feature_detected!("avx512vnni")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Computes the product into `c` (`rows × m`, row-major), on the current tract executor's threads.
pub fn multiply(p: &Product, c: &mut [i32]) -> Result<(), &'static str> {
    if !supported() {
        return Err("this CPU has no AVX-512 VNNI");
    }
    p.check(c)?;
    // SAFETY: `supported()` found AVX-512 F/BW/VNNI and `p.check(c)` passed just above: what
    // `x86::multiply` requires.
    #[cfg(target_arch = "x86_64")]
    unsafe {
        x86::multiply(p, c)
    };
    Ok(())
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::super::tasks::{run_tasks, SharedOut};
    use super::*;
    use std::arch::x86_64::*;
    use std::ops::Range;

    /// Rows per micro-tile and panels per group; measured best of 4×4, 6×4, 8×2, 12×2, 16×1 on
    /// Zen 4.
    const TILE_ROWS: usize = 6;
    const GROUP_PANELS: usize = 4;
    /// Rows of one task: enough tiles to amortise a task, few enough to balance two to eight
    /// threads.
    const TASK_ROWS: usize = 8 * TILE_ROWS;

    /// The product as equal tasks (a group of panels × a block of rows) on the pool.
    ///
    /// # Safety
    /// `p.check(c)` passed (every buffer holds what the product reads or writes) and the CPU has
    /// AVX-512 F/BW/VNNI (`supported`).
    pub unsafe fn multiply(p: &Product, c: &mut [i32]) {
        if p.rows == 0 || p.m == 0 {
            return;
        }
        let groups = p.panels().div_ceil(GROUP_PANELS);
        let row_blocks = p.rows.div_ceil(TASK_ROWS);
        let out = SharedOut::new(c);
        run_tasks(groups * row_blocks, |t: usize| {
            let (g, block) = (t / row_blocks, t % row_blocks);
            let rows = block * TASK_ROWS..((block + 1) * TASK_ROWS).min(p.rows);
            // SAFETY: this function's contract is `group`'s but for `c`: `out` borrows `c` until
            // `run_tasks` returns, and task (g, block) writes only its rows × group g's features,
            // which no other task writes.
            unsafe { group(p, g, rows, out.get()) }
        });
    }

    /// One group of up to `GROUP_PANELS` panels over `rows`.
    ///
    /// # Safety
    /// `p.check(c)` passed for the `rows × m` output `c` points to, the CPU has AVX-512 F/BW/VNNI,
    /// `group` is below `p.panels().div_ceil(GROUP_PANELS)`, `rows` is inside `0..p.rows`, and no
    /// other thread reads or writes these rows × the group's features of `c`.
    pub unsafe fn group(p: &Product, group: usize, rows: Range<usize>, c: *mut i32) {
        let first = group * GROUP_PANELS;
        let panels = (p.panels() - first).min(GROUP_PANELS);
        if panels == GROUP_PANELS {
            // SAFETY: this function's contract; panels `first..first + 4` are the group's.
            unsafe { rows_of::<GROUP_PANELS>(p, first, rows, c) }
        } else {
            for panel in first..first + panels {
                // SAFETY: this function's contract; `panel` is one of the group's.
                unsafe { rows_of::<1>(p, panel, rows.clone(), c) }
            }
        }
    }

    /// `P` panels from `first` over `rows`, `TILE_ROWS` at a time, then the remainder.
    ///
    /// # Safety
    /// As `group`'s, for panels `first..first + P` (all below `p.panels()`) instead of a group's.
    unsafe fn rows_of<const P: usize>(p: &Product, first: usize, rows: Range<usize>, c: *mut i32) {
        let mut row = rows.start;
        while row < rows.end {
            let left = rows.end - row;
            // SAFETY: this function's contract is `tile`'s; each tile's rows
            // `row..row + R` stay inside `rows` (`R <= left`).
            unsafe {
                match left {
                    TILE_ROWS.. => tile::<TILE_ROWS, P>(p, first, row, c),
                    5 => tile::<5, P>(p, first, row, c),
                    4 => tile::<4, P>(p, first, row, c),
                    3 => tile::<3, P>(p, first, row, c),
                    2 => tile::<2, P>(p, first, row, c),
                    _ => tile::<1, P>(p, first, row, c),
                }
            }
            row += left.min(TILE_ROWS);
        }
    }

    /// `R` rows from `row` × `P` panels from `first`: the accumulators start at `p.start`, take
    /// `k/4` steps of `vpdpbusd`, and are stored with the features past `m` masked off.
    ///
    /// # Safety
    /// `p.check(c)` passed for the `rows × m` output `c` points to, the CPU has AVX-512 F/BW/VNNI,
    /// `first + P <= p.panels()`, `row + R <= p.rows`, and no other thread reads or writes these
    /// rows × panels of `c`.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    unsafe fn tile<const R: usize, const P: usize>(
        p: &Product,
        first: usize,
        row: usize,
        c: *mut i32,
    ) {
        let x = p.x.as_ptr();
        let w = p.w.as_ptr();
        let mut acc = [[_mm512_setzero_si512(); P]; R];
        for (pi, start) in acc[0].iter_mut().enumerate() {
            // SAFETY: panel `first + pi < panels`, and `start` holds `panels × 16` values (`check`).
            *start =
                unsafe { _mm512_loadu_si512(p.start.as_ptr().add((first + pi) * PANEL).cast()) };
        }
        for r in 1..R {
            acc[r] = acc[0];
        }
        let mut kk = 0;
        while kk < p.k {
            let mut weights = [_mm512_setzero_si512(); P];
            for (pi, wv) in weights.iter_mut().enumerate() {
                // Four k of 16 features: 64 bytes at `kk · 16` into the panel.
                let at = (first + pi) * p.panel_bytes() + kk * PANEL;
                // SAFETY: `kk + 4 <= k`, so the 64 bytes end within panel `first + pi < panels`,
                // and `w` holds `panels × k × 16` bytes (`check`).
                *wv = unsafe { _mm512_loadu_si512(w.add(at).cast()) };
            }
            for (r, row_acc) in acc.iter_mut().enumerate() {
                // SAFETY: row `row + r < rows`, bytes `kk..kk + 4 <= k` of it, and `x` holds
                // `rows × k` bytes (`check`); read unaligned.
                let four = unsafe { x.add((row + r) * p.k + kk).cast::<i32>().read_unaligned() };
                let xs = _mm512_set1_epi32(four);
                for (a, wv) in row_acc.iter_mut().zip(&weights) {
                    *a = _mm512_dpbusd_epi32(*a, xs, *wv);
                }
            }
            kk += 4;
        }
        for (r, row_acc) in acc.iter().enumerate() {
            for (pi, a) in row_acc.iter().enumerate() {
                let j = (first + pi) * PANEL;
                let width = (p.m - j).min(PANEL);
                let mask: __mmask16 = if width == PANEL {
                    0xffff
                } else {
                    (1u16 << width) - 1
                };
                // SAFETY: row `row + r < rows`, features `j..j + width <= m` (the lanes past
                // `width` masked off, not accessed), inside the `rows × m` values of `c`, which
                // only this task writes there (contract).
                unsafe { _mm512_mask_storeu_epi32(c.add((row + r) * p.m + j), mask, *a) };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// tract's `PackedI8K4 { r: 16 }` layout of a `m × k` weight (zero-padded to whole panels).
    fn pack(w: &[i8], m: usize, k: usize) -> Vec<u8> {
        let panels = m.div_ceil(PANEL);
        let mut out = vec![0u8; panels * k * PANEL];
        for j in 0..m {
            for kk in 0..k {
                let (panel, lane) = (j / PANEL, j % PANEL);
                out[panel * k * PANEL + (kk / 4) * PANEL * 4 + lane * 4 + kk % 4] =
                    w[j * k + kk] as u8;
            }
        }
        out
    }

    fn check_shape(m: usize, k: usize, rows: usize, threads: usize) {
        let mut rng = crate::optimize::test_rng(m as u64 * 31 + k as u64 * 7 + rows as u64);
        let x: Vec<u8> = (0..rows * k).map(|_| rng() as u8).collect();
        let w: Vec<i8> = (0..m * k).map(|_| rng() as i8).collect();
        let mut start: Vec<i32> = (0..m).map(|_| rng() as i32 >> 8).collect();
        start.resize(m.div_ceil(PANEL) * PANEL, 0);
        let packed = pack(&w, m, k);
        let product = Product {
            x: &x,
            rows,
            k,
            w: &packed,
            m,
            start: &start,
        };
        let mut got = vec![0i32; rows * m];
        let executor = tract_linalg::multithread::Executor::multithread(threads);
        tract_linalg::multithread::multithread_tract_scope(executor, || {
            multiply(&product, &mut got).unwrap()
        });
        for row in 0..rows {
            for j in 0..m {
                let want = (0..k).fold(start[j], |acc, kk| {
                    acc.wrapping_add(x[row * k + kk] as i32 * w[j * k + kk] as i32)
                });
                assert_eq!(
                    got[row * m + j],
                    want,
                    "{m}×{k}×{rows}: row {row}, feature {j}"
                );
            }
        }
    }

    /// Shapes around every edge: features not a whole panel or group, rows not a whole tile or
    /// task, one row, k of one step; on one and two threads.
    #[test]
    fn matches_the_scalar_product_around_every_edge() {
        if !supported() {
            // The pass never builds the op on such a CPU (`vnni_matmul::replace_matmuls`).
            assert!(multiply(
                &Product {
                    x: &[],
                    rows: 0,
                    k: 4,
                    w: &[],
                    m: 0,
                    start: &[],
                },
                &mut []
            )
            .is_err());
            eprintln!("no AVX-512 VNNI here: only the refusal is checked");
            return;
        }
        for (m, k, rows) in [
            (16, 4, 1),
            (64, 32, 6),
            (80, 64, 7),
            (1, 8, 49),
            (100, 36, 53),
            (256, 128, 97),
        ] {
            for threads in [1, 2] {
                check_shape(m, k, rows, threads);
            }
        }
    }

    #[test]
    fn refuses_short_buffers() {
        let product = Product {
            x: &[0; 7],
            rows: 2,
            k: 4,
            w: &[0; 64],
            m: 16,
            start: &[0; 16],
        };
        let c = [0; 32];
        assert!(product.check(&c).is_err());
        let unaligned_k = Product {
            // Every buffer long enough: only k is wrong.
            k: 6,
            x: &[0; 12],
            w: &[0; 96],
            ..product
        };
        assert!(unaligned_k.check(&c).is_err());
    }
}
