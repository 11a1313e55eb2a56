//! The offline protocol: a per-follower random train/test split and ranking metrics at K,
//! defined exactly as `implicit.evaluation.ranking_metrics_at_k` defines them:
//!
//! * only followers with at least one test item count; items already in train are excluded
//!   from the ranking;
//! * **precision** = all hits / Σ min(K, |test|) (a micro average, so a follower with only
//!   two test items can still reach 1);
//! * **MAP** = mean of `Σ_{hits at rank i} (hits so far / i) / min(K, |test|)`;
//! * **NDCG** = mean of `Σ_{hits at rank i} (1/log2(i+1)) / IDCG`, IDCG the sum of the first
//!   min(K, |test|) discounts;
//! * **recall** (`implicit` has none) = mean of hits / |test|.

use std::time::Instant;

use crate::parallel::map_range;
use crate::rng::stream;
use crate::topk::{contains, top_k};
use crate::{
    AlsConfig, AlsModel, CsrMatrix, ItemKnn, Popularity, RecommendError, Scorer, Weighting,
};

/// Ranking metrics at K.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Metrics {
    /// Precision@K (micro, divided by min(K, |test|)).
    pub precision: f64,
    /// MAP@K.
    pub map: f64,
    /// NDCG@K.
    pub ndcg: f64,
    /// Recall@K.
    pub recall: f64,
    /// Followers evaluated (those with test items).
    pub users: usize,
}

/// Splits every follower's interactions at random: `test_fraction` of them (rounded, at least
/// one when the follower has two or more, never all) go to test. The same seed gives the same
/// split whatever the thread count.
pub fn split_per_user(m: &CsrMatrix, test_fraction: f64, seed: u64) -> (CsrMatrix, CsrMatrix) {
    let mut train = Vec::with_capacity(m.nnz());
    let mut test = Vec::new();
    for u in 0..m.rows() {
        let (items, vals) = m.row(u);
        let n = items.len();
        let n_test = if n < 2 {
            0
        } else {
            ((n as f64 * test_fraction).round() as usize).clamp(1, n - 1)
        };
        let mut order: Vec<usize> = (0..n).collect();
        stream(seed, u as u64).shuffle(&mut order);
        for (rank, &k) in order.iter().enumerate() {
            let cell = (u as u32, items[k], vals[k]);
            if rank < n_test {
                test.push(cell)
            } else {
                train.push(cell)
            }
        }
    }
    // Cells come from a valid matrix, so rebuilding cannot fail.
    let rebuild = |cells: &[(u32, u32, f32)]| {
        CsrMatrix::from_triplets(m.rows(), m.cols(), cells)
            .unwrap_or_else(|_| CsrMatrix::empty(m.rows(), m.cols()))
    };
    (rebuild(&train), rebuild(&test))
}

/// Per-follower parts of the metrics, summed afterwards.
#[derive(Debug, Clone, Copy, Default)]
struct UserParts {
    hits: f64,
    pr_div: f64,
    ap: f64,
    ndcg: f64,
    recall: f64,
}

/// The metric parts of one ranked list against one test set.
fn user_parts(ranked: &[u32], test: &[u32], k: usize) -> UserParts {
    let relevant = k.min(test.len());
    if relevant == 0 {
        return UserParts::default();
    }
    let idcg: f64 = (0..relevant).map(|i| 1.0 / ((i + 2) as f64).log2()).sum();
    let mut parts = UserParts {
        pr_div: relevant as f64,
        ..UserParts::default()
    };
    for (i, item) in ranked.iter().take(k).enumerate() {
        if contains(test, *item) {
            parts.hits += 1.0;
            parts.ap += parts.hits / (i + 1) as f64;
            parts.ndcg += 1.0 / ((i + 2) as f64).log2() / idcg;
        }
    }
    parts.ap /= relevant as f64;
    parts.recall = parts.hits / test.len() as f64;
    parts
}

/// Metrics from ranked lists, one per follower (`None` for followers not evaluated).
pub fn metrics_from_rankings(rankings: &[Option<Vec<u32>>], test: &CsrMatrix, k: usize) -> Metrics {
    let mut sum = UserParts::default();
    let mut users = 0usize;
    for (u, ranked) in rankings.iter().enumerate() {
        let truth = test.row(u).0;
        let Some(ranked) = ranked else { continue };
        if truth.is_empty() {
            continue;
        }
        let p = user_parts(ranked, truth, k);
        sum.hits += p.hits;
        sum.pr_div += p.pr_div;
        sum.ap += p.ap;
        sum.ndcg += p.ndcg;
        sum.recall += p.recall;
        users += 1;
    }
    if users == 0 {
        return Metrics::default();
    }
    let n = users as f64;
    Metrics {
        precision: sum.hits / sum.pr_div,
        map: sum.ap / n,
        ndcg: sum.ndcg / n,
        recall: sum.recall / n,
        users,
    }
}

