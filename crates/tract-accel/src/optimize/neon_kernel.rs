//! The i8 × i8 → i32 product behind `NeonMatMul`, for ARM64 cores without the dot product
//! (Cortex-A72, A53, A57): 8-bit lanes multiplied by `SMULL`/`SMLAL2` into 16-bit pairs, which
//! `SADALP` adds into 32-bit accumulators: 16 multiply-adds per 3 instructions, where tract's
//! kernel widens each byte to 16 bits first (`SSHLL`, then `SMLAL`/`SMLAL2`: 4 per instruction).
//!
//! Exactness: a 16-bit lane holds the sum of two products `x·w + x'·w'`. With `x` in −128..=127 and
//! `w` in −127..=127 each product is at most 128·127 = 16256 in magnitude, and two of them 32512,
//! which fits i16; a weight of −128 (−128·−128 = 16384, twice 32768) would not, so the pass keeps
//! tract's op for any weight holding one ([`pack_weight_from_panels`] refuses it). The i32 sums
//! wrap, as tract's do, so any order of accumulation gives tract's bits.
//!
//! Layout: the activation is copied once per product into rows of `kp` bytes (`k` rounded up to 16,
//! zero-padded, rows padded to whole tiles): from a projection's u8 input as `x − 128`, as tract's
//! `OffsetU8asI8` ([`offset_activation`]), or from a convolution's patches as tract's `Im2col`
//! packed them ([`unpack_activation`]). The weight is packed once at load into panels of 4
//! features: per 16 `k`, 4 × 16 bytes. A tile is 4 rows × 4 features in 16 accumulators of 4
//! partial sums each (26 of the 32 vector registers with the operands), reduced by `ADDP` once at
//! the end of `k`. The output is row-major (a projection's features on the last axis) or
//! feature-major (a convolution's `NCHW`: frames on the last axis), [`Layout`].
//!
//! Goes with the `neon_matmul` pass (upstream report: `docs/upstream/tract-arm64-i8-no-dotprod.md`).

use super::tasks::{run_tasks, SharedOut};

/// Output features per panel, and rows per tile.
pub const PANEL: usize = 4;
pub const TILE_ROWS: usize = 4;
/// `k` per step: one 16-byte register of each operand.
pub const K_STEP: usize = 16;
/// Panels per task: 64 features; rows per task: enough tiles to amortise a task, few enough to
/// balance four threads on the shortest utterances.
const GROUP_PANELS: usize = 16;
const TASK_ROWS: usize = 8 * TILE_ROWS;

/// Where `c[row][j]` is in the output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// `c[row · m + j]`: features on the last axis (the projections).
    RowMajor,
    /// `c[j · rows + row]`: rows (frames) on the last axis (the convolutions' `NCHW` output).
    FeatureMajor,
}

/// One product: `c[row][j] = start[j] + Σ_k x[row][k] · w[j][k]` for every row and `j < m`.
pub struct Product<'a> {
    /// `rows` rounded up to whole tiles, × `kp` bytes (see [`offset_activation`]).
    pub x: &'a [i8],
    pub rows: usize,
    /// `k` rounded up to a multiple of [`K_STEP`], the padding zero in `x` or `w`.
    pub kp: usize,
    /// The packed weight: `m.div_ceil(PANEL)` panels of `kp · PANEL` bytes
    /// ([`pack_weight_from_panels`]).
    pub w: &'a [i8],
    pub m: usize,
    /// The accumulators' start, per feature, padded with zeros to whole panels.
    pub start: &'a [i32],
    pub layout: Layout,
}

