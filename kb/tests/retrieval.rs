//! Retrieval over a small Chinese FAQ set: BM25 alone, hybrid with given vectors, the
//! reply decision and the grounded prompt built from it.

// Test helpers outside #[test] functions unwrap too.
#![allow(clippy::unwrap_used)]

use wxpilot_kb::chunk::ChunkConfig;
use wxpilot_kb::decision::{DecisionPolicy, ReplyDecision, decide};
use wxpilot_kb::knowledge::{
    EntryContent, FaqEntry, HybridConfig, KbError, KnowledgeEntry, KnowledgeIndex, document_entries,
};
use wxpilot_kb::prompt::{GroundingPassage, PromptConfig, Role, build_grounded_prompt};

/// FAQ id, question, answer, and a paraphrase a follower might send instead. The
/// paraphrases were chosen after looking at jieba's segmentation: each shares at least
/// one content word with its question ("地址填错了想改一下" → 地址 / 填错 / 改).
const FAQS: &[(&str, &str, &str, &str)] = &[
    (
        "return",
        "怎么退货",
        "签收后七天内在订单页点“申请售后”即可退货。",
        "买的东西想退货，要怎么申请",
    ),
    (
        "fee",
        "退货的运费谁来承担",
        "质量问题的退货运费由我们承担，其他情况由买家承担。",
        "退货的运费由谁来出",
    ),
    (
        "address",
        "怎么修改收货地址",
        "发货前可在订单详情里修改收货地址。",
        "地址填错了想改一下",
    ),
    (
        "invoice",
        "可以开增值税发票吗",
        "可以，在订单页申请电子增值税发票。",
        "发票怎么开",
    ),
    (
        "points",
        "会员积分怎么用",
        "积分可在结算时抵扣，100 积分抵 1 元。",
        "积分可以抵扣现金吗",
    ),
    (
        "ship",
        "付款后多久发货",
        "付款后 48 小时内发货。",
        "下单以后多久能发货",
    ),
    (
        "hours",
        "门店营业时间是几点",
        "门店每天 10:00–22:00 营业。",
        "你们店几点开门",
    ),
    (
        "refund",
        "退款多久到账",
        "退款 1–3 个工作日原路退回。",
        "退款要几天才能到账",
    ),
];

fn faq_entry(id: &str, question: &str, answer: &str) -> KnowledgeEntry {
    KnowledgeEntry {
        id: id.into(),
        content: EntryContent::Faq(FaqEntry {
            question: question.into(),
            answer: answer.into(),
            alternative_questions: vec![],
        }),
    }
}

fn faq_index() -> KnowledgeIndex {
    KnowledgeIndex::build(FAQS.iter().map(|(id, q, a, _)| (faq_entry(id, q, a), None))).unwrap()
}

fn top_id<'a>(index: &'a KnowledgeIndex, question: &str) -> Option<&'a str> {
    index
        .search(question, None, 3, &HybridConfig::default())
        .unwrap()
        .first()
        .map(|h| h.entry.id.as_str())
}

fn normalized(v: &[f32]) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter().map(|x| x / norm).collect()
}

#[test]
fn each_question_and_its_paraphrase_retrieve_their_faq_first() {
    let index = faq_index();
    for (id, question, _, paraphrase) in FAQS {
        assert_eq!(top_id(&index, question), Some(*id), "question {question}");
        assert_eq!(
            top_id(&index, paraphrase),
            Some(*id),
            "paraphrase {paraphrase}"
        );
    }
}

#[test]
fn the_exact_question_is_answered_directly_and_a_paraphrase_goes_to_the_llm() {
    let index = faq_index();
    let policy = DecisionPolicy::default();
    let hits = index
        .search("怎么退货？", None, 5, &HybridConfig::default())
        .unwrap();
    assert!((hits[0].confidence - 1.0).abs() < 1e-6);
    match decide(&hits, &policy) {
        ReplyDecision::FaqAnswer { entry, answer, .. } => {
            assert_eq!(entry.id, "return");
            assert_eq!(answer, FAQS[0].2);
        }
        other => panic!("expected an FAQ answer, got {other:?}"),
    }
    // Shares only some words: the right FAQ leads, but not by enough to answer blindly.
    let hits = index
        .search("退货的运费由谁来出", None, 5, &HybridConfig::default())
        .unwrap();
    assert!(
        hits[0].confidence < policy.faq_threshold,
        "{}",
        hits[0].confidence
    );
    match decide(&hits, &policy) {
        ReplyDecision::Llm { grounding } => {
            let ids: Vec<&str> = grounding.iter().map(|h| h.entry.id.as_str()).collect();
            assert_eq!(ids, ["fee", "return"]);
        }
        other => panic!("expected the LLM path, got {other:?}"),
    }
}

