//! An in-memory BM25 index over passages, updated one passage at a time.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use crate::tokenize::index_terms;

/// Identifier of a passage inside one [`Bm25Index`]; the owner maps it back to its entry.
pub type PassageId = u64;

/// BM25's two free parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Bm25Params {
    /// Term-frequency saturation.
    pub k1: f32,
    /// Strength of document-length normalisation (0 = none, 1 = full).
    pub b: f32,
}

impl Default for Bm25Params {
    /// The usual Lucene/Elasticsearch values.
    fn default() -> Self {
        Self { k1: 1.2, b: 0.75 }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct PassageStats {
    /// Number of terms, repeats included.
    len: u32,
    /// Distinct terms, kept so that removal knows which postings to touch.
    terms: Vec<String>,
}

/// How well one passage matches a query.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PassageScore {
    /// The passage.
    pub passage: PassageId,
    /// The raw BM25 score (unbounded; only comparable within one query).
    pub score: f32,
    /// The share of the query's idf weight that this passage covers, in [0, 1]: each
    /// query term contributes its BM25 term score capped at its idf (what the term scores
    /// once in an average-length passage), divided by the summed idf of all query terms.
    /// Terms the index has never seen count with the highest idf, so a query full of
    /// unknown words cannot look well covered. Long passages score below full coverage
    /// even when they hold every term, as in BM25 itself.
    pub coverage: f32,
    /// The share of the query's idf weight whose terms occur in the passage, without
    /// length normalisation (recall, in [0, 1]).
    pub query_coverage: f32,
    /// The share of the passage's idf weight whose terms occur in the query (precision,
    /// in [0, 1]): low when the passage is about much more than the question.
    pub passage_coverage: f32,
}

impl PassageScore {
    /// The idf-weighted F1 of [`PassageScore::query_coverage`] and
    /// [`PassageScore::passage_coverage`]: 1 when query and passage consist of the same
    /// terms, which is how an FAQ question and a follower's question should compare.
    pub fn term_f1(&self) -> f32 {
        let (r, p) = (self.query_coverage, self.passage_coverage);
        if r + p <= 0.0 {
            0.0
        } else {
            2.0 * r * p / (r + p)
        }
    }
}

/// BM25 over jieba terms with postings per term; serialisable so a caller can cache it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Bm25Index {
    params: Bm25Params,
    passages: BTreeMap<PassageId, PassageStats>,
    /// term → passage → term frequency.
    postings: BTreeMap<String, BTreeMap<PassageId, u32>>,
    total_len: u64,
}

impl Bm25Index {
    /// An empty index with the given parameters.
    pub fn new(params: Bm25Params) -> Self {
        Self {
            params,
            ..Self::default()
        }
    }

    /// Number of passages indexed.
    pub fn len(&self) -> usize {
        self.passages.len()
    }

    /// Whether nothing is indexed.
    pub fn is_empty(&self) -> bool {
        self.passages.is_empty()
    }

    /// Indexes `text` under `passage`, replacing what was there before.
    pub fn insert(&mut self, passage: PassageId, text: &str) {
        self.insert_terms(passage, &index_terms(text));
    }

    /// Indexes already segmented terms under `passage`, replacing what was there before.
    pub fn insert_terms(&mut self, passage: PassageId, terms: &[String]) {
        self.remove(passage);
        let mut counts: BTreeMap<&str, u32> = BTreeMap::new();
        for term in terms {
            *counts.entry(term.as_str()).or_default() += 1;
        }
        for (term, tf) in &counts {
            self.postings
                .entry((*term).to_owned())
                .or_default()
                .insert(passage, *tf);
        }
        let len = u32::try_from(terms.len()).unwrap_or(u32::MAX);
        self.total_len += u64::from(len);
        self.passages.insert(
            passage,
            PassageStats {
                len,
                terms: counts.keys().map(|t| (*t).to_owned()).collect(),
            },
        );
    }

