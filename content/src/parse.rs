//! Parsing model output into articles, Moments copy and menu replies.
//!
//! Two answer formats are accepted by the same [`parse_output`]:
//!
//! - **JSON** (what [`crate::prompt::OutputFormat::Json`] asks for): the object is found
//!   inside chatter or Markdown code fences, common defects are repaired (trailing commas,
//!   single quotes, unquoted keys, raw newlines and unescaped quotes inside strings,
//!   comments, Python's `True`/`None`, a truncated end), and the fields are read by name with
//!   a few aliases (`content` for `body`, `summary` for `digest`, …). Several versions may come
//!   as `{"variants": [...]}` or as a bare array.
//! - **Labelled lines** (what [`crate::prompt::OutputFormat::Lines`] asks for), which small
//!   local models such as the default 135M-parameter one follow far more reliably than JSON:
//!
//!   ```text
//!   TITLE: 秋季新豆上市
//!   DIGEST: 云南产地直送，本周到店可试饮
//!   BODY:
//!   第一段……
//!
//!   第二段……
//!   ```
//!
//!   Labels are matched case-insensitively, with `:` or `：`, with Markdown decoration
//!   (`**Title:**`, `## BODY:`), in Chinese too (标题/摘要/正文, 文案, 回复); text after the
//!   last single-line label without a `BODY:` label is taken as the body; a repeated first
//!   label or a `---` line starts the next version.
//!
//! Errors are typed ([`OutputError`]) so that a caller can regenerate a bounded number of
//! times, feeding [`OutputError::feedback`] back to the model, and then fail with the error's
//! message.

use std::collections::BTreeSet;

use serde::Serialize;
use serde_json::Value;

use crate::html;
use crate::limits::{
    self, ArticleDraft, BODY_BYTES_LIMIT, BODY_VISIBLE_CHARS_LIMIT, ContentField, DIGEST_MAX_CHARS,
    LengthUnit, MOMENTS_MAX_CHARS, PASSIVE_REPLY_MAX_BYTES, TITLE_MAX_CHARS,
};
use crate::prompt::ContentKind;

/// How strictly limits are applied while parsing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ParseOptions {
    /// Cut an overlong title, digest, Moments text or reply on a character boundary instead
    /// of failing. An overlong article body always fails: cutting HTML changes its meaning.
    pub truncate_overlong: bool,
    /// When the answer has neither JSON nor labels, read it as plain text: for an article the
    /// first line is the title and the rest the body (at least two lines needed); for Moments
    /// and replies the whole answer is the text. Meant for small local models that drop the
    /// labels now and then; off by default because it accepts almost any text.
    pub plain_text_fallback: bool,
}

/// The shape an answer was read in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AnswerFormat {
    /// A JSON object or array.
    Json,
    /// Labelled lines.
    Lines,
    /// Unlabelled text ([`ParseOptions::plain_text_fallback`]).
    PlainText,
}

/// A generated article, body already sanitised.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GeneratedArticle {
    /// Title, within the limit.
    pub title: String,
    /// Digest, within the limit.
    pub digest: String,
    /// Whether the model gave no digest and it was taken from the body, as WeChat does.
    pub digest_derived: bool,
    /// Sanitised HTML body.
    pub body_html: String,
}

impl GeneratedArticle {
    /// The draft article for it, with the brand's author and signature.
    pub fn into_article_draft(self, author: &str, signature: &str) -> ArticleDraft {
        ArticleDraft {
            title: self.title,
            author: limits::truncate_chars(author.trim(), limits::AUTHOR_MAX_CHARS).to_owned(),
            digest: self.digest,
            content_html: html::append_signature(&self.body_html, signature),
            ..ArticleDraft::default()
        }
    }
}

/// The requested keywords ([`crate::prompt::GenerationOptions::keywords`]) that a version
/// does not contain anywhere (title, digest or visible body text; case-insensitive), so the
/// job can ask again or tell the user.
pub fn missing_keywords(item: &Generated, keywords: &[String]) -> Vec<String> {
    let text = match item {
        Generated::Article(a) => format!(
            "{}\n{}\n{}",
            a.title,
            a.digest,
            html::visible_text(&a.body_html)
        ),
        Generated::Moments { text } | Generated::MenuReply { text } => text.clone(),
    }
    .to_lowercase();
    keywords
        .iter()
        .filter(|k| !k.trim().is_empty() && !text.contains(&k.trim().to_lowercase()))
        .cloned()
        .collect()
}

