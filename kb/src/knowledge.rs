//! An account's knowledge base in memory: FAQ pairs and document chunks, indexed for
//! BM25 and, where the caller supplies embeddings, for cosine similarity.
//!
//! # Why score blending, not reciprocal-rank fusion
//! The reply decision needs to know whether the best entry is *good*, not only that it
//! is first: an unrelated question still has a rank-1 entry, and reciprocal-rank fusion
//! gives it the same fused score as a perfect match. So both signals are turned into
//! absolute scores in [0, 1] and blended:
//! - lexical: for an FAQ, the idf-weighted F1 of the two questions' terms
//!   ([`crate::bm25::PassageScore::term_f1`]); for a document chunk, the BM25 coverage of
//!   the question ([`crate::bm25::PassageScore::coverage`]);
//! - semantic: the cosine similarity, mapped linearly from `[cosine_zero, cosine_one]`
//!   onto [0, 1] — embedding models differ in where "unrelated" sits, so these are set
//!   per model;
//! - confidence = `semantic_weight · semantic + (1 − semantic_weight) · lexical`, or the
//!   lexical score alone when the question or the entry has no embedding.
//!
//! Entries are ranked by that confidence, so the margin over the runner-up that the
//! decision uses is measured on the same scale as the threshold.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::bm25::{Bm25Index, Bm25Params, PassageId, PassageScore};
use crate::chunk::{ChunkConfig, chunk_document};

/// A question-and-answer pair written by the account's staff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaqEntry {
    /// The canonical question.
    pub question: String,
    /// The answer sent to the follower as it is.
    pub answer: String,
    /// Other ways followers ask the same thing; each is matched on its own.
    #[serde(default)]
    pub alternative_questions: Vec<String>,
}

/// One chunk of an uploaded document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentChunk {
    /// The document the chunk came from.
    pub document_id: String,
    /// The document's title, if it has one.
    pub title: Option<String>,
    /// The Markdown heading path of the chunk's section.
    pub heading: Option<String>,
    /// The chunk's text.
    pub text: String,
    /// Position of the chunk in its document, from 0.
    pub ordinal: u32,
}

/// What a knowledge entry holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EntryContent {
    /// A question-and-answer pair.
    Faq(FaqEntry),
    /// A piece of a document.
    Chunk(DocumentChunk),
}

/// A stored knowledge entry of one account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KnowledgeEntry {
    /// Stable identifier (the row id).
    pub id: String,
    /// The content.
    pub content: EntryContent,
}

impl KnowledgeEntry {
    /// The FAQ pair, when this entry is one.
    pub fn as_faq(&self) -> Option<&FaqEntry> {
        match &self.content {
            EntryContent::Faq(faq) => Some(faq),
            EntryContent::Chunk(_) => None,
        }
    }

    /// The texts matched against questions: every question of an FAQ (not its answer,
    /// so that a word that only occurs in an answer cannot trigger that answer), or the
    /// title, heading and text of a chunk.
    pub fn searchable_texts(&self) -> Vec<String> {
        match &self.content {
            EntryContent::Faq(faq) => std::iter::once(&faq.question)
                .chain(&faq.alternative_questions)
                .filter(|q| !q.trim().is_empty())
                .cloned()
                .collect(),
            EntryContent::Chunk(chunk) => {
                let parts: Vec<&str> = [
                    chunk.title.as_deref(),
                    chunk.heading.as_deref(),
                    Some(chunk.text.as_str()),
                ]
                .into_iter()
                .flatten()
                .collect();
                vec![parts.join("\n")]
            }
        }
    }
}

/// Chunks a document into knowledge entries with ids `"{document_id}#{ordinal}"`.
pub fn document_entries(
    document_id: &str,
    title: Option<&str>,
    text: &str,
    config: &ChunkConfig,
) -> Vec<KnowledgeEntry> {
    chunk_document(text, config)
        .into_iter()
        .enumerate()
        .map(|(i, chunk)| {
            let ordinal = u32::try_from(i).unwrap_or(u32::MAX);
            KnowledgeEntry {
                id: format!("{document_id}#{ordinal}"),
                content: EntryContent::Chunk(DocumentChunk {
                    document_id: document_id.to_owned(),
                    title: title.map(str::to_owned),
                    heading: chunk.heading,
                    text: chunk.text,
                    ordinal,
                }),
            }
        })
        .collect()
}

