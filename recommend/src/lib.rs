//! Implicit-feedback recommendation: ALS, item-kNN, popularity, explanations, offline evaluation.
//!
//! Everything here is pure computation over index-based data: followers and items are dense
//! indices `0..n` that the caller maps to its own ids (see [`IdMap`]). Nothing touches a
//! database, a file or the network, so every piece is tested with plain unit tests.
//!
//! * [`CsrMatrix`] holds the follower × item interaction strengths.
//! * [`AlsModel`] is confidence-weighted ALS (Hu, Koren & Volinsky 2008) with a
//!   conjugate-gradient or exact Cholesky solver and the item-item decomposition of a score
//!   that [`AlsModel::explain`] uses for reasons.
//! * [`ItemKnn`] (cosine) and [`Popularity`] are the baselines.
//! * [`Engine`] blends ALS with item text embeddings for cold items, falls back to popularity
//!   for new followers, attaches a [`Reason`] to every recommendation, and finds similar items.
//! * [`segments`] selects followers by affinity to items or a topic vector.
//! * [`eval`] is the offline protocol (per-follower 80/20 split, P/MAP/NDCG/recall@K as the
//!   `implicit` library defines them); [`movielens`] parses MovieLens, [`synthetic`] plants tastes.

pub mod als;
pub mod bench;
pub mod engine;
pub mod error;
pub mod eval;
pub mod ids;
pub mod knn;
mod linalg;
pub mod movielens;
mod parallel;
pub mod popularity;
pub mod rng;
pub mod segments;
pub mod sparse;
pub mod synthetic;
pub mod topk;
pub mod weighting;

pub use als::{AlsConfig, AlsModel, Solver};
pub use engine::{Engine, EngineConfig, ItemEmbeddings, Reason, Recommendation, SimilarItem};
pub use error::RecommendError;
pub use ids::IdMap;
pub use knn::ItemKnn;
pub use popularity::Popularity;
pub use sparse::CsrMatrix;
pub use weighting::Weighting;

/// A model that scores every item for one follower.
///
/// `history` is the follower's row of the training matrix (item indices and strengths); models
/// that keep per-follower state (ALS) use `follower` instead when it is in range.
pub trait Scorer: Sync {
    /// Number of items the model scores.
    fn n_items(&self) -> usize;
    /// Writes one score per item into `out` (length [`Scorer::n_items`]); higher is better.
    fn score_into(&self, follower: usize, history: (&[u32], &[f32]), out: &mut [f32]);
}