#[test]
fn unrelated_questions_fall_below_the_threshold() {
    let index = faq_index();
    let policy = DecisionPolicy::default();
    for question in [
        "今天天气怎么样",
        "推荐一部好看的电影",
        "What is the meaning of life?",
    ] {
        let hits = index
            .search(question, None, 5, &HybridConfig::default())
            .unwrap();
        let best = hits.first().map_or(0.0, |h| h.confidence);
        assert!(best < policy.grounding_min_confidence, "{question}: {best}");
        assert_eq!(
            decide(&hits, &policy),
            ReplyDecision::Llm { grounding: vec![] },
            "{question}"
        );
    }
}

#[test]
fn embeddings_find_a_paraphrase_that_shares_no_word() {
    // jieba cuts 我想退掉买的东西怎么办 into 退掉 / 买 / 东西 (after stopwords): no word in
    // common with 怎么退货, so BM25 alone finds nothing and the vectors must carry it.
    let entries = [
        (
            faq_entry("return", "怎么退货", "a"),
            Some(vec![1.0, 0.0, 0.0]),
        ),
        (
            faq_entry("fee", "退货的运费谁来承担", "b"),
            Some(vec![0.0, 1.0, 0.0]),
        ),
        (
            faq_entry("address", "怎么修改收货地址", "c"),
            Some(vec![0.0, 0.0, 1.0]),
        ),
    ];
    let index = KnowledgeIndex::build(entries).unwrap();
    let question = "我想退掉买的东西怎么办";
    assert!(
        index
            .search(question, None, 3, &HybridConfig::default())
            .unwrap()
            .is_empty()
    );

    let config = HybridConfig {
        semantic_weight: 0.6,
        cosine_zero: 0.0,
        cosine_one: 1.0,
    };
    let query = normalized(&[0.9, 0.1, 0.05]);
    let hits = index.search(question, Some(&query), 3, &config).unwrap();
    let ids: Vec<&str> = hits.iter().map(|h| h.entry.id.as_str()).collect();
    assert_eq!(ids, ["return", "fee", "address"]);
    let norm = (0.81f32 + 0.01 + 0.0025).sqrt();
    let expected = [0.6 * 0.9 / norm, 0.6 * 0.1 / norm, 0.6 * 0.05 / norm];
    for (hit, want) in hits.iter().zip(expected) {
        assert!(
            (hit.confidence - want).abs() < 1e-5,
            "{}: {} vs {want}",
            hit.entry.id,
            hit.confidence
        );
        assert_eq!(hit.lexical, 0.0);
    }
    // Strong meaning alone (0.59) still does not answer directly: it grounds the LLM.
    assert!(matches!(
        decide(&hits, &DecisionPolicy::default()),
        ReplyDecision::Llm { .. }
    ));
}