/// One generated version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Generated {
    /// An article.
    Article(GeneratedArticle),
    /// Moments copy.
    Moments {
        /// The copy.
        text: String,
    },
    /// A menu reply.
    MenuReply {
        /// The reply.
        text: String,
    },
}

/// A repair made to the model's JSON before it parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Repair {
    /// Text before or after the JSON was dropped (including code fences).
    SurroundingTextDropped,
    /// Commas before `}` or `]` were removed.
    TrailingComma,
    /// Single-quoted strings were requoted.
    SingleQuotes,
    /// Unquoted keys were quoted.
    UnquotedKey,
    /// Raw newlines or control characters inside strings were escaped.
    RawControlCharacter,
    /// Quotes inside strings were escaped.
    UnescapedQuote,
    /// Invalid backslash escapes were fixed.
    BadEscape,
    /// Comments were removed.
    Comment,
    /// `True`/`False`/`None` were turned into JSON literals.
    NonJsonLiteral,
    /// Full-width `：` or `，` between tokens became `:` or `,`.
    FullWidthPunctuation,
    /// The answer ended early: strings and brackets were closed.
    Truncated,
}

/// What came out of a model answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ParsedOutput {
    /// The versions that passed, in the order given.
    pub items: Vec<Generated>,
    /// The format the answer was in.
    pub format: AnswerFormat,
    /// Repairs made to JSON.
    pub repairs: Vec<Repair>,
    /// Fields cut to their limits (only with [`ParseOptions::truncate_overlong`]).
    pub truncated: Vec<(usize, ContentField)>,
    /// Versions that were dropped, and why (e.g. the last one of a truncated answer).
    pub rejected: Vec<OutputError>,
}

/// Why a model answer could not be used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum OutputError {
    /// The answer is empty.
    #[error("the model returned an empty answer")]
    Empty,
    /// Neither a JSON object nor labelled lines were found.
    #[error("the model's answer has neither a JSON object nor labelled lines: {preview:?}")]
    NoStructuredContent {
        /// The answer's start.
        preview: String,
    },
    /// A JSON object was found but is not valid even after repairs.
    #[error("the model's JSON is invalid even after repair: {detail}")]
    InvalidJson {
        /// The JSON parser's message.
        detail: String,
    },
    /// The JSON holds no version at all (an empty array).
    #[error("the model's answer holds no version")]
    NoVariants,
    /// A required field is missing or empty.
    #[error("version {variant}: the field {field} is missing or empty")]
    MissingField {
        /// 0-based version.
        variant: usize,
        /// The field.
        field: ContentField,
    },
    /// A field has the wrong JSON type.
    #[error("version {variant}: the field {field} should be text")]
    WrongType {
        /// 0-based version.
        variant: usize,
        /// The field.
        field: ContentField,
    },
    /// A field is over its limit.
    #[error("version {variant}: {field} has {actual} {unit}, at most {limit} allowed")]
    TooLong {
        /// 0-based version.
        variant: usize,
        /// The field.
        field: ContentField,
        /// The most allowed.
        limit: usize,
        /// The measured length.
        actual: usize,
        /// How it was measured.
        unit: LengthUnit,
    },
}

impl OutputError {
    /// A correction to send the model when regenerating after this error.
    pub fn feedback(&self) -> String {
        match self {
            Self::Empty | Self::NoStructuredContent { .. } | Self::NoVariants => {
                "Your answer was not in the required format. Answer again using exactly the \
                 format described, with nothing before or after it."
                    .to_owned()
            }
            Self::InvalidJson { .. } => "Your JSON could not be read. Answer again with one \
                 valid JSON object: double quotes, \\n for line breaks inside strings, no \
                 trailing commas, nothing before or after it."
                .to_owned(),
            Self::MissingField { field, .. } | Self::WrongType { field, .. } => format!(
                "Your answer has no usable {field}. Answer again with every field filled in as text."
            ),
            Self::TooLong {
                field,
                limit,
                actual,
                unit,
                ..
            } => format!(
                "The {field} was {actual} {unit}; it must be at most {limit}. Answer again with a shorter {field}."
            ),
        }
    }
}

/// The fields an answer may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    Title,
    Digest,
    Body,
    Text,
}

const TITLE_KEYS: &[&str] = &["title", "headline", "标题"];
const DIGEST_KEYS: &[&str] = &["digest", "summary", "abstract", "description", "摘要"];
const BODY_KEYS: &[&str] = &["body", "content", "content_html", "article", "正文", "内容"];
const TEXT_KEYS: &[&str] = &[
    "text", "copy", "moments", "reply", "answer", "message", "文案", "回复",
];
const VARIANT_KEYS: &[&str] = &[
    "variants", "versions", "items", "results", "drafts", "articles", "options", "data",
];

