//! A fused CPU forward pass of [`TransportModel`](crate::TransportModel) for inference.
//!
//! burn runs the network one operator at a time over the whole batch: every linear layer, norm and
//! activation reads and writes a [B·S, ·] tensor in main memory, and at STATE's tiny config its
//! elementwise operators and copies (SiLU, norms, reshapes) took about a fifth of `scale predict`, as
//! much as two thirds of its matrix products. Here the
//! same arithmetic runs on a few sets at a time per thread (128 cells by default), so a chunk's
//! activations stay in the core's L2 cache from the encoder to the decoder: matrix products go through
//! `gemm` (single-threaded inside each chunk), the elementwise work is fused into their outputs, and
//! the decoder writes `relu(z_t + Δ)` straight into the caller's buffer.
//!
//! It is an inference engine only (no autodiff), built from a trained model's weights by
//! [`TransportModel::fused`](crate::TransportModel::fused); the set conditions [B, D] still come from
//! burn ([`TransportModel::set_conditions`](crate::TransportModel::set_conditions)), so every embedding
//! has one implementation. A test holds it to burn's forward pass within float32 rounding.
//!
//! Shapes: S cells per set, G genes, D model width, H heads of width Dh, M SwiGLU width; R rows
//! (cells) in a chunk, always whole sets.

use gemm::Parallelism;
use rayon::prelude::*;

use crate::panels::{self, Addend, Epilogue, Panels};

/// A linear layer `y = x W + b`, W row-major [d_in, d_out] (burn's layout).
#[derive(Debug, Clone)]
pub(crate) struct Dense {
    pub(crate) w: Vec<f32>,
    pub(crate) b: Option<Vec<f32>>,
    pub(crate) d_in: usize,
    pub(crate) d_out: usize,
    /// `w` packed once for the AVX2 kernel (see [`crate::panels`]); `None` where the CPU lacks it,
    /// and products go through `gemm`.
    packed: Option<Panels>,
}

/// The weights of one linear layer as read from the model: row-major `w` [d_in, d_out], optional bias.
pub(crate) struct LayerWeights {
    pub(crate) w: Vec<f32>,
    pub(crate) b: Option<Vec<f32>>,
    pub(crate) d_in: usize,
    pub(crate) d_out: usize,
}

impl Dense {
    /// A layer from row-major weights `w` [d_in, d_out] and an optional bias [d_out].
    pub(crate) fn new(w: Vec<f32>, b: Option<Vec<f32>>, d_in: usize, d_out: usize) -> Dense {
        assert_eq!(w.len(), d_in * d_out, "weights are not [d_in, d_out]");
        let packed = panels::available().then(|| Panels::pack(&w, d_in, d_out));
        Dense {
            w,
            b,
            d_in,
            d_out,
            packed,
        }
    }

    /// Linear layers of one input width as one layer, their output columns side by side (`parts[0]`'s,
    /// then `parts[1]`'s, ...; a missing bias counts as zeros), packed once.
    pub(crate) fn side_by_side(parts: Vec<LayerWeights>) -> Dense {
        if let [_] = parts.as_slice() {
            let p = parts.into_iter().next().expect("one part");
            return Dense::new(p.w, p.b, p.d_in, p.d_out);
        }
        let d_in = parts[0].d_in;
        assert!(
            parts.iter().all(|p| p.d_in == d_in),
            "layers side by side need one input width"
        );
        let d_out: usize = parts.iter().map(|p| p.d_out).sum();
        let mut w = Vec::with_capacity(d_in * d_out);
        for i in 0..d_in {
            for p in &parts {
                w.extend_from_slice(&p.w[i * p.d_out..(i + 1) * p.d_out]);
            }
        }
        let b = parts.iter().any(|p| p.b.is_some()).then(|| {
            parts
                .iter()
                .flat_map(|p| p.b.clone().unwrap_or_else(|| vec![0.0; p.d_out]))
                .collect()
        });
        Dense::new(w, b, d_in, d_out)
    }

