use wxpilot_content::compliance::{
    ComplianceHit, ComplianceReport, ComplianceScanner, RewriteDecision, Severity, TermSource,
    Verdict, banned_word_terms, builtin_terms, decide_rewrite, rewrite_instruction, tenant_term,
};
use wxpilot_content::limits::{ArticleDraft, ContentField, Draft};

use crate::char_pos;

fn scanner() -> ComplianceScanner {
    ComplianceScanner::new(&[]).expect("built-in list builds")
}

/// (matched original text, term, start, end) of each hit.
fn spans(hits: &[ComplianceHit]) -> Vec<(String, String, usize, usize)> {
    hits.iter()
        .map(|h| (h.matched.clone(), h.term.clone(), h.start, h.end))
        .collect()
}

fn span(text: &str, needle: &str, nth: usize, term: &str) -> (String, String, usize, usize) {
    let start = char_pos(text, needle, nth);
    (
        needle.to_owned(),
        term.to_owned(),
        start,
        start + needle.chars().count(),
    )
}

#[test]
fn marketing_copy_every_absolute_term_at_its_position() {
    let copy = "国庆大促！本店是全网最低价，品质第一，选用国家级工艺，打造最佳口感，\
                堪称行业顶级、独一无二的首选好物。第一次到店的顾客送小样；最近天气转凉，\
                最好提前预约。效果绝对看得见，100%满意！";
    let report = scanner().check_text(copy, ContentField::Text);
    assert_eq!(
        spans(&report.hits),
        vec![
            span(copy, "全网最低", 0, "全网最低"),
            span(copy, "第一", 0, "第一"),
            span(copy, "国家级", 0, "国家级"),
            span(copy, "最佳", 0, "最佳"),
            span(copy, "顶级", 0, "顶级"),
            span(copy, "独一无二", 0, "独一无二"),
            span(copy, "首选", 0, "首选"),
            span(copy, "绝对", 0, "绝对"),
            span(copy, "100%", 0, "100%"),
        ]
    );
    assert_eq!(report.verdict, Verdict::Violation);
    let best = &report.hits[3];
    assert_eq!(best.provision.as_deref(), Some("广告法第九条第（三）项"));
    assert_eq!(best.reason, "“最佳”属法律明文禁止的绝对化用语");
    assert_eq!(best.source, TermSource::AdvertisingLaw);
    assert_eq!(best.severity, Severity::Prohibited);
}

#[test]
fn declared_exceptions_are_not_hits() {
    let copy = "第一次见面，第一天开业，第一步注册，第一时间通知您。最近很忙，最后一天，最新款上市，\
                最终价格以门店为准，您最好带伞，最大限度地保留风味，满减最高可省50元。\
                每件商品有唯一标识码，100%纯棉面料，每月首个工作日发货。第一件原价，第二件半价，\
                每人最多限购2件，最低消费100元，今日最高气温18度，最佳赏味期30天。";
    let report = scanner().check_text(copy, ContentField::Text);
    assert_eq!(spans(&report.hits), vec![]);
    assert_eq!(report.verdict, Verdict::Clean);
}

#[test]
fn an_exception_only_silences_what_lies_inside_it() {
    // "第一次" is fine, the "第一" right after it in "行业第一" is not.
    let copy = "第一次合作就拿下行业第一";
    let report = scanner().check_text(copy, ContentField::Text);
    assert_eq!(spans(&report.hits), vec![span(copy, "第一", 1, "第一")]);
}

#[test]
fn every_listed_term_is_found_alone_and_every_exception_is_clean() {
    let scanner = scanner();
    let terms = builtin_terms().expect("built-in list parses");
    assert!(terms.len() > 40, "the list has {} terms", terms.len());
    for term in &terms {
        let hits = scanner.scan_text(&term.term, 0, ContentField::Text);
        assert_eq!(
            spans(&hits),
            vec![(
                term.term.clone(),
                term.term.clone(),
                0,
                term.term.chars().count()
            )],
            "term {:?}",
            term.term
        );
        for exception in &term.exceptions {
            assert!(
                exception.contains(&term.term),
                "exception {exception:?} does not contain its term {:?}",
                term.term
            );
            let hits = scanner.scan_text(exception, 0, ContentField::Text);
            assert_eq!(spans(&hits), vec![], "exception {exception:?}");
        }
    }
}