fn key_of(label: &str) -> Option<Key> {
    let lower = label.to_lowercase();
    let is = |names: &[&str]| names.contains(&lower.as_str());
    if is(TITLE_KEYS) {
        Some(Key::Title)
    } else if is(DIGEST_KEYS) {
        Some(Key::Digest)
    } else if is(BODY_KEYS) {
        Some(Key::Body)
    } else if is(TEXT_KEYS) {
        Some(Key::Text)
    } else {
        None
    }
}

/// Reads a model answer for `kind` in either accepted format (see the module docs).
pub fn parse_output(
    kind: ContentKind,
    raw: &str,
    options: ParseOptions,
) -> Result<ParsedOutput, OutputError> {
    if raw.trim().is_empty() {
        return Err(OutputError::Empty);
    }
    let mut json_error = None;
    if let Some((candidate, repairs)) = extract_json(raw) {
        match serde_json::from_str::<Value>(&candidate) {
            Ok(value) => {
                let fields = json_variants(kind, value);
                match build(kind, fields, AnswerFormat::Json, repairs, options) {
                    Ok(parsed) => return Ok(parsed),
                    // A "{}" inside prose or labelled lines is not the answer: read on.
                    Err(error) => json_error = Some(error),
                }
            }
            Err(error) => {
                json_error = Some(OutputError::InvalidJson {
                    detail: error.to_string(),
                })
            }
        }
    }
    let line_variants = parse_lines(kind, raw);
    let lines_error = if line_variants.is_empty() {
        None
    } else {
        match build(
            kind,
            line_variants,
            AnswerFormat::Lines,
            Vec::new(),
            options,
        ) {
            Ok(parsed) => return Ok(parsed),
            Err(error) => Some(error),
        }
    };
    // An answer that starts as JSON meant to be JSON: reading it as prose would hide that.
    let meant_json = fenced_json(raw).is_some() || raw.trim_start().starts_with(['{', '[']);
    if options.plain_text_fallback
        && lines_error.is_none()
        && !meant_json
        && let Some(fields) = plain_text_fields(kind, raw)
    {
        return build(
            kind,
            vec![fields],
            AnswerFormat::PlainText,
            Vec::new(),
            options,
        );
    }
    Err(lines_error
        .or(json_error)
        .unwrap_or_else(|| OutputError::NoStructuredContent {
            preview: limits::truncate_chars(raw.trim(), 80).to_owned(),
        }))
}

/// A field value as read: text, or present with a type that is not text.
#[derive(Debug, Clone)]
enum FieldValue {
    Text(String),
    NotText,
}

type VariantFields = Vec<(Key, FieldValue)>;

fn get(fields: &VariantFields, key: Key) -> Option<&FieldValue> {
    fields.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
}

fn build(
    kind: ContentKind,
    variants: Vec<VariantFields>,
    format: AnswerFormat,
    repairs: Vec<Repair>,
    options: ParseOptions,
) -> Result<ParsedOutput, OutputError> {
    if variants.is_empty() {
        return Err(OutputError::NoVariants);
    }
    let mut items = Vec::new();
    let mut rejected = Vec::new();
    let mut truncated = Vec::new();
    for (index, fields) in variants.iter().enumerate() {
        match build_one(kind, index, fields, options) {
            Ok((item, cuts)) => {
                items.push(item);
                truncated.extend(cuts.into_iter().map(|field| (index, field)));
            }
            Err(error) => rejected.push(error),
        }
    }
    if items.is_empty() {
        // Every version was rejected: report the first one's reason.
        return Err(rejected
            .into_iter()
            .next()
            .unwrap_or(OutputError::NoVariants));
    }
    Ok(ParsedOutput {
        items,
        format,
        repairs,
        truncated,
        rejected,
    })
}

fn text_field(
    fields: &VariantFields,
    keys: &[Key],
    variant: usize,
    field: ContentField,
) -> Result<Option<String>, OutputError> {
    for key in keys {
        match get(fields, *key) {
            Some(FieldValue::Text(text)) if !text.trim().is_empty() => {
                return Ok(Some(text.trim().to_owned()));
            }
            Some(FieldValue::NotText) => return Err(OutputError::WrongType { variant, field }),
            _ => {}
        }
    }
    Ok(None)
}

fn required(
    fields: &VariantFields,
    keys: &[Key],
    variant: usize,
    field: ContentField,
) -> Result<String, OutputError> {
    text_field(fields, keys, variant, field)?.ok_or(OutputError::MissingField { variant, field })
}