/// Why an entry, a question or a configuration was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum KbError {
    /// The embedding's length differs from the index's other embeddings.
    #[error("embedding has {got} dimensions, the index uses {expected}")]
    EmbeddingDimension {
        /// The index's dimension.
        expected: usize,
        /// The offered vector's dimension.
        got: usize,
    },
    /// The embedding is empty, all zeros, or holds NaN or infinity.
    #[error("embedding is empty, zero or not finite")]
    InvalidEmbedding,
    /// A search configuration value is out of range.
    #[error("invalid search configuration: {0}")]
    InvalidConfig(&'static str),
}

/// Settings of [`KnowledgeIndex::search`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HybridConfig {
    /// Weight of the semantic score in the blend, in [0, 1].
    pub semantic_weight: f32,
    /// Cosine similarity that counts as "no relation" (maps to 0).
    pub cosine_zero: f32,
    /// Cosine similarity that counts as "same meaning" (maps to 1).
    pub cosine_one: f32,
}

impl Default for HybridConfig {
    /// Semantic weight 0.6 because embeddings catch paraphrases that share no word with
    /// the FAQ question; the cosine range is a neutral starting point, to be set from
    /// the embedding model in use (E5-family models, for one, rate unrelated Chinese
    /// sentences well above 0.5).
    fn default() -> Self {
        Self {
            semantic_weight: 0.6,
            cosine_zero: 0.3,
            cosine_one: 0.9,
        }
    }
}

impl HybridConfig {
    /// A starting point for E5-family embeddings (multilingual-e5-small): their model card
    /// notes that cosine scores crowd into 0.7–1.0 (training used a low temperature), so
    /// "unrelated" sits near 0.72 rather than near 0. Not yet measured on our FAQ data:
    /// check it against an account's questions before relying on direct answers.
    pub fn e5_family() -> Self {
        Self {
            semantic_weight: 0.6,
            cosine_zero: 0.72,
            cosine_one: 0.92,
        }
    }

    fn validate(&self) -> Result<(), KbError> {
        if !(0.0..=1.0).contains(&self.semantic_weight) {
            return Err(KbError::InvalidConfig("semantic_weight must lie in [0, 1]"));
        }
        if !(self.cosine_zero.is_finite()
            && self.cosine_one.is_finite()
            && self.cosine_one > self.cosine_zero)
        {
            return Err(KbError::InvalidConfig(
                "cosine_one must be greater than cosine_zero",
            ));
        }
        Ok(())
    }

    /// Maps a cosine similarity onto [0, 1].
    pub fn calibrate_cosine(&self, cosine: f32) -> f32 {
        ((cosine - self.cosine_zero) / (self.cosine_one - self.cosine_zero)).clamp(0.0, 1.0)
    }

    /// Blends the two scores as described in the module documentation.
    pub fn blend(&self, lexical: f32, semantic: Option<f32>) -> f32 {
        match semantic {
            Some(s) => self.semantic_weight * s + (1.0 - self.semantic_weight) * lexical,
            None => lexical,
        }
    }
}

/// One retrieved entry with its scores.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchHit<'a> {
    /// The entry.
    pub entry: &'a KnowledgeEntry,
    /// Blended confidence in [0, 1]; hits are ordered by it.
    pub confidence: f32,
    /// Lexical score in [0, 1] of the entry's best passage (see the module documentation).
    pub lexical: f32,
    /// Raw BM25 score of the best passage (0 when no term matched).
    pub bm25: f32,
    /// Cosine similarity with the question, when both have embeddings.
    pub cosine: Option<f32>,
    /// The calibrated cosine, in [0, 1].
    pub semantic: Option<f32>,
}

/// The entry a passage belongs to, with its kind so scoring needs no entry lookup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct PassageOwner {
    entry_id: String,
    faq: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct StoredEntry {
    entry: KnowledgeEntry,
    passages: Vec<PassageId>,
    embedding: Option<Vec<f32>>,
}

/// The in-memory knowledge index of one account; serialisable so it can be cached and
/// updated entry by entry instead of rebuilt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KnowledgeIndex {
    entries: BTreeMap<String, StoredEntry>,
    owners: BTreeMap<PassageId, PassageOwner>,
    next_passage: PassageId,
    bm25: Bm25Index,
    dimension: Option<usize>,
    /// How many entries carry an embedding; the dimension is free again at zero.
    embedded: usize,
    /// [`TOKENIZER_VERSION`] when the index was built (0 if the cache predates it).
    #[serde(default)]
    tokenizer_version: u32,
}

