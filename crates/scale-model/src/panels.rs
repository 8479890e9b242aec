//! Weight matrices packed once for the fused engine's products, and the AVX2 kernel that reads them.
//!
//! A general matrix-product routine packs its right operand into cache-sized panels on every call.
//! In the fused engine the right operand is always a weight matrix that never changes, and each call
//! has only 128 rows to spread that packing over: at STATE's tiny config the packing took 13% of the
//! forward pass. Here each weight matrix is laid out once, at engine construction, as panels of 16
//! output columns (`[panel][k][16]`, zero-padded), and a register-blocked kernel multiplies 6 rows
//! of row-major activations by one panel: 12 AVX2 accumulators (6 rows × 16 columns), two panel
//! loads and six broadcasts per step of k, the classical 6×16 shape for 16 vector registers.
//!
//! Shapes: activations `a` [m, k] row-major, weights [k, n], output [m, n] row-major.

/// Output columns per panel (two AVX2 registers of float32).
const NR: usize = 16;
/// Rows per kernel call (12 accumulators + 2 panel registers + 1 broadcast = 15 of 16 registers).
const MR: usize = 6;
/// Rows per AVX-512 kernel call: one register of 16 float32 per row (12 accumulators, the panel
/// register and a broadcast; AVX-512 has 32 registers).
const MR512: usize = 12;
/// Steps of k per pass over the rows: one panel slice is `KC · NR · 4` = 16 KiB, resident in L1
/// while every row block of the call streams past it.
const KC: usize = 256;

/// A weight matrix [k, n] as panels of [`NR`] columns: element (i, j) at `(j / NR) · k · NR + i · NR +
/// j % NR`; the columns past n in the last panel are zero.
#[derive(Debug, Clone)]
pub(crate) struct Panels {
    k: usize,
    n: usize,
    data: Vec<f32>,
}

impl Panels {
    /// Packs row-major `w` [k, n].
    pub(crate) fn pack(w: &[f32], k: usize, n: usize) -> Panels {
        assert_eq!(w.len(), k * n, "weights are not [k, n]");
        let n_panels = n.div_ceil(NR);
        let mut data = vec![0.0f32; n_panels * k * NR];
        for (p, panel) in data.chunks_exact_mut(k * NR).enumerate() {
            let (j0, j1) = (p * NR, ((p + 1) * NR).min(n));
            for (i, dst) in panel.chunks_exact_mut(NR).enumerate() {
                dst[..j1 - j0].copy_from_slice(&w[i * n + j0..i * n + j1]);
            }
        }
        Panels { k, n, data }
    }

    /// `out = a · W`, then the epilogue's addend, bias and ReLU; `a` [m, k], `out` [m, n], both
    /// row-major. Needs AVX2 and FMA ([`available`]).
    pub(crate) fn matmul(&self, a: &[f32], m: usize, out: &mut [f32], epilogue: Epilogue<'_>) {
        self.product(a, m, out, epilogue, avx512())
    }

