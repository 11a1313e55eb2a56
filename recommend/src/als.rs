//! Confidence-weighted alternating least squares for implicit feedback
//! (Hu, Koren & Volinsky, "Collaborative Filtering for Implicit Feedback Datasets", 2008).
//!
//! Each observed strength `r` becomes a preference `p = 1` with confidence `c = alpha * r`;
//! every unobserved cell has `p = 0`, `c = 1`. A follower's factors minimise
//! `Σ c (p - xᵀy)² + λ|x|²`, i.e. solve `(YᵀY + Σ (c-1) y yᵀ + λI) x = Σ c y`, and items the
//! same way against the follower factors. The solve is either a few warm-started
//! conjugate-gradient steps (as `implicit` does: cheap, exact enough after a few sweeps) or an
//! exact Cholesky factorisation.

use crate::linalg::{
    axpy, cholesky_factor, cholesky_solve, cholesky_substitute, dot, gram, norm, symv,
};
use crate::parallel::for_each_row;
use crate::rng::stream;
use crate::topk::top_k;
use crate::{CsrMatrix, RecommendError, Scorer};

/// How each least-squares system is solved.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Solver {
    /// Warm-started conjugate gradient with this many steps per sweep.
    ConjugateGradient {
        /// Steps per row and sweep (3 is `implicit`'s default).
        steps: usize,
    },
    /// Exact Cholesky solve (cost grows with factors³; fine up to ~100 factors).
    Cholesky,
}

/// Hyper-parameters of [`AlsModel::fit`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AlsConfig {
    /// Latent dimensions.
    pub factors: usize,
    /// L2 regularisation λ.
    pub regularization: f32,
    /// Scale λ by each row's number of interactions (ALS-WR, as Spark does), so that busy
    /// followers and popular items are not under-regularised relative to sparse ones.
    pub scale_regularization: bool,
    /// Confidence per unit of strength.
    pub alpha: f32,
    /// Alternating sweeps (followers then items).
    pub iterations: usize,
    /// Least-squares solver.
    pub solver: Solver,
    /// Seed of the random initialisation; equal seeds give equal models.
    pub seed: u64,
}

impl Default for AlsConfig {
    /// Defaults tuned on MovieLens-100k (see docs/BENCHMARKS.md, "Recommendation"): strong
    /// regularisation against a modest confidence (λ/α ≈ 10) ranked best across split seeds.
    fn default() -> Self {
        Self {
            factors: 64,
            regularization: 0.2,
            scale_regularization: true,
            alpha: 2.0,
            iterations: 15,
            solver: Solver::ConjugateGradient { steps: 3 },
            seed: 42,
        }
    }
}

impl AlsConfig {
    fn validate(&self) -> Result<(), RecommendError> {
        let bad = |what: &str| Err(RecommendError::InvalidConfig(what.to_string()));
        if self.factors == 0 || self.factors > 1024 {
            return bad("factors must be in 1..=1024");
        }
        if !(self.regularization.is_finite() && self.regularization > 0.0) {
            return bad("regularization must be positive");
        }
        if !(self.alpha.is_finite() && self.alpha > 0.0) {
            return bad("alpha must be positive");
        }
        if let Solver::ConjugateGradient { steps: 0 } = self.solver {
            return bad("conjugate gradient needs at least one step");
        }
        Ok(())
    }
}

/// A fitted ALS model: one factor row per follower and per item.
#[derive(Debug, Clone)]
pub struct AlsModel {
    factors: usize,
    regularization: f32,
    scale_regularization: bool,
    alpha: f32,
    user_factors: Vec<f32>,
    item_factors: Vec<f32>,
    /// `YᵀY` of the final item factors, kept for recalculation and explanations.
    yty: Vec<f32>,
}

/// One history item's share of a score, from [`AlsModel::explain`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Contribution {
    /// The history item.
    pub item: u32,
    /// Its additive part of the score.
    pub weight: f32,
}

