//! The product's recommender: ALS on weighted interactions, blended with item text embeddings
//! so that items with few or no interactions can still be recommended, popularity for
//! followers with no history, and a reason for every recommendation.
//!
//! Score of item `i` for follower `u`:
//! `als(u, i) / max_j als(u, j) + content_weight · s/(s + nᵢ) · cos(profile(u), eᵢ)`, where
//! the maximum runs over the items `u` has not consumed, `nᵢ` is how many followers consumed
//! `i`, `s` the cold-start shrinkage and `profile(u)` the strength-weighted mean of the
//! embeddings of what `u` consumed. Dividing by the follower's best collaborative score makes
//! the blend independent of the scale ALS happens to produce (which moves with the
//! regularisation and the data): with weight 1, a never-consumed item whose text matches the
//! profile perfectly ranks level with the best collaborative item. The content part fades as
//! an item gathers interactions, because the collaborative signal then says more than the text.

use crate::als::Explainer;
use crate::linalg::{dot, norm};
use crate::parallel::map_range;
use crate::topk::{contains, top_k};
use crate::{AlsConfig, AlsModel, CsrMatrix, Popularity, RecommendError, Scorer, Weighting};

/// Text embeddings of items, unit-normalised; items may have none.
#[derive(Debug, Clone)]
pub struct ItemEmbeddings {
    dim: usize,
    vectors: Vec<f32>,
    present: Vec<bool>,
}

impl ItemEmbeddings {
    /// Room for `n_items` embeddings of `dim` dimensions, none set yet.
    pub fn new(n_items: usize, dim: usize) -> Self {
        Self {
            dim,
            vectors: vec![0.0; n_items * dim],
            present: vec![false; n_items],
        }
    }

    /// Sets item `item`'s embedding (normalised here). A zero vector counts as absent.
    pub fn set(&mut self, item: usize, vector: &[f32]) -> Result<(), RecommendError> {
        if item >= self.present.len() {
            return Err(RecommendError::Embeddings(format!(
                "item {item} out of range"
            )));
        }
        if vector.len() != self.dim {
            return Err(RecommendError::Embeddings(format!(
                "item {item}: {} dimensions, expected {}",
                vector.len(),
                self.dim
            )));
        }
        if vector.iter().any(|v| !v.is_finite()) {
            return Err(RecommendError::Embeddings(format!(
                "item {item}: non-finite value"
            )));
        }
        let n = norm(vector);
        let slot = &mut self.vectors[item * self.dim..(item + 1) * self.dim];
        if n > 0.0 {
            for (s, v) in slot.iter_mut().zip(vector) {
                *s = v / n;
            }
        }
        self.present[item] = n > 0.0;
        Ok(())
    }

    /// Item `item`'s unit embedding, if it has one.
    pub fn get(&self, item: usize) -> Option<&[f32]> {
        match self.present.get(item) {
            Some(true) => self.vectors.get(item * self.dim..(item + 1) * self.dim),
            _ => None,
        }
    }

    /// Dimensions.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Number of item slots.
    pub fn n_items(&self) -> usize {
        self.present.len()
    }

    /// Cosine similarity of two items' texts, when both have embeddings.
    pub fn cosine(&self, a: usize, b: usize) -> Option<f32> {
        Some(dot(self.get(a)?, self.get(b)?))
    }
}

/// Settings of the [`Engine`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EngineConfig {
    /// Weighting of raw strengths before ALS.
    pub weighting: Weighting,
    /// ALS hyper-parameters.
    pub als: AlsConfig,
    /// Weight of the text similarity for an item nobody consumed yet.
    pub content_weight: f32,
    /// Interactions at which an item's text weight has halved.
    pub cold_shrinkage: f32,
    /// Items whose text share `s/(s+n)` is below this get no text part at all: it would barely
    /// move them, and skipping them keeps scoring cheap on large catalogues.
    pub min_coldness: f32,
    /// History items named in a collaborative reason.
    pub reason_items: usize,
}

impl Default for EngineConfig {
    /// Defaults tuned on MovieLens-100k (docs/BENCHMARKS.md, "Recommendation").
    fn default() -> Self {
        Self {
            // BM25 lowered NDCG@10 on MovieLens-100k at every setting tried, so raw strengths.
            weighting: Weighting::None,
            als: AlsConfig::default(),
            content_weight: 1.0,
            cold_shrinkage: 5.0,
            min_coldness: 0.1,
            reason_items: 3,
        }
    }
}