/// Applies a limit: `Ok(None)` when within, `Ok(Some(cut))` when cut, or the error.
fn limit(
    value: &str,
    variant: usize,
    field: ContentField,
    max: usize,
    unit: LengthUnit,
    options: ParseOptions,
) -> Result<Option<String>, OutputError> {
    let actual = match unit {
        LengthUnit::Bytes => value.len(),
        _ => limits::char_len(value),
    };
    if actual <= max {
        return Ok(None);
    }
    if !options.truncate_overlong {
        return Err(OutputError::TooLong {
            variant,
            field,
            limit: max,
            actual,
            unit,
        });
    }
    let cut = match unit {
        LengthUnit::Bytes => limits::truncate_utf8_bytes(value, max),
        _ => limits::truncate_chars(value, max),
    };
    Ok(Some(cut.trim_end().to_owned()))
}

fn build_one(
    kind: ContentKind,
    variant: usize,
    fields: &VariantFields,
    options: ParseOptions,
) -> Result<(Generated, Vec<ContentField>), OutputError> {
    let mut cuts = Vec::new();
    let mut apply = |value: String, field, max, unit| -> Result<String, OutputError> {
        Ok(match limit(&value, variant, field, max, unit, options)? {
            Some(cut) => {
                cuts.push(field);
                cut
            }
            None => value,
        })
    };
    let item = match kind {
        ContentKind::Article => {
            let title = clean_single_line(&required(
                fields,
                &[Key::Title],
                variant,
                ContentField::Title,
            )?);
            if title.is_empty() {
                return Err(OutputError::MissingField {
                    variant,
                    field: ContentField::Title,
                });
            }
            let body = required(fields, &[Key::Body, Key::Text], variant, ContentField::Body)?;
            let body_html = html::body_to_html(&body);
            let visible = html::visible_char_count(&body_html);
            if visible == 0 {
                return Err(OutputError::MissingField {
                    variant,
                    field: ContentField::Body,
                });
            }
            for (actual, max, unit) in [
                (
                    visible,
                    BODY_VISIBLE_CHARS_LIMIT - 1,
                    LengthUnit::VisibleChars,
                ),
                (body_html.len(), BODY_BYTES_LIMIT - 1, LengthUnit::Bytes),
            ] {
                if actual > max {
                    return Err(OutputError::TooLong {
                        variant,
                        field: ContentField::Body,
                        limit: max,
                        actual,
                        unit,
                    });
                }
            }
            let title = apply(
                title,
                ContentField::Title,
                TITLE_MAX_CHARS,
                LengthUnit::Chars,
            )?;
            let given_digest = text_field(fields, &[Key::Digest], variant, ContentField::Digest)?
                .map(|d| clean_single_line(&d))
                .filter(|d| !d.is_empty());
            let digest_derived = given_digest.is_none();
            let digest = match given_digest {
                Some(digest) => apply(
                    digest,
                    ContentField::Digest,
                    DIGEST_MAX_CHARS,
                    LengthUnit::Chars,
                )?,
                None => limits::derive_digest(&body_html),
            };
            Generated::Article(GeneratedArticle {
                title,
                digest,
                digest_derived,
                body_html,
            })
        }
        ContentKind::Moments => {
            let text = required(fields, &[Key::Text, Key::Body], variant, ContentField::Text)?;
            let text = apply(
                text,
                ContentField::Text,
                MOMENTS_MAX_CHARS,
                LengthUnit::Chars,
            )?;
            Generated::Moments { text }
        }
        ContentKind::MenuReply => {
            let text = required(fields, &[Key::Text, Key::Body], variant, ContentField::Text)?;
            let text = apply(
                text,
                ContentField::Text,
                PASSIVE_REPLY_MAX_BYTES,
                LengthUnit::Bytes,
            )?;
            Generated::MenuReply { text }
        }
    };
    Ok((item, cuts))
}

/// A title or digest on one line, without markup, or the Markdown and quotes models wrap it
/// in. An echoed placeholder such as `<the title on one line>` reads as markup and vanishes.
fn clean_single_line(text: &str) -> String {
    // "<<Title>>" is a wrapper some models use, not markup.
    let text = text.trim();
    let text = text
        .strip_prefix("<<")
        .and_then(|t| t.strip_suffix(">>"))
        .unwrap_or(text);
    let visible = html::visible_text(text);
    let joined = visible.split_whitespace().collect::<Vec<_>>().join(" ");
    joined
        .trim_matches(|c: char| matches!(c, '*' | '#' | '"' | '“' | '”') || c.is_whitespace())
        .to_owned()
}

