//! Segments: followers selected by affinity to a set of items or to a topic vector (for
//! example to tag them in WeChat).

use crate::linalg::{dot, norm};
use crate::parallel::map_range;
use crate::{Engine, RecommendError};

/// Which followers to keep.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cutoff {
    /// Those with affinity at least this.
    MinAffinity(f32),
    /// The `n` with the highest affinity.
    Top(usize),
}

/// One follower in a segment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Member {
    /// Follower index.
    pub follower: u32,
    /// Affinity (mean blended score over the items, or profile cosine to the topic).
    pub affinity: f32,
}

/// Followers by mean blended score over `items` (unknown item indices are ignored).
pub fn by_items(engine: &Engine, items: &[u32], cutoff: Cutoff) -> Vec<Member> {
    let items: Vec<usize> = items
        .iter()
        .map(|&i| i as usize)
        .filter(|&i| i < engine.n_items())
        .collect();
    if items.is_empty() {
        return Vec::new();
    }
    let scores = map_range(engine.n_followers(), |f| {
        if engine.history(f).0.is_empty() {
            return f32::NAN;
        }
        items.iter().map(|&i| engine.affinity(f, i)).sum::<f32>() / items.len() as f32
    });
    apply_cutoff(&scores, cutoff)
}

/// Followers by cosine between their text profile and `topic` (e.g. the embedding of a
/// campaign brief). Followers without a profile are left out.
pub fn by_topic(
    engine: &Engine,
    topic: &[f32],
    cutoff: Cutoff,
) -> Result<Vec<Member>, RecommendError> {
    let n = norm(topic);
    if !(n.is_finite() && n > 0.0) {
        return Err(RecommendError::Embeddings(
            "topic vector is zero or not finite".into(),
        ));
    }
    let scores = map_range(engine.n_followers(), |f| match engine.follower_profile(f) {
        Some(p) if p.len() == topic.len() => dot(&p, topic) / n,
        _ => f32::NAN,
    });
    if scores.iter().all(|s| s.is_nan()) && engine.n_followers() > 0 {
        return Err(RecommendError::Embeddings(format!(
            "no follower profile of {} dimensions",
            topic.len()
        )));
    }
    Ok(apply_cutoff(&scores, cutoff))
}

/// Keeps the followers the cutoff selects, highest affinity first.
fn apply_cutoff(scores: &[f32], cutoff: Cutoff) -> Vec<Member> {
    let mut members: Vec<Member> = scores
        .iter()
        .enumerate()
        .filter(|(_, s)| s.is_finite())
        .map(|(f, &s)| Member {
            follower: f as u32,
            affinity: s,
        })
        .collect();
    members.sort_by(|a, b| {
        b.affinity
            .total_cmp(&a.affinity)
            .then(a.follower.cmp(&b.follower))
    });
    match cutoff {
        Cutoff::MinAffinity(t) => members.retain(|m| m.affinity >= t),
        Cutoff::Top(n) => members.truncate(n),
    }
    members
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{EngineConfig, ItemEmbeddings};
    use crate::synthetic::{PlantedConfig, planted};
    use crate::{AlsConfig, CsrMatrix};

    fn engine() -> (Engine, Vec<usize>) {
        let p = planted(&PlantedConfig {
            users: 150,
            items: 60,
            groups: 3,
            per_user: 12,
            noise: 0.0,
            seed: 2,
        });
        let mut emb = ItemEmbeddings::new(60, 3);
        for i in 0..60 {
            let mut v = [0.1f32; 3];
            v[i % 3] = 1.0;
            emb.set(i, &v).unwrap();
        }
        let config = EngineConfig {
            als: AlsConfig {
                factors: 8,
                ..AlsConfig::default()
            },
            ..EngineConfig::default()
        };
        (
            Engine::train(p.interactions, Some(emb), config).unwrap(),
            p.user_group,
        )
    }

    #[test]
    fn item_segment_selects_the_group_that_likes_them() {
        let (engine, groups) = engine();
        let group1_items: Vec<u32> = (0..60).filter(|i| i % 3 == 1).collect();
        let n_group1 = groups.iter().filter(|&&g| g == 1).count();
        let top = by_items(&engine, &group1_items, Cutoff::Top(n_group1));
        assert_eq!(top.len(), n_group1);
        let right = top
            .iter()
            .filter(|m| groups[m.follower as usize] == 1)
            .count();
        assert!(
            right as f64 >= 0.9 * n_group1 as f64,
            "{right} of {n_group1}"
        );
        assert!(top.windows(2).all(|w| w[0].affinity >= w[1].affinity));
    }

    #[test]
    fn topic_segment_with_threshold() {
        let (engine, groups) = engine();
        let members = by_topic(&engine, &[0.0, 0.0, 1.0], Cutoff::MinAffinity(0.9)).unwrap();
        assert!(!members.is_empty());
        assert!(
            members
                .iter()
                .all(|m| groups[m.follower as usize] == 2 && m.affinity >= 0.9)
        );
        assert_eq!(members.len(), groups.iter().filter(|&&g| g == 2).count());
        assert!(by_topic(&engine, &[0.0, 0.0, 0.0], Cutoff::Top(3)).is_err());
        assert!(by_topic(&engine, &[1.0, 0.0], Cutoff::Top(3)).is_err());
        let empty = CsrMatrix::empty(0, 0);
        assert!(
            by_items(
                &Engine::train(empty, None, EngineConfig::default()).unwrap(),
                &[0],
                Cutoff::Top(1)
            )
            .is_empty()
        );
    }
}