impl AlsModel {
    /// Fits on a follower × item matrix of (already weighted) strengths.
    pub fn fit(follower_items: &CsrMatrix, config: &AlsConfig) -> Result<Self, RecommendError> {
        config.validate()?;
        let f = config.factors;
        let (users, items) = (follower_items.rows(), follower_items.cols());
        let item_users = follower_items.transpose();
        let mut user_factors = init_factors(users, f, config.seed);
        let mut item_factors = init_factors(items, f, config.seed.wrapping_add(1));
        for _ in 0..config.iterations {
            solve_side(&mut user_factors, &item_factors, follower_items, config);
            solve_side(&mut item_factors, &user_factors, &item_users, config);
        }
        let yty = gram(&item_factors, f);
        Ok(Self {
            factors: f,
            regularization: config.regularization,
            scale_regularization: config.scale_regularization,
            alpha: config.alpha,
            user_factors,
            item_factors,
            yty,
        })
    }

    /// Latent dimensions.
    pub fn factors(&self) -> usize {
        self.factors
    }

    /// Number of followers the model was fitted on.
    pub fn n_users(&self) -> usize {
        self.user_factors.len() / self.factors
    }

    /// Factor row of follower `u` (empty when out of range).
    pub fn user_factors(&self, u: usize) -> &[f32] {
        self.user_factors
            .get(u * self.factors..(u + 1) * self.factors)
            .unwrap_or(&[])
    }

    /// Factor row of item `i` (empty when out of range).
    pub fn item_factors(&self, i: usize) -> &[f32] {
        self.item_factors
            .get(i * self.factors..(i + 1) * self.factors)
            .unwrap_or(&[])
    }

    /// Predicted preference of factor row `x` for item `i`.
    pub fn score(&self, x: &[f32], i: usize) -> f32 {
        dot(x, self.item_factors(i))
    }

    /// Writes the preference of factor row `x` for every item into `out`.
    pub fn score_all(&self, x: &[f32], out: &mut [f32]) {
        for (o, y) in out
            .iter_mut()
            .zip(self.item_factors.chunks_exact(self.factors))
        {
            *o = dot(x, y);
        }
    }

    /// Exact factors for a follower with this (weighted) history, as if solved in the last
    /// sweep: lets new followers be scored without refitting.
    pub fn recalculate_user(&self, history: (&[u32], &[f32])) -> Vec<f32> {
        let (mut a, mut b) = self.user_system(history);
        if cholesky_solve(&mut a, &mut b).is_none() {
            return vec![0.0; self.factors];
        }
        b.into_iter().map(|v| v as f32).collect()
    }

    /// Prepares explanations for a follower with this (weighted) history: factors the
    /// follower's system once so that each explained item costs one pair of triangular solves.
    /// `None` when the history is empty.
    pub fn explainer<'a>(&'a self, history: (&'a [u32], &'a [f32])) -> Option<Explainer<'a>> {
        if history.0.is_empty() {
            return None;
        }
        let (mut a, _) = self.user_system(history);
        cholesky_factor(&mut a, self.factors)?;
        Some(Explainer {
            model: self,
            history,
            factor: a,
        })
    }

    /// [`Explainer::explain`] for one item.
    pub fn explain(&self, history: (&[u32], &[f32]), item: usize) -> (Vec<Contribution>, f32) {
        match self.explainer(history) {
            Some(e) => e.explain(item),
            None => (Vec::new(), 0.0),
        }
    }

    /// The `k` items whose factors are closest in cosine to item `i`'s, best first.
    pub fn similar_items(&self, i: usize, k: usize) -> Vec<(u32, f32)> {
        let target = self.item_factors(i);
        let tn = norm(target);
        if target.is_empty() || tn == 0.0 {
            return Vec::new();
        }
        let sims: Vec<f32> = self
            .item_factors
            .chunks_exact(self.factors)
            .map(|y| {
                let n = norm(y);
                if n == 0.0 {
                    f32::NAN
                } else {
                    dot(target, y) / (tn * n)
                }
            })
            .collect();
        top_k(&sims, k, |j| j as usize == i)
    }

    /// `W` and `Σ c y` of a follower's least-squares system, in f64 for the Cholesky solve.
    fn user_system(&self, history: (&[u32], &[f32])) -> (Vec<f64>, Vec<f64>) {
        let f = self.factors;
        let mut a: Vec<f64> = self.yty.iter().map(|&v| v as f64).collect();
        let mut b = vec![0f64; f];
        let reg = row_regularization(
            self.regularization,
            self.scale_regularization,
            history.0.len(),
        );
        for d in 0..f {
            a[d * f + d] += reg as f64;
        }
        accumulate_rows(&mut a, &mut b, &self.item_factors, f, history, self.alpha);
        (a, b)
    }
}