// ---------------------------------------------------------------------------------------
// JSON

fn json_variants(kind: ContentKind, value: Value) -> Vec<VariantFields> {
    let items = match value {
        Value::Array(items) => items,
        Value::Object(map) => {
            let nested = map.iter().find_map(|(k, v)| match v {
                Value::Array(items) if VARIANT_KEYS.contains(&k.to_lowercase().as_str()) => {
                    Some(items.clone())
                }
                _ => None,
            });
            nested.unwrap_or_else(|| vec![Value::Object(map)])
        }
        other => vec![other],
    };
    items
        .into_iter()
        .filter_map(|item| json_fields(kind, item))
        .collect()
}

fn json_fields(kind: ContentKind, item: Value) -> Option<VariantFields> {
    match item {
        Value::Object(map) => Some(
            map.into_iter()
                .filter_map(|(k, v)| Some((key_of(&k)?, json_text(v)?)))
                .collect(),
        ),
        // A bare string is a whole version for the one-field kinds.
        Value::String(text) if kind != ContentKind::Article => {
            Some(vec![(Key::Text, FieldValue::Text(text))])
        }
        _ => None,
    }
}

fn json_text(value: Value) -> Option<FieldValue> {
    match value {
        Value::Null => None,
        Value::String(text) => Some(FieldValue::Text(text)),
        // Paragraphs as a list of strings.
        Value::Array(items) if items.iter().all(Value::is_string) => Some(FieldValue::Text(
            items
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join("\n\n"),
        )),
        _ => Some(FieldValue::NotText),
    }
}

/// Finds the JSON in `raw` and repairs it; `None` when there is no `{` at all.
fn extract_json(raw: &str) -> Option<(String, Vec<Repair>)> {
    let (region, fenced) = match fenced_json(raw) {
        Some(region) => (region, true),
        None => (raw, false),
    };
    let start = json_start(region)?;
    let mut repairer = Repairer::new(&region[start..]);
    repairer.run();
    if fenced || !region[..start].trim().is_empty() || repairer.trailing_text {
        repairer.repairs.insert(Repair::SurroundingTextDropped);
    }
    Some((repairer.out, repairer.repairs.into_iter().collect()))
}

/// The content of the first Markdown code fence that holds a `{` (to the end if unclosed).
fn fenced_json(raw: &str) -> Option<&str> {
    let mut rest = raw;
    while let Some(open) = rest.find("```") {
        let after = &rest[open + 3..];
        let content_start = after.find('\n').map_or(after.len(), |n| n + 1);
        let content = &after[content_start..];
        let (inside, next) = match content.find("```") {
            Some(close) => (&content[..close], &content[close + 3..]),
            None => (content, ""),
        };
        if inside.contains('{') {
            return Some(inside);
        }
        rest = next;
    }
    None
}

/// Where the JSON starts: the first `{`, or an earlier `[` that opens an array of objects
/// or strings.
fn json_start(text: &str) -> Option<usize> {
    let brace = text.find('{')?;
    let array = text[..brace].char_indices().find(|&(i, c)| {
        c == '[' && matches!(text[i + 1..].trim_start().chars().next(), Some('{' | '"'))
    });
    Some(array.map_or(brace, |(i, _)| i))
}

/// A one-pass rewriter that turns almost-JSON into JSON.
struct Repairer {
    chars: Vec<char>,
    i: usize,
    out: String,
    stack: Vec<char>,
    repairs: BTreeSet<Repair>,
    /// Text followed the top-level value.
    trailing_text: bool,
    /// Byte offset in `out` where the last string started, and the last significant
    /// character before it (to recognise a key left without its value).
    last_string: Option<(usize, Option<char>)>,
}

impl Repairer {
    fn new(text: &str) -> Self {
        Self {
            chars: text.chars().collect(),
            i: 0,
            out: String::with_capacity(text.len() + 16),
            stack: Vec::new(),
            repairs: BTreeSet::new(),
            trailing_text: false,
            last_string: None,
        }
    }

    fn peek(&self, offset: usize) -> Option<char> {
        self.chars.get(self.i + offset).copied()
    }

    fn note(&mut self, repair: Repair) {
        self.repairs.insert(repair);
    }

