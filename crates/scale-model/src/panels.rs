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

    /// `out = a · W` (`+ out` when `accumulate`); `a` [m, k], `out` [m, n], both row-major.
    /// Needs AVX2 and FMA ([`available`]).
    pub(crate) fn matmul(&self, a: &[f32], m: usize, out: &mut [f32], accumulate: bool) {
        let (k, n) = (self.k, self.n);
        assert!(available(), "packed products need AVX2 and FMA");
        assert!(a.len() >= m * k && out.len() >= m * n, "matmul shapes");
        if k == 0 {
            if !accumulate {
                out[..m * n].iter_mut().for_each(|o| *o = 0.0);
            }
            return;
        }
        for k0 in (0..k).step_by(KC) {
            let kc = KC.min(k - k0);
            // later slices of k always add to what the first one wrote
            let add = accumulate || k0 > 0;
            for (p, panel) in self.data.chunks_exact(k * NR).enumerate() {
                let cols = NR.min(n - p * NR);
                let b = &panel[k0 * NR..(k0 + kc) * NR];
                let mut i0 = 0;
                while i0 < m {
                    let rows = MR.min(m - i0);
                    let a_block = &a[i0 * k + k0..];
                    let c_block = &mut out[i0 * n + p * NR..];
                    // SAFETY: AVX2/FMA checked above; `a_block` holds `rows` rows of stride k with kc
                    // values each from its start, `b` holds kc·NR values, `c_block` holds `rows` rows
                    // of stride n with `cols` values each (the shape asserts above bound them all).
                    unsafe {
                        match rows {
                            6 => kernel::<6>(a_block, k, b, kc, c_block, n, cols, add),
                            5 => kernel::<5>(a_block, k, b, kc, c_block, n, cols, add),
                            4 => kernel::<4>(a_block, k, b, kc, c_block, n, cols, add),
                            3 => kernel::<3>(a_block, k, b, kc, c_block, n, cols, add),
                            2 => kernel::<2>(a_block, k, b, kc, c_block, n, cols, add),
                            _ => kernel::<1>(a_block, k, b, kc, c_block, n, cols, add),
                        }
                    }
                    i0 += rows;
                }
            }
        }
    }
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

/// `c[r, 0..cols] (+)= Σ_kk a[r, kk] · b[kk, 0..cols]` for the R rows of the block; `a` row stride
/// `lda`, `b` one panel slice [kc][NR], `c` row stride `ldc`.
///
/// # Safety
/// AVX2 and FMA must be available; `a` must hold `(R - 1)·lda + kc` values, `b` `kc·NR`, and `c`
/// `(R - 1)·ldc + cols` with `cols <= NR`.
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
    accumulate: bool,
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
        if cols == NR {
            let (mut lo, mut hi) = (acc_r[0], acc_r[1]);
            if accumulate {
                lo = _mm256_add_ps(lo, _mm256_loadu_ps(row));
                hi = _mm256_add_ps(hi, _mm256_loadu_ps(row.add(8)));
            }
            _mm256_storeu_ps(row, lo);
            _mm256_storeu_ps(row.add(8), hi);
        } else {
            let mut tmp = [0.0f32; NR];
            _mm256_storeu_ps(tmp.as_mut_ptr(), acc_r[0]);
            _mm256_storeu_ps(tmp.as_mut_ptr().add(8), acc_r[1]);
            for (j, &t) in tmp[..cols].iter().enumerate() {
                let o = row.add(j);
                *o = if accumulate { *o + t } else { t };
            }
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
#[allow(clippy::too_many_arguments)]
unsafe fn kernel<const R: usize>(_: &[f32], _: usize, _: &[f32], _: usize, _: &mut [f32], _: usize, _: usize, _: bool) {
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
        ] {
            let a = values(m * k, (m * 31 + k) as u32);
            let w = values(k * n, (n * 7 + k) as u32);
            let panels = Panels::pack(&w, k, n);
            let want = naive(&a, &w, m, k, n);
            let mut out = vec![f32::NAN; m * n];
            panels.matmul(&a, m, &mut out, false);
            let tol = |x: f64| 1e-5 * (k as f64).sqrt() * (1.0 + x.abs());
            for (i, (&o, &e)) in out.iter().zip(&want).enumerate() {
                assert!(((o as f64) - e).abs() <= tol(e), "({m}, {k}, {n}) [{i}]: {o} vs {e}");
            }
            // accumulate adds onto what is there
            let base = values(m * n, 99);
            let mut acc = base.clone();
            panels.matmul(&a, m, &mut acc, true);
            for (i, ((&o, &e), &b0)) in acc.iter().zip(&want).zip(&base).enumerate() {
                let e = e + b0 as f64;
                assert!(
                    ((o as f64) - e).abs() <= tol(e),
                    "accumulate ({m}, {k}, {n}) [{i}]: {o} vs {e}"
                );
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