    /// `out = x W` (+ `out` when `accumulate`), then + b. x [R, d_in], out [R, d_out].
    fn forward(&self, x: &[f32], rows: usize, out: &mut [f32], accumulate: bool) {
        let addend = if accumulate { Addend::Out } else { Addend::None };
        self.forward_with(x, rows, out, addend, false);
    }

    /// `out = addend + x W + b`, then ReLU when `relu`. x [R, d_in], out [R, d_out], a matrix addend
    /// [R, d_out]. The packed kernel does the addend, bias and ReLU as it stores; `gemm` in passes.
    fn forward_with(&self, x: &[f32], rows: usize, out: &mut [f32], addend: Addend<'_>, relu: bool) {
        let bias = self.b.as_deref();
        let epilogue = Epilogue { addend, bias, relu };
        if let Some(p) = &self.packed {
            return p.matmul(x, rows, out, epilogue);
        }
        let accumulate = addend.load(out);
        matmul(x, rows, self.d_in, &self.w, self.d_out, out, accumulate);
        epilogue.finish(out, self.d_out);
    }
}

/// One pre-norm block: x + attn(norm(x)), then + swiglu(norm(x)). The q, k, v projections are one
/// layer (their weights side by side), and so are gate and up: one wider product instead of three or
/// two narrow ones, with the normed input packed once.
#[derive(Debug, Clone)]
pub(crate) struct FusedBlock {
    pub(crate) attn_norm: Vec<f32>,
    /// [D, 3·H·Dh]: q, then k, then v columns.
    pub(crate) qkv: Dense,
    pub(crate) o: Dense,
    pub(crate) mlp_norm: Vec<f32>,
    /// [D, 2·M]: gate, then up columns.
    pub(crate) gate_up: Dense,
    pub(crate) down: Dense,
}

/// The per-cell part of the network (encoder, blocks, final norm, decoder) with plain float32 weights.
#[derive(Debug, Clone)]
pub struct FusedTransport {
    pub(crate) n_genes: usize,
    pub(crate) hidden: usize,
    pub(crate) n_heads: usize,
    pub(crate) head_dim: usize,
    pub(crate) norm_eps: f32,
    pub(crate) encoder: Vec<Dense>,
    pub(crate) blocks: Vec<FusedBlock>,
    pub(crate) final_norm: Vec<f32>,
    pub(crate) decoder: Vec<Dense>,
}

/// Cells per work item: the chunk's activations (a few hundred KiB at D = 128) fit in L2.
const CHUNK_CELLS: usize = 128;

impl FusedTransport {
    /// Number of genes (input and output width).
    pub fn n_genes(&self) -> usize {
        self.n_genes
    }

    /// Model width D (the width of [`encode`](Self::encode)'s output rows).
    pub fn hidden(&self) -> usize {
        self.hidden
    }

    /// Predicts the endpoints of `B` sets of `s` cells: `z_t` [B·s, G] row-major, `cond` [B, D] (the set
    /// conditions), `out` [B·s, G] receives `relu(z_t + decoder(...))`. Sets run in parallel on rayon's
    /// pool, a few per work item.
    pub fn forward(&self, z_t: &[f32], cond: &[f32], s: usize, out: &mut [f32]) {
        self.forward_sets(z_t, None, cond, s, out);
    }

    /// [`forward`](Self::forward) with the encoder's output given: `encoded` [B·s, D] must be
    /// [`encode`](Self::encode) of `z_t`'s rows. The encoder sees neither the set, the time nor the
    /// condition, so a control cell drawn into many sets needs encoding once; at STATE's tiny config the
    /// encoder is about a quarter of the forward pass's multiply-adds.
    pub fn forward_encoded(&self, z_t: &[f32], encoded: &[f32], cond: &[f32], s: usize, out: &mut [f32]) {
        assert_eq!(
            encoded.len() * self.n_genes,
            z_t.len() * self.hidden,
            "one encoded row of width {} per cell",
            self.hidden
        );
        self.forward_sets(z_t, Some(encoded), cond, s, out);
    }