    /// Removes a passage; answers whether it was there.
    pub fn remove(&mut self, passage: PassageId) -> bool {
        let Some(stats) = self.passages.remove(&passage) else {
            return false;
        };
        self.total_len = self.total_len.saturating_sub(u64::from(stats.len));
        for term in &stats.terms {
            if let Some(list) = self.postings.get_mut(term) {
                list.remove(&passage);
                if list.is_empty() {
                    self.postings.remove(term);
                }
            }
        }
        true
    }

    /// Inverse document frequency, Lucene's form `ln(1 + (N − df + ½) / (df + ½))`, which
    /// stays positive even for a term in every passage.
    pub fn idf(&self, term: &str) -> f32 {
        let n = self.passages.len() as f32;
        let df = self.postings.get(term).map_or(0, BTreeMap::len) as f32;
        (1.0 + (n - df + 0.5) / (df + 0.5)).ln()
    }

    fn average_len(&self) -> f32 {
        if self.passages.is_empty() {
            return 1.0;
        }
        (self.total_len as f32 / self.passages.len() as f32).max(1.0)
    }

    /// `matched_idf` as a share of the summed idf of the passage's distinct terms;
    /// `idf_memo` saves looking the same term up again for the next passage.
    fn passage_share<'s>(
        &'s self,
        passage: PassageId,
        matched_idf: f32,
        idf_memo: &mut HashMap<&'s str, f32>,
    ) -> f32 {
        let Some(stats) = self.passages.get(&passage) else {
            return 0.0;
        };
        let total: f32 = stats
            .terms
            .iter()
            .map(|t| *idf_memo.entry(t.as_str()).or_insert_with(|| self.idf(t)))
            .sum();
        if total <= 0.0 {
            0.0
        } else {
            (matched_idf / total).clamp(0.0, 1.0)
        }
    }

    /// Scores every passage that shares a term with `query`, best first (ties by id).
    pub fn search(&self, query: &str) -> Vec<PassageScore> {
        self.search_terms(&index_terms(query))
    }

    /// Like [`Bm25Index::search`] on already segmented query terms.
    pub fn search_terms(&self, query_terms: &[String]) -> Vec<PassageScore> {
        let unique: BTreeSet<&str> = query_terms.iter().map(String::as_str).collect();
        let total_idf: f32 = unique.iter().map(|t| self.idf(t)).sum();
        if total_idf <= 0.0 {
            return Vec::new();
        }
        let avg_len = self.average_len();
        let Bm25Params { k1, b } = self.params;
        // passage → (score, capped score, idf of the matched terms)
        let mut acc: HashMap<PassageId, (f32, f32, f32)> = HashMap::new();
        for term in unique {
            let Some(list) = self.postings.get(term) else {
                continue;
            };
            let idf = self.idf(term);
            for (&passage, &tf) in list {
                let len = self
                    .passages
                    .get(&passage)
                    .map_or(avg_len, |s| s.len as f32);
                let tf = tf as f32;
                let term_score = idf * tf * (k1 + 1.0) / (tf + k1 * (1.0 - b + b * len / avg_len));
                let slot = acc.entry(passage).or_default();
                slot.0 += term_score;
                slot.1 += term_score.min(idf);
                slot.2 += idf;
            }
        }
        let mut idf_memo = HashMap::new();
        let mut scores: Vec<PassageScore> = acc
            .into_iter()
            .map(|(passage, (score, capped, matched_idf))| PassageScore {
                passage,
                score,
                coverage: (capped / total_idf).clamp(0.0, 1.0),
                query_coverage: (matched_idf / total_idf).clamp(0.0, 1.0),
                passage_coverage: self.passage_share(passage, matched_idf, &mut idf_memo),
            })
            .collect();
        scores.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.passage.cmp(&b.passage)));
        scores
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terms(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| (*w).to_owned()).collect()
    }

    #[test]
    fn idf_follows_the_lucene_formula() {
        let mut index = Bm25Index::default();
        index.insert_terms(1, &terms(&["a", "b"]));
        index.insert_terms(2, &terms(&["a"]));
        // N = 2: df(a) = 2, df(b) = 1, df(z) = 0.
        assert!((index.idf("a") - (1.0f32 + 0.5 / 2.5).ln()).abs() < 1e-6);
        assert!((index.idf("b") - (1.0f32 + 1.5 / 1.5).ln()).abs() < 1e-6);
        assert!((index.idf("z") - (1.0f32 + 2.5 / 0.5).ln()).abs() < 1e-6);
    }

    #[test]
    fn score_matches_a_hand_computed_value() {
        let mut index = Bm25Index::default();
        index.insert_terms(1, &terms(&["x", "x", "y"]));
        index.insert_terms(2, &terms(&["y"]));
        let hits = index.search_terms(&terms(&["x"]));
        assert_eq!(hits.len(), 1);
        let idf = (1.0f32 + 1.5 / 1.5).ln();
        let avg = 2.0;
        let expected = idf * 2.0 * 2.2 / (2.0 + 1.2 * (0.25 + 0.75 * 3.0 / avg));
        assert!(
            (hits[0].score - expected).abs() < 1e-5,
            "{} vs {expected}",
            hits[0].score
        );
        // Term frequency 2 saturates past the cap, so x is fully covered.
        assert!((hits[0].coverage - 1.0).abs() < 1e-6);
    }

    #[test]
    fn unknown_query_terms_lower_coverage() {
        let mut index = Bm25Index::default();
        index.insert_terms(1, &terms(&["退货"]));
        index.insert_terms(2, &terms(&["发票"]));
        let hits = index.search_terms(&terms(&["退货", "火星"]));
        assert_eq!(hits.len(), 1);
        let expected = index.idf("退货") / (index.idf("退货") + index.idf("火星"));
        assert!((hits[0].coverage - expected).abs() < 1e-6);
        assert!((hits[0].query_coverage - expected).abs() < 1e-6);
        assert!(hits[0].coverage < 0.5);
        // The passage is only "退货", so all of it is covered.
        assert!((hits[0].passage_coverage - 1.0).abs() < 1e-6);
    }

    #[test]
    fn term_f1_is_one_for_identical_term_sets_and_penalises_extra_passage_terms() {
        let mut index = Bm25Index::default();
        index.insert_terms(1, &terms(&["营业", "时间", "营业时间", "几点", "门店"]));
        index.insert_terms(2, &terms(&["退货", "运费", "承担"]));
        index.insert_terms(3, &terms(&["发票"]));
        let exact = index.search_terms(&terms(&["门店", "营业", "时间", "营业时间", "几点"]));
        assert!((exact[0].term_f1() - 1.0).abs() < 1e-6);
        // Longer than average, so BM25's length normalisation keeps coverage below 1.
        assert!(exact[0].coverage < 1.0);
        let partial = index.search_terms(&terms(&["退货"]));
        let p = index.idf("退货") / (index.idf("退货") + index.idf("运费") + index.idf("承担"));
        assert!((partial[0].passage_coverage - p).abs() < 1e-6);
        assert!((partial[0].term_f1() - 2.0 * p / (1.0 + p)).abs() < 1e-6);
    }

    #[test]
    fn remove_and_reinsert_restore_statistics() {
        let mut index = Bm25Index::default();
        index.insert(1, "怎么退货");
        index.insert(2, "发票怎么开");
        let before = index.clone();
        index.insert(3, "退货的运费由谁来出");
        assert_eq!(index.search("退货").len(), 2);
        assert!(index.remove(3));
        assert!(!index.remove(3));
        assert_eq!(index, before);
        // Re-inserting under an existing id replaces the old text.
        index.insert(1, "会员积分");
        assert!(index.search("退货").is_empty());
        assert_eq!(index.search("积分")[0].passage, 1);
        assert_eq!(index.len(), 2);
    }

    #[test]
    fn survives_a_serde_round_trip() {
        let mut index = Bm25Index::default();
        index.insert(7, "可以开增值税发票吗");
        let json = serde_json::to_string(&index).unwrap();
        let back: Bm25Index = serde_json::from_str(&json).unwrap();
        assert_eq!(back, index);
        assert_eq!(back.search("发票")[0].passage, 7);
    }
}
