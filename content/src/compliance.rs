//! Advertising-Law and brand wording checks.
//!
//! The built-in list (`data/compliance/absolute-terms.toml`) holds the absolute terms of
//! 《广告法》 Article 9(3) and related provisions, each with its article, reason, severity and
//! the longer phrases that are not claims ("第一次", "最近"). A tenant adds its own words.
//! [`ComplianceScanner`] finds them all in one pass of an Aho-Corasick automaton over a
//! normalised copy of the text — full-width forms folded to half-width (`ＮＯ．１` → `no.1`),
//! letters lower-cased, the traditional forms of the list's characters mapped to simplified
//! (`國家級` → `国家级`), zero-width characters dropped — and reports each hit as character
//! offsets into the *original* text.

use std::collections::HashMap;

use aho_corasick::{AhoCorasick, MatchKind};
use serde::{Deserialize, Serialize};

use crate::html;
use crate::limits::{ContentField, Draft};

const BUILTIN_TERMS: &str = include_str!("../data/compliance/absolute-terms.toml");

/// How serious a term is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Lawful only when true and provable: a person should check it.
    Caution,
    /// The wording itself is not allowed: it must be rewritten.
    Prohibited,
}

/// Where a term comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TermSource {
    /// The built-in Advertising-Law list.
    AdvertisingLaw,
    /// The tenant's own sensitive-word list (or the brand's banned words).
    Tenant,
}

/// One entry of a term list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Term {
    /// The wording to find.
    pub term: String,
    /// The provision it falls under, if any.
    #[serde(default)]
    pub article: Option<String>,
    /// Why it is flagged; shown to editors and given to the model.
    pub reason: String,
    /// How serious it is.
    pub severity: Severity,
    /// Longer phrases containing the term that are not claims.
    #[serde(default)]
    pub exceptions: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct TermFile {
    term: Vec<Term>,
}

/// Why a term list could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TermListError {
    /// The TOML file does not parse into terms.
    #[error("the term list does not parse: {0}")]
    Parse(#[from] toml::de::Error),
    /// The automaton could not be built (far too many or too long patterns).
    #[error("the term automaton could not be built: {0}")]
    Automaton(#[from] aho_corasick::BuildError),
}

/// The built-in Advertising-Law terms.
pub fn builtin_terms() -> Result<Vec<Term>, TermListError> {
    parse_terms(BUILTIN_TERMS)
}

/// Parses a term list in the built-in file's TOML format (`[[term]]` tables).
pub fn parse_terms(toml_text: &str) -> Result<Vec<Term>, TermListError> {
    Ok(toml::from_str::<TermFile>(toml_text)?.term)
}

/// A tenant's own word: a term with the tenant's reason, prohibited unless said otherwise.
pub fn tenant_term(word: &str, reason: Option<&str>) -> Term {
    Term {
        term: word.to_owned(),
        article: None,
        reason: reason.unwrap_or("品牌或客户自定义的敏感词").to_owned(),
        severity: Severity::Prohibited,
        exceptions: Vec::new(),
    }
}

/// The brand's banned words (from [`crate::prompt::BrandVoice::banned_words`]) as tenant
/// terms, so that the check enforces what the prompt asked for.
pub fn banned_word_terms(words: &[String]) -> Vec<Term> {
    words
        .iter()
        .map(|w| w.trim())
        .filter(|w| !w.is_empty())
        .map(|w| tenant_term(w, Some("品牌禁用词")))
        .collect()
}

/// One flagged span.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComplianceHit {
    /// Article index within a draft (0 for a single text).
    pub article: usize,
    /// The field the hit is in.
    pub field: ContentField,
    /// First character of the span, as a character offset into the original field text
    /// (for a body, into its HTML).
    pub start: usize,
    /// One past the span's last character.
    pub end: usize,
    /// The original text of the span (may contain markup between the characters of a body).
    pub matched: String,
    /// The list term it matched.
    pub term: String,
    /// Why it is flagged.
    pub reason: String,
    /// The provision, for Advertising-Law terms.
    pub provision: Option<String>,
    /// How serious it is.
    pub severity: Severity,
    /// Which list it came from.
    pub source: TermSource,
}

