//! The scale benchmark: a synthetic account trained and fully scored, with timings.

use std::time::Instant;

use crate::engine::{EngineConfig, ItemEmbeddings};
use crate::rng::SplitMix64;
use crate::synthetic::{PlantedConfig, planted};
use crate::{Engine, RecommendError};

/// Size of the synthetic account.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScaleConfig {
    /// Followers.
    pub followers: usize,
    /// Items.
    pub items: usize,
    /// Interactions in total (spread evenly over followers).
    pub interactions: usize,
    /// Dimensions of the synthetic item embeddings (0 = none).
    pub embedding_dim: usize,
    /// Recommendations per follower.
    pub k: usize,
    /// Seed.
    pub seed: u64,
}

impl Default for ScaleConfig {
    /// 100k followers, 10k items, 1M interactions, 384-dimensional embeddings (all-MiniLM's).
    fn default() -> Self {
        Self {
            followers: 100_000,
            items: 10_000,
            interactions: 1_000_000,
            embedding_dim: 384,
            k: 10,
            seed: 7,
        }
    }
}

/// Timings of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct ScaleReport {
    /// The configuration run.
    pub config: ScaleConfig,
    /// Interactions actually generated (distinct follower-item pairs).
    pub nnz: usize,
    /// Seconds to generate the data.
    pub generate_seconds: f64,
    /// Seconds to train the engine (ALS and popularity).
    pub train_seconds: f64,
    /// Seconds to compute top-k with reasons for every follower.
    pub score_seconds: f64,
    /// Recommendations produced.
    pub recommendations: usize,
    /// Share of recommendations whose item is in the follower's planted taste group.
    pub in_taste_share: f64,
}

/// Generates the account, trains the engine and recommends for every follower.
pub fn run_scale(config: &ScaleConfig) -> Result<ScaleReport, RecommendError> {
    let groups = 50;
    let started = Instant::now();
    let per_user = config.interactions.div_ceil(config.followers.max(1));
    let data = planted(&PlantedConfig {
        users: config.followers,
        items: config.items,
        groups,
        per_user,
        noise: 0.2,
        seed: config.seed,
    });
    let embeddings = (config.embedding_dim > 0).then(|| synthetic_embeddings(config, groups));
    let embeddings = embeddings.transpose()?;
    let generate_seconds = started.elapsed().as_secs_f64();
    let nnz = data.interactions.nnz();

    let started = Instant::now();
    let engine = Engine::train(data.interactions, embeddings, EngineConfig::default())?;
    let train_seconds = started.elapsed().as_secs_f64();

    let started = Instant::now();
    let recs = engine.recommend_all(config.k);
    let score_seconds = started.elapsed().as_secs_f64();

    let recommendations: usize = recs.iter().map(Vec::len).sum();
    let in_taste = recs
        .iter()
        .enumerate()
        .flat_map(|(f, list)| list.iter().map(move |r| (f, r.item as usize)))
        .filter(|&(f, i)| i % groups == data.user_group[f])
        .count();
    Ok(ScaleReport {
        config: *config,
        nnz,
        generate_seconds,
        train_seconds,
        score_seconds,
        recommendations,
        in_taste_share: in_taste as f64 / recommendations.max(1) as f64,
    })
}

/// Item "texts" near their taste group's direction.
fn synthetic_embeddings(
    config: &ScaleConfig,
    groups: usize,
) -> Result<ItemEmbeddings, RecommendError> {
    let dim = config.embedding_dim;
    let mut emb = ItemEmbeddings::new(config.items, dim);
    let mut rng = SplitMix64::new(config.seed ^ 0xE3B);
    let mut v = vec![0f32; dim];
    for i in 0..config.items {
        v.iter_mut()
            .for_each(|x| *x = (rng.next_f64() as f32 - 0.5) * 0.2);
        v[(i % groups) % dim] += 1.0;
        emb.set(i, &v)?;
    }
    Ok(emb)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_scale_run_recommends_mostly_in_taste() {
        let config = ScaleConfig {
            followers: 1_000,
            items: 1_000,
            interactions: 8_000,
            embedding_dim: 16,
            k: 10,
            seed: 1,
        };
        let r = run_scale(&config).unwrap();
        assert_eq!(r.recommendations, 10_000);
        assert!(r.nnz > 7_500 && r.nnz <= 8_000, "nnz {}", r.nnz);
        // 50 groups: chance level is 2%; planted tastes are 80% of each history.
        assert!(
            r.in_taste_share > 0.5,
            "in-taste share {}",
            r.in_taste_share
        );
    }
}
