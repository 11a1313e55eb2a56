//! WeChat's limits on drafts, Moments copy and passive replies, and safe truncation.
//!
//! Figures and how they are counted:
//! - title ≤ 64 characters, digest ≤ 120 characters, author ≤ 8 characters: the counters the
//!   Official Account editor shows for those fields (the `draft/add` API rejects longer values
//!   with 45003 / 45004 / 45110).
//! - body (`content`): the API documents "fewer than 20,000 characters and under 1 MB". We
//!   count the 20,000 on the *visible text* (tags stripped, entities decoded, whitespace not
//!   counted), which is what the editor's word counter measures; counting the raw HTML would
//!   reject ordinary styled articles and leave the 1 MB rule unreachable (20,000 characters
//!   are at most 80 kB). The 1 MB rule is applied to the UTF-8 bytes of the HTML, read
//!   conservatively as 1,000,000 bytes. Both are strict: 19,999 visible characters pass,
//!   20,000 do not; 999,999 bytes pass, 1,000,000 do not.
//! - at most 8 articles in one draft, at least 1.
//! - Moments (朋友圈) copy: WeChat publishes no figure; the app folds long text after about
//!   six lines. We cap generated copy at 2,000 characters, our own choice, so that it stays
//!   something a person would paste into Moments.
//! - passive text replies (menu replies): at most 2,048 bytes of UTF-8.
//!
//! "Characters" are Unicode scalar values (`char`s): one per Chinese character.

use serde::{Deserialize, Serialize};

use crate::html;

/// Most characters in an article title.
pub const TITLE_MAX_CHARS: usize = 64;
/// Most characters in an article digest (摘要).
pub const DIGEST_MAX_CHARS: usize = 120;
/// Most characters in an article's author field.
pub const AUTHOR_MAX_CHARS: usize = 8;
/// The body's visible text must have fewer characters than this.
pub const BODY_VISIBLE_CHARS_LIMIT: usize = 20_000;
/// The body's HTML must have fewer UTF-8 bytes than this.
pub const BODY_BYTES_LIMIT: usize = 1_000_000;
/// Most articles in one draft.
pub const MAX_ARTICLES: usize = 8;
/// Most characters in Moments copy (our choice; see the module docs).
pub const MOMENTS_MAX_CHARS: usize = 2_000;
/// Most UTF-8 bytes in a passive text reply.
pub const PASSIVE_REPLY_MAX_BYTES: usize = 2_048;
/// WeChat fills an empty digest with the body's first 54 characters; we do the same.
pub const DERIVED_DIGEST_CHARS: usize = 54;

/// One article of a draft, with the fields `draft/add` takes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArticleDraft {
    /// Headline.
    pub title: String,
    /// Author shown under the title; may be empty.
    pub author: String,
    /// Summary shown in the share card; may be empty (WeChat then takes the body's start).
    pub digest: String,
    /// Sanitised HTML body (`content`).
    pub content_html: String,
    /// "Read the original" link; empty or an http(s) URL.
    pub content_source_url: String,
    /// Text for the cover image (used to make or pick the cover; not sent to WeChat).
    pub cover_text: String,
    /// Cover image's permanent media id, known once the publish step uploaded it.
    pub thumb_media_id: Option<String>,
    /// Whether comments are open.
    pub need_open_comment: bool,
    /// Whether only followers may comment.
    pub only_fans_can_comment: bool,
}

/// A draft: what one `draft/add` call carries.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Draft {
    /// 1..=8 articles; the first is the lead article.
    pub articles: Vec<ArticleDraft>,
}

/// The field a violation or a compliance hit is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContentField {
    /// Article title.
    Title,
    /// Article author.
    Author,
    /// Article digest.
    Digest,
    /// Article body (HTML).
    Body,
    /// Article "read the original" URL.
    ContentSourceUrl,
    /// Cover image text.
    CoverText,
    /// Cover image media id.
    ThumbMediaId,
    /// Moments copy or a menu reply.
    Text,
}

impl ContentField {
    /// The field's name as the API and the model see it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Title => "title",
            Self::Author => "author",
            Self::Digest => "digest",
            Self::Body => "body",
            Self::ContentSourceUrl => "content_source_url",
            Self::CoverText => "cover_text",
            Self::ThumbMediaId => "thumb_media_id",
            Self::Text => "text",
        }
    }
}