/// Changes whenever segmentation or the stopword list changes, so that an index cached
/// by an older build is recognised as stale (its terms would no longer match queries).
pub const TOKENIZER_VERSION: u32 = 1;

/// Scales a vector to unit length, refusing empty, zero and non-finite ones.
fn unit_vector(vector: Vec<f32>) -> Result<Vec<f32>, KbError> {
    if vector.is_empty() || vector.iter().any(|x| !x.is_finite()) {
        return Err(KbError::InvalidEmbedding);
    }
    let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
    if !(norm.is_finite() && norm > 0.0) {
        return Err(KbError::InvalidEmbedding);
    }
    // Callers promise normalised vectors; dividing again is cheap insurance that a
    // cosine is a dot product.
    Ok(vector.into_iter().map(|x| x / norm).collect())
}

/// The lexical score of one passage, in [0, 1]. An FAQ question (`faq`) is compared
/// with the follower's question both ways (idf-weighted F1), so that "怎么退货" does not
/// fully match "退货的运费谁承担"; a document chunk is always about more than the
/// question, so only the question's BM25 coverage counts.
fn lexical_score(faq: bool, score: &PassageScore) -> f32 {
    if faq { score.term_f1() } else { score.coverage }
}

/// Scores one entry from its lexical scores (if any passage matched) and its embedding;
/// `None` when nothing relates it to the question.
fn score_entry<'a>(
    stored: &'a StoredEntry,
    lexical: &HashMap<&str, (f32, f32)>,
    query_vector: Option<&[f32]>,
    config: &HybridConfig,
) -> Option<SearchHit<'a>> {
    let (coverage, bm25) = lexical
        .get(stored.entry.id.as_str())
        .copied()
        .unwrap_or_default();
    let cosine = match (query_vector, &stored.embedding) {
        (Some(q), Some(e)) => Some(dot(q, e)),
        _ => None,
    };
    let semantic = cosine.map(|c| config.calibrate_cosine(c));
    let confidence = config.blend(coverage, semantic);
    (confidence > 0.0 || bm25 > 0.0).then_some(SearchHit {
        entry: &stored.entry,
        confidence,
        lexical: coverage,
        bm25,
        cosine,
        semantic,
    })
}

impl Default for KnowledgeIndex {
    fn default() -> Self {
        Self::new(Bm25Params::default())
    }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

impl KnowledgeIndex {
    /// An empty index with the given BM25 parameters.
    pub fn new(params: Bm25Params) -> Self {
        Self {
            entries: BTreeMap::new(),
            owners: BTreeMap::new(),
            next_passage: 0,
            bm25: Bm25Index::new(params),
            dimension: None,
            embedded: 0,
            tokenizer_version: TOKENIZER_VERSION,
        }
    }

    /// Whether this index (typically read back from a cache) was built with the current
    /// tokenizer; if not, rebuild it from the stored entries.
    pub fn is_current(&self) -> bool {
        self.tokenizer_version == TOKENIZER_VERSION
    }