    /// [`matmul`](Self::matmul) with the kernel chosen: the AVX-512 one when `wide`.
    fn product(&self, a: &[f32], m: usize, out: &mut [f32], epilogue: Epilogue<'_>, wide: bool) {
        let (k, n) = (self.k, self.n);
        assert!(available(), "packed products need AVX2 and FMA");
        assert!(!wide || avx512_present(), "the wide kernel needs AVX-512F");
        assert!(a.len() >= m * k && out.len() >= m * n, "matmul shapes");
        if let Addend::Matrix(src) = epilogue.addend {
            assert!(src.len() >= m * n, "addend shape");
        }
        if let Some(bias) = epilogue.bias {
            assert_eq!(bias.len(), n, "bias shape");
        }
        if k == 0 {
            // no slice of k to run the epilogue in: the product is zero, the epilogue runs in passes
            let out = &mut out[..m * n];
            if !epilogue.addend.load(out) {
                out.fill(0.0);
            }
            return epilogue.finish(out, n);
        }
        // with AVX-512, 12 rows of one 16-lane register each: twice the multiply-adds per load
        let block_rows = if wide { MR512 } else { MR };
        for k0 in (0..k).step_by(KC) {
            let kc = KC.min(k - k0);
            let last = k0 + kc == k;
            // later slices of k always add to what the earlier ones wrote
            let src = match (k0, epilogue.addend) {
                (0, Addend::None) => Source::None,
                (0, Addend::Matrix(src)) => Source::Matrix(src.as_ptr()),
                _ => Source::Out,
            };
            for (p, panel) in self.data.chunks_exact(k * NR).enumerate() {
                let cols = NR.min(n - p * NR);
                let b = &panel[k0 * NR..(k0 + kc) * NR];
                // bias and ReLU once, after the last slice
                let bias = match (last, epilogue.bias) {
                    (true, Some(bias)) => bias[p * NR..].as_ptr(),
                    _ => std::ptr::null(),
                };
                let tail = Tail {
                    bias,
                    relu: last && epilogue.relu,
                };
                let mut i0 = 0;
                while i0 < m {
                    let rows = block_rows.min(m - i0);
                    let a_block = &a[i0 * k + k0..];
                    let at = i0 * n + p * NR;
                    // the block's addend rows, stride n like the output's
                    let src_block = match src {
                        Source::Matrix(p) => Source::Matrix(p.wrapping_add(at)),
                        other => other,
                    };
                    let c_block = &mut out[at..];
                    // SAFETY: AVX2/FMA (and AVX-512F when `wide`) checked above; `a_block` holds `rows` rows of stride k with kc
                    // values each from its start, `b` holds kc·NR values, `c_block` holds `rows` rows
                    // of stride n with `cols` values each, and so does a `Source::Matrix` block (a
                    // matrix of the output's shape, asserted above); `bias`,
                    // when not null, holds `cols` values (the bias has n).
                    unsafe {
                        if wide {
                            kernel512_rows(rows, a_block, k, b, kc, c_block, n, cols, src_block, tail);
                            i0 += rows;
                            continue;
                        }
                        match rows {
                            6 => kernel::<6>(a_block, k, b, kc, c_block, n, cols, src_block, tail),
                            5 => kernel::<5>(a_block, k, b, kc, c_block, n, cols, src_block, tail),
                            4 => kernel::<4>(a_block, k, b, kc, c_block, n, cols, src_block, tail),
                            3 => kernel::<3>(a_block, k, b, kc, c_block, n, cols, src_block, tail),
                            2 => kernel::<2>(a_block, k, b, kc, c_block, n, cols, src_block, tail),
                            _ => kernel::<1>(a_block, k, b, kc, c_block, n, cols, src_block, tail),
                        }
                    }
                    i0 += rows;
                }
            }
        }
    }
}

/// What a product adds to `a · W` as it stores its output, in this order: an addend, the bias row,
/// then ReLU. Done in the kernel's store, these cost no extra pass over the output; the sums are the
/// ones separate passes would make, in the same order.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Epilogue<'a> {
    pub(crate) addend: Addend<'a>,
    /// [n], added to every row.
    pub(crate) bias: Option<&'a [f32]>,
    pub(crate) relu: bool,
}

impl Epilogue<'_> {
    /// The bias and ReLU as passes over `out` [R, n], for a product that did not run them as it
    /// stored (the addend must be in `out` already: [`Addend::load`]).
    pub(crate) fn finish(&self, out: &mut [f32], n: usize) {
        if let Some(b) = self.bias {
            for row in out.chunks_exact_mut(n) {
                for (o, &bi) in row.iter_mut().zip(b) {
                    *o += bi;
                }
            }
        }
        if self.relu {
            out.iter_mut().for_each(|o| *o = o.max(0.0));
        }
    }
}

/// The matrix a product adds its result to.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) enum Addend<'a> {
    /// None: `out = a · W`.
    #[default]
    None,
    /// The output's previous contents: `out += a · W`.
    Out,
    /// Another matrix of the output's shape [m, n], row-major: `out = src + a · W`.
    Matrix(&'a [f32]),
}

impl Addend<'_> {
    /// Puts the addend in `out` for a product that then adds onto `out`; false when there is none
    /// (the product must overwrite `out`).
    pub(crate) fn load(self, out: &mut [f32]) -> bool {
        match self {
            Addend::None => false,
            Addend::Out => true,
            Addend::Matrix(src) => {
                out.copy_from_slice(&src[..out.len()]);
                true
            }
        }
    }
}