impl std::fmt::Display for ContentField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a length is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LengthUnit {
    /// Unicode characters of the field.
    Chars,
    /// Unicode characters of the visible text (tags stripped).
    VisibleChars,
    /// UTF-8 bytes.
    Bytes,
}

impl std::fmt::Display for LengthUnit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Chars => "characters",
            Self::VisibleChars => "visible characters",
            Self::Bytes => "bytes",
        })
    }
}

/// One broken rule of a draft.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LimitViolation {
    /// The draft has no article.
    #[error("a draft needs at least one article")]
    NoArticles,
    /// The draft has more articles than WeChat allows.
    #[error("a draft holds at most {limit} articles, this one has {actual}")]
    TooManyArticles {
        /// The most allowed.
        limit: usize,
        /// How many there are.
        actual: usize,
    },
    /// A required field is empty.
    #[error("article {article}: {field} must not be empty")]
    Empty {
        /// Index of the article in the draft.
        article: usize,
        /// The field.
        field: ContentField,
    },
    /// A field is longer than allowed. `limit` is the most allowed, or for a strict
    /// "fewer than" rule one less than the documented figure.
    #[error("article {article}: {field} has {actual} {unit}, at most {limit} allowed")]
    TooLong {
        /// Index of the article in the draft.
        article: usize,
        /// The field.
        field: ContentField,
        /// The most allowed.
        limit: usize,
        /// The measured length.
        actual: usize,
        /// How it was measured.
        unit: LengthUnit,
    },
    /// A URL field is not an http(s) URL.
    #[error("article {article}: {field} must be an http or https URL")]
    NotHttpUrl {
        /// Index of the article in the draft.
        article: usize,
        /// The field.
        field: ContentField,
    },
}

/// Every violation found in a draft.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("the draft breaks {} WeChat rule(s): {}", .violations.len(), join_violations(.violations))]
pub struct DraftInvalid {
    /// The violations, in article and field order.
    pub violations: Vec<LimitViolation>,
}

