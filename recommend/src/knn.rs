//! Item-based nearest neighbours with cosine similarity (the baseline `implicit` calls
//! `CosineRecommender`): each item keeps its `k` most similar items, and a follower's score
//! for an item is `Σ_j strength(j) · sim(j, item)` over the follower's history.

use crate::parallel::map_range;
use crate::topk::top_k;
use crate::{CsrMatrix, RecommendError, Scorer};

/// A fitted item-kNN model.
#[derive(Debug, Clone)]
pub struct ItemKnn {
    n_items: usize,
    /// For each item, its neighbours `(item, similarity)`, best first.
    neighbours: Vec<Vec<(u32, f32)>>,
}

impl ItemKnn {
    /// Computes the `k` nearest neighbours of every item by cosine over followers.
    pub fn fit(follower_items: &CsrMatrix, k: usize) -> Result<Self, RecommendError> {
        if k == 0 {
            return Err(RecommendError::InvalidConfig("k must be at least 1".into()));
        }
        let item_users = follower_items.transpose();
        let n_items = item_users.rows();
        let norms: Vec<f32> = (0..n_items)
            .map(|i| {
                item_users
                    .row(i)
                    .1
                    .iter()
                    .map(|v| v * v)
                    .sum::<f32>()
                    .sqrt()
            })
            .collect();
        let neighbours = map_range(n_items, |i| {
            // Co-occurrence with every other item through the followers of item i.
            let mut acc = vec![0f32; n_items];
            let (users, strengths) = item_users.row(i);
            for (&u, &w) in users.iter().zip(strengths) {
                let (items, vals) = follower_items.row(u as usize);
                for (&j, &v) in items.iter().zip(vals) {
                    acc[j as usize] += w * v;
                }
            }
            for (j, a) in acc.iter_mut().enumerate() {
                let d = norms[i] * norms[j];
                *a = if *a > 0.0 && d > 0.0 {
                    *a / d
                } else {
                    f32::NAN
                };
            }
            top_k(&acc, k, |j| j as usize == i)
        });
        Ok(Self {
            n_items,
            neighbours,
        })
    }

    /// The neighbours of item `i`, best first.
    pub fn neighbours(&self, i: usize) -> &[(u32, f32)] {
        self.neighbours.get(i).map(Vec::as_slice).unwrap_or(&[])
    }
}

impl Scorer for ItemKnn {
    fn n_items(&self) -> usize {
        self.n_items
    }

    fn score_into(&self, _follower: usize, history: (&[u32], &[f32]), out: &mut [f32]) {
        out.iter_mut().for_each(|o| *o = 0.0);
        for (&j, &w) in history.0.iter().zip(history.1) {
            for &(i, s) in self.neighbours(j as usize) {
                out[i as usize] += w * s;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_neighbours_on_a_hand_example() {
        // Item 0: users {0,1}; item 1: users {0,1}; item 2: users {1,2}.
        let m = CsrMatrix::from_triplets(
            3,
            3,
            &[
                (0, 0, 1.0),
                (1, 0, 1.0),
                (0, 1, 1.0),
                (1, 1, 1.0),
                (1, 2, 1.0),
                (2, 2, 1.0),
            ],
        )
        .unwrap();
        let knn = ItemKnn::fit(&m, 2).unwrap();
        let n0 = knn.neighbours(0);
        assert_eq!(n0[0].0, 1);
        assert!((n0[0].1 - 1.0).abs() < 1e-6);
        assert_eq!(n0[1].0, 2);
        assert!((n0[1].1 - 0.5).abs() < 1e-6);
        // Follower 2 has item 2: item 0 and item 1 each score 0.5.
        let mut out = vec![0.0; 3];
        knn.score_into(2, m.row(2), &mut out);
        assert!((out[0] - 0.5).abs() < 1e-6 && (out[1] - 0.5).abs() < 1e-6);
    }
}