/// The overall result of a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Nothing found.
    Clean,
    /// Only caution terms: acceptable if a person confirms they are true.
    NeedsCheck,
    /// At least one prohibited term: rewrite before publishing.
    Violation,
}

/// All hits of a check and the verdict they add up to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComplianceReport {
    /// The hits, by article, field and position.
    pub hits: Vec<ComplianceHit>,
    /// The verdict.
    pub verdict: Verdict,
}

impl ComplianceReport {
    /// Builds a report from hits, sorting them and working out the verdict.
    pub fn from_hits(mut hits: Vec<ComplianceHit>) -> Self {
        hits.sort_by(|a, b| {
            (a.article, field_order(a.field), a.start, a.end).cmp(&(
                b.article,
                field_order(b.field),
                b.start,
                b.end,
            ))
        });
        let verdict = match hits.iter().map(|h| h.severity).max() {
            None => Verdict::Clean,
            Some(Severity::Caution) => Verdict::NeedsCheck,
            Some(Severity::Prohibited) => Verdict::Violation,
        };
        Self { hits, verdict }
    }
}

fn field_order(field: ContentField) -> u8 {
    match field {
        ContentField::Title => 0,
        ContentField::Author => 1,
        ContentField::Digest => 2,
        ContentField::Body => 3,
        ContentField::Text => 4,
        ContentField::CoverText => 5,
        ContentField::ContentSourceUrl => 6,
        ContentField::ThumbMediaId => 7,
    }
}

/// What a pattern of the automaton stands for.
#[derive(Debug, Clone, Copy)]
enum Pattern {
    Term { index: usize, source: TermSource },
    Exception,
}

/// A ready-to-use matcher for the built-in terms plus a tenant's words. Build one per tenant
/// list and reuse it: building is the expensive part.
#[derive(Debug, Clone)]
pub struct ComplianceScanner {
    automaton: AhoCorasick,
    patterns: Vec<Pattern>,
    terms: Vec<Term>,
}

impl ComplianceScanner {
    /// A scanner for the built-in Advertising-Law list and the tenant's `tenant_terms`. A
    /// tenant word that is also a built-in term is reported as the built-in term.
    pub fn new(tenant_terms: &[Term]) -> Result<Self, TermListError> {
        Self::from_lists(builtin_terms()?, tenant_terms)
    }

    /// A scanner for `law_terms` (in place of the built-in list) and `tenant_terms`.
    pub fn from_lists(law_terms: Vec<Term>, tenant_terms: &[Term]) -> Result<Self, TermListError> {
        let sources = law_terms
            .into_iter()
            .map(|t| (t, TermSource::AdvertisingLaw))
            .chain(
                tenant_terms
                    .iter()
                    .cloned()
                    .map(|t| (t, TermSource::Tenant)),
            );
        let mut by_text: HashMap<String, usize> = HashMap::new();
        let mut texts: Vec<String> = Vec::new();
        let mut patterns: Vec<Pattern> = Vec::new();
        let mut terms: Vec<Term> = Vec::new();
        let mut add = |text: String, pattern: Pattern, texts: &mut Vec<String>| {
            if text.is_empty() {
                return;
            }
            match by_text.get(&text) {
                // A term beats an exception with the same text; the first term listed wins.
                Some(&existing) => {
                    if matches!(patterns[existing], Pattern::Exception)
                        && matches!(pattern, Pattern::Term { .. })
                    {
                        patterns[existing] = pattern;
                    }
                }
                None => {
                    by_text.insert(text.clone(), texts.len());
                    texts.push(text);
                    patterns.push(pattern);
                }
            }
        };
        for (term, source) in sources {
            let index = terms.len();
            add(
                normalize_plain(&term.term),
                Pattern::Term { index, source },
                &mut texts,
            );
            for exception in &term.exceptions {
                add(normalize_plain(exception), Pattern::Exception, &mut texts);
            }
            terms.push(term);
        }
        let automaton = AhoCorasick::builder()
            .match_kind(MatchKind::Standard)
            .build(&texts)?;
        Ok(Self {
            automaton,
            patterns,
            terms,
        })
    }

