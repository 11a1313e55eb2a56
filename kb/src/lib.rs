//! Customer-service retrieval: keyword rules, jieba BM25, hybrid knowledge-base search, reply shaping.
//!
//! Pure logic without I/O. The reply path calls, in this order:
//! [`handoff::HandoffDetector`] (does the follower ask for a person?),
//! [`rules::RuleSet::first_match`] (a keyword rule of the account),
//! [`knowledge::KnowledgeIndex::search`] and [`decision::decide`] (an FAQ answer at once,
//! or an LLM answer grounded on the top passages with [`prompt::build_grounded_prompt`]),
//! and finally [`reply::shape_reply`] to cut the text into WeChat messages.
//!
//! ```
//! use wxpilot_kb::decision::{DecisionPolicy, ReplyDecision, decide};
//! use wxpilot_kb::handoff::HandoffDetector;
//! use wxpilot_kb::knowledge::{EntryContent, FaqEntry, HybridConfig, KnowledgeEntry, KnowledgeIndex};
//! use wxpilot_kb::prompt::{GroundingPassage, PromptConfig, build_grounded_prompt};
//! use wxpilot_kb::reply::shape_reply;
//! use wxpilot_kb::rules::{MatchKind, RuleDefinition, RuleSet};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let rules = RuleSet::compile([RuleDefinition {
//!     id: "hours".into(),
//!     kind: MatchKind::Contains,
//!     pattern: "营业时间".into(),
//!     reply: "每天 10:00–22:00。".into(),
//!     priority: 10,
//! }])?;
//! let faq = KnowledgeEntry {
//!     id: "return".into(),
//!     content: EntryContent::Faq(FaqEntry {
//!         question: "怎么退货".into(),
//!         answer: "签收后七天内在订单页申请售后。".into(),
//!         alternative_questions: vec![],
//!     }),
//! };
//! // Embeddings come from the inference crate; `None` means BM25 alone.
//! let index = KnowledgeIndex::build([(faq, None)])?;
//!
//! let message = "怎么退货？";
//! assert!(!HandoffDetector::default().is_handoff_request(message));
//! assert!(rules.first_match(message).is_none());
//! let hits = index.search(message, None, 5, &HybridConfig::default())?;
//! let reply = match decide(&hits, &DecisionPolicy::default()) {
//!     ReplyDecision::FaqAnswer { answer, .. } => answer.to_owned(),
//!     ReplyDecision::Llm { grounding } => {
//!         let passages: Vec<GroundingPassage> = grounding.iter().map(GroundingPassage::from).collect();
//!         let _prompt = build_grounded_prompt(message, &passages, &[], &PromptConfig::default());
//!         // The worker sends `_prompt` to the model and shapes its answer.
//!         String::from("(the model's answer)")
//!     }
//! };
//! assert_eq!(shape_reply(&reply), ["签收后七天内在订单页申请售后。"]);
//! # Ok(())
//! # }
//! ```

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
