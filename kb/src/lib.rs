//! Customer-service retrieval: keyword rules, jieba BM25, hybrid knowledge-base search, reply shaping.
//!
//! Pure logic without I/O. The reply path calls, in this order:
//! [`handoff::HandoffDetector`] (does the follower ask for a person?),
//! [`rules::RuleSet::first_match`] (a keyword rule of the account),
//! [`knowledge::KnowledgeIndex::search`] and [`decision::decide`] (an FAQ answer at once,
//! or an LLM answer grounded on the top passages with [`prompt::build_grounded_prompt`]),
//! and finally [`reply::shape_reply`] to cut the text into WeChat messages.

pub mod bm25;
pub mod chunk;
pub mod decision;
pub mod handoff;
pub mod knowledge;
pub mod normalize;
pub mod prompt;
pub mod reply;
pub mod rules;
pub mod tokenize;

pub use tokenize::warm_up;
