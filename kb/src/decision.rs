//! Choosing between an FAQ answer at once and an LLM answer grounded on the knowledge base.

use serde::{Deserialize, Serialize};

use crate::knowledge::{KnowledgeEntry, SearchHit};

/// Thresholds of [`decide`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DecisionPolicy {
    /// The best hit must be an FAQ with at least this confidence to be answered directly.
    pub faq_threshold: f32,
    /// … and lead the runner-up by at least this much, so that two similar FAQs with
    /// different answers go to the LLM, which sees both.
    pub faq_margin: f32,
    /// Hits below this confidence are not worth showing the LLM.
    pub grounding_min_confidence: f32,
    /// At most this many passages ground the LLM answer.
    pub max_grounding: usize,
}

impl Default for DecisionPolicy {
    fn default() -> Self {
        Self {
            faq_threshold: 0.75,
            faq_margin: 0.1,
            grounding_min_confidence: 0.2,
            max_grounding: 4,
        }
    }
}

/// What to do with a follower's question.
#[derive(Debug, Clone, PartialEq)]
pub enum ReplyDecision<'a> {
    /// Send this FAQ's answer as the passive reply now.
    FaqAnswer {
        /// The FAQ entry.
        entry: &'a KnowledgeEntry,
        /// Its answer text.
        answer: &'a str,
        /// The hit's confidence.
        confidence: f32,
    },
    /// Ask the LLM, grounded on these hits (possibly none: the model is then told that
    /// the knowledge base has nothing on the question).
    Llm {
        /// The passages to ground on, best first.
        grounding: Vec<SearchHit<'a>>,
    },
}

/// Applies `policy` to hits ordered best first (as [`crate::knowledge::KnowledgeIndex::search`]
/// returns them).
///
/// The candidate is the best FAQ hit; its runner-up is the next FAQ hit. Document chunks
/// do not compete: a manual that also mentions the topic does not make the curated
/// answer wrong, whereas a second FAQ just as close may have a different answer.
pub fn decide<'a>(hits: &[SearchHit<'a>], policy: &DecisionPolicy) -> ReplyDecision<'a> {
    let mut faqs = hits
        .iter()
        .filter_map(|h| h.entry.as_faq().map(|faq| (h, faq)));
    if let Some((best, faq)) = faqs.next() {
        let runner_up = faqs.next().map_or(0.0, |(h, _)| h.confidence);
        if best.confidence >= policy.faq_threshold
            && best.confidence - runner_up >= policy.faq_margin
        {
            return ReplyDecision::FaqAnswer {
                entry: best.entry,
                answer: &faq.answer,
                confidence: best.confidence,
            };
        }
    }
    ReplyDecision::Llm {
        grounding: hits
            .iter()
            .filter(|h| h.confidence >= policy.grounding_min_confidence)
            .take(policy.max_grounding)
            .cloned()
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::knowledge::{DocumentChunk, EntryContent, FaqEntry};

    fn faq(id: &str, answer: &str) -> KnowledgeEntry {
        KnowledgeEntry {
            id: id.into(),
            content: EntryContent::Faq(FaqEntry {
                question: format!("question {id}"),
                answer: answer.into(),
                alternative_questions: vec![],
            }),
        }
    }

    fn chunk(id: &str) -> KnowledgeEntry {
        KnowledgeEntry {
            id: id.into(),
            content: EntryContent::Chunk(DocumentChunk {
                document_id: "doc".into(),
                title: None,
                heading: None,
                text: format!("text {id}"),
                ordinal: 0,
            }),
        }
    }

    fn hit(entry: &KnowledgeEntry, confidence: f32) -> SearchHit<'_> {
        SearchHit {
            entry,
            confidence,
            lexical: confidence,
            bm25: confidence,
            cosine: None,
            semantic: None,
        }
    }

    fn grounding_ids<'a>(decision: &ReplyDecision<'a>) -> Vec<&'a str> {
        match decision {
            ReplyDecision::Llm { grounding } => {
                grounding.iter().map(|h| h.entry.id.as_str()).collect()
            }
            ReplyDecision::FaqAnswer { .. } => panic!("expected the LLM path, got {decision:?}"),
        }
    }

    #[test]
    fn confident_faq_with_margin_is_answered_directly() {
        let (a, b) = (faq("a", "answer a"), faq("b", "answer b"));
        let decision = decide(&[hit(&a, 0.9), hit(&b, 0.5)], &DecisionPolicy::default());
        assert_eq!(
            decision,
            ReplyDecision::FaqAnswer {
                entry: &a,
                answer: "answer a",
                confidence: 0.9
            }
        );
    }

    #[test]
    fn chunks_neither_block_nor_become_a_direct_answer() {
        let (a, b, c) = (faq("a", "answer a"), faq("b", "answer b"), chunk("c"));
        let decision = decide(
            &[hit(&c, 0.95), hit(&a, 0.8), hit(&b, 0.6)],
            &DecisionPolicy::default(),
        );
        assert_eq!(
            decision,
            ReplyDecision::FaqAnswer {
                entry: &a,
                answer: "answer a",
                confidence: 0.8
            }
        );
    }

    #[test]
    fn close_runner_up_sends_both_to_the_llm() {
        let (a, b) = (faq("a", "answer a"), faq("b", "answer b"));
        let decision = decide(&[hit(&a, 0.9), hit(&b, 0.85)], &DecisionPolicy::default());
        assert_eq!(grounding_ids(&decision), ["a", "b"]);
    }

    #[test]
    fn below_threshold_or_a_chunk_goes_to_the_llm_with_filtered_grounding() {
        let (a, c, d) = (faq("a", "answer a"), chunk("c"), chunk("d"));
        let policy = DecisionPolicy {
            max_grounding: 2,
            ..DecisionPolicy::default()
        };
        assert_eq!(
            grounding_ids(&decide(
                &[hit(&a, 0.7), hit(&c, 0.3), hit(&d, 0.25)],
                &policy
            )),
            ["a", "c"]
        );
        assert_eq!(
            grounding_ids(&decide(&[hit(&c, 0.95), hit(&a, 0.1)], &policy)),
            ["c"]
        );
        assert_eq!(
            grounding_ids(&decide(&[hit(&c, 0.95), hit(&d, 0.9)], &policy)),
            ["c", "d"]
        );
        assert!(grounding_ids(&decide(&[], &policy)).is_empty());
    }
}