#[test]
fn the_semantic_weight_decides_between_disagreeing_signals() {
    // Lexically 退货的运费由谁来出 is closer to "fee" (0.355 vs 0.253); the vectors say
    // "return" (cosine 0.8 vs 0.6).
    let entries = [
        (faq_entry("return", "怎么退货", "a"), Some(vec![1.0, 0.0])),
        (
            faq_entry("fee", "退货的运费谁来承担", "b"),
            Some(vec![0.0, 1.0]),
        ),
        (faq_entry("address", "怎么修改收货地址", "c"), None),
    ];
    let index = KnowledgeIndex::build(entries).unwrap();
    let query = [0.8, 0.6];
    let question = "退货的运费由谁来出";
    let ranked = |weight: f32| {
        let config = HybridConfig {
            semantic_weight: weight,
            cosine_zero: 0.0,
            cosine_one: 1.0,
        };
        let hits = index.search(question, Some(&query), 3, &config).unwrap();
        for hit in &hits {
            let semantic = hit.semantic.unwrap();
            let blended = weight * semantic + (1.0 - weight) * hit.lexical;
            assert!((hit.confidence - blended).abs() < 1e-6);
        }
        hits.iter()
            .map(|h| (h.entry.id.clone(), h.lexical, h.semantic.unwrap()))
            .collect::<Vec<_>>()
    };
    let semantic_heavy = ranked(0.6);
    assert_eq!(semantic_heavy[0].0, "return");
    assert_eq!(semantic_heavy[1].0, "fee");
    assert!(
        semantic_heavy[1].1 > semantic_heavy[0].1,
        "fee is lexically closer"
    );
    assert!((semantic_heavy[0].2 - 0.8).abs() < 1e-6);
    assert!((semantic_heavy[1].2 - 0.6).abs() < 1e-6);
    let lexical_heavy = ranked(0.2);
    assert_eq!(lexical_heavy[0].0, "fee");
    // "address" has no embedding and no shared word: not a hit at all.
    assert!(lexical_heavy.iter().all(|(id, _, _)| id != "address"));
}

#[test]
fn an_entry_without_embedding_is_scored_lexically() {
    let entries = [
        (faq_entry("return", "怎么退货", "a"), None),
        (
            faq_entry("fee", "退货的运费谁来承担", "b"),
            Some(vec![0.0, 1.0]),
        ),
    ];
    let index = KnowledgeIndex::build(entries).unwrap();
    let hits = index
        .search("怎么退货", Some(&[0.0, 1.0]), 2, &HybridConfig::default())
        .unwrap();
    assert_eq!(hits[0].entry.id, "return");
    assert_eq!(hits[0].semantic, None);
    assert!((hits[0].confidence - 1.0).abs() < 1e-6);
}

#[test]
fn embeddings_of_the_wrong_shape_are_refused() {
    let mut index =
        KnowledgeIndex::build([(faq_entry("a", "怎么退货", "x"), Some(vec![1.0, 0.0]))]).unwrap();
    assert_eq!(
        index.upsert(faq_entry("b", "发票", "y"), Some(vec![1.0, 0.0, 0.0])),
        Err(KbError::EmbeddingDimension {
            expected: 2,
            got: 3
        })
    );
    assert_eq!(index.len(), 1);
    assert_eq!(
        index.upsert(faq_entry("b", "发票", "y"), Some(vec![0.0, f32::NAN])),
        Err(KbError::InvalidEmbedding)
    );
    assert_eq!(
        index
            .search("退货", Some(&[1.0, 0.0, 0.0]), 3, &HybridConfig::default())
            .unwrap_err(),
        KbError::EmbeddingDimension {
            expected: 2,
            got: 3
        }
    );
    // Replacing the only embedded entry may change the dimension (a new model).
    index
        .upsert(faq_entry("a", "怎么退货", "x"), Some(vec![1.0, 0.0, 0.0]))
        .unwrap();
    assert_eq!(index.dimension(), Some(3));
    let bad = HybridConfig {
        cosine_zero: 0.9,
        cosine_one: 0.5,
        ..HybridConfig::default()
    };
    assert!(matches!(
        index.search("退货", None, 3, &bad),
        Err(KbError::InvalidConfig(_))
    ));
}

#[test]
fn incremental_updates_and_a_serde_round_trip_keep_results() {
    let mut index = faq_index();
    assert_eq!(top_id(&index, "退货的运费谁来承担"), Some("fee"));
    assert!(index.remove("fee"));
    assert!(!index.remove("fee"));
    assert_eq!(top_id(&index, "退货的运费谁来承担"), Some("return"));
    index
        .upsert(
            faq_entry("fee", "运费险怎么理赔", "运费险在退货签收后自动理赔。"),
            None,
        )
        .unwrap();
    assert_eq!(top_id(&index, "运费险怎么理赔"), Some("fee"));

    // Removing and re-adding restores exactly what a fresh build gives.
    let rebuilt = faq_index();
    let mut updated = faq_index();
    updated.remove("hours");
    let (id, q, a, _) = FAQS[6];
    updated.upsert(faq_entry(id, q, a), None).unwrap();
    for (_, question, _, paraphrase) in FAQS {
        for text in [question, paraphrase] {
            let a = rebuilt
                .search(text, None, 3, &HybridConfig::default())
                .unwrap();
            let b = updated
                .search(text, None, 3, &HybridConfig::default())
                .unwrap();
            assert_eq!(a, b, "{text}");
        }
    }

    let json = serde_json::to_string(&index).unwrap();
    let back: KnowledgeIndex = serde_json::from_str(&json).unwrap();
    assert_eq!(back, index);
    assert!(back.is_current());
    // A cache written before the tokenizer version existed reads as stale.
    let mut old: serde_json::Value = serde_json::from_str(&json).unwrap();
    old.as_object_mut().unwrap().remove("tokenizer_version");
    let old: KnowledgeIndex = serde_json::from_value(old).unwrap();
    assert!(!old.is_current());
    assert_eq!(top_id(&back, "运费险怎么理赔"), Some("fee"));
}

