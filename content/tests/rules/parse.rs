use wxpilot_content::limits::{ContentField, Draft, LengthUnit, validate_draft};
use wxpilot_content::parse::{
    AnswerFormat, Generated, GeneratedArticle, OutputError, ParseOptions, ParsedOutput, Repair,
    missing_keywords, parse_output,
};
use wxpilot_content::prompt::ContentKind;

fn strict(kind: ContentKind, raw: &str) -> Result<ParsedOutput, OutputError> {
    parse_output(kind, raw, ParseOptions::default())
}

fn article(raw: &str) -> GeneratedArticle {
    let parsed = strict(ContentKind::Article, raw).unwrap_or_else(|e| panic!("{e}: {raw}"));
    match parsed.items.into_iter().next() {
        Some(Generated::Article(a)) => a,
        other => panic!("not an article: {other:?}"),
    }
}

fn repairs(raw: &str) -> Vec<Repair> {
    strict(ContentKind::Article, raw)
        .map(|p| p.repairs)
        .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn clean_json() {
    let a = article(
        r#"{"title": "秋季新豆上市", "digest": "云南产地直送", "body": "第一段。\n\n第二段。"}"#,
    );
    assert_eq!(a.title, "秋季新豆上市");
    assert_eq!(a.digest, "云南产地直送");
    assert!(!a.digest_derived);
    assert_eq!(a.body_html, "<p>第一段。</p><p>第二段。</p>");
    assert_eq!(repairs(r#"{"title": "t", "body": "b"}"#), vec![]);
}

#[test]
fn fenced_json_with_chatter_before_and_after() {
    let raw = "Sure! Here is your article:\n```json\n{\n  \"title\": \"秋季新豆上市\",\n  \"digest\": \"产地直送\",\n  \"body\": \"正文\"\n}\n```\nLet me know if you want changes. {not json}";
    let a = article(raw);
    assert_eq!(
        (a.title.as_str(), a.body_html.as_str()),
        ("秋季新豆上市", "<p>正文</p>")
    );
    assert_eq!(repairs(raw), vec![Repair::SurroundingTextDropped]);
}

#[test]
fn chatter_without_fences() {
    let raw = "好的，以下是文章：{\"title\": \"标题\", \"body\": \"正文\"} 希望对你有帮助！";
    assert_eq!(article(raw).title, "标题");
    assert_eq!(repairs(raw), vec![Repair::SurroundingTextDropped]);
}

#[test]
fn trailing_commas() {
    let raw = r#"{"title": "标题", "digest": "摘要", "body": ["第一段", "第二段",],}"#;
    let a = article(raw);
    assert_eq!(a.body_html, "<p>第一段</p><p>第二段</p>");
    assert_eq!(repairs(raw), vec![Repair::TrailingComma]);
}

#[test]
fn single_quotes_unquoted_keys_and_python_literals() {
    let raw =
        "{title: '咖啡的秘密', 'digest': 'It\\'s \"good\" coffee', body: '正文', 'draft': True}";
    let a = article(raw);
    assert_eq!(a.title, "咖啡的秘密");
    assert_eq!(a.digest, "It's \"good\" coffee");
    assert_eq!(
        repairs(raw),
        vec![
            Repair::SingleQuotes,
            Repair::UnquotedKey,
            Repair::BadEscape,
            Repair::NonJsonLiteral
        ]
    );
}

#[test]
fn raw_newlines_and_unescaped_quotes_inside_strings() {
    let raw = "{\"title\": \"他说\"好喝\"的咖啡\", \"body\": \"第一段\n\n第二段\"}";
    let a = article(raw);
    assert_eq!(a.title, "他说\"好喝\"的咖啡");
    assert_eq!(a.body_html, "<p>第一段</p><p>第二段</p>");
    assert_eq!(
        repairs(raw),
        vec![Repair::RawControlCharacter, Repair::UnescapedQuote]
    );
}

#[test]
fn truncated_inside_the_body() {
    let raw = "{\"title\": \"秋季新品\", \"digest\": \"产地直送\", \"body\": \"第一段\\n\\n第二段还没写完";
    let a = article(raw);
    assert_eq!(a.body_html, "<p>第一段</p><p>第二段还没写完</p>");
    assert_eq!(repairs(raw), vec![Repair::Truncated]);
}

#[test]
fn truncated_after_a_key_or_a_colon() {
    let a = article("{\"title\": \"标题\", \"body\": \"正文内容\", \"dige");
    assert!(a.digest_derived);
    assert_eq!(a.digest, "正文内容");
    let a = article("{\"title\": \"标题\", \"body\": \"正文\", \"digest\":");
    assert!(a.digest_derived);
    let a = article("{\"title\": \"标题\", \"body\": \"正文\",");
    assert_eq!(a.title, "标题");
}

#[test]
fn truncated_second_variant_is_dropped_not_fatal() {
    let raw = r#"{"variants": [{"title": "版本一", "digest": "摘要一", "body": "正文一"}, {"title": "版本二", "di"#;
    let parsed = strict(ContentKind::Article, raw).expect("first version survives");
    assert_eq!(parsed.items.len(), 1);
    assert_eq!(
        parsed.rejected,
        vec![OutputError::MissingField {
            variant: 1,
            field: ContentField::Body
        }]
    );
}

#[test]
fn variants_as_array_and_as_strings() {
    let raw = r#"[{"title": "一", "body": "甲"}, {"title": "二", "body": "乙"}]"#;
    let titles: Vec<String> = strict(ContentKind::Article, raw)
        .expect("parses")
        .items
        .into_iter()
        .filter_map(|g| match g {
            Generated::Article(a) => Some(a.title),
            _ => None,
        })
        .collect();
    assert_eq!(titles, vec!["一", "二"]);
    let moments = strict(
        ContentKind::Moments,
        r#"{"variants": ["早安☕", "晚安🌙"]}"#,
    )
    .expect("parses");
    assert_eq!(
        moments.items,
        vec![
            Generated::Moments {
                text: "早安☕".to_owned()
            },
            Generated::Moments {
                text: "晚安🌙".to_owned()
            }
        ]
    );
}

#[test]
fn body_html_is_sanitised() {
    let a = article(
        r#"{"title": "t", "body": "<p onclick=\"x()\">正文</p><script>alert(1)</script><h2>小标题</h2>"}"#,
    );
    assert_eq!(a.body_html, "<p>正文</p><h2>小标题</h2>");
}

#[test]
fn line_format() {
    let raw = "TITLE: 秋季新豆上市\nDIGEST: 云南产地直送，本周到店可试饮\nBODY:\n第一段第一行\n第一段第二行\n\n第二段";
    let parsed = strict(ContentKind::Article, raw).expect("parses");
    assert_eq!(parsed.format, AnswerFormat::Lines);
    let Some(Generated::Article(a)) = parsed.items.first() else {
        panic!("no article");
    };
    assert_eq!(a.title, "秋季新豆上市");
    assert_eq!(a.digest, "云南产地直送，本周到店可试饮");
    assert_eq!(
        a.body_html,
        "<p>第一段第一行<br>第一段第二行</p><p>第二段</p>"
    );
}

#[test]
fn line_format_as_small_models_write_it() {
    // Markdown decoration, a chatty first line, full-width colons, no BODY label, and a
    // "内容：" line inside the body that must stay body text.
    let raw = "Here is the article you asked for.\n\n**Title:** New beans are here\n**Summary**: Fresh from Yunnan\n\nOur new beans arrived this week.\n内容：手冲与意式\n\nCome and try them.";
    let a = article(raw);
    assert_eq!(a.title, "New beans are here");
    assert_eq!(a.digest, "Fresh from Yunnan");
    assert_eq!(
        a.body_html,
        "<p>Our new beans arrived this week.<br>内容：手冲与意式</p><p>Come and try them.</p>"
    );
    let chinese = article("标题：秋季上新\n摘要：三款新品\n正文：\n欢迎品尝");
    assert_eq!(
        (chinese.title.as_str(), chinese.digest.as_str()),
        ("秋季上新", "三款新品")
    );
    assert_eq!(chinese.body_html, "<p>欢迎品尝</p>");
    let next_line = article("TITLE:\n秋季上新\nBODY:\n正文");
    assert_eq!(next_line.title, "秋季上新");
}

#[test]
fn line_format_with_several_versions() {
    let raw = "TITLE: 一\nBODY:\n甲\n---\nTITLE: 二\nBODY:\n乙\nTITLE: 三\nBODY: 丙";
    let parsed = strict(ContentKind::Article, raw).expect("parses");
    let titles: Vec<&str> = parsed
        .items
        .iter()
        .filter_map(|g| match g {
            Generated::Article(a) => Some(a.title.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(titles, vec!["一", "二", "三"]);
}

#[test]
fn moments_and_menu_reply_in_both_formats() {
    let moments = strict(ContentKind::Moments, "TEXT:\n新豆到店☕\n欢迎来尝").expect("parses");
    assert_eq!(
        moments.items,
        vec![Generated::Moments {
            text: "新豆到店☕\n欢迎来尝".to_owned()
        }]
    );
    let reply = strict(
        ContentKind::MenuReply,
        "```json\n{\"reply\": \"营业时间：每天 9:00–21:00\"}\n```",
    )
    .expect("parses");
    assert_eq!(
        reply.items,
        vec![Generated::MenuReply {
            text: "营业时间：每天 9:00–21:00".to_owned()
        }]
    );
    let reply = strict(ContentKind::MenuReply, "REPLY: 您好，请留言").expect("parses");
    assert_eq!(
        reply.items,
        vec![Generated::MenuReply {
            text: "您好，请留言".to_owned()
        }]
    );
}

#[test]
fn garbage_gives_a_clear_error() {
    assert_eq!(
        strict(ContentKind::Article, "  \n "),
        Err(OutputError::Empty)
    );
    let err = strict(
        ContentKind::Article,
        "I am a language model and I like turtles.",
    );
    assert_eq!(
        err,
        Err(OutputError::NoStructuredContent {
            preview: "I am a language model and I like turtles.".to_owned()
        })
    );
    let err = strict(ContentKind::Article, "{{{{ ::: }}").err();
    assert!(
        matches!(err, Some(OutputError::InvalidJson { .. })),
        "{err:?}"
    );
    assert_eq!(
        err.map(|e| e
            .to_string()
            .starts_with("the model's JSON is invalid even after repair")),
        Some(true)
    );
    assert_eq!(
        strict(
            ContentKind::Article,
            r#"{"error": "I cannot help with that"}"#
        ),
        Err(OutputError::MissingField {
            variant: 0,
            field: ContentField::Title
        })
    );
    assert_eq!(
        strict(ContentKind::Article, r#"{"title": 42, "body": "x"}"#),
        Err(OutputError::WrongType {
            variant: 0,
            field: ContentField::Title
        })
    );
    assert_eq!(
        strict(
            ContentKind::Article,
            r#"{"title": "t", "body": "<script>x()</script>"}"#
        ),
        Err(OutputError::MissingField {
            variant: 0,
            field: ContentField::Body
        })
    );
    assert_eq!(
        strict(ContentKind::Article, r#"{"variants": []}"#),
        Err(OutputError::NoVariants)
    );
}

#[test]
fn limits_fail_or_truncate_as_asked() {
    let long_title = "标".repeat(70);
    let raw = format!(
        r#"{{"title": "{long_title}", "digest": "{}", "body": "正文"}}"#,
        "摘".repeat(121)
    );
    let err = strict(ContentKind::Article, &raw);
    assert_eq!(
        err,
        Err(OutputError::TooLong {
            variant: 0,
            field: ContentField::Title,
            limit: 64,
            actual: 70,
            unit: LengthUnit::Chars
        })
    );
    assert_eq!(
        err.err().map(|e| e.feedback()),
        Some("The title was 70 characters; it must be at most 64. Answer again with a shorter title.".to_owned())
    );
    let lenient = parse_output(
        ContentKind::Article,
        &raw,
        ParseOptions {
            truncate_overlong: true,
            ..ParseOptions::default()
        },
    )
    .expect("truncates");
    assert_eq!(
        lenient.truncated,
        vec![(0, ContentField::Title), (0, ContentField::Digest)]
    );
    let Some(Generated::Article(a)) = lenient.items.into_iter().next() else {
        panic!("no article");
    };
    assert_eq!(a.title.chars().count(), 64);
    assert_eq!(a.digest.chars().count(), 120);
    let draft = Draft {
        articles: vec![a.into_article_draft("山野咖啡编辑部很长", "山野咖啡")],
    };
    assert_eq!(validate_draft(&draft), Ok(()));
    assert!(draft.articles[0].content_html.ends_with("<p>山野咖啡</p>"));

    let long_reply = format!("REPLY: {}", "字".repeat(700));
    assert!(matches!(
        strict(ContentKind::MenuReply, &long_reply),
        Err(OutputError::TooLong {
            limit: 2048,
            actual: 2100,
            unit: LengthUnit::Bytes,
            ..
        })
    ));
    let cut = parse_output(
        ContentKind::MenuReply,
        &long_reply,
        ParseOptions {
            truncate_overlong: true,
            ..ParseOptions::default()
        },
    )
    .expect("truncates");
    let Some(Generated::MenuReply { text }) = cut.items.first() else {
        panic!("no reply");
    };
    assert_eq!(text.len(), 2046);
}

#[test]
fn missing_digest_is_taken_from_the_body() {
    let a = article(&format!(
        r#"{{"title": "t", "body": "{}"}}"#,
        "文".repeat(80)
    ));
    assert!(a.digest_derived);
    assert_eq!(a.digest, "文".repeat(54));
}

#[test]
fn echoed_placeholders_and_stray_labels() {
    // A model that copies the format's placeholders has written no title.
    assert_eq!(
        strict(
            ContentKind::Article,
            "TITLE: <the title on one line>\nBODY:\n正文"
        ),
        Err(OutputError::MissingField {
            variant: 0,
            field: ContentField::Title
        })
    );
    let a = article("TITLE: <h1>秋季上新</h1>\nDIGEST: <the summary on one line>\nBODY:\n正文");
    assert_eq!(a.title, "秋季上新");
    assert!(a.digest_derived);
    // A late summary line does not swallow the body after it.
    let a = article("TITLE: 标题\nBODY:\n第一段\nSummary: 摘要\n第二段");
    assert_eq!(a.digest, "摘要");
    assert_eq!(a.body_html, "<p>第一段<br>第二段</p>");
    // In Moments copy, "Title:" is just text.
    let moments = strict(ContentKind::Moments, "TEXT: 周末试饮\nTitle: 不是标题").expect("parses");
    assert_eq!(
        moments.items,
        vec![Generated::Moments {
            text: "周末试饮\nTitle: 不是标题".to_owned()
        }]
    );
}

#[test]
fn plain_text_fallback_only_when_asked() {
    let raw = "Autumn beans are here\n\nOur new beans arrived.\nCome and taste them.";
    assert!(matches!(
        strict(ContentKind::Article, raw),
        Err(OutputError::NoStructuredContent { .. })
    ));
    let options = ParseOptions {
        plain_text_fallback: true,
        ..ParseOptions::default()
    };
    let parsed = parse_output(ContentKind::Article, raw, options).expect("falls back");
    assert_eq!(parsed.format, AnswerFormat::PlainText);
    let Some(Generated::Article(a)) = parsed.items.first() else {
        panic!("no article");
    };
    assert_eq!(a.title, "Autumn beans are here");
    assert_eq!(
        a.body_html,
        "<p>Our new beans arrived.<br>Come and taste them.</p>"
    );
    // A paragraph without a title line: its first sentence becomes the title.
    let raw = "Our new Yunnan beans arrived this week. Come and taste them, roasted light for a bright cup.\n\nFree tasting on Saturday.";
    let parsed = parse_output(ContentKind::Article, raw, options).expect("falls back");
    let Some(Generated::Article(a)) = parsed.items.first() else {
        panic!("no article");
    };
    assert_eq!(a.title, "Our new Yunnan beans arrived this week.");
    assert!(
        a.body_html
            .starts_with("<p>Our new Yunnan beans arrived this week. Come")
    );
    let a = article("TITLE: <<Autumn beans>>\nBODY: fresh");
    assert_eq!(a.title, "Autumn beans");
    // One short line is not an article, even with the fallback.
    assert!(matches!(
        parse_output(ContentKind::Article, "just one line", options),
        Err(OutputError::NoStructuredContent { .. })
    ));
    // Broken JSON stays an error: the model meant JSON.
    assert!(matches!(
        parse_output(ContentKind::Article, "{\"title\": 1 2 3}\nmore", options),
        Err(OutputError::InvalidJson { .. })
    ));
    let moments =
        parse_output(ContentKind::Moments, "周末试饮☕\n欢迎", options).expect("falls back");
    assert_eq!(
        moments.items,
        vec![Generated::Moments {
            text: "周末试饮☕\n欢迎".to_owned()
        }]
    );
}

#[test]
fn braces_inside_prose_or_lines_do_not_hijack_the_answer() {
    let a = article("TITLE: 代码小课堂\nBODY:\n空对象写作 {} ，数组写作 []。");
    assert_eq!(a.title, "代码小课堂");
    assert_eq!(a.body_html, "<p>空对象写作 {} ，数组写作 []。</p>");
    let options = ParseOptions {
        plain_text_fallback: true,
        ..ParseOptions::default()
    };
    let parsed = parse_output(
        ContentKind::Article,
        "Coffee notes\nWe write {} for nothing.",
        options,
    )
    .expect("falls back");
    assert_eq!(parsed.format, AnswerFormat::PlainText);
    // An answer that is JSON keeps its JSON error even with the fallback on.
    assert_eq!(
        parse_output(ContentKind::Article, "{\"error\": \"no\"}\nsorry", options),
        Err(OutputError::MissingField {
            variant: 0,
            field: ContentField::Title
        })
    );
}

#[test]
fn keywords_the_answer_left_out_are_named() {
    let parsed = strict(
        ContentKind::Article,
        "TITLE: 云南新豆\nBODY:\n<p>本周末 <b>Free</b> tasting</p>",
    )
    .expect("parses");
    let keywords = [
        "云南".to_owned(),
        "free tasting".to_owned(),
        "手冲".to_owned(),
        " ".to_owned(),
    ];
    assert_eq!(
        missing_keywords(&parsed.items[0], &keywords),
        vec!["手冲".to_owned()]
    );
}
