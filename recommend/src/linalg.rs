//! The few dense kernels ALS needs, written so the compiler vectorises them.

/// Dot product with eight independent accumulators (lets the loop vectorise without
/// reassociation flags).
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0f32; 8];
    let chunks = n / 8;
    for c in 0..chunks {
        let (x, y) = (&a[c * 8..c * 8 + 8], &b[c * 8..c * 8 + 8]);
        for k in 0..8 {
            acc[k] += x[k] * y[k];
        }
    }
    let mut tail = 0f32;
    for k in chunks * 8..n {
        tail += a[k] * b[k];
    }
    acc.iter().sum::<f32>() + tail
}

/// `y += alpha * x`.
pub fn axpy(alpha: f32, x: &[f32], y: &mut [f32]) {
    for (yi, &xi) in y.iter_mut().zip(x) {
        *yi += alpha * xi;
    }
}

/// Euclidean norm.
pub fn norm(a: &[f32]) -> f32 {
    dot(a, a).sqrt()
}

/// `out = M v` for a dense row-major `f × f` matrix.
pub fn symv(m: &[f32], v: &[f32], out: &mut [f32]) {
    let f = v.len();
    for (r, o) in out.iter_mut().enumerate().take(f) {
        *o = dot(&m[r * f..r * f + f], v);
    }
}

/// `Yᵀ Y` of a row-major `n × f` factor matrix, as a dense `f × f` matrix.
pub fn gram(factors: &[f32], f: usize) -> Vec<f32> {
    let mut g = vec![0f64; f * f];
    for row in factors.chunks_exact(f) {
        for i in 0..f {
            let ri = row[i] as f64;
            for j in i..f {
                g[i * f + j] += ri * row[j] as f64;
            }
        }
    }
    let mut out = vec![0f32; f * f];
    for i in 0..f {
        for j in i..f {
            out[i * f + j] = g[i * f + j] as f32;
            out[j * f + i] = g[i * f + j] as f32;
        }
    }
    out
}

/// Solves `A x = b` for a symmetric positive definite `A` (row-major, `f × f`, in f64) by
/// Cholesky factorisation, overwriting `a` with the factor and `b` with `x`; `None` when `A`
/// is not positive definite.
pub fn cholesky_solve(a: &mut [f64], b: &mut [f64]) -> Option<()> {
    cholesky_factor(a, b.len())?;
    cholesky_substitute(a, b);
    Some(())
}

/// Replaces the lower triangle of `a` with `L` where `A = L Lᵀ`; `None` when `A` is not
/// positive definite.
pub fn cholesky_factor(a: &mut [f64], f: usize) -> Option<()> {
    for j in 0..f {
        let mut d = a[j * f + j];
        for k in 0..j {
            d -= a[j * f + k] * a[j * f + k];
        }
        if d.is_nan() || d <= 0.0 {
            return None;
        }
        let d = d.sqrt();
        a[j * f + j] = d;
        for i in j + 1..f {
            let mut s = a[i * f + j];
            for k in 0..j {
                s -= a[i * f + k] * a[j * f + k];
            }
            a[i * f + j] = s / d;
        }
    }
    Some(())
}

/// Solves `L Lᵀ x = b` in place given the factor from [`cholesky_factor`].
pub fn cholesky_substitute(l: &[f64], b: &mut [f64]) {
    let f = b.len();
    for i in 0..f {
        let mut s = b[i];
        for k in 0..i {
            s -= l[i * f + k] * b[k];
        }
        b[i] = s / l[i * f + i];
    }
    for i in (0..f).rev() {
        let mut s = b[i];
        for k in i + 1..f {
            s -= l[k * f + i] * b[k];
        }
        b[i] = s / l[i * f + i];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_matches_naive_sum_on_odd_lengths() {
        let a: Vec<f32> = (0..13).map(|i| i as f32).collect();
        let b: Vec<f32> = (0..13).map(|i| 1.0 - i as f32 * 0.5).collect();
        let naive: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!((dot(&a, &b) - naive).abs() < 1e-3);
    }

    #[test]
    fn cholesky_solves_a_known_system() {
        // A = [[4, 2], [2, 3]], x = [1, -1] → b = [2, -1].
        let mut a = vec![4.0, 2.0, 2.0, 3.0];
        let mut b = vec![2.0, -1.0];
        cholesky_solve(&mut a, &mut b).unwrap();
        assert!((b[0] - 1.0).abs() < 1e-12 && (b[1] + 1.0).abs() < 1e-12);
        let mut singular = vec![1.0, 1.0, 1.0, 1.0];
        assert!(cholesky_solve(&mut singular, &mut [1.0, 1.0]).is_none());
    }

    #[test]
    fn gram_is_y_transpose_y() {
        let y = [1.0, 2.0, 3.0, 4.0]; // rows [1,2], [3,4]
        assert_eq!(gram(&y, 2), vec![10.0, 14.0, 14.0, 20.0]);
    }
}