impl Product<'_> {
    fn panels(&self) -> usize {
        self.m.div_ceil(PANEL)
    }

    /// Checks every bound the unchecked kernel relies on (products checked for overflow, so a
    /// wrapped size cannot pass for a small one).
    fn check(&self, c: &[i32]) -> Result<(), &'static str> {
        if !self.kp.is_multiple_of(K_STEP) {
            return Err("kp is not a multiple of 16");
        }
        let holds = |len: usize, a: usize, b: usize| a.checked_mul(b).is_some_and(|n| len >= n);
        let panel_bytes = self.kp.checked_mul(PANEL).ok_or("k is too large")?;
        let tiled_rows = self.rows.div_ceil(TILE_ROWS) * TILE_ROWS;
        if !holds(self.x.len(), tiled_rows, self.kp)
            || !holds(self.w.len(), self.panels(), panel_bytes)
            || !holds(self.start.len(), self.panels(), PANEL)
            || !holds(c.len(), self.rows, self.m)
        {
            return Err("a buffer is shorter than the product needs");
        }
        Ok(())
    }
}

/// `k` rounded up to whole steps.
pub fn padded_k(k: usize) -> usize {
    k.div_ceil(K_STEP) * K_STEP
}

/// The `m × k` weight `w(j, k)` in the kernel's panels (zero-padded to whole panels and steps), or
/// `None` if it holds a −128, whose products the kernel's 16-bit pairs cannot hold: the layout by
/// definition, which the tests hold [`pack_weight_from_panels`] to.
#[cfg(test)]
pub fn pack_weight(m: usize, k: usize, w: impl Fn(usize, usize) -> i8) -> Option<Vec<i8>> {
    let kp = padded_k(k);
    let mut out = vec![0i8; m.div_ceil(PANEL) * kp * PANEL];
    for j in 0..m {
        let panel = &mut out[(j / PANEL) * kp * PANEL..][..kp * PANEL];
        for kk in 0..k {
            let v = w(j, kk);
            if v == i8::MIN {
                return None;
            }
            panel[(kk / K_STEP) * K_STEP * PANEL + (j % PANEL) * K_STEP + kk % K_STEP] = v;
        }
    }
    Some(out)
}

/// The `m × k` weight in the kernel's panels (zero-padded to whole panels and steps; the tests'
/// `pack_weight` defines the layout), from tract's `PackedFormat`: panels of `r` features
/// `panel_bytes` apart, each `k` one record of `r` bytes. `None` if a weight is −128 (module doc) or
/// `src` is shorter than its panels. One pass per byte without divisions: it runs at load, over
/// every weight of the model.
pub fn pack_weight_from_panels(
    src: &[u8],
    r: usize,
    panel_bytes: usize,
    m: usize,
    k: usize,
) -> Option<Vec<i8>> {
    let kp = padded_k(k);
    let mut out = vec![0i8; m.div_ceil(PANEL) * kp * PANEL];
    for p in 0..m.div_ceil(r) {
        let panel = src.get(p * panel_bytes..)?.get(..k * r)?;
        if panel.contains(&(i8::MIN as u8)) {
            return None;
        }
        for (kk, record) in panel.chunks_exact(r).enumerate() {
            let at = (kk / K_STEP) * K_STEP * PANEL + kk % K_STEP;
            for (lane, &v) in record.iter().enumerate().take(m - p * r) {
                let j = p * r + lane;
                out[(j / PANEL) * kp * PANEL + (j % PANEL) * K_STEP + at] = v as i8;
            }
        }
    }
    Some(out)
}

/// The `rows × k` u8 activation as the kernel reads it: `x − 128` (tract's `OffsetU8asI8`: the
/// top bit flipped), rows of `kp` bytes zero-padded, and zero rows up to a whole tile.
pub fn offset_activation(x: &[u8], rows: usize, k: usize) -> Vec<i8> {
    let kp = padded_k(k);
    let mut out = vec![0i8; rows.div_ceil(TILE_ROWS) * TILE_ROWS * kp];
    for (dst, src) in out.chunks_exact_mut(kp).zip(x.chunks_exact(k).take(rows)) {
        dst.iter_mut()
            .zip(src)
            .for_each(|(d, &s)| *d = (s ^ 0x80) as i8);
    }
    out
}