/// Why an item is recommended.
#[derive(Debug, Clone, PartialEq)]
pub enum Reason {
    /// Followers who consumed these history items also consumed this one: the items with the
    /// largest parts of the collaborative score, with their share of the named parts (sums to 1).
    History(Vec<(u32, f32)>),
    /// Its text is similar to this history item's.
    SimilarTo {
        /// The history item.
        item: u32,
        /// Cosine similarity of the texts.
        similarity: f32,
    },
    /// The follower has no history: one of the most consumed items.
    Popular,
}

/// One recommended item.
#[derive(Debug, Clone, PartialEq)]
pub struct Recommendation {
    /// Item index.
    pub item: u32,
    /// Blended score (comparable within one follower's list).
    pub score: f32,
    /// Why.
    pub reason: Reason,
}

/// What made two items similar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimilarityBasis {
    /// Consumed by the same followers.
    Interactions,
    /// Similar texts.
    Text,
}

/// One item similar to another.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SimilarItem {
    /// Item index.
    pub item: u32,
    /// Blended similarity.
    pub score: f32,
    /// Which signal dominated.
    pub basis: SimilarityBasis,
}

/// A trained recommender for one account.
#[derive(Debug, Clone)]
pub struct Engine {
    config: EngineConfig,
    raw: CsrMatrix,
    weighted: CsrMatrix,
    als: AlsModel,
    popularity: Popularity,
    item_counts: Vec<usize>,
    embeddings: Option<ItemEmbeddings>,
    /// Items with an embedding and a text share of at least `min_coldness`.
    cold_items: Vec<u32>,
}

impl Engine {
    /// Trains on a follower × item matrix of raw strengths, with optional item embeddings
    /// (one slot per item column).
    pub fn train(
        interactions: CsrMatrix,
        embeddings: Option<ItemEmbeddings>,
        config: EngineConfig,
    ) -> Result<Self, RecommendError> {
        if let Some(e) = &embeddings
            && e.n_items() != interactions.cols()
        {
            return Err(RecommendError::Embeddings(format!(
                "{} embedding slots for {} items",
                e.n_items(),
                interactions.cols()
            )));
        }
        if !(config.content_weight.is_finite() && config.content_weight >= 0.0) {
            return Err(RecommendError::InvalidConfig(
                "content_weight must be non-negative".into(),
            ));
        }
        if !(config.cold_shrinkage.is_finite() && config.cold_shrinkage >= 0.0) {
            return Err(RecommendError::InvalidConfig(
                "cold_shrinkage must be non-negative".into(),
            ));
        }
        let weighted = config.weighting.apply(&interactions);
        let als = AlsModel::fit(&weighted, &config.als)?;
        let popularity = Popularity::fit(&interactions);
        let item_counts = interactions.col_counts();
        let mut engine = Self {
            config,
            raw: interactions,
            weighted,
            als,
            popularity,
            item_counts,
            embeddings,
            cold_items: Vec::new(),
        };
        engine.cold_items = (0..engine.n_items())
            .filter(|&i| engine.text_share(i) > 0.0)
            .map(|i| i as u32)
            .collect();
        Ok(engine)
    }

    /// Followers the engine was trained on.
    pub fn n_followers(&self) -> usize {
        self.raw.rows()
    }

    /// Items the engine knows.
    pub fn n_items(&self) -> usize {
        self.raw.cols()
    }

    /// The fitted ALS model.
    pub fn als(&self) -> &AlsModel {
        &self.als
    }

    /// Items follower `f` consumed (sorted) and their raw strengths.
    pub fn history(&self, f: usize) -> (&[u32], &[f32]) {
        self.raw.row(f)
    }

    /// Share of the text signal for an item with `n` interactions: `s / (s + n)`.
    fn coldness(&self, item: usize) -> f32 {
        let n = self.item_counts.get(item).copied().unwrap_or(0) as f32;
        let s = self.config.cold_shrinkage;
        if s + n == 0.0 { 0.0 } else { s / (s + n) }
    }

    /// Follower `f`'s taste in text space: the strength-weighted mean of the unit embeddings of
    /// what they consumed, normalised. `None` without embeddings or history.
    pub fn follower_profile(&self, f: usize) -> Option<Vec<f32>> {
        let emb = self.embeddings.as_ref()?;
        let mut profile = vec![0f32; emb.dim()];
        let (items, strengths) = self.raw.row(f);
        for (&i, &w) in items.iter().zip(strengths) {
            if let Some(e) = emb.get(i as usize) {
                for (p, v) in profile.iter_mut().zip(e) {
                    *p += w * v;
                }
            }
        }
        let n = norm(&profile);
        if n == 0.0 {
            return None;
        }
        profile.iter_mut().for_each(|p| *p /= n);
        Some(profile)
    }