    /// Hits in a plain text (a title, a digest, Moments copy, a reply).
    pub fn scan_text(&self, text: &str, article: usize, field: ContentField) -> Vec<ComplianceHit> {
        let sourced: Vec<html::SourcedChar> = text
            .chars()
            .enumerate()
            .map(|(i, ch)| html::SourcedChar {
                ch,
                start: i,
                end: i + 1,
            })
            .collect();
        self.scan_sourced(text, &sourced, article, field)
    }

    /// Hits in the visible text of an HTML body; positions index the HTML.
    pub fn scan_html(
        &self,
        body_html: &str,
        article: usize,
        field: ContentField,
    ) -> Vec<ComplianceHit> {
        self.scan_sourced(body_html, &html::visible_chars(body_html), article, field)
    }

    /// A report for one plain text.
    pub fn check_text(&self, text: &str, field: ContentField) -> ComplianceReport {
        ComplianceReport::from_hits(self.scan_text(text, 0, field))
    }

    /// A report for every article of a draft: title, author, digest, body and cover text.
    pub fn check_draft(&self, draft: &Draft) -> ComplianceReport {
        let mut hits = Vec::new();
        for (index, a) in draft.articles.iter().enumerate() {
            hits.extend(self.scan_text(&a.title, index, ContentField::Title));
            hits.extend(self.scan_text(&a.author, index, ContentField::Author));
            hits.extend(self.scan_text(&a.digest, index, ContentField::Digest));
            hits.extend(self.scan_html(&a.content_html, index, ContentField::Body));
            hits.extend(self.scan_text(&a.cover_text, index, ContentField::CoverText));
        }
        ComplianceReport::from_hits(hits)
    }

    fn scan_sourced(
        &self,
        original: &str,
        sourced: &[html::SourcedChar],
        article: usize,
        field: ContentField,
    ) -> Vec<ComplianceHit> {
        let normalized = Normalized::new(sourced);
        let mut exceptions: Vec<(usize, usize)> = Vec::new();
        let mut candidates: Vec<(usize, usize, usize, TermSource)> = Vec::new();
        for found in self.automaton.find_overlapping_iter(&normalized.text) {
            let Some(&pattern) = self.patterns.get(found.pattern().as_usize()) else {
                continue;
            };
            let (start, end) = (
                normalized.char_index(found.start()),
                normalized.char_index(found.end()),
            );
            match pattern {
                Pattern::Exception => exceptions.push((start, end)),
                Pattern::Term { index, source } => {
                    if normalized.on_word_boundaries(start, end) {
                        candidates.push((start, end, index, source));
                    }
                }
            }
        }
        let original_chars: Vec<char> = original.chars().collect();
        candidates
            .iter()
            .filter(|&&(s, e, _, _)| !exceptions.iter().any(|&(os, oe)| os <= s && e <= oe))
            // Report "最佳", not also the "最" inside it.
            .filter(|&&(s, e, _, _)| {
                !candidates
                    .iter()
                    .any(|&(cs, ce, _, _)| cs <= s && e <= ce && (cs, ce) != (s, e))
            })
            .filter_map(|&(s, e, index, source)| {
                let term = self.terms.get(index)?;
                let start = normalized.origin.get(s)?.start;
                let end = normalized.origin.get(e.checked_sub(1)?)?.end;
                Some(ComplianceHit {
                    article,
                    field,
                    start,
                    end,
                    matched: original_chars.get(start..end)?.iter().collect(),
                    term: term.term.clone(),
                    reason: term.reason.clone(),
                    provision: term.article.clone(),
                    severity: term.severity,
                    source,
                })
            })
            .collect()
    }
}