/// A follower's factored system, ready to split scores into history contributions.
#[derive(Debug)]
pub struct Explainer<'a> {
    model: &'a AlsModel,
    history: (&'a [u32], &'a [f32]),
    factor: Vec<f64>,
}

impl Explainer<'_> {
    /// Splits the score of `item` into one additive part per history item (`implicit`'s
    /// `explain`): with `W = YᵀY + Σ (c-1) y yᵀ + λI` the follower's system,
    /// `x = W⁻¹ Σ c_j y_j`, so `yᵢᵀx = Σ_j c_j (yᵢᵀ W⁻¹ y_j)`. Returns the parts, largest first,
    /// and their sum (the exact-solve score).
    pub fn explain(&self, item: usize) -> (Vec<Contribution>, f32) {
        let m = self.model;
        let target = m.item_factors(item);
        if target.is_empty() {
            return (Vec::new(), 0.0);
        }
        let mut z: Vec<f64> = target.iter().map(|&v| v as f64).collect();
        cholesky_substitute(&self.factor, &mut z);
        let z: Vec<f32> = z.into_iter().map(|v| v as f32).collect();
        let mut parts: Vec<Contribution> = self
            .history
            .0
            .iter()
            .zip(self.history.1)
            .map(|(&j, &v)| Contribution {
                item: j,
                weight: m.alpha * v * dot(&z, m.item_factors(j as usize)),
            })
            .collect();
        let total = parts.iter().map(|c| c.weight).sum();
        parts.sort_by(|p, q| q.weight.total_cmp(&p.weight).then(p.item.cmp(&q.item)));
        (parts, total)
    }
}

impl Scorer for AlsModel {
    fn n_items(&self) -> usize {
        self.item_factors.len() / self.factors
    }

    fn score_into(&self, follower: usize, history: (&[u32], &[f32]), out: &mut [f32]) {
        if follower < self.n_users() {
            self.score_all(self.user_factors(follower), out);
        } else {
            let x = self.recalculate_user(history);
            self.score_all(&x, out);
        }
    }
}

/// Small random factors, one reproducible stream per row.
fn init_factors(rows: usize, f: usize, seed: u64) -> Vec<f32> {
    let scale = 0.01 / (f as f64).sqrt();
    let mut out = vec![0f32; rows * f];
    for (r, row) in out.chunks_exact_mut(f).enumerate() {
        let mut rng = stream(seed, r as u64);
        for v in row {
            *v = ((rng.next_f64() * 2.0 - 1.0) * scale) as f32;
        }
    }
    out
}

/// Adds `Σ (c-1) y yᵀ` to `a` and `Σ c y` to `b` over the row's observed cells.
fn accumulate_rows(
    a: &mut [f64],
    b: &mut [f64],
    other: &[f32],
    f: usize,
    row: (&[u32], &[f32]),
    alpha: f32,
) {
    for (&j, &v) in row.0.iter().zip(row.1) {
        let Some(y) = other.get(j as usize * f..(j as usize + 1) * f) else {
            continue;
        };
        let c = (alpha * v) as f64;
        for p in 0..f {
            let yp = y[p] as f64;
            b[p] += c * yp;
            let w = (c - 1.0) * yp;
            for q in p..f {
                a[p * f + q] += w * y[q] as f64;
            }
        }
    }
    for p in 0..f {
        for q in 0..p {
            a[p * f + q] = a[q * f + p];
        }
    }
}