    /// Weight of the text part for item `i`: its coldness, or zero below `min_coldness` or
    /// without an embedding.
    fn text_share(&self, i: usize) -> f32 {
        let c = self.coldness(i);
        let has_text = self.embeddings.as_ref().is_some_and(|e| e.get(i).is_some());
        if has_text && c >= self.config.min_coldness {
            c
        } else {
            0.0
        }
    }

    /// Content part of item `i`'s score for a follower with this profile.
    fn content_part(&self, profile: &[f32], i: usize) -> f32 {
        match self.embeddings.as_ref().and_then(|e| e.get(i)) {
            Some(e) => self.config.content_weight * self.text_share(i) * dot(profile, e),
            None => 0.0,
        }
    }

    /// Blended score of item `i` for follower `f` (whether or not `f` already consumed it).
    pub fn affinity(&self, f: usize, i: usize) -> f32 {
        if f >= self.n_followers() || i >= self.n_items() {
            return 0.0;
        }
        let x = self.als.user_factors(f);
        let mut scores = vec![0f32; self.n_items()];
        self.als.score_all(x, &mut scores);
        let scale = collaborative_scale(&scores, self.raw.row(f).0);
        let content = self
            .follower_profile(f)
            .map(|p| self.content_part(&p, i))
            .unwrap_or(0.0);
        scores[i] / scale + content
    }

    /// The top `k` items follower `f` has not consumed, best first, each with a reason.
    /// Followers without history (or unknown to the engine) get the most popular items.
    pub fn recommend(&self, f: usize, k: usize) -> Vec<Recommendation> {
        let (items, _) = self.raw.row(f);
        if items.is_empty() {
            return self.popular(k);
        }
        let mut scores = vec![0f32; self.n_items()];
        self.als.score_into(f, self.weighted.row(f), &mut scores);
        let scale = collaborative_scale(&scores, items);
        scores.iter_mut().for_each(|s| *s /= scale);
        let profile = self.follower_profile(f);
        let mut content = vec![0f32; if profile.is_some() { self.n_items() } else { 0 }];
        if let Some(p) = &profile {
            for &i in &self.cold_items {
                let c = self.content_part(p, i as usize);
                content[i as usize] = c;
                scores[i as usize] += c;
            }
        }
        let top = top_k(&scores, k, |i| contains(items, i));
        let explainer = self.als.explainer(self.weighted.row(f));
        top.into_iter()
            .map(|(item, score)| {
                let text = content.get(item as usize).copied().unwrap_or(0.0);
                let reason = self.reason(f, item, score - text, text, explainer.as_ref());
                Recommendation {
                    item,
                    score,
                    reason,
                }
            })
            .collect()
    }

    /// Recommendations for every trained follower (in parallel), index = follower.
    pub fn recommend_all(&self, k: usize) -> Vec<Vec<Recommendation>> {
        map_range(self.n_followers(), |f| self.recommend(f, k))
    }

    /// The `k` most popular items with [`Reason::Popular`].
    pub fn popular(&self, k: usize) -> Vec<Recommendation> {
        let mut scores = vec![0f32; self.n_items()];
        self.popularity.score_into(0, (&[], &[]), &mut scores);
        top_k(&scores, k, |i| {
            self.item_counts.get(i as usize).is_none_or(|&c| c == 0)
        })
        .into_iter()
        .map(|(item, score)| Recommendation {
            item,
            score,
            reason: Reason::Popular,
        })
        .collect()
    }

    /// The reason for one recommended item given its collaborative and text parts.
    fn reason(
        &self,
        f: usize,
        item: u32,
        collaborative: f32,
        text: f32,
        explainer: Option<&Explainer<'_>>,
    ) -> Reason {
        if text > 0.0
            && text >= collaborative
            && let Some(r) = self.closest_history_text(f, item)
        {
            return r;
        }
        if let Some(e) = explainer {
            let (parts, _) = e.explain(item as usize);
            let named: Vec<(u32, f32)> = parts
                .into_iter()
                .filter(|p| p.weight > 0.0)
                .take(self.config.reason_items)
                .map(|p| (p.item, p.weight))
                .collect();
            let sum: f32 = named.iter().map(|p| p.1).sum();
            if sum > 0.0 {
                return Reason::History(named.into_iter().map(|(i, w)| (i, w / sum)).collect());
            }
        }
        self.closest_history_text(f, item)
            .unwrap_or(Reason::History(Vec::new()))
    }