fn join_violations(violations: &[LimitViolation]) -> String {
    violations
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Checks a draft against WeChat's limits and reports every violation, not just the first.
///
/// A missing cover (`thumb_media_id`) is not checked here because the publish step uploads
/// it; use [`validate_for_publish`] right before `draft/add`.
pub fn validate_draft(draft: &Draft) -> Result<(), DraftInvalid> {
    into_result(draft_violations(draft))
}

/// [`validate_draft`] plus the fields only known at publish time (the cover's media id).
pub fn validate_for_publish(draft: &Draft) -> Result<(), DraftInvalid> {
    let mut violations = draft_violations(draft);
    for (index, article) in draft.articles.iter().enumerate() {
        if article
            .thumb_media_id
            .as_deref()
            .is_none_or(|id| id.trim().is_empty())
        {
            violations.push(LimitViolation::Empty {
                article: index,
                field: ContentField::ThumbMediaId,
            });
        }
    }
    into_result(violations)
}

fn into_result(violations: Vec<LimitViolation>) -> Result<(), DraftInvalid> {
    if violations.is_empty() {
        Ok(())
    } else {
        Err(DraftInvalid { violations })
    }
}

fn draft_violations(draft: &Draft) -> Vec<LimitViolation> {
    let mut violations = Vec::new();
    if draft.articles.is_empty() {
        violations.push(LimitViolation::NoArticles);
    }
    if draft.articles.len() > MAX_ARTICLES {
        violations.push(LimitViolation::TooManyArticles {
            limit: MAX_ARTICLES,
            actual: draft.articles.len(),
        });
    }
    for (index, article) in draft.articles.iter().enumerate() {
        violations.extend(article_violations(index, article));
    }
    violations
}

/// Every violation of one article; `index` is its place in the draft.
pub fn article_violations(index: usize, article: &ArticleDraft) -> Vec<LimitViolation> {
    let mut violations = Vec::new();
    let mut too_long = |field, limit, actual, unit| {
        if actual > limit {
            violations.push(LimitViolation::TooLong {
                article: index,
                field,
                limit,
                actual,
                unit,
            });
        }
    };
    too_long(
        ContentField::Title,
        TITLE_MAX_CHARS,
        char_len(&article.title),
        LengthUnit::Chars,
    );
    too_long(
        ContentField::Author,
        AUTHOR_MAX_CHARS,
        char_len(&article.author),
        LengthUnit::Chars,
    );
    too_long(
        ContentField::Digest,
        DIGEST_MAX_CHARS,
        char_len(&article.digest),
        LengthUnit::Chars,
    );
    too_long(
        ContentField::Body,
        BODY_VISIBLE_CHARS_LIMIT - 1,
        html::visible_char_count(&article.content_html),
        LengthUnit::VisibleChars,
    );
    too_long(
        ContentField::Body,
        BODY_BYTES_LIMIT - 1,
        article.content_html.len(),
        LengthUnit::Bytes,
    );
    if article.title.trim().is_empty() {
        violations.push(LimitViolation::Empty {
            article: index,
            field: ContentField::Title,
        });
    }
    if html::visible_char_count(&article.content_html) == 0 {
        violations.push(LimitViolation::Empty {
            article: index,
            field: ContentField::Body,
        });
    }
    let url = article.content_source_url.trim();
    if !url.is_empty() && !is_http_url(url) {
        violations.push(LimitViolation::NotHttpUrl {
            article: index,
            field: ContentField::ContentSourceUrl,
        });
    }
    violations
}

/// Whether `url` starts with `http://` or `https://` (any case) and has something after it.
pub fn is_http_url(url: &str) -> bool {
    let lower = url.trim().to_ascii_lowercase();
    ["http://", "https://"]
        .iter()
        .any(|scheme| lower.len() > scheme.len() && lower.starts_with(scheme))
}

/// Number of Unicode characters in `text`.
pub fn char_len(text: &str) -> usize {
    text.chars().count()
}

/// `text` cut to at most `max_chars` characters (never inside a character).
pub fn truncate_chars(text: &str, max_chars: usize) -> &str {
    match text.char_indices().nth(max_chars) {
        Some((byte_index, _)) => &text[..byte_index],
        None => text,
    }
}

/// `text` cut to at most `max_bytes` bytes of UTF-8, backing off to a character boundary.
pub fn truncate_utf8_bytes(text: &str, max_bytes: usize) -> &str {
    if text.len() <= max_bytes {
        return text;
    }
    let mut end = max_bytes;
    while end > 0 && !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// One field shortened by [`fit_article_to_limits`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Truncation {
    /// The field that was cut.
    pub field: ContentField,
    /// Its length before, in characters.
    pub from_chars: usize,
    /// Its length after, in characters.
    pub to_chars: usize,
}

/// Cuts the title, author and digest of `article` to their limits on character boundaries
/// and says what it cut. The body is never cut: cutting HTML would change its meaning, so an
/// overlong body stays a violation for the caller to handle.
pub fn fit_article_to_limits(article: &mut ArticleDraft) -> Vec<Truncation> {
    let mut cuts = Vec::new();
    for (field, value, limit) in [
        (ContentField::Title, &mut article.title, TITLE_MAX_CHARS),
        (ContentField::Author, &mut article.author, AUTHOR_MAX_CHARS),
        (ContentField::Digest, &mut article.digest, DIGEST_MAX_CHARS),
    ] {
        let from_chars = char_len(value);
        if from_chars > limit {
            let cut = truncate_chars(value, limit).trim_end().to_owned();
            cuts.push(Truncation {
                field,
                from_chars,
                to_chars: char_len(&cut),
            });
            *value = cut;
        }
    }
    cuts
}

/// WeChat's default digest: the first [`DERIVED_DIGEST_CHARS`] characters of the body's
/// visible text, whitespace collapsed.
pub fn derive_digest(content_html: &str) -> String {
    let text = html::visible_text(content_html);
    let collapsed = text.split_whitespace().collect::<Vec<_>>().join(" ");
    truncate_chars(&collapsed, DERIVED_DIGEST_CHARS).to_owned()
}

/// Checks Moments copy: not empty and at most [`MOMENTS_MAX_CHARS`] characters.
pub fn validate_moments(text: &str) -> Result<(), LimitViolation> {
    validate_text(text, MOMENTS_MAX_CHARS, char_len(text), LengthUnit::Chars)
}

/// Checks a passive reply: not empty and at most [`PASSIVE_REPLY_MAX_BYTES`] bytes.
pub fn validate_passive_reply(text: &str) -> Result<(), LimitViolation> {
    validate_text(text, PASSIVE_REPLY_MAX_BYTES, text.len(), LengthUnit::Bytes)
}

fn validate_text(
    text: &str,
    limit: usize,
    actual: usize,
    unit: LengthUnit,
) -> Result<(), LimitViolation> {
    if text.trim().is_empty() {
        return Err(LimitViolation::Empty {
            article: 0,
            field: ContentField::Text,
        });
    }
    if actual > limit {
        return Err(LimitViolation::TooLong {
            article: 0,
            field: ContentField::Text,
            limit,
            actual,
            unit,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn article(title: &str, digest: &str, body: &str) -> ArticleDraft {
        ArticleDraft {
            title: title.to_owned(),
            digest: digest.to_owned(),
            content_html: body.to_owned(),
            ..ArticleDraft::default()
        }
    }

    fn ok_article() -> ArticleDraft {
        article("春季新品上市", "三款新品，今天起到店可试。", "<p>正文</p>")
    }

    #[test]
    fn title_boundary_is_64_characters() {
        let mut a = ok_article();
        a.title = "标".repeat(64);
        assert_eq!(article_violations(0, &a), vec![]);
        a.title = "标".repeat(65);
        assert_eq!(
            article_violations(0, &a),
            vec![LimitViolation::TooLong {
                article: 0,
                field: ContentField::Title,
                limit: 64,
                actual: 65,
                unit: LengthUnit::Chars
            }]
        );
    }

    #[test]
    fn digest_boundary_is_120_characters() {
        let mut a = ok_article();
        a.digest = "摘".repeat(120);
        assert!(article_violations(0, &a).is_empty());
        a.digest = "摘".repeat(121);
        let v = article_violations(0, &a);
        assert!(matches!(
            v.as_slice(),
            [LimitViolation::TooLong {
                field: ContentField::Digest,
                limit: 120,
                actual: 121,
                ..
            }]
        ));
    }

    #[test]
    fn body_must_have_fewer_than_20000_visible_characters() {
        let mut a = ok_article();
        // Markup does not count: 19,999 characters of text inside heavy styling pass.
        a.content_html = format!(
            "<p style=\"color:#333;line-height:1.75\">{}</p>",
            "字".repeat(19_999)
        );
        assert!(article_violations(0, &a).is_empty());
        a.content_html = format!("<p>{}</p>", "字".repeat(20_000));
        assert_eq!(
            article_violations(0, &a),
            vec![LimitViolation::TooLong {
                article: 0,
                field: ContentField::Body,
                limit: 19_999,
                actual: 20_000,
                unit: LengthUnit::VisibleChars
            }]
        );
    }

    #[test]
    fn body_must_have_fewer_than_one_million_bytes() {
        let mut a = ok_article();
        // "<p>" + "</p>" is 7 bytes; the text is ASCII so it stays under 20,000 characters
        // only if most bytes are markup: pad with an attribute instead.
        let pad = |total: usize| {
            let attr_len = total - "<p title=\"\">x</p>".len();
            format!("<p title=\"{}\">x</p>", "a".repeat(attr_len))
        };
        a.content_html = pad(999_999);
        assert_eq!(a.content_html.len(), 999_999);
        assert!(article_violations(0, &a).is_empty());
        a.content_html = pad(1_000_000);
        assert_eq!(
            article_violations(0, &a),
            vec![LimitViolation::TooLong {
                article: 0,
                field: ContentField::Body,
                limit: 999_999,
                actual: 1_000_000,
                unit: LengthUnit::Bytes
            }]
        );
    }

    #[test]
    fn eight_articles_pass_nine_do_not() {
        let mut draft = Draft {
            articles: vec![ok_article(); 8],
        };
        assert_eq!(validate_draft(&draft), Ok(()));
        draft.articles.push(ok_article());
        let err = validate_draft(&draft).err().map(|e| e.violations);
        assert_eq!(
            err,
            Some(vec![LimitViolation::TooManyArticles {
                limit: 8,
                actual: 9
            }])
        );
        assert_eq!(
            validate_draft(&Draft::default())
                .err()
                .map(|e| e.violations),
            Some(vec![LimitViolation::NoArticles])
        );
    }

    #[test]
    fn every_violation_is_reported_with_its_article() {
        let mut second = article(&"长".repeat(70), &"摘".repeat(130), "");
        second.author = "一二三四五六七八九".to_owned();
        second.content_source_url = "javascript:alert(1)".to_owned();
        let draft = Draft {
            articles: vec![ok_article(), second],
        };
        let violations = validate_draft(&draft).err().map(|e| e.violations);
        let fields: Option<Vec<(usize, ContentField)>> = violations.map(|v| {
            v.iter()
                .filter_map(|v| match v {
                    LimitViolation::TooLong { article, field, .. }
                    | LimitViolation::Empty { article, field }
                    | LimitViolation::NotHttpUrl { article, field } => Some((*article, *field)),
                    _ => None,
                })
                .collect()
        });
        assert_eq!(
            fields,
            Some(vec![
                (1, ContentField::Title),
                (1, ContentField::Author),
                (1, ContentField::Digest),
                (1, ContentField::Body),
                (1, ContentField::ContentSourceUrl),
            ])
        );
    }

    #[test]
    fn publish_check_wants_a_cover() {
        let mut draft = Draft {
            articles: vec![ok_article()],
        };
        assert!(validate_draft(&draft).is_ok());
        assert!(validate_for_publish(&draft).is_err());
        draft.articles[0].thumb_media_id = Some("MEDIA_ID".to_owned());
        assert!(validate_for_publish(&draft).is_ok());
    }

    #[test]
    fn truncation_keeps_whole_characters() {
        assert_eq!(truncate_chars("春眠不觉晓", 3), "春眠不");
        assert_eq!(truncate_chars("春眠", 3), "春眠");
        // "春" is 3 bytes: 4 bytes hold one character, not one and a third.
        assert_eq!(truncate_utf8_bytes("春眠", 4), "春");
        assert_eq!(truncate_utf8_bytes("春眠", 6), "春眠");
        assert_eq!(truncate_utf8_bytes("ab春", 4), "ab");
    }

    #[test]
    fn fitting_cuts_title_author_and_digest_only() {
        let mut a = article(&"题".repeat(80), &"摘".repeat(121), "<p>正文</p>");
        a.author = "作者名字很长很长很长".to_owned();
        let cuts = fit_article_to_limits(&mut a);
        assert_eq!(char_len(&a.title), 64);
        assert_eq!(char_len(&a.digest), 120);
        assert_eq!(a.author, "作者名字很长很长");
        assert_eq!(
            cuts.iter()
                .map(|c| (c.field, c.from_chars, c.to_chars))
                .collect::<Vec<_>>(),
            vec![
                (ContentField::Title, 80, 64),
                (ContentField::Author, 10, 8),
                (ContentField::Digest, 121, 120)
            ]
        );
        assert!(article_violations(0, &a).is_empty());
    }

    #[test]
    fn derived_digest_is_the_first_54_visible_characters() {
        let body = format!("<h2>标题</h2><p>{}</p>", "文".repeat(100));
        let digest = derive_digest(&body);
        assert_eq!(char_len(&digest), 54);
        assert!(digest.starts_with("标题 文文"));
    }

    #[test]
    fn moments_and_passive_reply_limits() {
        assert!(validate_moments(&"字".repeat(2_000)).is_ok());
        assert!(validate_moments(&"字".repeat(2_001)).is_err());
        assert!(validate_moments("  ").is_err());
        // 682 three-byte characters are 2,046 bytes; two more ASCII bytes make 2,048.
        let reply = format!("{}ab", "字".repeat(682));
        assert_eq!(reply.len(), 2_048);
        assert!(validate_passive_reply(&reply).is_ok());
        assert_eq!(
            validate_passive_reply(&format!("{reply}c")),
            Err(LimitViolation::TooLong {
                article: 0,
                field: ContentField::Text,
                limit: 2_048,
                actual: 2_049,
                unit: LengthUnit::Bytes
            })
        );
    }
}
