//! The popularity baseline and fallback: items ranked by how many followers consumed them.

use crate::{CsrMatrix, Scorer};

/// Item scores = number of followers with at least one interaction.
#[derive(Debug, Clone)]
pub struct Popularity {
    counts: Vec<f32>,
}

impl Popularity {
    /// Counts the followers of every item.
    pub fn fit(follower_items: &CsrMatrix) -> Self {
        Self {
            counts: follower_items
                .col_counts()
                .into_iter()
                .map(|c| c as f32)
                .collect(),
        }
    }

    /// Followers of item `i`.
    pub fn count(&self, i: usize) -> f32 {
        self.counts.get(i).copied().unwrap_or(0.0)
    }
}

impl Scorer for Popularity {
    fn n_items(&self) -> usize {
        self.counts.len()
    }

    fn score_into(&self, _follower: usize, _history: (&[u32], &[f32]), out: &mut [f32]) {
        for (o, &c) in out.iter_mut().zip(&self.counts) {
            *o = c;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_followers_not_strength() {
        let m = CsrMatrix::from_triplets(2, 2, &[(0, 1, 5.0), (1, 1, 1.0), (1, 0, 1.0)]).unwrap();
        let p = Popularity::fit(&m);
        let mut out = vec![0.0; 2];
        p.score_into(0, m.row(0), &mut out);
        assert_eq!(out, vec![1.0, 2.0]);
    }
}