    fn run(&mut self) {
        while self.i < self.chars.len() {
            let c = self.chars[self.i];
            match c {
                '"' | '\'' => self.string(c),
                '{' | '[' => {
                    self.stack.push(c);
                    self.out.push(c);
                    self.i += 1;
                }
                '}' | ']' => {
                    self.close(c);
                    self.i += 1;
                    if self.stack.is_empty() {
                        self.trailing_text =
                            self.chars[self.i..].iter().any(|c| !c.is_whitespace());
                        return;
                    }
                }
                '：' | '，' => {
                    self.note(Repair::FullWidthPunctuation);
                    self.out.push(if c == '：' { ':' } else { ',' });
                    self.i += 1;
                }
                '/' if matches!(self.peek(1), Some('/' | '*')) => self.comment(),
                c if c.is_alphabetic() || c == '_' => self.bare_word(),
                c => {
                    self.out.push(c);
                    self.i += 1;
                }
            }
        }
        self.finish_truncated();
    }

    fn close(&mut self, closer: char) {
        self.drop_trailing_comma();
        let opener = if closer == '}' { '{' } else { '[' };
        if !self.stack.contains(&opener) {
            return; // A stray closer: drop it.
        }
        while let Some(top) = self.stack.pop() {
            if top == opener {
                self.out.push(closer);
                return;
            }
            // An opener left unclosed inside: close it first.
            self.note(Repair::Truncated);
            self.out.push(if top == '{' { '}' } else { ']' });
        }
    }

    fn drop_trailing_comma(&mut self) {
        let trimmed_len = self.out.trim_end().len();
        if self.out[..trimmed_len].ends_with(',') {
            self.out.truncate(trimmed_len - 1);
            self.note(Repair::TrailingComma);
        }
    }

    fn comment(&mut self) {
        self.note(Repair::Comment);
        let block = self.peek(1) == Some('*');
        self.i += 2;
        while self.i < self.chars.len() {
            if block && self.chars[self.i] == '*' && self.peek(1) == Some('/') {
                self.i += 2;
                return;
            }
            if !block && self.chars[self.i] == '\n' {
                return;
            }
            self.i += 1;
        }
    }

    fn bare_word(&mut self) {
        let start = self.i;
        while self.i < self.chars.len()
            && (self.chars[self.i].is_alphanumeric() || matches!(self.chars[self.i], '_' | '-'))
        {
            self.i += 1;
        }
        let word: String = self.chars[start..self.i].iter().collect();
        let next = self.chars[self.i..].iter().find(|c| !c.is_whitespace());
        if matches!(next, Some(':' | '：')) {
            self.note(Repair::UnquotedKey);
            self.last_string = Some((self.out.len(), self.last_significant()));
            self.out.push('"');
            self.out.push_str(&word);
            self.out.push('"');
            return;
        }
        let literal = match word.as_str() {
            "true" | "false" | "null" => None,
            "True" | "TRUE" => Some("true"),
            "False" | "FALSE" => Some("false"),
            "None" | "NULL" | "Null" => Some("null"),
            _ => None,
        };
        match literal {
            Some(json) => {
                self.note(Repair::NonJsonLiteral);
                self.out.push_str(json);
            }
            None => self.out.push_str(&word),
        }
    }

    fn last_significant(&self) -> Option<char> {
        self.out.chars().rev().find(|c| !c.is_whitespace())
    }

    fn string(&mut self, quote: char) {
        if quote == '\'' {
            self.note(Repair::SingleQuotes);
        }
        self.last_string = Some((self.out.len(), self.last_significant()));
        self.out.push('"');
        self.i += 1;
        while self.i < self.chars.len() {
            let c = self.chars[self.i];
            match c {
                '\\' => self.escape(),
                c if c == quote && self.ends_string() => {
                    self.out.push('"');
                    self.i += 1;
                    return;
                }
                '"' => {
                    // Inside a single-quoted string, or a quote that does not end the string.
                    if quote == '"' {
                        self.note(Repair::UnescapedQuote);
                    }
                    self.out.push_str("\\\"");
                    self.i += 1;
                }
                '\n' | '\r' | '\t' => {
                    self.note(Repair::RawControlCharacter);
                    self.out.push_str(match c {
                        '\n' => "\\n",
                        '\r' => "\\r",
                        _ => "\\t",
                    });
                    self.i += 1;
                }
                c if u32::from(c) < 0x20 => {
                    self.note(Repair::RawControlCharacter);
                    self.out.push_str(&format!("\\u{:04x}", u32::from(c)));
                    self.i += 1;
                }
                c => {
                    self.out.push(c);
                    self.i += 1;
                }
            }
        }
        // The answer ended inside the string.
        self.note(Repair::Truncated);
        self.out.push('"');
    }