/// A convolution's patches (`rows × k` i8) as tract's `Im2col` packs them for its non-dot-product
/// kernel (`PackedFormat`: panels of `r` rows `panel_bytes` apart, each `k` one record of `r`
/// bytes) in the kernel's rows of `kp` bytes, zero-padded, with zero rows up to a whole tile. `None`
/// if `src` is shorter than its panels.
pub fn unpack_activation(
    src: &[u8],
    r: usize,
    panel_bytes: usize,
    rows: usize,
    k: usize,
) -> Option<Vec<i8>> {
    let kp = padded_k(k);
    let mut out = vec![0i8; rows.div_ceil(TILE_ROWS) * TILE_ROWS * kp];
    if r == 0 {
        return (rows == 0).then_some(out);
    }
    for (p, dst) in out.chunks_mut(r * kp).take(rows.div_ceil(r)).enumerate() {
        let panel = src.get(p * panel_bytes..)?.get(..k * r)?;
        // Row by row: sequential writes, reads `r` bytes apart within the panel (in L1: `k · r`
        // bytes).
        for (lane, row) in dst.chunks_exact_mut(kp).take(rows - p * r).enumerate() {
            row.iter_mut()
                .zip(panel.chunks_exact(r))
                .for_each(|(d, record)| *d = record[lane] as i8);
        }
    }
    Some(out)
}

/// Whether the pass should use the kernel on this CPU: ARM64 without the dot product (tract's
/// `SDOT` kernels serve the cores with it).
pub fn supported() -> bool {
    #[cfg(target_arch = "aarch64")]
    {
        !std::arch::is_aarch64_feature_detected!("dotprod")
    }
    #[cfg(not(target_arch = "aarch64"))]
    {
        false
    }
}

/// The tile kernels: NEON (ARM64's baseline), and a portable twin with the same contract, which
/// runs elsewhere (the unit tests on x86-64) and is the NEON one's reference on ARM64.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kernel {
    #[cfg(target_arch = "aarch64")]
    Neon,
    // On ARM64 only the tests run the twin.
    #[cfg_attr(all(target_arch = "aarch64", not(test)), allow(dead_code))]
    Portable,
}

impl Kernel {
    const NATIVE: Kernel = {
        #[cfg(target_arch = "aarch64")]
        {
            Kernel::Neon
        }
        #[cfg(not(target_arch = "aarch64"))]
        {
            Kernel::Portable
        }
    };
}

/// Computes the product into `c` (`rows × m`, row-major), on the current tract executor's threads.
pub fn multiply(p: &Product, c: &mut [i32]) -> Result<(), &'static str> {
    multiply_on(Kernel::NATIVE, p, c)
}

fn multiply_on(kernel: Kernel, p: &Product, c: &mut [i32]) -> Result<(), &'static str> {
    p.check(c)?;
    if p.rows == 0 || p.m == 0 {
        return Ok(());
    }
    let groups = p.panels().div_ceil(GROUP_PANELS);
    let row_blocks = p.rows.div_ceil(TASK_ROWS);
    let out = SharedOut::new(c);
    run_tasks(groups * row_blocks, |t: usize| {
        let (g, block) = (t / row_blocks, t % row_blocks);
        let rows = block * TASK_ROWS..((block + 1) * TASK_ROWS).min(p.rows);
        let first = g * GROUP_PANELS;
        for panel in first..(first + GROUP_PANELS).min(p.panels()) {
            for row in rows.clone().step_by(TILE_ROWS) {
                // SAFETY: `p.check(c)` passed above; `panel < p.panels()` and `row < p.rows`; `out`
                // borrows `c` until `run_tasks` returns, and this task writes only its rows ×
                // group g's features (the tile's rows past its block are past `p.rows`, unwritten),
                // which no other task writes.
                unsafe {
                    match kernel {
                        #[cfg(target_arch = "aarch64")]
                        Kernel::Neon => neon::tile(p, panel, row, out.get()),
                        Kernel::Portable => portable_tile(p, panel, row, out.get()),
                    }
                }
            }
        }
    });
    Ok(())
}