/// One half-sweep: re-solves every row of `solved` against the fixed `other` side.
fn solve_side(solved: &mut [f32], other: &[f32], matrix: &CsrMatrix, config: &AlsConfig) {
    let f = config.factors;
    let yty = gram(other, f);
    let yty = &yty;
    let reg = |row: (&[u32], &[f32])| {
        row_regularization(
            config.regularization,
            config.scale_regularization,
            row.0.len(),
        )
    };
    match config.solver {
        Solver::ConjugateGradient { steps } => for_each_row(solved, f, |r, x| {
            let row = matrix.row(r);
            cg_row(x, yty, reg(row), other, f, row, config.alpha, steps)
        }),
        Solver::Cholesky => for_each_row(solved, f, |r, x| {
            let row = matrix.row(r);
            cholesky_row(x, yty, reg(row), other, f, row, config.alpha)
        }),
    }
}

/// λ for a row with `n` interactions.
fn row_regularization(lambda: f32, scaled: bool, n: usize) -> f32 {
    if scaled {
        lambda * n.max(1) as f32
    } else {
        lambda
    }
}

/// Conjugate-gradient refinement of one row's factors `x`, warm-started from their current
/// value; the system is `(YᵀY + reg·I + Σ (c-1) y yᵀ) x = Σ c y`.
#[allow(clippy::too_many_arguments)]
fn cg_row(
    x: &mut [f32],
    yty: &[f32],
    reg: f32,
    other: &[f32],
    f: usize,
    row: (&[u32], &[f32]),
    alpha: f32,
    steps: usize,
) {
    // Residual r = b - A x.
    let mut r = vec![0f32; f];
    symv(yty, x, &mut r);
    for (v, &xi) in r.iter_mut().zip(x.iter()) {
        *v = -(*v + reg * xi);
    }
    for (&j, &v) in row.0.iter().zip(row.1) {
        let y = &other[j as usize * f..(j as usize + 1) * f];
        let c = alpha * v;
        axpy(c - (c - 1.0) * dot(y, x), y, &mut r);
    }
    let mut p = r.clone();
    let mut rs_old = dot(&r, &r);
    if rs_old < 1e-20 {
        return;
    }
    let mut ap = vec![0f32; f];
    for _ in 0..steps {
        symv(yty, &p, &mut ap);
        axpy(reg, &p, &mut ap);
        for (&j, &v) in row.0.iter().zip(row.1) {
            let y = &other[j as usize * f..(j as usize + 1) * f];
            let c = alpha * v;
            axpy((c - 1.0) * dot(y, &p), y, &mut ap);
        }
        let pap = dot(&p, &ap);
        if pap <= 0.0 || !pap.is_finite() {
            return;
        }
        let step = rs_old / pap;
        axpy(step, &p, x);
        axpy(-step, &ap, &mut r);
        let rs_new = dot(&r, &r);
        if rs_new < 1e-20 {
            return;
        }
        let beta = rs_new / rs_old;
        for (pi, &ri) in p.iter_mut().zip(&r) {
            *pi = ri + beta * *pi;
        }
        rs_old = rs_new;
    }
}

