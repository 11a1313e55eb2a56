//! Synthetic interaction data with planted tastes, for tests and the scale benchmark.
//!
//! Items are split into taste groups (item `i` is in group `i % groups`); each follower has
//! one group and draws most interactions from it, skewed towards the group's first items so
//! that popularity is informative but not the whole story, and the rest uniformly at random.

use crate::CsrMatrix;
use crate::rng::stream;

/// Shape of a planted data set.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlantedConfig {
    /// Followers.
    pub users: usize,
    /// Items.
    pub items: usize,
    /// Taste groups.
    pub groups: usize,
    /// Distinct items per follower (at most; capped by the items available).
    pub per_user: usize,
    /// Share of interactions drawn uniformly instead of from the follower's group.
    pub noise: f64,
    /// Seed.
    pub seed: u64,
}

/// A planted data set and its ground truth.
#[derive(Debug, Clone)]
pub struct Planted {
    /// Followers × items, strength 1.
    pub interactions: CsrMatrix,
    /// Taste group of each follower.
    pub user_group: Vec<usize>,
}

impl Planted {
    /// Group of item `i`.
    pub fn item_group(&self, i: usize, groups: usize) -> usize {
        i % groups.max(1)
    }
}

/// Generates a planted data set; deterministic for the seed.
pub fn planted(config: &PlantedConfig) -> Planted {
    let groups = config.groups.max(1).min(config.items.max(1));
    let per_group = config.items.div_ceil(groups).max(1);
    let mut cells = Vec::with_capacity(config.users * config.per_user);
    let mut user_group = Vec::with_capacity(config.users);
    let want = config.per_user.min(config.items);
    for u in 0..config.users {
        let mut rng = stream(config.seed, u as u64);
        let g = rng.below(groups);
        user_group.push(g);
        let mut chosen: Vec<u32> = Vec::with_capacity(want);
        let mut attempts = 0;
        while chosen.len() < want && attempts < want * 20 {
            attempts += 1;
            let item = if rng.next_f64() < config.noise {
                rng.below(config.items)
            } else {
                // Product of two uniforms (density -ln x): a group's first items are the popular ones.
                let r = (rng.next_f64() * rng.next_f64() * per_group as f64) as usize;
                (r * groups + g).min(config.items.saturating_sub(1))
            };
            let item = item as u32;
            if !chosen.contains(&item) {
                chosen.push(item);
            }
        }
        cells.extend(chosen.into_iter().map(|i| (u as u32, i, 1.0)));
    }
    // Indices are generated inside the shape, so this cannot fail.
    let interactions = CsrMatrix::from_triplets(config.users, config.items, &cells)
        .unwrap_or_else(|_| CsrMatrix::empty(config.users, config.items));
    Planted {
        interactions,
        user_group,
    }
}