#[test]
fn full_width_variants_are_caught_with_original_positions() {
    let copy = "销量ＮＯ．１，好评率１００％，Ｔｏｐ１推荐，No.1品牌";
    let report = scanner().check_text(copy, ContentField::Text);
    assert_eq!(
        spans(&report.hits),
        vec![
            span(copy, "ＮＯ．１", 0, "no.1"),
            span(copy, "１００％", 0, "100%"),
            span(copy, "Ｔｏｐ１", 0, "top1"),
            span(copy, "No.1", 0, "no.1"),
        ]
    );
}

#[test]
fn latin_terms_respect_word_boundaries() {
    let copy = "型号 No.12，库存1100%周转，desktop1 配件";
    assert_eq!(
        spans(&scanner().check_text(copy, ContentField::Text).hits),
        vec![]
    );
}

#[test]
fn traditional_characters_and_zero_width_tricks_are_caught() {
    let copy = "國家級品質，絕對滿意，最\u{200B}佳選擇";
    let report = scanner().check_text(copy, ContentField::Text);
    assert_eq!(
        spans(&report.hits),
        vec![
            span(copy, "國家級", 0, "国家级"),
            span(copy, "絕對", 0, "绝对"),
            span(copy, "最\u{200B}佳", 0, "最佳"),
        ]
    );
}

#[test]
fn the_tenants_own_list_works_beside_the_law() {
    let tenant = [
        tenant_term("竞品咖啡", Some("不得提及竞争对手")),
        tenant_term("Cheap", None),
    ];
    let scanner = ComplianceScanner::new(&tenant).expect("builds");
    let copy = "比竞品咖啡更香，价格CHEAP，品质最好";
    let report = scanner.check_text(copy, ContentField::Text);
    assert_eq!(
        spans(&report.hits),
        vec![
            span(copy, "竞品咖啡", 0, "竞品咖啡"),
            span(copy, "CHEAP", 0, "Cheap"),
            span(copy, "最好", 0, "最好"),
        ]
    );
    assert_eq!(report.hits[0].source, TermSource::Tenant);
    assert_eq!(report.hits[0].reason, "不得提及竞争对手");
    assert_eq!(report.hits[1].reason, "品牌或客户自定义的敏感词");
    assert_eq!(report.hits[2].source, TermSource::AdvertisingLaw);
    // Without the tenant's list the competitor is not flagged.
    let plain = ComplianceScanner::new(&[]).expect("builds");
    assert_eq!(plain.check_text(copy, ContentField::Text).hits.len(), 1);
}

#[test]
fn body_hits_point_into_the_html() {
    let body =
        "<p>新品上市</p><p style=\"color:red\">口感最<strong>佳</strong>，欢迎品尝&amp;选购</p>";
    let hits = scanner().scan_html(body, 2, ContentField::Body);
    let start = char_pos(body, "最", 0);
    let end = char_pos(body, "佳", 0) + 1;
    assert_eq!(
        spans(&hits),
        vec![("最<strong>佳".to_owned(), "最佳".to_owned(), start, end)]
    );
    assert_eq!((hits[0].article, hits[0].field), (2, ContentField::Body));
}

#[test]
fn a_draft_is_checked_field_by_field() {
    let draft = Draft {
        articles: vec![
            ArticleDraft {
                title: "秋季新品".to_owned(),
                content_html: "<p>欢迎品尝</p>".to_owned(),
                ..ArticleDraft::default()
            },
            ArticleDraft {
                title: "史上最强新品".to_owned(),
                digest: "独家配方".to_owned(),
                content_html: "<p>国家级工艺</p>".to_owned(),
                ..ArticleDraft::default()
            },
        ],
    };
    let report = scanner().check_draft(&draft);
    let located: Vec<(usize, ContentField, &str)> = report
        .hits
        .iter()
        .map(|h| (h.article, h.field, h.term.as_str()))
        .collect();
    assert_eq!(
        located,
        vec![
            (1, ContentField::Title, "最"),
            (1, ContentField::Digest, "独家"),
            (1, ContentField::Body, "国家级"),
        ]
    );
}