    /// "Similar to …": the history item whose text is closest to `item`'s.
    fn closest_history_text(&self, f: usize, item: u32) -> Option<Reason> {
        let emb = self.embeddings.as_ref()?;
        let (items, _) = self.raw.row(f);
        items
            .iter()
            .filter_map(|&j| emb.cosine(j as usize, item as usize).map(|s| (j, s)))
            .max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.cmp(&a.0)))
            .map(|(j, s)| Reason::SimilarTo {
                item: j,
                similarity: s,
            })
    }

    /// [`similar_items`](Self::similar_items) of every item, in parallel.
    pub fn similar_all(&self, k: usize) -> Vec<Vec<SimilarItem>> {
        map_range(self.n_items(), |i| self.similar_items(i, k))
    }

    /// The `k` items most similar to item `i`: factor cosine for items both consumed often,
    /// text cosine as the items get colder (`w = warmth(i)·warmth(j)` on factors, `1 - w` on
    /// text, warmth = `n/(n + s)`).
    pub fn similar_items(&self, i: usize, k: usize) -> Vec<SimilarItem> {
        if i >= self.n_items() {
            return Vec::new();
        }
        let target = self.als.item_factors(i);
        let tn = norm(target);
        let warm_i = 1.0 - self.coldness(i);
        let emb = self.embeddings.as_ref();
        let mut basis = vec![SimilarityBasis::Interactions; self.n_items()];
        let scores: Vec<f32> = (0..self.n_items())
            .map(|j| {
                let y = self.als.item_factors(j);
                let yn = norm(y);
                let behaviour =
                    if tn > 0.0 && yn > 0.0 && self.item_counts[i] > 0 && self.item_counts[j] > 0 {
                        Some(dot(target, y) / (tn * yn))
                    } else {
                        None
                    };
                let text = emb.and_then(|e| e.cosine(i, j));
                match (behaviour, text) {
                    (Some(b), Some(t)) => {
                        let w = warm_i * (1.0 - self.coldness(j));
                        if (1.0 - w) * t > w * b {
                            basis[j] = SimilarityBasis::Text;
                        }
                        w * b + (1.0 - w) * t
                    }
                    (Some(b), None) => b,
                    (None, Some(t)) => {
                        basis[j] = SimilarityBasis::Text;
                        t
                    }
                    (None, None) => f32::NAN,
                }
            })
            .collect();
        top_k(&scores, k, |j| j as usize == i)
            .into_iter()
            .map(|(item, score)| SimilarItem {
                item,
                score,
                basis: basis[item as usize],
            })
            .collect()
    }
}