    /// Builds an index with the default BM25 parameters from stored entries and their
    /// embeddings (if any); for other parameters use [`KnowledgeIndex::new`] and
    /// [`KnowledgeIndex::upsert`].
    pub fn build(
        entries: impl IntoIterator<Item = (KnowledgeEntry, Option<Vec<f32>>)>,
    ) -> Result<Self, KbError> {
        let mut index = Self::new(Bm25Params::default());
        for (entry, embedding) in entries {
            index.upsert(entry, embedding)?;
        }
        Ok(index)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the index has no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entry with this id.
    pub fn get(&self, id: &str) -> Option<&KnowledgeEntry> {
        self.entries.get(id).map(|s| &s.entry)
    }

    /// The embedding dimension in use, once an embedding has been added.
    pub fn dimension(&self) -> Option<usize> {
        self.dimension
    }

    fn check_dimension(&self, vector: &[f32]) -> Result<(), KbError> {
        match self.dimension {
            Some(expected) if expected != vector.len() => Err(KbError::EmbeddingDimension {
                expected,
                got: vector.len(),
            }),
            _ => Ok(()),
        }
    }

    /// Adds an entry or replaces the one with the same id. On error nothing changes.
    pub fn upsert(
        &mut self,
        entry: KnowledgeEntry,
        embedding: Option<Vec<f32>>,
    ) -> Result<(), KbError> {
        let embedding = embedding.map(unit_vector).transpose()?;
        if let Some(vector) = &embedding {
            // The entry being replaced may be the only one fixing the dimension.
            let replaced_embedded = self
                .entries
                .get(&entry.id)
                .is_some_and(|s| s.embedding.is_some());
            let fixed_by_others = self.embedded > usize::from(replaced_embedded);
            if fixed_by_others {
                self.check_dimension(vector)?;
            }
        }
        self.remove(&entry.id);
        let mut passages = Vec::new();
        for text in entry.searchable_texts() {
            let passage = self.next_passage;
            self.next_passage += 1;
            self.bm25.insert(passage, &text);
            self.owners.insert(
                passage,
                PassageOwner {
                    entry_id: entry.id.clone(),
                    faq: entry.as_faq().is_some(),
                },
            );
            passages.push(passage);
        }
        if let Some(vector) = &embedding {
            self.dimension = Some(vector.len());
            self.embedded += 1;
        }
        self.entries.insert(
            entry.id.clone(),
            StoredEntry {
                entry,
                passages,
                embedding,
            },
        );
        Ok(())
    }

    /// Removes an entry; answers whether it was there.
    pub fn remove(&mut self, id: &str) -> bool {
        let Some(stored) = self.entries.remove(id) else {
            return false;
        };
        for passage in stored.passages {
            self.bm25.remove(passage);
            self.owners.remove(&passage);
        }
        if stored.embedding.is_some() {
            self.embedded = self.embedded.saturating_sub(1);
        }
        if self.embedded == 0 {
            self.dimension = None;
        }
        true
    }

    /// Removes every chunk of a document (before re-adding a new version of it).
    pub fn remove_document(&mut self, document_id: &str) -> usize {
        let ids: Vec<String> = self
            .entries
            .values()
            .filter(|s| matches!(&s.entry.content, EntryContent::Chunk(c) if c.document_id == document_id))
            .map(|s| s.entry.id.clone())
            .collect();
        ids.iter().filter(|id| self.remove(id)).count()
    }

    /// The `top_k` entries for a follower's question, best first, by blended confidence
    /// (ties by raw BM25, then id). `question_embedding` is the question's embedding
    /// from the same model as the entries', or `None` for BM25 alone.
    pub fn search(
        &self,
        question: &str,
        question_embedding: Option<&[f32]>,
        top_k: usize,
        config: &HybridConfig,
    ) -> Result<Vec<SearchHit<'_>>, KbError> {
        config.validate()?;
        let query_vector = question_embedding
            .map(|v| unit_vector(v.to_vec()))
            .transpose()?;
        if let Some(vector) = &query_vector {
            self.check_dimension(vector)?;
        }
        // entry id → (lexical score, bm25) of its best passage
        let mut lexical: HashMap<&str, (f32, f32)> = HashMap::new();
        for score in self.bm25.search(question) {
            let Some(owner) = self.owners.get(&score.passage) else {
                continue;
            };
            let slot = lexical.entry(owner.entry_id.as_str()).or_default();
            slot.0 = slot.0.max(lexical_score(owner.faq, &score));
            slot.1 = slot.1.max(score.score);
        }
        let query = query_vector.as_deref();
        let hit = |stored| score_entry(stored, &lexical, query, config);
        let mut hits: Vec<SearchHit<'_>> = if query_vector.is_some() {
            // Every embedded entry is a candidate; vectors are compared by brute force,
            // which for an account's few thousand entries costs about a millisecond.
            self.entries.values().filter_map(hit).collect()
        } else {
            lexical
                .keys()
                .filter_map(|id| self.entries.get(*id))
                .filter_map(hit)
                .collect()
        };
        let order = |a: &SearchHit<'_>, b: &SearchHit<'_>| {
            b.confidence
                .total_cmp(&a.confidence)
                .then(b.bm25.total_cmp(&a.bm25))
                .then(a.entry.id.cmp(&b.entry.id))
        };
        if top_k == 0 {
            return Ok(Vec::new());
        }
        if hits.len() > top_k {
            hits.select_nth_unstable_by(top_k - 1, order);
            hits.truncate(top_k);
        }
        hits.sort_by(order);
        Ok(hits)
    }
}