    /// The per-cell encoder alone: `z` [R, G] -> `out` [R, D], in parallel over chunks of cells. A row's
    /// output does not depend on the other rows (the products' sums run in the same order for every row).
    pub fn encode(&self, z: &[f32], out: &mut [f32]) {
        let (g, d) = (self.n_genes, self.hidden);
        assert!(z.len().is_multiple_of(g), "z is not whole cells of {g} genes");
        assert_eq!(out.len() / d, z.len() / g, "one output row of width {d} per cell");
        out.par_chunks_mut(CHUNK_CELLS * d)
            .zip(z.par_chunks(CHUNK_CELLS * g))
            .for_each(|(out, z)| {
                SCRATCH.with_borrow_mut(|scratch| {
                    mlp(&self.encoder, z, z.len() / g, &mut scratch.x, &mut scratch.tmp);
                    out.copy_from_slice(&scratch.x);
                })
            });
    }

    fn forward_sets(&self, z_t: &[f32], encoded: Option<&[f32]>, cond: &[f32], s: usize, out: &mut [f32]) {
        let (g, d) = (self.n_genes, self.hidden);
        assert!(
            s > 0 && z_t.len().is_multiple_of(s * g),
            "z_t is not whole sets of {s} cells × {g} genes"
        );
        let b = z_t.len() / (s * g);
        assert_eq!(cond.len(), b * d, "one condition of width {d} per set");
        assert_eq!(out.len(), z_t.len(), "output shape");
        let sets_per_chunk = (CHUNK_CELLS / s).max(1);
        let chunks = out
            .par_chunks_mut(sets_per_chunk * s * g)
            .zip(z_t.par_chunks(sets_per_chunk * s * g))
            .zip(cond.par_chunks(sets_per_chunk * d));
        match encoded {
            Some(e) => chunks
                .zip(e.par_chunks(sets_per_chunk * s * d))
                .for_each(|(((out, z), c), e)| self.forward_chunk(z, Some(e), c, s, out)),
            None => chunks.for_each(|((out, z), c)| self.forward_chunk(z, None, c, s, out)),
        }
    }

    /// [`forward`](Self::forward) on whole sets, one thread; `encoded` [R, D] when the encoder's output
    /// is given. Activations live in the thread's [`Scratch`].
    fn forward_chunk(&self, z: &[f32], encoded: Option<&[f32]>, cond: &[f32], s: usize, out: &mut [f32]) {
        SCRATCH.with_borrow_mut(|scratch| self.forward_chunk_in(z, encoded, cond, s, out, scratch));
    }

    fn forward_chunk_in(
        &self,
        z: &[f32],
        encoded: Option<&[f32]>,
        cond: &[f32],
        s: usize,
        out: &mut [f32],
        scratch: &mut Scratch,
    ) {
        let (g, d) = (self.n_genes, self.hidden);
        let rows = z.len() / g;
        let inner = self.n_heads * self.head_dim;
        let m = self.blocks.first().map_or(0, |b| b.down.d_in);
        let Scratch {
            x,
            tmp,
            normed,
            qkv,
            attn,
            gate_up,
            act,
            scores,
            h,
        } = scratch;
        // encoder: [R, G] -> [R, D]
        match encoded {
            Some(e) => {
                x.clear();
                x.extend_from_slice(e);
            }
            None => mlp(&self.encoder, z, rows, x, tmp),
        }
        // + the set's condition on every cell of the set
        for (set, c) in x.chunks_exact_mut(s * d).zip(cond.chunks_exact(d)) {
            for row in set.chunks_exact_mut(d) {
                for (v, &ci) in row.iter_mut().zip(c) {
                    *v += ci;
                }
            }
        }
        // every value of these is written before it is read
        let normed = sized(normed, rows * d);
        let qkv = sized(qkv, rows * 3 * inner);
        let attn = sized(attn, rows * inner);
        let gate_up = sized(gate_up, rows * 2 * m);
        let act = sized(act, rows * m);
        let scores = sized(scores, s * s);
        for block in &self.blocks {
            rms_norm(x, &block.attn_norm, self.norm_eps, normed);
            block.qkv.forward(normed, rows, qkv, false);
            self.attention(qkv, s, attn, scores);
            block.o.forward(attn, rows, x, true); // residual
            rms_norm(x, &block.mlp_norm, self.norm_eps, normed);
            block.gate_up.forward(normed, rows, gate_up, false);
            silu_mul(gate_up, m, act);
            block.down.forward(act, rows, x, true); // residual
        }
        rms_norm(x, &self.final_norm, self.norm_eps, normed);
        // decoder: [R, D] -> [R, G]; the hidden layers as the encoder's, then the last layer
        // accumulates onto z_t, and ReLU
        let (last, hidden) = self.decoder.split_last().expect("a decoder has at least one layer");
        let input: &[f32] = if hidden.is_empty() {
            normed
        } else {
            mlp(hidden, normed, rows, h, tmp);
            silu_inplace(h);
            h
        };
        last.forward_with(input, rows, out, Addend::Matrix(z), true);
    }