/// Ranks the top `k` unseen items for every follower with test items and scores the lists.
/// `history` is what the model sees of each follower (the weighted train matrix); `exclude`
/// the train items removed from the ranking.
pub fn ranking_metrics_at_k(
    model: &dyn Scorer,
    history: &CsrMatrix,
    exclude: &CsrMatrix,
    test: &CsrMatrix,
    k: usize,
) -> Metrics {
    let n_items = model.n_items();
    let rankings = map_range(test.rows(), |u| {
        if test.row(u).0.is_empty() {
            return None;
        }
        let mut scores = vec![0f32; n_items];
        model.score_into(u, history.row(u), &mut scores);
        let seen = exclude.row(u).0;
        Some(
            top_k(&scores, k, |i| contains(seen, i))
                .into_iter()
                .map(|(i, _)| i)
                .collect(),
        )
    });
    metrics_from_rankings(&rankings, test, k)
}

/// Settings of [`compare_models`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EvalConfig {
    /// Cut-off K.
    pub k: usize,
    /// Test share of each follower's interactions.
    pub test_fraction: f64,
    /// Split seed.
    pub seed: u64,
    /// Neighbours per item for item-kNN.
    pub knn_neighbours: usize,
    /// Weighting applied before ALS.
    pub weighting: Weighting,
    /// ALS settings.
    pub als: AlsConfig,
}

impl Default for EvalConfig {
    fn default() -> Self {
        Self {
            k: 10,
            test_fraction: 0.2,
            seed: 42,
            knn_neighbours: 20,
            weighting: crate::engine::EngineConfig::default().weighting,
            als: AlsConfig::default(),
        }
    }
}

/// One model's line of the comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelResult {
    /// `popularity`, `item-knn`, `als` (the product's settings) or `als-implicit-defaults`.
    pub model: &'static str,
    /// Its metrics.
    pub metrics: Metrics,
    /// Seconds spent fitting (wall clock).
    pub train_seconds: f64,
}