/// Where the kernel's addend rows are: none, the output block itself, or a matrix's block (stride as
/// the output's).
#[derive(Clone, Copy)]
enum Source {
    None,
    Out,
    Matrix(*const f32),
}

/// The kernel's store step after the last slice of k: a bias (the panel's first column, or null) and ReLU.
#[derive(Clone, Copy)]
struct Tail {
    bias: *const f32,
    relu: bool,
}

/// Whether this CPU has AVX2 and FMA (the packed kernel and the fused engine's vectorised SiLU).
pub(crate) fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static AVX2: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *AVX2.get_or_init(|| is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether this CPU has AVX-512F as well ([`Panels::matmul`] then runs [`kernel512`]). The
/// environment variable `SCALE_SIMD=avx2` keeps the AVX2 kernel (for A/B timing).
pub(crate) fn avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static AVX512: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *AVX512.get_or_init(|| {
            avx512_present() && std::env::var("SCALE_SIMD").map_or(true, |v| v != "avx2" && v != "scalar")
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether the CPU has AVX2, FMA and AVX-512F, whatever `SCALE_SIMD` says.
fn avx512_present() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        available() && is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// [`kernel512`] for `rows` (1..=[`MR512`]) rows.
///
/// # Safety
/// As [`kernel512`] with R = `rows`.
#[allow(clippy::too_many_arguments)]
unsafe fn kernel512_rows(
    rows: usize,
    a: &[f32],
    lda: usize,
    b: &[f32],
    kc: usize,
    c: &mut [f32],
    ldc: usize,
    cols: usize,
    src: Source,
    tail: Tail,
) {
    #[cfg(target_arch = "x86_64")]
    {
        macro_rules! call {
            ($($r:literal)*) => {
                match rows {
                    $($r => kernel512::<$r>(a, lda, b, kc, c, ldc, cols, src, tail),)*
                    _ => unreachable!("row blocks have 1 to {MR512} rows"),
                }
            };
        }
        call!(1 2 3 4 5 6 7 8 9 10 11 12)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (rows, a, lda, b, kc, c, ldc, cols, src, tail);
        unreachable!("packed products are only built on x86_64")
    }
}

/// [`kernel`] with AVX-512: R rows (up to [`MR512`]) × one panel, one 16-lane accumulator per row.
/// Each output still sums its products over k in order with one FMA each, then the addend, bias and
/// ReLU in the same order, so its values are the AVX2 kernel's, bit for bit.
///
/// # Safety
/// AVX-512F must be available ([`avx512`]); the slices as for [`kernel`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn kernel512<const R: usize>(
    a: &[f32],
    lda: usize,
    b: &[f32],
    kc: usize,
    c: &mut [f32],
    ldc: usize,
    cols: usize,
    src: Source,
    tail: Tail,
) {
    use std::arch::x86_64::*;
    debug_assert!(a.len() >= (R - 1) * lda + kc && b.len() >= kc * NR && c.len() >= (R - 1) * ldc + cols);
    let (ap, bp) = (a.as_ptr(), b.as_ptr());
    let mut acc = [_mm512_setzero_ps(); R];
    for kk in 0..kc {
        let bv = _mm512_loadu_ps(bp.add(kk * NR));
        for (r, acc_r) in acc.iter_mut().enumerate() {
            let av = _mm512_set1_ps(*ap.add(r * lda + kk));
            *acc_r = _mm512_fmadd_ps(av, bv, *acc_r);
        }
    }
    // the last panel's columns past n are not stored: a mask of the first `cols` lanes
    let mask: __mmask16 = if cols >= NR { 0xffff } else { (1u16 << cols) - 1 };
    let cp = c.as_mut_ptr();
    for (r, &acc_r) in acc.iter().enumerate() {
        let row = cp.add(r * ldc);
        let mut v = acc_r;
        match src {
            Source::None => {}
            Source::Out => v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mask, row)),
            Source::Matrix(p) => v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mask, p.add(r * ldc))),
        }
        if !tail.bias.is_null() {
            v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mask, tail.bias));
        }
        if tail.relu {
            v = _mm512_max_ps(v, _mm512_setzero_ps());
        }
        _mm512_mask_storeu_ps(row, mask, v);
    }
}