    /// Multi-head attention within each set: `qkv` [R, 3·H·Dh] (q, k, v side by side, head h in
    /// columns h·Dh.. of each), out [R, H·Dh]; softmax(q kᵀ / sqrt(Dh)) v per set and head; `scores` is
    /// scratch [S, S].
    fn attention(&self, qkv: &[f32], s: usize, out: &mut [f32], scores: &mut [f32]) {
        let (h, dh) = (self.n_heads, self.head_dim);
        let inner = h * dh;
        let stride = 3 * inner;
        let scale = 1.0 / (dh as f32).sqrt();
        assert!(scores.len() >= s * s && qkv.len() == 3 * out.len() && out.len().is_multiple_of(s * inner));
        for set in 0..out.len() / (s * inner) {
            let base = set * s * stride;
            for head in 0..h {
                let q_at = base + head * dh;
                let (k_at, v_at) = (q_at + inner, q_at + 2 * inner);
                let o_at = set * s * inner + head * dh;
                // SAFETY: the set's rows [base, base + s·stride) lie inside qkv and its rows
                // [set·s·inner, (set + 1)·s·inner) inside out (checked above: whole sets); the head's
                // Dh columns start at the offsets above within each row; `scores` holds s×s values.
                // q, k and v rows of a head: `stride` apart, Dh values from their offset
                let head = |at: usize, col_stride: isize, row_stride: isize| View {
                    ptr: qkv[at..].as_ptr(),
                    col_stride,
                    row_stride,
                };
                unsafe {
                    // scores [S, S] = q_h [S, Dh] · k_hᵀ [Dh, S] · scale (kᵀ: k read column-wise)
                    let q = head(q_at, 1, stride as isize);
                    let kt = head(k_at, stride as isize, 1);
                    product(s, s, dh, scores.as_mut_ptr(), s, false, q, kt, scale);
                }
                for row in scores[..s * s].chunks_exact_mut(s) {
                    let max = row.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
                    let mut total = 0.0f32;
                    for x in row.iter_mut() {
                        *x = exp_f32(*x - max);
                        total += *x;
                    }
                    let inv = 1.0 / total;
                    row.iter_mut().for_each(|x| *x *= inv);
                }
                // SAFETY: as above.
                unsafe {
                    // out_h [S, Dh] = p [S, S] · v_h [S, Dh]
                    let p = View {
                        ptr: scores.as_ptr(),
                        col_stride: 1,
                        row_stride: s as isize,
                    };
                    product(
                        s,
                        dh,
                        s,
                        out[o_at..].as_mut_ptr(),
                        inner,
                        false,
                        p,
                        head(v_at, 1, stride as isize),
                        1.0,
                    );
                }
            }
        }
    }
}

/// One thread's activation buffers, kept between work items: allocating them per item (several hundred
/// KiB) went back to the allocator and the kernel each time, and some passes paid page faults for it.
#[derive(Default)]
struct Scratch {
    x: Vec<f32>,
    tmp: Vec<f32>,
    normed: Vec<f32>,
    qkv: Vec<f32>,
    attn: Vec<f32>,
    gate_up: Vec<f32>,
    act: Vec<f32>,
    scores: Vec<f32>,
    h: Vec<f32>,
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch::default());
}

/// The first `n` values of `buf`, growing it if needed (contents unspecified).
fn sized(buf: &mut Vec<f32>, n: usize) -> &mut [f32] {
    if buf.len() < n {
        buf.resize(n, 0.0);
    }
    &mut buf[..n]
}

