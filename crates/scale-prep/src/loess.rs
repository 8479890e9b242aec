//! One-predictor loess (Cleveland, Grosse & Shyu), as `skmisc.loess` fits it for scanpy's
//! `flavor="seurat_v3"`: local polynomial regression of degree 0–2 on the `floor(n·span)` nearest
//! points with tricube weights, no robustness iterations.
//!
//! Two surfaces:
//! - [`LoessSurface::Interpolate`] (skmisc's default): a k-d tree splits the x range at medians until a
//!   cell holds at most `floor(n·span·cell)` points (`cell = 0.2`); the local fit (value and slope) is
//!   computed at every cell vertex, and fitted values are cubic Hermite interpolants between the two
//!   vertices of the enclosing cell. This follows netlib loess' `ehg126`/`ehg124`/`ehg127`/`ehg128`.
//! - [`LoessSurface::Direct`]: the local fit evaluated at every point.

use crate::PrepError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoessSurface {
    Interpolate,
    Direct,
}

/// Loess settings. `Default` is skmisc's: span 0.75 would be its default span, but scanpy passes 0.3.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoessOptions {
    pub span: f64,
    pub degree: usize,
    pub surface: LoessSurface,
    /// Cell size of the k-d tree as a fraction of the neighbourhood (`Interpolate` only).
    pub cell: f64,
}

impl Default for LoessOptions {
    fn default() -> Self {
        Self {
            span: 0.3,
            degree: 2,
            surface: LoessSurface::Interpolate,
            cell: 0.2,
        }
    }
}

/// Fitted values of `y ~ loess(x)` at the points `x`. Shapes: `x`, `y` and the result are `[n]`.
pub fn loess_fit(x: &[f64], y: &[f64], opts: &LoessOptions) -> Result<Vec<f64>, PrepError> {
    let n = x.len();
    if y.len() != n {
        return Err(PrepError::Shape {
            what: "loess y".into(),
            expected: format!("{n} values (as x)"),
            found: format!("{}", y.len()),
        });
    }
    if let Some(i) = x.iter().chain(y).position(|v| !v.is_finite()) {
        return Err(PrepError::Loess(format!(
            "non-finite input at position {}",
            i % n.max(1)
        )));
    }
    if opts.degree > 2 || opts.span.is_nan() || opts.span <= 0.0 {
        return Err(PrepError::InvalidOption {
            option: "loess".into(),
            message: format!("degree must be 0..=2 and span > 0 (got {}, {})", opts.degree, opts.span),
        });
    }
    let nf = ((n as f64 * opts.span).floor() as usize).min(n);
    let k = opts.degree + 1;
    if nf < k + 1 {
        return Err(PrepError::Loess(format!(
            "span {} leaves {nf} points per neighbourhood of {n}; degree {} needs at least {}",
            opts.span,
            opts.degree,
            k + 1
        )));
    }
    let fitter = LocalFit::new(x, y, nf, opts.span, opts.degree);
    match opts.surface {
        LoessSurface::Direct => {
            let mut scratch = Scratch::new(n);
            x.iter().map(|&q| fitter.fit(q, &mut scratch).map(|(v, _)| v)).collect()
        }
        LoessSurface::Interpolate => {
            let tree = KdTree1::build(x, (n as f64 * (opts.span * opts.cell)).floor() as usize);
            let mut scratch = Scratch::new(n);
            let vval: Vec<(f64, f64)> = tree
                .vertices
                .iter()
                .map(|&q| fitter.fit(q, &mut scratch))
                .collect::<Result<_, _>>()?;
            Ok(x.iter().map(|&z| tree.eval(z, &vval)).collect())
        }
    }
}

struct Scratch {
    order: Vec<usize>,
    dist: Vec<f64>,
}

impl Scratch {
    fn new(n: usize) -> Self {
        Self {
            order: (0..n).collect(),
            dist: vec![0.0; n],
        }
    }
}

/// The local weighted least-squares fit of `ehg127`.
struct LocalFit<'a> {
    x: &'a [f64],
    y: &'a [f64],
    nf: usize,
    span: f64,
    degree: usize,
}

impl<'a> LocalFit<'a> {
    fn new(x: &'a [f64], y: &'a [f64], nf: usize, span: f64, degree: usize) -> Self {
        Self { x, y, nf, span, degree }
    }