#[test]
fn caution_terms_need_a_check_not_a_rewrite() {
    let report = scanner().check_text("独家代理，永久保修", ContentField::Text);
    assert_eq!(report.verdict, Verdict::NeedsCheck);
    assert_eq!(decide_rewrite(&report, 0, 2), RewriteDecision::Accept);
}

#[test]
fn rewrite_loop_is_bounded() {
    let report = scanner().check_text("全网最低价", ContentField::Text);
    assert_eq!(
        decide_rewrite(&report, 0, 2),
        RewriteDecision::Rewrite { attempt: 1 }
    );
    assert_eq!(
        decide_rewrite(&report, 1, 2),
        RewriteDecision::Rewrite { attempt: 2 }
    );
    assert_eq!(decide_rewrite(&report, 2, 2), RewriteDecision::NeedsReview);
    assert_eq!(decide_rewrite(&report, 0, 0), RewriteDecision::NeedsReview);
    let clean = ComplianceReport::from_hits(Vec::new());
    assert_eq!(decide_rewrite(&clean, 5, 2), RewriteDecision::Accept);
}

#[test]
fn rewrite_instruction_names_every_flagged_span() {
    let copy = "品质第一，口感最佳，第一次来店有礼";
    let report = scanner().check_text(copy, ContentField::Title);
    let instruction = rewrite_instruction(&report);
    assert!(instruction.contains(
        "1. title of article 1, characters 2–4: “第一” (term “第一”: “第一”（销量第一、行业第一…）属绝对化用语; 广告法第九条第（三）项)"
    ), "{instruction}");
    assert!(
        instruction.contains("2. title of article 1, characters 7–9: “最佳”"),
        "{instruction}"
    );
    assert!(
        instruction.ends_with("Do not use: 最佳、第一."),
        "{instruction}"
    );
    assert!(!instruction.contains("第一次"));
}

#[test]
fn report_serialises_for_the_api() {
    let report = scanner().check_text("最佳", ContentField::Text);
    let json = serde_json::to_value(&report).expect("serialises");
    assert_eq!(json["verdict"], "violation");
    assert_eq!(json["hits"][0]["field"], "text");
    assert_eq!(json["hits"][0]["severity"], "prohibited");
    assert_eq!(json["hits"][0]["source"], "advertising_law");
    assert_eq!(json["hits"][0]["start"], 0);
    assert_eq!(json["hits"][0]["end"], 2);
}

#[test]
fn english_copy_is_checked_on_word_boundaries() {
    let copy = "The Best coffee in town, our #1 bestseller. All the best, and the best way to \
                enjoy it is fresh. World-class beans, guaranteed.";
    let report = scanner().check_text(copy, ContentField::Text);
    assert_eq!(
        spans(&report.hits),
        vec![
            span(copy, "The Best", 0, "the best"),
            span(copy, "#1", 0, "#1"),
            span(copy, "World-class", 0, "world-class"),
            span(copy, "guaranteed", 0, "guaranteed"),
        ]
    );
}

#[test]
fn brand_banned_words_become_tenant_terms() {
    let terms = banned_word_terms(&["廉价".to_owned(), "  ".to_owned()]);
    assert_eq!(terms.len(), 1);
    let scanner = ComplianceScanner::new(&terms).expect("builds");
    let hits = scanner.scan_text("并不廉价", 0, ContentField::Text);
    assert_eq!(
        spans(&hits),
        vec![("廉价".to_owned(), "廉价".to_owned(), 2, 4)]
    );
    assert_eq!(hits[0].reason, "品牌禁用词");
}