/// The text the automaton runs over, with the source span of each of its characters.
struct Normalized {
    text: String,
    /// Byte offset in `text` of each character.
    byte_starts: Vec<usize>,
    /// Source span of each character.
    origin: Vec<html::SourcedChar>,
}

impl Normalized {
    fn new(sourced: &[html::SourcedChar]) -> Self {
        let mut text = String::with_capacity(sourced.len() * 3);
        let mut byte_starts = Vec::with_capacity(sourced.len());
        let mut origin = Vec::with_capacity(sourced.len());
        for c in sourced {
            if let Some(folded) = fold_char(c.ch) {
                byte_starts.push(text.len());
                text.push(folded);
                origin.push(*c);
            }
        }
        Self {
            text,
            byte_starts,
            origin,
        }
    }

    /// The character index of a byte offset the automaton reported (always a char boundary).
    fn char_index(&self, byte: usize) -> usize {
        self.byte_starts
            .binary_search(&byte)
            .unwrap_or_else(|insert_at| insert_at)
    }

    fn char_at(&self, index: usize) -> Option<char> {
        let start = *self.byte_starts.get(index)?;
        self.text[start..].chars().next()
    }

    /// For terms that begin or end with a Latin letter or digit ("no1", "100%"), the
    /// neighbouring character must not be one, so "no.12" is not "no.1".
    fn on_word_boundaries(&self, start: usize, end: usize) -> bool {
        let alnum = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
        let first = self.char_at(start);
        let last = end.checked_sub(1).and_then(|i| self.char_at(i));
        let before = start.checked_sub(1).and_then(|i| self.char_at(i));
        let after = self.char_at(end);
        !((alnum(first) && alnum(before)) || (alnum(last) && alnum(after)))
    }
}

/// Normalises a list entry the same way as the text it is matched against.
fn normalize_plain(text: &str) -> String {
    text.chars().filter_map(fold_char).collect()
}

/// One character folded for matching, or `None` for characters matching ignores.
fn fold_char(c: char) -> Option<char> {
    match c {
        // Zero-width characters are a known way to slip words past filters.
        '\u{200B}'..='\u{200D}' | '\u{2060}' | '\u{FEFF}' | '\u{00AD}' => None,
        '\u{3000}' => Some(' '),
        '\u{FE6A}' => Some('%'),
        '\u{FF01}'..='\u{FF5E}' => char::from_u32(u32::from(c) - 0xFEE0).map(lower_case),
        _ => Some(lower_case(to_simplified(c))),
    }
}

fn lower_case(c: char) -> char {
    let mut lower = c.to_lowercase();
    match (lower.next(), lower.next()) {
        // Keep one character per character so positions stay exact.
        (Some(single), None) => single,
        _ => c,
    }
}

/// Traditional forms of the characters used by the built-in list and its exceptions,
/// mapped to the simplified forms the list is written in.
const TRADITIONAL_TO_SIMPLIFIED: &[(char, char)] = &[
    ('國', '国'),
    ('級', '级'),
    ('個', '个'),
    ('選', '选'),
    ('頂', '顶'),
    ('極', '极'),
    ('網', '网'),
    ('萬', '万'),
    ('絕', '绝'),
    ('對', '对'),
    ('無', '无'),
    ('獨', '独'),
    ('僅', '仅'),
    ('領', '领'),
    ('遙', '遥'),
    ('銷', '销'),
    ('軍', '军'),
    ('機', '机'),
    ('關', '关'),
    ('薦', '荐'),
    ('專', '专'),
    ('藥', '药'),
    ('險', '险'),
    ('風', '风'),
    ('賺', '赚'),
    ('終', '终'),
    ('巔', '巅'),
    ('過', '过'),
    ('節', '节'),
    ('時', '时'),
    ('間', '间'),
    ('條', '条'),
    ('屆', '届'),
    ('輪', '轮'),
    ('週', '周'),
    ('標', '标'),
    ('識', '识'),
    ('編', '编'),
    ('碼', '码'),
    ('純', '纯'),
    ('纖', '纤'),
    ('維', '维'),
    ('蠶', '蚕'),
    ('絲', '丝'),
    ('後', '后'),
    ('減', '减'),
    ('遲', '迟'),
    ('須', '需'),
];