    /// (value, slope) of the local polynomial at `q`.
    fn fit(&self, q: f64, s: &mut Scratch) -> Result<(f64, f64), PrepError> {
        let n = self.x.len();
        for i in 0..n {
            s.dist[i] = (self.x[i] - q) * (self.x[i] - q);
        }
        let dist = &s.dist;
        // the nf nearest points (squared distances); which of several tied points at the boundary
        // is kept does not matter: their weight is zero
        s.order
            .select_nth_unstable_by(self.nf - 1, |&a, &b| dist[a].total_cmp(&dist[b]));
        let rho = dist[s.order[self.nf - 1]] * self.span.max(1.0);
        if rho <= 0.0 {
            return Err(PrepError::Loess(format!(
                "zero-width neighbourhood at x = {q} (more than span·n identical x values)"
            )));
        }
        let k = self.degree + 1;
        // design matrix B (k columns of nf rows, column-major), sqrt-weighted, and eta = w·y
        let mut b = vec![0f64; k * self.nf];
        let mut eta = vec![0f64; self.nf];
        for (r, &i) in s.order[..self.nf].iter().enumerate() {
            let t = (dist[i] / rho).sqrt();
            let w = (1.0 - t * t * t).powi(3).max(0.0).sqrt();
            let dx = self.x[i] - q;
            b[r] = w;
            if k > 1 {
                b[self.nf + r] = w * dx;
            }
            if k > 2 {
                b[2 * self.nf + r] = w * dx * dx;
            }
            eta[r] = w * self.y[i];
        }
        if b[..self.nf].iter().all(|&w| w == 0.0) {
            return Err(PrepError::Loess(format!(
                "all neighbourhood weights are zero at x = {q}"
            )));
        }
        // equilibrate columns
        let mut colnorm = vec![1f64; k];
        for j in 0..k {
            let c = &mut b[j * self.nf..(j + 1) * self.nf];
            let sc = c.iter().map(|v| v * v).sum::<f64>().sqrt();
            if sc > 0.0 {
                c.iter_mut().for_each(|v| *v /= sc);
                colnorm[j] = sc;
            }
        }
        let coef = pinv_solve(&mut b, self.nf, k, &eta);
        let value = coef[0] / colnorm[0];
        let slope = if k > 1 { coef[1] / colnorm[1] } else { 0.0 };
        Ok((value, slope))
    }
}

/// Least-squares solution of `B c = eta` through the SVD pseudoinverse (one-sided Jacobi), zeroing
/// singular values below `sigma_max · 100 · eps` as loess does. `b` is `[k][m]` column-major and is
/// overwritten.
fn pinv_solve(b: &mut [f64], m: usize, k: usize, eta: &[f64]) -> Vec<f64> {
    let mut v = vec![0f64; k * k];
    for i in 0..k {
        v[i * k + i] = 1.0;
    }
    for _sweep in 0..60 {
        let mut rotated = false;
        for p in 0..k {
            for q in p + 1..k {
                let (mut alpha, mut beta, mut gamma) = (0f64, 0f64, 0f64);
                for r in 0..m {
                    let (x, y) = (b[p * m + r], b[q * m + r]);
                    alpha += x * x;
                    beta += y * y;
                    gamma += x * y;
                }
                if gamma.abs() <= 1e-15 * (alpha * beta).sqrt() || gamma == 0.0 {
                    continue;
                }
                rotated = true;
                let zeta = (beta - alpha) / (2.0 * gamma);
                let t = zeta.signum() / (zeta.abs() + (1.0 + zeta * zeta).sqrt());
                let t = if zeta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (1.0 + t * t).sqrt();
                let s = c * t;
                for r in 0..m {
                    let (x, y) = (b[p * m + r], b[q * m + r]);
                    b[p * m + r] = c * x - s * y;
                    b[q * m + r] = s * x + c * y;
                }
                for r in 0..k {
                    let (x, y) = (v[p * k + r], v[q * k + r]);
                    v[p * k + r] = c * x - s * y;
                    v[q * k + r] = s * x + c * y;
                }
            }
        }
        if !rotated {
            break;
        }
    }
    let sigma: Vec<f64> = (0..k)
        .map(|j| b[j * m..(j + 1) * m].iter().map(|x| x * x).sum::<f64>().sqrt())
        .collect();
    let smax = sigma.iter().cloned().fold(0.0, f64::max);
    let tol = smax * 100.0 * f64::EPSILON;
    let mut coef = vec![0f64; k];
    for j in 0..k {
        if sigma[j] > tol {
            // U_j = B_j / sigma_j, gamma_j = U_j·eta / sigma_j
            let g = b[j * m..(j + 1) * m].iter().zip(eta).map(|(u, e)| u * e).sum::<f64>() / (sigma[j] * sigma[j]);
            for i in 0..k {
                coef[i] += v[j * k + i] * g;
            }
        }
    }
    coef
}

/// The 1-d k-d tree of netlib loess (`ehg126` bounding box, `ehg124` median splits).
struct KdTree1 {
    vertices: Vec<f64>,
    cells: Vec<Cell>,
}

struct Cell {
    lo_vertex: usize,
    hi_vertex: usize,
    /// (split value, lower child, upper child)
    split: Option<(f64, usize, usize)>,
}