/// Exact solve of one row's system; leaves `x` as it was if the system is singular (it cannot
/// be while λ > 0, but a float overflow could make it so).
fn cholesky_row(
    x: &mut [f32],
    yty: &[f32],
    reg: f32,
    other: &[f32],
    f: usize,
    row: (&[u32], &[f32]),
    alpha: f32,
) {
    let mut a: Vec<f64> = yty.iter().map(|&v| v as f64).collect();
    for d in 0..f {
        a[d * f + d] += reg as f64;
    }
    let mut b = vec![0f64; f];
    accumulate_rows(&mut a, &mut b, other, f, row, alpha);
    if cholesky_solve(&mut a, &mut b).is_some() {
        for (xi, bi) in x.iter_mut().zip(b) {
            *xi = bi as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synthetic::{PlantedConfig, planted};

    fn small() -> CsrMatrix {
        planted(&PlantedConfig {
            users: 120,
            items: 60,
            groups: 3,
            per_user: 12,
            noise: 0.05,
            seed: 5,
        })
        .interactions
    }

    #[test]
    fn same_seed_same_model_and_cg_close_to_exact() {
        let m = small();
        let cfg = AlsConfig {
            factors: 8,
            iterations: 10,
            ..AlsConfig::default()
        };
        let a = AlsModel::fit(&m, &cfg).unwrap();
        let b = AlsModel::fit(&m, &cfg).unwrap();
        assert_eq!(a.user_factors, b.user_factors);
        assert_eq!(a.item_factors, b.item_factors);
        let exact = AlsModel::fit(
            &m,
            &AlsConfig {
                solver: Solver::Cholesky,
                ..cfg
            },
        )
        .unwrap();
        // Different solvers land on (nearly) the same predictions for observed cells.
        let (items, _) = m.row(0);
        for &i in items {
            let (s_cg, s_ex) = (
                a.score(a.user_factors(0), i as usize),
                exact.score(exact.user_factors(0), i as usize),
            );
            assert!((s_cg - s_ex).abs() < 0.1, "cg {s_cg} vs exact {s_ex}");
        }
    }

    #[test]
    fn explain_parts_sum_to_the_exact_score_and_name_history_items() {
        let m = small();
        let model = AlsModel::fit(
            &m,
            &AlsConfig {
                factors: 8,
                solver: Solver::Cholesky,
                ..AlsConfig::default()
            },
        )
        .unwrap();
        let history = m.row(3);
        let x = model.recalculate_user(history);
        for item in [0usize, 17, 42] {
            let (parts, total) = model.explain(history, item);
            assert_eq!(parts.len(), history.0.len());
            assert!(parts.iter().all(|p| history.0.contains(&p.item)));
            let direct = model.score(&x, item);
            assert!(
                (total - direct).abs() < 1e-3,
                "sum {total} vs score {direct}"
            );
            assert!(parts.windows(2).all(|w| w[0].weight >= w[1].weight));
        }
    }

    #[test]
    fn recalculated_user_matches_trained_factors_after_exact_sweep() {
        let m = small();
        let model = AlsModel::fit(
            &m,
            &AlsConfig {
                factors: 8,
                solver: Solver::Cholesky,
                ..AlsConfig::default()
            },
        )
        .unwrap();
        // Users are solved before items in each sweep, so recalculation against the final item
        // factors differs only by one half-sweep; the ranking of observed items stays close.
        let x = model.recalculate_user(m.row(0));
        let trained = model.user_factors(0);
        let cos = dot(&x, trained) / (norm(&x) * norm(trained));
        assert!(cos > 0.95, "cosine {cos}");
    }

    #[test]
    fn rejects_bad_configuration() {
        let m = small();
        assert!(
            AlsModel::fit(
                &m,
                &AlsConfig {
                    factors: 0,
                    ..AlsConfig::default()
                }
            )
            .is_err()
        );
        assert!(
            AlsModel::fit(
                &m,
                &AlsConfig {
                    alpha: f32::NAN,
                    ..AlsConfig::default()
                }
            )
            .is_err()
        );
        assert!(
            AlsModel::fit(
                &m,
                &AlsConfig {
                    regularization: 0.0,
                    ..AlsConfig::default()
                }
            )
            .is_err()
        );
    }
}