    fn escape(&mut self) {
        match self.peek(1) {
            Some(n @ ('"' | '\\' | '/' | 'b' | 'f' | 'n' | 'r' | 't')) => {
                self.out.push('\\');
                self.out.push(n);
                self.i += 2;
            }
            Some('u')
                if self.chars.len() >= self.i + 6
                    && self.chars[self.i + 2..self.i + 6]
                        .iter()
                        .all(char::is_ascii_hexdigit) =>
            {
                self.out.push('\\');
                self.i += 1;
            }
            Some('\'') => {
                self.note(Repair::BadEscape);
                self.out.push('\'');
                self.i += 2;
            }
            Some(_) => {
                // A lone backslash: keep it as a character.
                self.note(Repair::BadEscape);
                self.out.push_str("\\\\");
                self.i += 1;
            }
            None => self.i += 1,
        }
    }

    /// Whether the quote at `self.i` closes the string: what follows must be able to follow a
    /// JSON string (`,` `:` `}` `]` or the end), and after a comma the next value or key.
    fn ends_string(&self) -> bool {
        let rest = &self.chars[self.i + 1..];
        let mut j = rest.iter().position(|c| !c.is_whitespace());
        let Some(first) = j.map(|j| rest[j]) else {
            return true;
        };
        match first {
            ':' | '}' | ']' | '：' => true,
            ',' | '，' => {
                j = j.map(|j| j + 1);
                let after = j.and_then(|j| {
                    rest[j..]
                        .iter()
                        .position(|c| !c.is_whitespace())
                        .map(|k| j + k)
                });
                let Some(k) = after else {
                    return true;
                };
                match rest[k] {
                    '"' | '\'' | '{' | '[' | '}' | ']' | '-' => true,
                    c if c.is_ascii_digit() => true,
                    c if c.is_alphabetic() => {
                        let word_end = rest[k..]
                            .iter()
                            .position(|c| !(c.is_alphanumeric() || *c == '_'))
                            .map_or(rest.len(), |p| k + p);
                        let word: String = rest[k..word_end].iter().collect();
                        let next = rest[word_end..].iter().find(|c| !c.is_whitespace());
                        matches!(next, Some(':' | '：'))
                            || matches!(word.as_str(), "true" | "false" | "null")
                    }
                    _ => false,
                }
            }
            _ => false,
        }
    }

    fn finish_truncated(&mut self) {
        if self.stack.is_empty() {
            return;
        }
        self.note(Repair::Truncated);
        let trimmed = self.out.trim_end().len();
        self.out.truncate(trimmed);
        if self.out.ends_with(',') {
            self.out.pop();
        }
        if self.out.ends_with(':') {
            self.out.push_str("null");
        } else if self.out.ends_with('"')
            && self.stack.last() == Some(&'{')
            && let Some((_, before)) = self.last_string
            && matches!(before, Some('{' | ','))
        {
            // A key cut off before its value.
            self.out.push_str(":null");
        }
        while let Some(top) = self.stack.pop() {
            self.drop_trailing_comma();
            self.out.push(if top == '{' { '}' } else { ']' });
        }
    }
}

// ---------------------------------------------------------------------------------------
// Labelled lines

/// The field a labelled line names, and the text after the label.
fn parse_label(line: &str) -> Option<(Key, &str)> {
    let stripped = line.trim_start_matches(|c: char| {
        matches!(c, '#' | '*' | '>' | '-' | '•' | '_') || c.is_whitespace()
    });
    let colon = stripped.find([':', '：'])?;
    let label =
        stripped[..colon].trim_matches(|c: char| matches!(c, '*' | '_') || c.is_whitespace());
    if label.chars().count() > 12 {
        return None;
    }
    let key = key_of(label)?;
    let colon_len = stripped[colon..].chars().next().map_or(1, char::len_utf8);
    let value = stripped[colon + colon_len..]
        .trim_start_matches(['*', '_'])
        .trim();
    Some((key, value))
}

fn is_separator(line: &str) -> bool {
    line.len() >= 3 && line.chars().all(|c| matches!(c, '-' | '=' | '*' | '_'))
}

/// The field a kind's versions start with, and its multi-line field.
fn kind_keys(kind: ContentKind) -> (Key, Key) {
    match kind {
        ContentKind::Article => (Key::Title, Key::Body),
        ContentKind::Moments | ContentKind::MenuReply => (Key::Text, Key::Text),
    }
}