/// Splits `interactions`, fits popularity, item-kNN and (weighted) ALS on the train part, and
/// scores each on the test part.
pub fn compare_models(
    interactions: &CsrMatrix,
    config: &EvalConfig,
) -> Result<Vec<ModelResult>, RecommendError> {
    let (train, test) = split_per_user(interactions, config.test_fraction, config.seed);
    let mut out = Vec::new();

    let started = Instant::now();
    let popularity = Popularity::fit(&train);
    let secs = started.elapsed().as_secs_f64();
    out.push(ModelResult {
        model: "popularity",
        metrics: ranking_metrics_at_k(&popularity, &train, &train, &test, config.k),
        train_seconds: secs,
    });

    let started = Instant::now();
    let knn = ItemKnn::fit(&train, config.knn_neighbours)?;
    let secs = started.elapsed().as_secs_f64();
    out.push(ModelResult {
        model: "item-knn",
        metrics: ranking_metrics_at_k(&knn, &train, &train, &test, config.k),
        train_seconds: secs,
    });

    let started = Instant::now();
    let weighted = config.weighting.apply(&train);
    let als = AlsModel::fit(&weighted, &config.als)?;
    let secs = started.elapsed().as_secs_f64();
    out.push(ModelResult {
        model: "als",
        metrics: ranking_metrics_at_k(&als, &weighted, &train, &test, config.k),
        train_seconds: secs,
    });

    // The same ALS with `implicit`'s defaults (λ 0.01 unscaled, α 1, no weighting), as a reference.
    let reference = AlsConfig {
        regularization: 0.01,
        scale_regularization: false,
        alpha: 1.0,
        ..config.als
    };
    let started = Instant::now();
    let als = AlsModel::fit(&train, &reference)?;
    let secs = started.elapsed().as_secs_f64();
    out.push(ModelResult {
        model: "als-implicit-defaults",
        metrics: ranking_metrics_at_k(&als, &train, &train, &test, config.k),
        train_seconds: secs,
    });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn metrics_on_hand_computed_examples() {
        // Follower 0: test {1, 5}; ranked [1, 2, 5] with K = 3 → hits at ranks 1 and 3.
        // Follower 1: test {7}; ranked [3, 4, 9] → no hit. Follower 2: no test items.
        let test =
            CsrMatrix::from_triplets(3, 10, &[(0, 1, 1.0), (0, 5, 1.0), (1, 7, 1.0)]).unwrap();
        let rankings = vec![
            Some(vec![1, 2, 5]),
            Some(vec![3, 4, 9]),
            Some(vec![0, 1, 2]),
        ];
        let m = metrics_from_rankings(&rankings, &test, 3);
        assert_eq!(m.users, 2);
        // precision = 2 hits / (min(3,2) + min(3,1)) = 2/3.
        assert!(close(m.precision, 2.0 / 3.0), "{m:?}");
        // AP0 = (1/1 + 2/3) / 2 = 5/6; AP1 = 0 → MAP = 5/12.
        assert!(close(m.map, 5.0 / 12.0), "{m:?}");
        // NDCG0 = (1 + 1/log2 4) / (1 + 1/log2 3); NDCG1 = 0.
        let ndcg0 = (1.0 + 0.5) / (1.0 + 1.0 / 3f64.log2());
        assert!(close(m.ndcg, ndcg0 / 2.0), "{m:?}");
        // recall = (2/2 + 0/1) / 2.
        assert!(close(m.recall, 0.5), "{m:?}");
    }

    #[test]
    fn precision_divides_by_min_k_and_test_size() {
        // One follower with 20 test items and all 3 recommendations hits: precision 1 at K=3,
        // recall 3/20, NDCG 1 (IDCG over 3 slots).
        let cells: Vec<(u32, u32, f32)> = (0..20).map(|i| (0, i, 1.0)).collect();
        let test = CsrMatrix::from_triplets(1, 30, &cells).unwrap();
        let m = metrics_from_rankings(&[Some(vec![4, 9, 11])], &test, 3);
        assert!(close(m.precision, 1.0) && close(m.map, 1.0) && close(m.ndcg, 1.0));
        assert!(close(m.recall, 0.15));
        // A miss in first place: AP = (1/2 + 2/3) / 3.
        let m = metrics_from_rankings(&[Some(vec![25, 9, 11])], &test, 3);
        assert!(close(m.map, (0.5 + 2.0 / 3.0) / 3.0), "{m:?}");
    }

    #[test]
    fn split_is_deterministic_and_partitions_each_user() {
        let cells: Vec<(u32, u32, f32)> = (0..50u32)
            .flat_map(|u| (0..(u % 11 + 1)).map(move |i| (u, (i * 7 + u) % 40, 1.0)))
            .collect();
        let m = CsrMatrix::from_triplets(50, 40, &cells).unwrap();
        let (a_train, a_test) = split_per_user(&m, 0.2, 9);
        let (b_train, b_test) = split_per_user(&m, 0.2, 9);
        assert_eq!(a_train, b_train);
        assert_eq!(a_test, b_test);
        let (c_train, _) = split_per_user(&m, 0.2, 10);
        assert_ne!(a_train, c_train, "another seed gives another split");
        for u in 0..50 {
            let n = m.row(u).0.len();
            let (tr, te) = (a_train.row(u).0, a_test.row(u).0);
            assert_eq!(tr.len() + te.len(), n);
            assert!(tr.iter().all(|i| !te.contains(i)));
            let expected = if n < 2 {
                0
            } else {
                ((n as f64 * 0.2).round() as usize).clamp(1, n - 1)
            };
            assert_eq!(te.len(), expected, "user {u} with {n}");
        }
    }
}

#[cfg(test)]
mod planted_tests {
    use super::*;
    use crate::synthetic::{PlantedConfig, planted};

    #[test]
    fn als_recovers_planted_tastes_far_above_popularity() {
        let p = planted(&PlantedConfig {
            users: 400,
            items: 200,
            groups: 8,
            per_user: 20,
            noise: 0.1,
            seed: 1,
        });
        let config = EvalConfig {
            als: AlsConfig {
                factors: 16,
                ..AlsConfig::default()
            },
            ..EvalConfig::default()
        };
        let results = compare_models(&p.interactions, &config).unwrap();
        let get = |name: &str| results.iter().find(|r| r.model == name).unwrap().metrics;
        let (pop, knn, als) = (get("popularity"), get("item-knn"), get("als"));
        assert_eq!(als.users, 400);
        assert!(
            als.ndcg > 2.0 * pop.ndcg,
            "als {als:?} vs popularity {pop:?}"
        );
        assert!(
            als.recall > 2.0 * pop.recall,
            "als {als:?} vs popularity {pop:?}"
        );
        assert!(
            knn.ndcg > 1.5 * pop.ndcg,
            "knn {knn:?} vs popularity {pop:?}"
        );
    }
}