#[test]
fn alternative_questions_are_matched_on_their_own() {
    let mut entry = faq_entry("return", "怎么退货", "a");
    if let EntryContent::Faq(faq) = &mut entry.content {
        faq.alternative_questions = vec!["不想要了能退吗".into()];
    }
    let index = KnowledgeIndex::build([
        (entry, None),
        (faq_entry("fee", "退货的运费谁来承担", "b"), None),
    ])
    .unwrap();
    let hits = index
        .search("买的东西不想要了能退吗", None, 2, &HybridConfig::default())
        .unwrap();
    assert_eq!(hits[0].entry.id, "return");
    assert_eq!(hits.len(), 1);
}

#[test]
fn document_chunks_ground_a_prompt() {
    let manual = "# 保修说明\n\n## 保修期\n整机保修一年，电池保修六个月。\n\n## 不保修的情况\n人为损坏和进水不在保修范围内。";
    let mut index = faq_index();
    for entry in document_entries("manual", Some("产品手册"), manual, &ChunkConfig::default()) {
        index.upsert(entry, None).unwrap();
    }
    assert_eq!(index.len(), FAQS.len() + 2);
    assert!(index.get("manual#1").is_some());

    let hits = index
        .search("电池保修多久", None, 3, &HybridConfig::default())
        .unwrap();
    assert_eq!(hits[0].entry.id, "manual#0");
    let ReplyDecision::Llm { grounding } = decide(&hits, &DecisionPolicy::default()) else {
        panic!("a chunk is never a direct answer");
    };
    let passages: Vec<GroundingPassage> = grounding.iter().map(GroundingPassage::from).collect();
    assert_eq!(
        passages[0].title.as_deref(),
        Some("产品手册 > 保修说明 > 保修期")
    );
    let prompt = build_grounded_prompt("电池保修多久", &passages, &[], &PromptConfig::default());
    assert_eq!(prompt.len(), 2);
    assert_eq!(prompt[0].role, Role::System);
    assert!(
        prompt[0]
            .text
            .contains("[1] 产品手册 > 保修说明 > 保修期\n整机保修一年，电池保修六个月。")
    );
    assert_eq!(prompt[1].text, "电池保修多久");

    assert_eq!(index.remove_document("manual"), 2);
    assert_eq!(index.len(), FAQS.len());
}

#[test]
fn confidences_stay_in_the_unit_interval() {
    // Vectors pointing anywhere, including against the question's.
    let vectors = [[1.0, 0.0], [-1.0, 0.0], [0.6, -0.8], [0.0, 1.0]];
    let entries = FAQS
        .iter()
        .zip(vectors.iter().cycle())
        .map(|((id, q, a, _), v)| (faq_entry(id, q, a), Some(v.to_vec())));
    let index = KnowledgeIndex::build(entries).unwrap();
    for (_, question, _, paraphrase) in FAQS {
        for query in vectors {
            for text in [question, paraphrase] {
                for hit in index
                    .search(text, Some(&query), 10, &HybridConfig::default())
                    .unwrap()
                {
                    assert!((0.0..=1.0).contains(&hit.confidence), "{text}: {hit:?}");
                    assert!((0.0..=1.0).contains(&hit.lexical), "{text}: {hit:?}");
                    assert!(
                        hit.semantic.is_some_and(|s| (0.0..=1.0).contains(&s)),
                        "{text}: {hit:?}"
                    );
                }
            }
        }
    }
}