/// The field a label means for `kind`, or `None` when the kind has no such field (the line
/// is then ordinary text, like "Summary: …" inside Moments copy).
fn normalise_key(kind: ContentKind, key: Key) -> Option<Key> {
    match (kind, key) {
        (ContentKind::Article, Key::Text) => Some(Key::Body),
        (ContentKind::Moments | ContentKind::MenuReply, Key::Body | Key::Text) => Some(Key::Text),
        (ContentKind::Moments | ContentKind::MenuReply, Key::Title | Key::Digest) => None,
        _ => Some(key),
    }
}

fn parse_lines(kind: ContentKind, raw: &str) -> Vec<VariantFields> {
    let (first_key, multi_key) = kind_keys(kind);
    let mut variants: Vec<VariantFields> = Vec::new();
    let mut current: Vec<(Key, String)> = Vec::new();
    let mut field: Option<Key> = None;
    let push = |variants: &mut Vec<VariantFields>, current: &mut Vec<(Key, String)>| {
        if !current.is_empty() {
            variants.push(
                current
                    .drain(..)
                    .map(|(k, v)| (k, FieldValue::Text(v)))
                    .collect(),
            );
        }
    };
    for line in raw.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with("```") {
            continue;
        }
        if is_separator(trimmed) {
            push(&mut variants, &mut current);
            field = None;
            continue;
        }
        if let Some((key, value)) = parse_label(trimmed)
            && let Some(key) = normalise_key(kind, key)
        {
            let present = current.iter().any(|(k, _)| *k == key);
            let in_multi = field == Some(multi_key) && multi_key != first_key;
            // Inside a body only a new version's first label ends it; "内容：…" is body text.
            if !(in_multi && present && key != first_key) {
                if present {
                    push(&mut variants, &mut current);
                }
                current.push((key, value.to_owned()));
                field = Some(key);
                continue;
            }
        }
        let Some(open) = field else {
            continue; // Chatter before the first label.
        };
        let Some(slot) = current.iter_mut().find(|(k, _)| *k == open) else {
            continue;
        };
        if open == multi_key {
            if !slot.1.is_empty() || !trimmed.is_empty() {
                slot.1.push('\n');
                slot.1.push_str(line.trim_end());
            }
        } else if slot.1.is_empty() {
            // "TITLE:" with the title on the next line.
            slot.1 = trimmed.to_owned();
        } else if !trimmed.is_empty() {
            // Text after a single-line field belongs to the body: it starts the body when
            // there was no BODY: label, or continues it after a late "DIGEST:" line.
            match current.iter_mut().find(|(k, _)| *k == multi_key) {
                Some(body) => {
                    body.1.push('\n');
                    body.1.push_str(line.trim_end());
                }
                None => current.push((multi_key, trimmed.to_owned())),
            }
            field = Some(multi_key);
        }
    }
    push(&mut variants, &mut current);
    // A version needs its first field to count as one (drops a stray "DIGEST:" in chatter).
    variants
        .into_iter()
        .filter(|fields| fields.iter().any(|(k, _)| *k == first_key))
        .collect()
}

/// Unlabelled text as one version (see [`ParseOptions::plain_text_fallback`]). For an
/// article, a short first line is the title and the rest the body; a first line that is a
/// whole paragraph (small models often skip the title) gives its first sentence as the title
/// and stays in the body.
fn plain_text_fields(kind: ContentKind, raw: &str) -> Option<VariantFields> {
    let text: Vec<&str> = raw
        .lines()
        .filter(|line| !line.trim_start().starts_with("```"))
        .collect();
    match kind {
        ContentKind::Article => {
            let first = text.iter().position(|line| !line.trim().is_empty())?;
            let first_line = text[first].trim();
            let rest = text[first + 1..].join("\n");
            let (title, body) = if limits::char_len(first_line) <= TITLE_MAX_CHARS {
                (first_line.to_owned(), rest)
            } else {
                (
                    first_sentence(first_line).to_owned(),
                    text[first..].join("\n"),
                )
            };
            if body.trim().is_empty() {
                return None;
            }
            Some(vec![
                (Key::Title, FieldValue::Text(title)),
                (Key::Body, FieldValue::Text(body)),
            ])
        }
        ContentKind::Moments | ContentKind::MenuReply => {
            Some(vec![(Key::Text, FieldValue::Text(text.join("\n")))])
        }
    }
}

/// `text` up to and including its first sentence-ending mark.
fn first_sentence(text: &str) -> &str {
    match text
        .char_indices()
        .find(|&(_, c)| matches!(c, '.' | '!' | '?' | '。' | '！' | '？'))
    {
        Some((i, c)) => &text[..i + c.len_utf8()],
        None => text,
    }
}