fn to_simplified(c: char) -> char {
    TRADITIONAL_TO_SIMPLIFIED
        .iter()
        .find(|(traditional, _)| *traditional == c)
        .map_or(c, |(_, simplified)| *simplified)
}

/// The instruction that asks the model to rewrite exactly the flagged spans and nothing else.
pub fn rewrite_instruction(report: &ComplianceReport) -> String {
    let mut lines = vec![
        "Your previous answer uses wording that China's Advertising Law or the brand does not \
         allow. Rewrite it: replace each flagged phrase below with a factual, non-absolute \
         expression (for example 深受喜爱 instead of 最受欢迎, 优选 instead of 最佳), keep \
         everything else as it was, and answer in exactly the same format as before."
            .to_owned(),
        "Flagged phrases:".to_owned(),
    ];
    for (n, hit) in report.hits.iter().enumerate() {
        let provision = hit
            .provision
            .as_deref()
            .map(|a| format!("; {a}"))
            .unwrap_or_default();
        lines.push(format!(
            "{}. {} of article {}, characters {}–{}: “{}” (term “{}”: {}{})",
            n + 1,
            hit.field,
            hit.article + 1,
            hit.start,
            hit.end,
            hit.matched,
            hit.term,
            hit.reason,
            provision
        ));
    }
    let mut banned: Vec<&str> = report.hits.iter().map(|h| h.term.as_str()).collect();
    banned.sort_unstable();
    banned.dedup();
    lines.push(format!("Do not use: {}.", banned.join("、")));
    lines.join("\n")
}

/// What the bounded rewrite loop should do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum RewriteDecision {
    /// Keep the text (clean, or only caution terms for a person to confirm).
    Accept,
    /// Ask the model for rewrite number `attempt` (1-based) with [`rewrite_instruction`].
    Rewrite {
        /// Which rewrite this is.
        attempt: u32,
    },
    /// Rewrites are used up and prohibited terms remain: a person must edit it.
    NeedsReview,
}

/// The rewrite loop's decision after a check, given how many rewrites were already made and
/// how many are allowed.
pub fn decide_rewrite(
    report: &ComplianceReport,
    rewrites_done: u32,
    max_rewrites: u32,
) -> RewriteDecision {
    match report.verdict {
        Verdict::Clean | Verdict::NeedsCheck => RewriteDecision::Accept,
        Verdict::Violation if rewrites_done < max_rewrites => RewriteDecision::Rewrite {
            attempt: rewrites_done + 1,
        },
        Verdict::Violation => RewriteDecision::NeedsReview,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traditional_table_only_covers_characters_of_the_list() {
        let terms = builtin_terms().unwrap_or_default();
        let listed: String = terms
            .iter()
            .flat_map(|t| std::iter::once(t.term.clone()).chain(t.exceptions.iter().cloned()))
            .collect();
        assert!(!listed.is_empty());
        for (traditional, simplified) in TRADITIONAL_TO_SIMPLIFIED {
            assert!(
                listed.contains(*simplified),
                "{traditional}→{simplified} maps to a character the list does not use"
            );
            assert_ne!(traditional, simplified);
        }
    }

    #[test]
    fn folding_keeps_one_character_per_character() {
        assert_eq!(normalize_plain("ＮＯ．１　Ｔｏｐ"), "no.1 top");
        assert_eq!(normalize_plain("國家級"), "国家级");
        assert_eq!(normalize_plain("最\u{200B}佳"), "最佳");
        // 'İ' lower-cases to two characters; it is kept as it is so offsets stay exact.
        assert_eq!(normalize_plain("İ"), "İ");
    }
}
