//! Ridge regression with many outputs: W = (XᵀX + λI)⁻¹ XᵀY, solved once by Cholesky for all genes.

/// Solves (AᵀA + λI) W = AᵀY. `a` is [n, p] row-major, `y` is [n, g] row-major; returns W as [p, g].
pub(crate) fn ridge(a: &[f64], n: usize, p: usize, y: &[f64], g: usize, lambda: f64) -> Option<Vec<f64>> {
    let mut gram = vec![0f64; p * p];
    for r in 0..n {
        let row = &a[r * p..(r + 1) * p];
        for i in 0..p {
            if row[i] == 0.0 {
                continue;
            }
            for j in 0..p {
                gram[i * p + j] += row[i] * row[j];
            }
        }
    }
    for i in 0..p {
        gram[i * p + i] += lambda;
    }
    let mut rhs = vec![0f64; p * g];
    for r in 0..n {
        for i in 0..p {
            let v = a[r * p + i];
            if v == 0.0 {
                continue;
            }
            let yrow = &y[r * g..(r + 1) * g];
            let out = &mut rhs[i * g..(i + 1) * g];
            for (o, &yv) in out.iter_mut().zip(yrow) {
                *o += v * yv;
            }
        }
    }
    let l = cholesky(&gram, p)?;
    // Forward then back substitution for every output column at once.
    let mut z = rhs;
    for i in 0..p {
        for k in 0..i {
            let f = l[i * p + k];
            if f != 0.0 {
                for c in 0..g {
                    z[i * g + c] -= f * z[k * g + c];
                }
            }
        }
        let d = l[i * p + i];
        for c in 0..g {
            z[i * g + c] /= d;
        }
    }
    for i in (0..p).rev() {
        for k in i + 1..p {
            let f = l[k * p + i];
            if f != 0.0 {
                for c in 0..g {
                    z[i * g + c] -= f * z[k * g + c];
                }
            }
        }
        let d = l[i * p + i];
        for c in 0..g {
            z[i * g + c] /= d;
        }
    }
    Some(z)
}

/// Lower-triangular L with L Lᵀ = m, or None when m is not positive definite.
fn cholesky(m: &[f64], p: usize) -> Option<Vec<f64>> {
    let mut l = vec![0f64; p * p];
    for i in 0..p {
        for j in 0..=i {
            let mut s = m[i * p + j];
            for k in 0..j {
                s -= l[i * p + k] * l[j * p + k];
            }
            if i == j {
                if s <= 0.0 {
                    return None;
                }
                l[i * p + i] = s.sqrt();
            } else {
                l[i * p + j] = s / l[j * p + j];
            }
        }
    }
    Some(l)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovers_exact_linear_map_with_tiny_lambda() {
        // y = 2 x0 - x1 (two outputs: itself and its double).
        let a = [1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 2.0, 1.0];
        let y: Vec<f64> = a
            .chunks(2)
            .flat_map(|r| {
                let v = 2.0 * r[0] - r[1];
                [v, 2.0 * v]
            })
            .collect();
        let w = ridge(&a, 4, 2, &y, 2, 1e-9).unwrap();
        assert!((w[0] - 2.0).abs() < 1e-6 && (w[2] + 1.0).abs() < 1e-6 && (w[1] - 4.0).abs() < 1e-6);
    }

    #[test]
    fn shrinks_towards_zero_with_large_lambda() {
        let a = [1.0, 1.0];
        let y = [1.0, 1.0];
        let w = ridge(&a, 2, 1, &y, 1, 1e6).unwrap();
        assert!(w[0].abs() < 1e-5);
    }
}
