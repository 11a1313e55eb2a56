//! Re-weighting of raw interaction counts before training, as `implicit` users do with
//! `bm25_weight`/`tfidf_weight`: it damps very popular items and very active followers, whose
//! interactions say less about taste.

use crate::CsrMatrix;

/// How raw strengths are turned into training weights.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Weighting {
    /// Raw strengths as given.
    None,
    /// Okapi BM25 with items as documents and followers as terms (the orientation of
    /// `implicit`'s examples, which weight the item × user matrix).
    Bm25 {
        /// Term-frequency saturation.
        k1: f32,
        /// Length normalisation (0 = none, 1 = full).
        b: f32,
    },
    /// TF-IDF with items as documents: strength × idf of the follower.
    TfIdf,
}

impl Weighting {
    /// Applies the weighting to a follower × item matrix and returns the weighted copy.
    pub fn apply(&self, follower_items: &CsrMatrix) -> CsrMatrix {
        match *self {
            Weighting::None => follower_items.clone(),
            Weighting::Bm25 { k1, b } => bm25(follower_items, k1, b),
            Weighting::TfIdf => tfidf(follower_items),
        }
    }
}

/// `ln(N) - ln(1 + df)` per follower, where `N` is the number of items and `df` how many items
/// the follower touched; floored at zero so weights stay non-negative.
fn follower_idf(m: &CsrMatrix) -> Vec<f32> {
    let n = (m.cols().max(1)) as f32;
    (0..m.rows())
        .map(|r| {
            let df = m.row(r).0.len() as f32;
            (n.ln() - (1.0 + df).ln()).max(0.0)
        })
        .collect()
}

/// BM25 on the item × follower orientation, computed directly on follower × item.
fn bm25(m: &CsrMatrix, k1: f32, b: f32) -> CsrMatrix {
    let idf = follower_idf(m);
    // Item "document length": the total strength the item received.
    let mut item_len = vec![0f32; m.cols()];
    for r in 0..m.rows() {
        let (idx, val) = m.row(r);
        for (&c, &v) in idx.iter().zip(val) {
            item_len[c as usize] += v;
        }
    }
    let mean_len = item_len.iter().sum::<f32>() / (m.cols().max(1)) as f32;
    let mean_len = if mean_len > 0.0 { mean_len } else { 1.0 };
    m.map_values(|r, c, v| {
        let length_norm = (1.0 - b) + b * item_len[c as usize] / mean_len;
        v * (k1 + 1.0) / (k1 * length_norm + v) * idf[r]
    })
}

/// TF-IDF on the item × follower orientation.
fn tfidf(m: &CsrMatrix) -> CsrMatrix {
    let idf = follower_idf(m);
    m.map_values(|r, _, v| v * idf[r])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bm25_damps_popular_items_and_busy_followers() {
        // Follower 0 touched items 0 and 1; follower 1 only item 0. Item 0 is popular.
        let m = CsrMatrix::from_triplets(2, 4, &[(0, 0, 1.0), (0, 1, 1.0), (1, 0, 1.0)]).unwrap();
        let w = Weighting::Bm25 { k1: 100.0, b: 0.8 }.apply(&m);
        // idf: follower 0 = ln 4 - ln 3, follower 1 = ln 4 - ln 2.
        let idf0 = 4f32.ln() - 3f32.ln();
        let idf1 = 4f32.ln() - 2f32.ln();
        // item lengths 2, 1, 0, 0 → mean 0.75.
        let norm0 = 0.2 + 0.8 * 2.0 / 0.75;
        let norm1 = 0.2 + 0.8 * 1.0 / 0.75;
        assert!((w.get(0, 0) - 101.0 / (100.0 * norm0 + 1.0) * idf0).abs() < 1e-6);
        assert!((w.get(0, 1) - 101.0 / (100.0 * norm1 + 1.0) * idf0).abs() < 1e-6);
        assert!((w.get(1, 0) - 101.0 / (100.0 * norm0 + 1.0) * idf1).abs() < 1e-6);
        assert!(w.get(0, 1) > w.get(0, 0), "the rarer item weighs more");
        assert!(
            w.get(1, 0) > w.get(0, 0),
            "the less busy follower weighs more"
        );
    }

    #[test]
    fn tfidf_scales_by_follower_idf() {
        let m = CsrMatrix::from_triplets(1, 3, &[(0, 0, 2.0)]).unwrap();
        let w = Weighting::TfIdf.apply(&m);
        assert!((w.get(0, 0) - 2.0 * (3f32.ln() - 2f32.ln())).abs() < 1e-6);
        assert_eq!(Weighting::None.apply(&m), m);
    }
}