impl KdTree1 {
    fn build(x: &[f64], fc: usize) -> Self {
        let n = x.len();
        let mut xs = x.to_vec();
        xs.sort_by(|a, b| a.total_cmp(b));
        let (alpha, beta) = (xs[0], xs[n - 1]);
        let mu = 0.005 * (beta - alpha).max(1e-10 * alpha.abs().max(beta.abs()) + 1e-30);
        let mut vertices = vec![alpha - mu, beta + mu];
        let mut cells = vec![Cell {
            lo_vertex: 0,
            hi_vertex: 1,
            split: None,
        }];
        // index ranges (inclusive, into the sorted xs) of each cell
        let mut ranges = vec![(0usize, n - 1)];
        let nvmax = n.max(200);
        let mut p = 0;
        while p < cells.len() {
            let (l, u) = ranges[p];
            let (vl, vu) = (vertices[cells[p].lo_vertex], vertices[cells[p].hi_vertex]);
            let diam = (vu - vl).abs();
            let mut leaf = u - l < fc || diam <= 0.0;
            if !leaf {
                leaf = nvmax < cells.len() + 2 || nvmax < vertices.len() + 1;
            }
            let mut m = (l + u) / 2;
            if !leaf {
                // move the split off runs of ties, alternating above and below the median
                let mut offset: isize = 0;
                loop {
                    let mo = m as isize + offset;
                    if mo >= u as isize || mo < l as isize {
                        break;
                    }
                    let mo = mo as usize;
                    if xs[mo] == xs[mo + 1] {
                        offset = -offset;
                        if offset >= 0 {
                            offset += 1;
                        }
                    } else {
                        m = mo;
                        break;
                    }
                }
                leaf = vl == xs[m] || vu == xs[m];
            }
            if !leaf {
                let xi = xs[m];
                let v_new = match vertices.iter().position(|&v| v == xi) {
                    Some(i) => i,
                    None => {
                        vertices.push(xi);
                        vertices.len() - 1
                    }
                };
                let lo = cells.len();
                cells.push(Cell {
                    lo_vertex: cells[p].lo_vertex,
                    hi_vertex: v_new,
                    split: None,
                });
                ranges.push((l, m));
                cells.push(Cell {
                    lo_vertex: v_new,
                    hi_vertex: cells[p].hi_vertex,
                    split: None,
                });
                ranges.push((m + 1, u));
                cells[p].split = Some((xi, lo, lo + 1));
            }
            p += 1;
        }
        Self { vertices, cells }
    }

    /// Cubic Hermite interpolation (`ehg128`) in the leaf cell containing `z`.
    fn eval(&self, z: f64, vval: &[(f64, f64)]) -> f64 {
        let mut c = &self.cells[0];
        while let Some((xi, lo, hi)) = c.split {
            c = &self.cells[if z <= xi { lo } else { hi }];
        }
        let (v0, v1) = (self.vertices[c.lo_vertex], self.vertices[c.hi_vertex]);
        let (g0, g1) = (vval[c.lo_vertex], vval[c.hi_vertex]);
        let h = (z - v0) / (v1 - v0);
        let phi0 = (1.0 - h) * (1.0 - h) * (1.0 + 2.0 * h);
        let phi1 = h * h * (3.0 - 2.0 * h);
        let psi0 = h * (1.0 - h) * (1.0 - h);
        let psi1 = h * h * (h - 1.0);
        phi0 * g0.0 + phi1 * g1.0 + (psi0 * g0.1 + psi1 * g1.1) * (v1 - v0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reproduces_a_quadratic_exactly() {
        // a degree-2 local fit reproduces any quadratic; the Hermite surface does too, up to rounding
        let x: Vec<f64> = (0..200)
            .map(|i| (i as f64 * 0.37).sin() * 3.0 + i as f64 * 0.01)
            .collect();
        let y: Vec<f64> = x.iter().map(|&v| 1.0 - 2.0 * v + 0.5 * v * v).collect();
        for surface in [LoessSurface::Direct, LoessSurface::Interpolate] {
            let fit = loess_fit(
                &x,
                &y,
                &LoessOptions {
                    surface,
                    ..Default::default()
                },
            )
            .unwrap();
            for (f, t) in fit.iter().zip(&y) {
                assert!((f - t).abs() < 1e-8, "{surface:?}: {f} vs {t}");
            }
        }
    }

    #[test]
    fn smooths_noise_and_surfaces_agree() {
        let x: Vec<f64> = (0..500).map(|i| i as f64 / 100.0).collect();
        let y: Vec<f64> = x
            .iter()
            .enumerate()
            .map(|(i, &v)| v.sin() + if i % 2 == 0 { 0.1 } else { -0.1 })
            .collect();
        let d = loess_fit(
            &x,
            &y,
            &LoessOptions {
                surface: LoessSurface::Direct,
                ..Default::default()
            },
        )
        .unwrap();
        let p = loess_fit(&x, &y, &LoessOptions::default()).unwrap();
        for i in 20..480 {
            assert!((d[i] - x[i].sin()).abs() < 0.02, "direct fit off at {i}");
            assert!((d[i] - p[i]).abs() < 5e-3, "surfaces disagree at {i}");
        }
    }

    #[test]
    fn rejects_degenerate_input() {
        let x = vec![1.0; 50];
        let y: Vec<f64> = (0..50).map(|i| i as f64).collect();
        assert!(loess_fit(&x, &y, &LoessOptions::default()).is_err());
        assert!(loess_fit(&x[..3], &y[..3], &LoessOptions::default()).is_err());
    }
}