/// The best collaborative score among items not yet consumed (1 when none is positive), the
/// unit in which collaborative and text scores are blended.
fn collaborative_scale(scores: &[f32], consumed: &[u32]) -> f32 {
    let best = scores
        .iter()
        .enumerate()
        .filter(|(i, s)| s.is_finite() && !contains(consumed, *i as u32))
        .map(|(_, &s)| s)
        .fold(f32::NEG_INFINITY, f32::max);
    if best > 0.0 { best } else { 1.0 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;
    use crate::synthetic::{PlantedConfig, planted};

    const GROUPS: usize = 4;

    /// Planted tastes on 200 warm items plus 8 cold items (two per group) nobody consumed; each
    /// item's "text" is its group's direction plus noise.
    fn engine_with_cold_items() -> (Engine, Vec<usize>) {
        let warm = 200;
        let cold = 8;
        let p = planted(&PlantedConfig {
            users: 200,
            items: warm,
            groups: GROUPS,
            per_user: 15,
            noise: 0.05,
            seed: 11,
        });
        let cells = p.interactions.triplets();
        let m = CsrMatrix::from_triplets(200, warm + cold, &cells).unwrap();
        let dim = 16;
        let mut emb = ItemEmbeddings::new(warm + cold, dim);
        let mut rng = SplitMix64::new(3);
        for i in 0..warm + cold {
            let mut v: Vec<f32> = (0..dim)
                .map(|_| (rng.next_f64() as f32 - 0.5) * 0.3)
                .collect();
            v[i % GROUPS] += 1.0;
            emb.set(i, &v).unwrap();
        }
        let config = EngineConfig {
            als: AlsConfig {
                factors: 16,
                ..AlsConfig::default()
            },
            ..EngineConfig::default()
        };
        (Engine::train(m, Some(emb), config).unwrap(), p.user_group)
    }

    #[test]
    fn cold_items_are_recommended_by_text_similarity_to_the_right_followers() {
        let (engine, groups) = engine_with_cold_items();
        let mut cold_hits = 0;
        let mut wrong_group_cold = 0;
        for (f, &group) in groups.iter().enumerate() {
            for r in engine.recommend(f, 10) {
                if r.item >= 200 {
                    if r.item as usize % GROUPS == group {
                        cold_hits += 1;
                        let Reason::SimilarTo { item, similarity } = r.reason else {
                            panic!("cold item {} with reason {:?}", r.item, r.reason)
                        };
                        assert!(engine.history(f).0.contains(&item));
                        assert!(similarity > 0.5);
                    } else {
                        wrong_group_cold += 1;
                    }
                }
            }
        }
        // Each follower's group has two cold items: most followers should see both, and cold
        // items of other groups should (almost) never make it.
        eprintln!("cold hits {cold_hits}, wrong group {wrong_group_cold}");
        assert!(
            cold_hits as f64 > 1.5 * engine.n_followers() as f64,
            "cold hits {cold_hits}"
        );
        assert!(
            wrong_group_cold * 20 < cold_hits,
            "wrong group {wrong_group_cold}"
        );
    }

    #[test]
    fn reasons_name_items_the_follower_consumed_and_exclude_consumed() {
        let (engine, _) = engine_with_cold_items();
        for f in 0..engine.n_followers() {
            let history = engine.history(f).0;
            for r in engine.recommend(f, 10) {
                assert!(!history.contains(&r.item), "recommended a consumed item");
                match &r.reason {
                    Reason::History(items) => {
                        assert!(!items.is_empty());
                        assert!(items.iter().all(|(i, _)| history.contains(i)));
                        let total: f32 = items.iter().map(|p| p.1).sum();
                        assert!((total - 1.0).abs() < 1e-4);
                    }
                    Reason::SimilarTo { item, .. } => assert!(history.contains(item)),
                    Reason::Popular => panic!("follower with history got a popularity reason"),
                }
            }
        }
    }

    #[test]
    fn new_followers_get_popular_items() {
        let (engine, _) = engine_with_cold_items();
        let recs = engine.recommend(10_000, 5);
        assert_eq!(recs.len(), 5);
        assert!(
            recs.iter()
                .all(|r| r.reason == Reason::Popular && r.item < 200)
        );
        assert!(recs.windows(2).all(|w| w[0].score >= w[1].score));
        // The most popular item really is the most consumed one.
        let counts = engine.item_counts.clone();
        let best = (0..counts.len())
            .max_by_key(|&i| (counts[i], std::cmp::Reverse(i)))
            .unwrap();
        assert_eq!(recs[0].item as usize, best);
    }

    #[test]
    fn similar_items_stay_in_the_group_for_warm_and_cold_items() {
        let (engine, _) = engine_with_cold_items();
        for i in [0usize, 5, 201, 206] {
            let sims = engine.similar_items(i, 5);
            assert_eq!(sims.len(), 5);
            let same = sims
                .iter()
                .filter(|s| s.item as usize % GROUPS == i % GROUPS)
                .count();
            assert!(same >= 4, "item {i}: {sims:?}");
            if i >= 200 {
                assert!(sims.iter().all(|s| s.basis == SimilarityBasis::Text));
            }
        }
    }

    #[test]
    fn same_data_and_seed_give_the_same_recommendations() {
        let (a, _) = engine_with_cold_items();
        let (b, _) = engine_with_cold_items();
        assert_eq!(a.recommend_all(5), b.recommend_all(5));
    }

    #[test]
    fn embeddings_are_checked() {
        let mut e = ItemEmbeddings::new(2, 3);
        assert!(e.set(0, &[1.0, 2.0]).is_err());
        assert!(e.set(5, &[1.0, 2.0, 3.0]).is_err());
        assert!(e.set(0, &[f32::NAN, 0.0, 0.0]).is_err());
        e.set(1, &[0.0, 0.0, 0.0]).unwrap();
        assert!(e.get(1).is_none());
        e.set(0, &[3.0, 0.0, 4.0]).unwrap();
        assert_eq!(e.get(0), Some(&[0.6f32, 0.0, 0.8][..]));
        let m = CsrMatrix::from_triplets(1, 3, &[(0, 0, 1.0)]).unwrap();
        assert!(
            Engine::train(m, Some(e), EngineConfig::default()).is_err(),
            "2 slots for 3 items"
        );
    }
}
