//! Selecting the best `k` of many scores.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// A scored item; ordered so that a `BinaryHeap` of them pops the worst first.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Worst(f32, u32);

impl Eq for Worst {}

impl Ord for Worst {
    fn cmp(&self, other: &Self) -> Ordering {
        // Reverse on score; ties broken towards the lower index so output is deterministic.
        other.0.total_cmp(&self.0).then(self.1.cmp(&other.1))
    }
}

impl PartialOrd for Worst {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The `k` highest finite scores as `(index, score)`, best first, skipping indices for which
/// `skip` is true. Ties go to the lower index.
pub fn top_k(scores: &[f32], k: usize, mut skip: impl FnMut(u32) -> bool) -> Vec<(u32, f32)> {
    if k == 0 {
        return Vec::new();
    }
    let mut heap: BinaryHeap<Worst> = BinaryHeap::with_capacity(k + 1);
    for (i, &s) in scores.iter().enumerate() {
        let i = i as u32;
        if !s.is_finite() {
            continue;
        }
        // Cheap reject before the `skip` lookup.
        if heap.len() == k
            && let Some(worst) = heap.peek()
            && (s < worst.0 || (s == worst.0 && i > worst.1))
        {
            continue;
        }
        if skip(i) {
            continue;
        }
        heap.push(Worst(s, i));
        if heap.len() > k {
            heap.pop();
        }
    }
    let mut out: Vec<(u32, f32)> = heap.into_iter().map(|w| (w.1, w.0)).collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    out
}

/// Whether sorted `history` contains `item`.
pub fn contains(history: &[u32], item: u32) -> bool {
    history.binary_search(&item).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_best_in_order_with_ties_to_lower_index() {
        let s = [0.1, 0.9, 0.5, 0.9, f32::NAN, 0.7];
        assert_eq!(top_k(&s, 3, |_| false), vec![(1, 0.9), (3, 0.9), (5, 0.7)]);
        assert_eq!(top_k(&s, 2, |i| i == 1), vec![(3, 0.9), (5, 0.7)]);
        assert_eq!(top_k(&s, 10, |_| false).len(), 5);
        assert!(top_k(&s, 0, |_| false).is_empty());
    }
}