/// `c[r, 0..cols] = src[r, 0..cols] + Σ_kk a[r, kk] · b[kk, 0..cols]` for the R rows of the block
/// (no `src` term for [`Source::None`], `c`'s own values for [`Source::Out`]), then `+ bias` and ReLU as `tail` says; `a` row stride `lda`, `b`
/// one panel slice [kc][NR], `c` and `src` row stride `ldc`.
///
/// # Safety
/// AVX2 and FMA must be available; `a` must hold `(R - 1)·lda + kc` values, `b` `kc·NR`, and `c`
/// `(R - 1)·ldc + cols` with `cols <= NR`; a [`Source::Matrix`] as many as `c`; `tail.bias`, when
/// not null, `cols`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn kernel<const R: usize>(
    a: &[f32],
    lda: usize,
    b: &[f32],
    kc: usize,
    c: &mut [f32],
    ldc: usize,
    cols: usize,
    src: Source,
    tail: Tail,
) {
    use std::arch::x86_64::*;
    debug_assert!(a.len() >= (R - 1) * lda + kc && b.len() >= kc * NR && c.len() >= (R - 1) * ldc + cols);
    let (ap, bp) = (a.as_ptr(), b.as_ptr());
    let mut acc = [[_mm256_setzero_ps(); 2]; R];
    for kk in 0..kc {
        let b0 = _mm256_loadu_ps(bp.add(kk * NR));
        let b1 = _mm256_loadu_ps(bp.add(kk * NR + 8));
        for (r, acc_r) in acc.iter_mut().enumerate() {
            let av = _mm256_broadcast_ss(&*ap.add(r * lda + kk));
            acc_r[0] = _mm256_fmadd_ps(av, b0, acc_r[0]);
            acc_r[1] = _mm256_fmadd_ps(av, b1, acc_r[1]);
        }
    }
    let cp = c.as_mut_ptr();
    for (r, acc_r) in acc.iter().enumerate() {
        let row = cp.add(r * ldc);
        let src_row: *const f32 = match src {
            Source::None => std::ptr::null(),
            Source::Out => row,
            Source::Matrix(p) => p.add(r * ldc),
        };
        if cols == NR {
            let (mut lo, mut hi) = (acc_r[0], acc_r[1]);
            if !src_row.is_null() {
                lo = _mm256_add_ps(lo, _mm256_loadu_ps(src_row));
                hi = _mm256_add_ps(hi, _mm256_loadu_ps(src_row.add(8)));
            }
            if !tail.bias.is_null() {
                lo = _mm256_add_ps(lo, _mm256_loadu_ps(tail.bias));
                hi = _mm256_add_ps(hi, _mm256_loadu_ps(tail.bias.add(8)));
            }
            if tail.relu {
                lo = _mm256_max_ps(lo, _mm256_setzero_ps());
                hi = _mm256_max_ps(hi, _mm256_setzero_ps());
            }
            _mm256_storeu_ps(row, lo);
            _mm256_storeu_ps(row.add(8), hi);
        } else {
            let mut tmp = [0.0f32; NR];
            _mm256_storeu_ps(tmp.as_mut_ptr(), acc_r[0]);
            _mm256_storeu_ps(tmp.as_mut_ptr().add(8), acc_r[1]);
            for (j, &t) in tmp[..cols].iter().enumerate() {
                let mut v = if src_row.is_null() { t } else { t + *src_row.add(j) };
                if !tail.bias.is_null() {
                    v += *tail.bias.add(j);
                }
                *row.add(j) = if tail.relu { v.max(0.0) } else { v };
            }
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
#[allow(clippy::too_many_arguments)]
unsafe fn kernel<const R: usize>(
    _: &[f32],
    _: usize,
    _: &[f32],
    _: usize,
    _: &mut [f32],
    _: usize,
    _: usize,
    _: Source,
    _: Tail,
) {
    unreachable!("packed products are only built on x86_64")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: &[f32], w: &[f32], m: usize, k: usize, n: usize) -> Vec<f64> {
        let mut c = vec![0.0f64; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k).map(|kk| a[i * k + kk] as f64 * w[kk * n + j] as f64).sum();
            }
        }
        c
    }

    fn values(len: usize, seed: u32) -> Vec<f32> {
        // a small deterministic generator: values in [-1, 1)
        let mut s = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
        (0..len)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                (s as f32 / u32::MAX as f32) * 2.0 - 1.0
            })
            .collect()
    }

    #[test]
    fn packed_product_matches_the_definition() {
        if !available() {
            return;
        }
        // rows not a multiple of 6, columns not of 16, k across several KC slices and below one
        for (m, k, n) in [
            (1, 1, 1),
            (7, 5, 3),
            (13, 300, 17),
            (128, 2000, 128),
            (6, 128, 2000),
            (11, 513, 40),
            (25, 64, 33),
        ] {
            let a = values(m * k, (m * 31 + k) as u32);
            let w = values(k * n, (n * 7 + k) as u32);
            let panels = Panels::pack(&w, k, n);
            let want = naive(&a, &w, m, k, n);
            let mut out = vec![f32::NAN; m * n];
            panels.matmul(&a, m, &mut out, Epilogue::default());
            let tol = |x: f64| 1e-5 * (k as f64).sqrt() * (1.0 + x.abs());
            for (i, (&o, &e)) in out.iter().zip(&want).enumerate() {
                assert!(((o as f64) - e).abs() <= tol(e), "({m}, {k}, {n}) [{i}]: {o} vs {e}");
            }
            // accumulate adds onto what is there
            let base = values(m * n, 99);
            let mut acc = base.clone();
            let add = Epilogue {
                addend: Addend::Out,
                ..Epilogue::default()
            };
            panels.matmul(&a, m, &mut acc, add);
            for (i, ((&o, &e), &b0)) in acc.iter().zip(&want).zip(&base).enumerate() {
                let e = e + b0 as f64;
                assert!(
                    ((o as f64) - e).abs() <= tol(e),
                    "accumulate ({m}, {k}, {n}) [{i}]: {o} vs {e}"
                );
            }
            // another matrix as the addend, a bias and ReLU, in the store: the same bits as the
            // separate passes (addend, then bias, then ReLU) over an accumulated product
            let bias = values(n, 7);
            let mut fused = vec![f32::NAN; m * n];
            let epilogue = Epilogue {
                addend: Addend::Matrix(&base),
                bias: Some(&bias),
                relu: true,
            };
            panels.matmul(&a, m, &mut fused, epilogue);
            let mut passes = base.clone();
            panels.matmul(&a, m, &mut passes, add);
            for (i, p) in passes.iter_mut().enumerate() {
                *p = (*p + bias[i % n]).max(0.0);
            }
            assert!(
                fused.iter().zip(&passes).all(|(f, p)| f.to_bits() == p.to_bits()),
                "epilogue ({m}, {k}, {n})"
            );
            // the AVX2 and AVX-512 kernels give the same bits, epilogue included
            if avx512_present() {
                for wide in [false, true] {
                    let mut other = vec![f32::NAN; m * n];
                    panels.product(&a, m, &mut other, epilogue, wide);
                    assert!(
                        other.iter().zip(&fused).all(|(o, f)| o.to_bits() == f.to_bits()),
                        "wide = {wide} ({m}, {k}, {n})"
                    );
                    let mut other = base.clone();
                    panels.product(&a, m, &mut other, add, wide);
                    assert!(
                        other.iter().zip(&acc).all(|(o, f)| o.to_bits() == f.to_bits()),
                        "accumulate, wide = {wide} ({m}, {k}, {n})"
                    );
                }
            }
            // ReLU clipped some values and kept others (too few values to say for the 1 × 1 case)
            if m * n > 8 {
                assert!(fused.iter().any(|&v| v == 0.0) && fused.iter().any(|&v| v > 0.0));
            }
        }
    }

    #[test]
    fn packing_keeps_every_weight_and_pads_with_zeros() {
        let (k, n) = (3, 19);
        let w: Vec<f32> = (0..k * n).map(|v| v as f32 + 1.0).collect();
        let p = Panels::pack(&w, k, n);
        assert_eq!(p.data.len(), 2 * k * NR);
        for i in 0..k {
            for j in 0..n {
                assert_eq!(p.data[(j / NR) * k * NR + i * NR + j % NR], w[i * n + j]);
            }
            for j in n..2 * NR {
                assert_eq!(p.data[(j / NR) * k * NR + i * NR + j % NR], 0.0);
            }
        }
    }
}