/// Stores one tile's sums (`sums[r][f]`: row `row + r`, feature `panel · 4 + f`, already with their
/// start): the rows below `rows` and the features below `m` only, in the product's layout.
///
/// # Safety
/// `c` points to the `p.rows × p.m` output, `row < p.rows`, `panel < p.panels()`, and no other
/// thread reads or writes these rows × features.
unsafe fn store_tile(
    p: &Product,
    panel: usize,
    row: usize,
    sums: &[[i32; PANEL]; TILE_ROWS],
    c: *mut i32,
) {
    let j = panel * PANEL;
    let (rows, features) = ((p.rows - row).min(TILE_ROWS), (p.m - j).min(PANEL));
    match p.layout {
        Layout::RowMajor => {
            for (r, sums) in sums.iter().enumerate().take(rows) {
                // SAFETY: features `j..j + features <= m` of row `row + r < rows`: inside the
                // output (contract).
                unsafe {
                    let to = c.add((row + r) * p.m + j);
                    if features == PANEL {
                        // A whole panel as one store, not a copy of a run-time length.
                        to.cast::<[i32; PANEL]>().write_unaligned(*sums);
                    } else {
                        to.copy_from_nonoverlapping(sums.as_ptr(), features);
                    }
                }
            }
        }
        Layout::FeatureMajor => {
            for f in 0..features {
                let column: [i32; TILE_ROWS] = sums.map(|row| row[f]);
                // SAFETY: rows `row..row + rows <= p.rows` of feature `j + f < m`: inside the
                // output (contract).
                unsafe {
                    let to = c.add((j + f) * p.rows + row);
                    if rows == TILE_ROWS {
                        to.cast::<[i32; TILE_ROWS]>().write_unaligned(column);
                    } else {
                        to.copy_from_nonoverlapping(column.as_ptr(), rows);
                    }
                }
            }
        }
    }
}

/// The portable twin of `neon::tile`: the same sums, the same stores.
///
/// # Safety
/// As `neon::tile`'s.
unsafe fn portable_tile(p: &Product, panel: usize, row: usize, c: *mut i32) {
    let w = &p.w[panel * p.kp * PANEL..][..p.kp * PANEL];
    let mut tile = [[0i32; PANEL]; TILE_ROWS];
    for (r, sums) in tile.iter_mut().enumerate() {
        // The tile's rows past `rows` are zeros in `x` (`check`), and not stored.
        let x = &p.x[(row + r) * p.kp..][..p.kp];
        for (f, sum) in sums.iter_mut().enumerate() {
            *sum = x
                .iter()
                .enumerate()
                .fold(p.start[panel * PANEL + f], |acc, (kk, &a)| {
                    let b = w[(kk / K_STEP) * K_STEP * PANEL + f * K_STEP + kk % K_STEP];
                    acc.wrapping_add(a as i32 * b as i32)
                });
        }
    }
    // SAFETY: this function's contract.
    unsafe { store_tile(p, panel, row, &tile, c) };
}

#[cfg(target_arch = "aarch64")]
mod neon {
    use super::*;
    use std::arch::aarch64::*;

    /// Rows `row..row + 4` × the 4 features of `panel` (fewer rows in the last tile, where `rows`
    /// is not a whole number of tiles: the padding rows are not multiplied).
    ///
    /// # Safety
    /// `p.check(c)` passed for the `rows × m` output `c` points to, `panel < p.panels()`,
    /// `row < p.rows`, and no other thread reads or writes these rows × features of `c`.
    pub unsafe fn tile(p: &Product, panel: usize, row: usize, c: *mut i32) {
        // SAFETY: the contract, passed on.
        unsafe {
            match p.rows - row {
                1 => tile_rows::<1>(p, panel, row, c),
                2 => tile_rows::<2>(p, panel, row, c),
                3 => tile_rows::<3>(p, panel, row, c),
                _ => tile_rows::<TILE_ROWS>(p, panel, row, c),
            }
        }
    }