/// Linear layers with SiLU between them (not after the last): `input` [R, d_in] -> `out` [R, d_out];
/// `tmp` is scratch.
fn mlp(layers: &[Dense], input: &[f32], rows: usize, out: &mut Vec<f32>, tmp: &mut Vec<f32>) {
    for (i, layer) in layers.iter().enumerate() {
        tmp.resize(rows * layer.d_out, 0.0);
        layer.forward(if i == 0 { input } else { &out[..] }, rows, tmp, false);
        if i + 1 < layers.len() {
            silu_inplace(tmp);
        }
        std::mem::swap(out, tmp);
    }
}

/// A strided float32 matrix operand for [`product`]: first element, column stride, row stride.
#[derive(Clone, Copy)]
struct View {
    ptr: *const f32,
    col_stride: isize,
    row_stride: isize,
}

/// `dst [m, n] = scale · a [m, k] · b [k, n]` (`+ dst` when `accumulate`), single-threaded; `dst` has
/// column stride 1 and row stride `dst_row_stride`.
///
/// # Safety
/// Every element the strides address must lie inside its allocation, and `dst` must not overlap `a`
/// or `b`.
#[allow(clippy::too_many_arguments)]
unsafe fn product(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut f32,
    dst_row_stride: usize,
    accumulate: bool,
    a: View,
    b: View,
    scale: f32,
) {
    gemm::gemm(
        m,
        n,
        k,
        dst,
        1,
        dst_row_stride as isize,
        accumulate,
        a.ptr,
        a.col_stride,
        a.row_stride,
        b.ptr,
        b.col_stride,
        b.row_stride,
        1.0f32,
        scale,
        false,
        false,
        false,
        Parallelism::None,
    )
}

/// `out = x W` (+ `out` when `accumulate`): x [m, k], W [k, n], out [m, n], all row-major.
fn matmul(x: &[f32], m: usize, k: usize, w: &[f32], n: usize, out: &mut [f32], accumulate: bool) {
    assert!(
        x.len() >= m * k && w.len() == k * n && out.len() >= m * n,
        "matmul shapes"
    );
    // SAFETY: the three buffers hold at least m×k, k×n and m×n elements (checked above) with the
    // row-major strides given; `out` does not alias the inputs (distinct borrows).
    unsafe {
        let row_major = |ptr: *const f32, cols: usize| View {
            ptr,
            col_stride: 1,
            row_stride: cols as isize,
        };
        product(
            m,
            n,
            k,
            out.as_mut_ptr(),
            n,
            accumulate,
            row_major(x.as_ptr(), k),
            row_major(w.as_ptr(), n),
            1.0,
        )
    }
}

/// Row-wise RMSNorm as burn computes it: `x / sqrt(mean(x²) + eps) * gamma`; rows of width gamma.len().
fn rms_norm(x: &[f32], gamma: &[f32], eps: f32, out: &mut [f32]) {
    let d = gamma.len();
    for (row, o) in x.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
        // eight partial sums, so the sum vectorises (one chain of d dependent adds was the norm's cost)
        let mut lanes = [0.0f32; 8];
        let mut groups = row.chunks_exact(8);
        for group in &mut groups {
            for (l, &v) in lanes.iter_mut().zip(group) {
                *l += v * v;
            }
        }
        let squares = lanes.iter().sum::<f32>() + groups.remainder().iter().map(|v| v * v).sum::<f32>();
        let inv_rms = 1.0 / (squares / d as f32 + eps).sqrt();
        for ((oo, &v), &gm) in o.iter_mut().zip(row).zip(gamma) {
            *oo = v * inv_rms * gm;
        }
    }
}