    /// `ROWS` (1 to 4) rows from `row` × the 4 features of `panel`: `kp / 16` steps of `4 · ROWS`
    /// `SMULL`, `SMLAL2` and `SADALP`, then the accumulators reduced to 4 sums per row by `ADDP`.
    ///
    /// # Safety
    /// As `tile`'s, and `row + ROWS <= p.rows.div_ceil(4) · 4` (rows inside the tiled `x`).
    // The intrinsics' safe calls need NEON listed here, though every ARM64 target has it.
    #[target_feature(enable = "neon")]
    unsafe fn tile_rows<const ROWS: usize>(p: &Product, panel: usize, row: usize, c: *mut i32) {
        // SAFETY: `row < rows`, so rows `row..row + ROWS` are inside the tiled rows `x` holds
        // (`check`).
        let x = unsafe { p.x.as_ptr().add(row * p.kp) };
        // SAFETY: `panel < panels`, whose `kp · 4` bytes `w` holds (`check`).
        let w = unsafe { p.w.as_ptr().add(panel * p.kp * PANEL) };
        let mut acc = [[vdupq_n_s32(0); PANEL]; ROWS];
        let mut kk = 0;
        while kk < p.kp {
            // SAFETY: `kk + 16 <= kp` (`kp` a multiple of 16): 16 bytes inside each of the tile's
            // rows, and inside the panel's step `kk / 16` (64 bytes from `kk · 4`).
            let (a, b): ([int8x16_t; ROWS], [int8x16_t; PANEL]) = unsafe {
                (
                    std::array::from_fn(|r| vld1q_s8(x.add(r * p.kp + kk))),
                    std::array::from_fn(|f| vld1q_s8(w.add(kk * PANEL + f * K_STEP))),
                )
            };
            for (acc_r, a_r) in acc.iter_mut().zip(&a) {
                for (acc_rf, b_f) in acc_r.iter_mut().zip(&b) {
                    let pairs = vmull_s8(vget_low_s8(*a_r), vget_low_s8(*b_f));
                    let pairs = vmlal_high_s8(pairs, *a_r, *b_f);
                    *acc_rf = vpadalq_s16(*acc_rf, pairs);
                }
            }
            kk += K_STEP;
        }
        // SAFETY: `panel < panels`, whose 4 values `start` holds (`check`).
        let start = unsafe { vld1q_s32(p.start.as_ptr().add(panel * PANEL)) };
        let mut tile = [[0i32; PANEL]; TILE_ROWS];
        for ([f0, f1, f2, f3], out) in acc.iter().zip(&mut tile) {
            let sums = vaddq_s32(
                start,
                vpaddq_s32(vpaddq_s32(*f0, *f1), vpaddq_s32(*f2, *f3)),
            );
            // SAFETY: `out` holds 4 i32.
            unsafe { vst1q_s32(out.as_mut_ptr(), sums) };
        }
        // SAFETY: this function's contract (`store_tile` stores the rows below `rows` only, all
        // of them among these `ROWS`).
        unsafe { store_tile(p, panel, row, &tile, c) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `start[j] + Σ_k (x − 128) · w` on the unpacked operands, wrapping as i32 does.
    fn reference(x: &[u8], w: &[i8], start: &[i32], rows: usize, k: usize, m: usize) -> Vec<i32> {
        let mut c = vec![0i32; rows * m];
        for row in 0..rows {
            for j in 0..m {
                c[row * m + j] = (0..k).fold(start[j], |acc, kk| {
                    acc.wrapping_add((x[row * k + kk] as i32 - 128) * w[j * k + kk] as i32)
                });
            }
        }
        c
    }

    /// Packs the operands, multiplies on `kernel` with `threads`, and compares with `reference`.
    fn check(kernel: Kernel, x: &[u8], w: &[i8], start: &[i32], shape: (usize, usize, usize)) {
        let (m, k, rows) = shape;
        let packed = pack_weight(m, k, |j, kk| w[j * k + kk]).expect("no −128 in the weight");
        let xs = offset_activation(x, rows, k);
        let mut padded_start = start.to_vec();
        padded_start.resize(m.div_ceil(PANEL) * PANEL, 0);
        let want = reference(x, w, start, rows, k, m);
        for (layout, threads) in [Layout::RowMajor, Layout::FeatureMajor]
            .into_iter()
            .flat_map(|l| [(l, 1), (l, 2)])
        {
            let product = Product {
                x: &xs,
                rows,
                kp: padded_k(k),
                w: &packed,
                m,
                start: &padded_start,
                layout,
            };
            let mut got = vec![0i32; rows * m];
            let executor = tract_linalg::multithread::Executor::multithread(threads);
            tract_linalg::multithread::multithread_tract_scope(executor, || {
                multiply_on(kernel, &product, &mut got).unwrap()
            });
            for row in 0..rows {
                for j in 0..m {
                    let at = match layout {
                        Layout::RowMajor => row * m + j,
                        Layout::FeatureMajor => j * rows + row,
                    };
                    assert_eq!(
                        got[at],
                        want[row * m + j],
                        "{kernel:?} {layout:?}, {m}×{k}×{rows}, {threads} threads: row {row}, feature {j}"
                    );
                }
            }
        }
    }

    /// The kernels this target has: the portable twin everywhere, NEON on ARM64.
    fn kernels() -> Vec<Kernel> {
        let mut kernels = vec![Kernel::Portable];
        if Kernel::NATIVE != Kernel::Portable {
            kernels.push(Kernel::NATIVE);
        }
        kernels
    }

    /// Shapes around every edge: features not a whole panel or group, rows not a whole tile or
    /// task, `k` not a whole step (and below one), one row, one feature.
    #[test]
    fn matches_the_scalar_product_around_every_edge() {
        for (m, k, rows) in [
            (4, 16, 4),
            (1, 1, 1),
            (5, 17, 3),
            (7, 33, 5),
            (64, 64, 32),
            (67, 100, 37),
            (130, 257, 70),
        ] {
            let mut rng = crate::optimize::test_rng(m as u64 * 31 + k as u64 * 7 + rows as u64);
            let x: Vec<u8> = (0..rows * k).map(|_| rng() as u8).collect();
            // −127..=127: a −128 is refused at packing (tested below).
            let w: Vec<i8> = (0..m * k)
                .map(|_| ((rng() % 255) as i16 - 127) as i8)
                .collect();
            let start: Vec<i32> = (0..m).map(|_| rng() as i32 >> 8).collect();
            for kernel in kernels() {
                check(kernel, &x, &w, &start, (m, k, rows));
            }
        }
    }

    /// The largest products: every pair in a 16-bit lane at ±2 · 128 · 127 (an activation of 0 or
    /// 255 is −128 or 127 once offset, against weights of ±127, and alternating signs), long `k`,
    /// and starts that make the i32 sums wrap.
    #[test]
    fn extreme_operands_fill_the_sixteen_bit_pairs_exactly() {
        let (m, k, rows) = (9, 4099, 6);
        let starts = [vec![0; m], vec![i32::MAX - 5; m], vec![i32::MIN + 3; m]];
        // Activation and weight by element index.
        type Case = (fn(usize) -> u8, fn(usize) -> i8);
        let cases: [Case; 4] = [
            (|_| 0, |_| -127),
            (|_| 255, |_| 127),
            (|_| 0, |_| 127),
            (
                |i| if i % 2 == 0 { 0 } else { 255 },
                |i| if i % 2 == 0 { -127 } else { 127 },
            ),
        ];
        for (xf, wf) in cases {
            let x: Vec<u8> = (0..rows * k).map(xf).collect();
            let w: Vec<i8> = (0..m * k).map(wf).collect();
            for start in &starts {
                for kernel in kernels() {
                    check(kernel, &x, &w, start, (m, k, rows));
                }
            }
        }
    }

    #[test]
    fn a_weight_of_minus_128_is_refused() {
        assert!(pack_weight(3, 20, |j, kk| if (j, kk) == (2, 19) { -128 } else { 1 }).is_none());
        assert!(pack_weight(3, 20, |_, _| -127).is_some());
    }

    /// Packing puts feature `j`, `k` at panel `j / 4`, step `k / 16`, lane `j % 4`, byte `k % 16`,
    /// and the activation's bytes at `x − 128`, zero-padded.
    #[test]
    fn packs_the_documented_layouts() {
        let packed = pack_weight(5, 18, |j, kk| (j * 20 + kk) as i8).unwrap();
        assert_eq!(packed.len(), 2 * 32 * PANEL);
        assert_eq!(packed[K_STEP + 3], 23); // feature 1, k 3
        assert_eq!(packed[K_STEP * PANEL + 2 * K_STEP + 1], 57); // feature 2, k 17
        assert_eq!(packed[32 * PANEL + K_STEP * PANEL + 1], 97); // feature 4, k 17
        assert_eq!(packed[K_STEP * PANEL + 2], 0); // feature 0, k 18: padding
        let xs = offset_activation(&[0, 128, 255, 7, 8, 9], 2, 3);
        assert_eq!(xs.len(), TILE_ROWS * K_STEP);
        assert_eq!(&xs[..4], &[-128, 0, 127, 0]);
        assert_eq!(&xs[K_STEP..K_STEP + 4], &[-121, -120, -119, 0]);
        assert!(xs[2 * K_STEP..].iter().all(|&v| v == 0));
    }

    /// tract's `PackedFormat` patches (panels of `r` rows, each `k` a record of `r` bytes, panels
    /// padded to `panel_bytes`) land in the kernel's rows, zero-padded; a short blob is refused.
    #[test]
    fn unpacks_packed_patches_into_rows() {
        let (rows, k, r, panel_bytes) = (11usize, 19usize, 8usize, 19 * 8 + 16);
        let value = |row: usize, kk: usize| (row * 23 + kk) as u8;
        let mut src = vec![0xffu8; rows.div_ceil(r) * panel_bytes];
        for row in 0..rows {
            for kk in 0..k {
                src[(row / r) * panel_bytes + kk * r + row % r] = value(row, kk);
            }
        }
        let xs = unpack_activation(&src, r, panel_bytes, rows, k).unwrap();
        let kp = padded_k(k);
        assert_eq!(xs.len(), 12 * kp);
        for row in 0..12 {
            for kk in 0..kp {
                let want = if row < rows && kk < k {
                    value(row, kk) as i8
                } else {
                    0
                };
                assert_eq!(xs[row * kp + kk], want, "row {row}, k {kk}");
            }
        }
        assert!(unpack_activation(&src[..src.len() - 17], r, panel_bytes, rows, k).is_none());
    }

    #[test]
    fn refuses_short_buffers() {
        let product = Product {
            x: &[0; 63],
            rows: 3,
            kp: 16,
            w: &[0; 64],
            m: 4,
            start: &[0; 4],
            layout: Layout::RowMajor,
        };
        assert!(product.check(&[0; 12]).is_err());
        let whole = Product {
            x: &[0; 64],
            ..product
        };
        assert!(whole.check(&[0; 12]).is_ok());
        assert!(whole.check(&[0; 11]).is_err());
        let unpadded_k = Product {
            kp: 12,
            x: &[0; 48],
            w: &[0; 48],
            ..product
        };
        assert!(unpadded_k.check(&[0; 12]).is_err());
    }
}