/// `e^x` for the sigmoid: range reduction to `r` in [-ln2/2, ln2/2] and a degree-6 polynomial
/// (relative error about 2e-7, float32 rounding), branch-free so loops over it vectorise. Inputs are
/// clamped to the finite range of float32.
#[inline(always)]
fn exp_f32(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    // 1.5·2^23: adding and subtracting it rounds to the nearest integer
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 88.0);
    let t = x * LOG2E + ROUND;
    let n = t - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = 1.0 + r * (1.0 + r * (0.5 + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    // n sits in the low mantissa bits of t; shift it into the exponent
    let scale = f32::from_bits(((t.to_bits() as i32 - 0x4B40_0000 + 127) << 23) as u32);
    p * scale
}

#[inline(always)]
fn silu(x: f32) -> f32 {
    x / (1.0 + exp_f32(-x))
}

/// SiLU in place.
fn silu_inplace(x: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if panels::available() {
            // SAFETY: the CPU has AVX2 and FMA (checked).
            unsafe { silu_inplace_avx2(x) };
            return;
        }
    }
    x.iter_mut().for_each(|v| *v = silu(*v));
}

/// SwiGLU: `act = silu(gate) * up` row by row, with `gate_up` rows [gate (m) | up (m)].
fn silu_mul(gate_up: &[f32], m: usize, act: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if panels::available() {
            // SAFETY: the CPU has AVX2 and FMA (checked).
            unsafe { silu_mul_avx2(gate_up, m, act) };
            return;
        }
    }
    silu_mul_generic(gate_up, m, act)
}

#[inline(always)]
fn silu_mul_generic(gate_up: &[f32], m: usize, act: &mut [f32]) {
    for (row, a) in gate_up.chunks_exact(2 * m).zip(act.chunks_exact_mut(m)) {
        let (gate, up) = row.split_at(m);
        for ((o, &gt), &u) in a.iter_mut().zip(gate).zip(up) {
            *o = silu(gt) * u;
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn silu_inplace_avx2(x: &mut [f32]) {
    x.iter_mut().for_each(|v| *v = silu(*v));
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn silu_mul_avx2(gate_up: &[f32], m: usize, act: &mut [f32]) {
    silu_mul_generic(gate_up, m, act)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_matches_std_to_float32_rounding() {
        let mut worst = 0.0f64;
        let mut x = -87.0f32;
        while x < 88.0 {
            let (got, want) = (exp_f32(x) as f64, (x as f64).exp());
            worst = worst.max(((got - want) / want).abs());
            x += 0.0137;
        }
        assert!(worst < 5e-7, "worst relative error {worst}");
        assert_eq!(exp_f32(0.0), 1.0);
        assert!(exp_f32(-1000.0) > 0.0 && exp_f32(1000.0).is_finite());
    }

    #[test]
    fn silu_is_x_times_sigmoid() {
        for &x in &[-100.0f32, -5.0, -0.5, 0.0, 0.3, 4.0, 60.0] {
            let want = x as f64 / (1.0 + (-x as f64).exp());
            let mut v = [x];
            silu_inplace(&mut v);
            assert!(
                (v[0] as f64 - want).abs() <= 1e-6 * want.abs().max(1.0),
                "silu({x}) = {}",
                v[0]
            );
        }
    }

    #[test]
    fn packed_and_gemm_layers_agree() {
        // the packed kernel where the CPU has AVX2, gemm elsewhere: both must give the same layer
        let (rows, d_in, d_out) = (23, 300, 40);
        let w: Vec<f32> = (0..d_in * d_out)
            .map(|i| ((i * 37) % 101) as f32 / 50.0 - 1.0)
            .collect();
        let b: Vec<f32> = (0..d_out).map(|i| i as f32 * 0.01).collect();
        let x: Vec<f32> = (0..rows * d_in).map(|i| ((i * 13) % 29) as f32 / 10.0).collect();
        let layer = Dense::new(w, Some(b), d_in, d_out);
        let mut via_gemm = layer.clone();
        via_gemm.packed = None;
        for accumulate in [false, true] {
            let start: Vec<f32> = (0..rows * d_out).map(|i| i as f32 * 0.5).collect();
            let (mut a, mut g) = (start.clone(), start);
            layer.forward(&x, rows, &mut a, accumulate);
            via_gemm.forward(&x, rows, &mut g, accumulate);
            for (i, (&p, &q)) in a.iter().zip(&g).enumerate() {
                assert!(
                    (p - q).abs() <= 1e-4 * (1.0 + q.abs()),
                    "[{i}] {p} vs {q} (accumulate {accumulate})"
                );
            }
        }
    }
}
