//! Splitting knowledge-base documents into retrieval chunks.
//!
//! A chunk should be one coherent piece of an answer: Markdown sections are never mixed,
//! paragraphs are kept whole when they fit, and long paragraphs are cut at sentence ends
//! (Chinese 。！？； and English . ! ? ;). Consecutive chunks of a section overlap by a
//! few whole sentences so that a fact cut in two still appears whole in one chunk.

use serde::{Deserialize, Serialize};

/// Sizes for [`chunk_document`], in characters (not bytes: a Chinese character is one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkConfig {
    /// Chunks are filled up to about this many characters.
    pub target_chars: usize,
    /// Characters of the previous chunk repeated at the start of the next one.
    pub overlap_chars: usize,
}

impl Default for ChunkConfig {
    /// About 400 characters suits both a short grounding prompt and embedding models
    /// with a 512-token window.
    fn default() -> Self {
        Self {
            target_chars: 400,
            overlap_chars: 60,
        }
    }
}

/// One chunk of a document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chunk {
    /// The Markdown heading path of the section (`Returns > Fees`), if any.
    pub heading: Option<String>,
    /// The chunk's text.
    pub text: String,
}

/// A piece of text with the whitespace that separated it from the previous piece.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Unit {
    sep: &'static str,
    text: String,
}

impl Unit {
    fn chars(&self) -> usize {
        self.text.chars().count()
    }
}

/// A Markdown section: its heading path and its body.
#[derive(Debug, Default)]
struct Section {
    heading: Option<String>,
    body: Vec<String>,
}

/// Splits `text` (plain or Markdown) into chunks of about `config.target_chars`.
///
/// A sentence longer than the target is cut at a comma or space, or hard at the target.
pub fn chunk_document(text: &str, config: &ChunkConfig) -> Vec<Chunk> {
    let target = config.target_chars.max(1);
    // An overlap of half a chunk or more would repeat more than it adds.
    let overlap = config.overlap_chars.min(target / 2);
    let mut chunks = Vec::new();
    for section in split_sections(text) {
        let units = section_units(&section.body, target);
        for text in pack_units(units, target, overlap) {
            chunks.push(Chunk {
                heading: section.heading.clone(),
                text,
            });
        }
    }
    chunks
}

/// The heading level and text of a Markdown ATX heading line (`## Fees`).
fn heading_of(line: &str) -> Option<(usize, &str)> {
    let trimmed = line.trim_start_matches(' ');
    if line.len() - trimmed.len() > 3 {
        return None;
    }
    let level = trimmed.chars().take_while(|c| *c == '#').count();
    if level == 0 || level > 6 {
        return None;
    }
    let rest = &trimmed[level..];
    if !rest.is_empty() && !rest.starts_with([' ', '\t']) {
        return None;
    }
    Some((level, rest.trim().trim_end_matches('#').trim()))
}

fn is_fence(line: &str) -> bool {
    let trimmed = line.trim_start();
    trimmed.starts_with("```") || trimmed.starts_with("~~~")
}

fn split_sections(text: &str) -> Vec<Section> {
    let mut sections = vec![Section::default()];
    let mut trail: Vec<(usize, String)> = Vec::new();
    let mut in_fence = false;
    for line in text.lines() {
        if is_fence(line) {
            in_fence = !in_fence;
        }
        let heading = if in_fence { None } else { heading_of(line) };
        match heading {
            Some((level, title)) => {
                while trail.last().is_some_and(|(l, _)| *l >= level) {
                    trail.pop();
                }
                if !title.is_empty() {
                    trail.push((level, title.to_owned()));
                }
                let path: Vec<&str> = trail.iter().map(|(_, t)| t.as_str()).collect();
                sections.push(Section {
                    heading: (!path.is_empty()).then(|| path.join(" > ")),
                    body: Vec::new(),
                });
            }
            None => {
                if let Some(section) = sections.last_mut() {
                    section.body.push(line.to_owned());
                }
            }
        }
    }
    sections.retain(|s| s.body.iter().any(|l| !l.trim().is_empty()));
    sections
}

/// Paragraphs of a section body, split further into sentences and pieces where a
/// paragraph is longer than `target`.
fn section_units(body: &[String], target: usize) -> Vec<Unit> {
    let mut units = Vec::new();
    for paragraph in paragraphs(body) {
        let first = units.len();
        if paragraph.chars().count() <= target {
            units.push(Unit {
                sep: "",
                text: paragraph,
            });
        } else {
            for sentence in split_sentences(&paragraph) {
                units.extend(split_long(sentence, target));
            }
        }
        if first > 0
            && let Some(unit) = units.get_mut(first)
        {
            unit.sep = "\n\n";
        }
    }
    units
}

fn paragraphs(body: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Vec<&str> = Vec::new();
    for line in body {
        if line.trim().is_empty() {
            if !current.is_empty() {
                out.push(current.join("\n").trim_start().to_owned());
                current.clear();
            }
        } else {
            current.push(line.trim_end());
        }
    }
    if !current.is_empty() {
        out.push(current.join("\n").trim_start().to_owned());
    }
    out
}

/// Characters that end a sentence wherever they stand.
fn ends_sentence(c: char) -> bool {
    matches!(c, '。' | '！' | '？' | '；' | '!' | '?' | ';' | '…')
}

/// Closing quotes and brackets that belong to the sentence they follow.
fn is_closer(c: char) -> bool {
    matches!(
        c,
        '”' | '’' | '"' | '\'' | '」' | '』' | '）' | ')' | '】' | '》' | ']'
    )
}

/// Splits a paragraph into sentences, each with the whitespace that preceded it
/// (a line break inside a paragraph also ends a sentence and is kept as the separator).
fn split_sentences(paragraph: &str) -> Vec<Unit> {
    let chars: Vec<char> = paragraph.chars().collect();
    let mut units = Vec::new();
    let mut start = 0;
    let mut sep: &'static str = "";
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let mut end = None;
        if c == '\n' {
            end = Some(i);
        } else if ends_sentence(c) || c == '.' {
            let mut j = i + 1;
            while j < chars.len()
                && (ends_sentence(chars[j]) || chars[j] == '.' || is_closer(chars[j]))
            {
                j += 1;
            }
            // An English full stop only ends a sentence before whitespace: "3.5" and
            // "example.com" stay whole.
            let boundary = c != '.' || j == chars.len() || chars[j].is_whitespace();
            if boundary {
                end = Some(j);
            }
        }
        match end {
            Some(e) => {
                let text: String = chars[start..e].iter().collect();
                if !text.trim().is_empty() {
                    units.push(Unit {
                        sep,
                        text: text.trim().to_owned(),
                    });
                }
                // Swallow the whitespace after the sentence, remembering its kind.
                let mut k = e;
                let mut saw_newline = false;
                while k < chars.len() && chars[k].is_whitespace() {
                    saw_newline |= chars[k] == '\n';
                    k += 1;
                }
                sep = if saw_newline {
                    "\n"
                } else if k > e {
                    " "
                } else {
                    ""
                };
                start = k;
                i = k;
            }
            None => i += 1,
        }
    }
    let rest: String = chars[start.min(chars.len())..].iter().collect();
    if !rest.trim().is_empty() {
        units.push(Unit {
            sep,
            text: rest.trim().to_owned(),
        });
    }
    if let Some(first) = units.first_mut() {
        first.sep = "";
    }
    units
}

/// Cuts a sentence longer than `target` characters, preferring a comma or space in the
/// second half of each window.
fn split_long(unit: Unit, target: usize) -> Vec<Unit> {
    let chars: Vec<char> = unit.text.chars().collect();
    if chars.len() <= target {
        return vec![unit];
    }
    let mut pieces = Vec::new();
    let mut sep = unit.sep;
    let mut start = 0;
    while start < chars.len() {
        let window_end = (start + target).min(chars.len());
        let mut cut = window_end;
        if window_end < chars.len() {
            let soft = (start + target / 2..window_end)
                .rev()
                .find(|&i| matches!(chars[i], '，' | '、' | ',' | ' ' | '：' | ':'));
            if let Some(i) = soft {
                cut = i + 1;
            }
        }
        let text: String = chars[start..cut].iter().collect();
        let trimmed = text.trim();
        if !trimmed.is_empty() {
            pieces.push(Unit {
                sep,
                text: trimmed.to_owned(),
            });
        }
        sep = if chars
            .get(cut.saturating_sub(1))
            .is_some_and(|c| c.is_whitespace())
        {
            " "
        } else {
            ""
        };
        start = cut;
    }
    pieces
}

fn joined_len(units: &[Unit]) -> usize {
    units
        .iter()
        .enumerate()
        .map(|(i, u)| u.chars() + if i == 0 { 0 } else { u.sep.chars().count() })
        .sum()
}

fn join(units: &[Unit]) -> String {
    let mut out = String::new();
    for (i, unit) in units.iter().enumerate() {
        if i > 0 {
            out.push_str(unit.sep);
        }
        out.push_str(&unit.text);
    }
    out
}

/// The units that end the chunk just emitted and fit in `overlap` characters; when the
/// last unit alone is longer, its last `overlap` characters.
fn overlap_tail(units: &[Unit], overlap: usize) -> Vec<Unit> {
    if overlap == 0 {
        return Vec::new();
    }
    let mut take = 0;
    while take < units.len() && joined_len(&units[units.len() - take - 1..]) <= overlap {
        take += 1;
    }
    if take > 0 {
        let mut tail = units[units.len() - take..].to_vec();
        if let Some(first) = tail.first_mut() {
            first.sep = "";
        }
        return tail;
    }
    let Some(last) = units.last() else {
        return Vec::new();
    };
    let skip = last.chars().saturating_sub(overlap);
    let tail: String = last.text.chars().skip(skip).collect();
    // In space-separated text, start at the next word rather than inside one.
    let mid_word = skip > 0
        && last
            .text
            .chars()
            .nth(skip - 1)
            .is_some_and(|c| !c.is_whitespace())
        && tail
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric());
    let tail = if mid_word {
        tail.find(char::is_whitespace).map_or("", |i| &tail[i..])
    } else {
        tail.as_str()
    };
    let tail = tail.trim_start();
    if tail.is_empty() {
        return Vec::new();
    }
    vec![Unit {
        sep: "",
        text: tail.to_owned(),
    }]
}

/// Greedily fills chunks with whole units; each chunk after the first starts with the
/// overlap tail of the one before.
fn pack_units(units: Vec<Unit>, target: usize, overlap: usize) -> Vec<String> {
    let mut chunks = Vec::new();
    let mut current: Vec<Unit> = Vec::new();
    // How many units at the front of `current` are repeated overlap.
    let mut carried = 0;
    for mut unit in units {
        // The length `current` would have with `unit` appended.
        let grown =
            |current: &[Unit]| joined_len(current) + unit.sep.chars().count() + unit.chars();
        if current.len() > carried && grown(&current) > target {
            chunks.push(join(&current));
            current = overlap_tail(&current, overlap);
            // Overlap must not push the next chunk past the target on its own.
            while !current.is_empty() && grown(&current) > target {
                current.remove(0);
                if let Some(first) = current.first_mut() {
                    first.sep = "";
                }
            }
            carried = current.len();
        }
        if current.is_empty() {
            unit.sep = "";
        }
        current.push(unit);
    }
    if current.len() > carried {
        chunks.push(join(&current));
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(target: usize, overlap: usize) -> ChunkConfig {
        ChunkConfig {
            target_chars: target,
            overlap_chars: overlap,
        }
    }

    #[test]
    fn short_text_is_one_chunk() {
        let chunks = chunk_document("  退货请在七天内申请。  \n", &ChunkConfig::default());
        assert_eq!(
            chunks,
            [Chunk {
                heading: None,
                text: "退货请在七天内申请。".into()
            }]
        );
    }

    #[test]
    fn chinese_sentences_are_cut_at_their_punctuation_with_overlap() {
        let text = "商品签收后七天内可以申请退货。退货时请保持商品完好！运费由谁承担？质量问题由我们承担；其他情况由买家承担。";
        let chunks = chunk_document(text, &config(30, 12));
        let texts: Vec<&str> = chunks.iter().map(|c| c.text.as_str()).collect();
        assert_eq!(
            texts,
            [
                "商品签收后七天内可以申请退货。退货时请保持商品完好！",
                "退货时请保持商品完好！运费由谁承担？质量问题由我们承担；",
                "质量问题由我们承担；其他情况由买家承担。",
            ]
        );
        for chunk in &chunks {
            assert!(chunk.text.chars().count() <= 30, "{}", chunk.text);
        }
    }

    #[test]
    fn english_sentences_keep_decimals_and_domains_whole() {
        let text = "Returns are free within 7 days. The fee is 3.5 dollars after that! \
                    Visit example.com for labels? Refunds take 2 days.";
        let chunks = chunk_document(text, &config(70, 0));
        let texts: Vec<&str> = chunks.iter().map(|c| c.text.as_str()).collect();
        assert_eq!(
            texts,
            [
                "Returns are free within 7 days. The fee is 3.5 dollars after that!",
                "Visit example.com for labels? Refunds take 2 days.",
            ]
        );
    }

    #[test]
    fn english_chunks_overlap_by_whole_sentences() {
        let text = "Orders ship in two days. Tracking appears by email. Returns are free. Refunds take a week.";
        let chunks = chunk_document(text, &config(55, 26));
        let texts: Vec<&str> = chunks.iter().map(|c| c.text.as_str()).collect();
        assert_eq!(
            texts,
            [
                "Orders ship in two days. Tracking appears by email.",
                "Tracking appears by email. Returns are free.",
                "Returns are free. Refunds take a week.",
            ]
        );
        // One character less and the 26-character sentence no longer fits: the overlap
        // is its tail, starting at a word.
        let chunks = chunk_document(text, &config(55, 25));
        assert_eq!(chunks[1].text, "appears by email. Returns are free.");
    }

    #[test]
    fn markdown_sections_are_separate_units_with_heading_paths() {
        let text = "# 售后\n\n## 退货\n七天无理由退货。\n\n需要保留包装。\n\n## 发票\n可以开电子发票。\n```\n# not a heading\n```\n";
        let chunks = chunk_document(text, &ChunkConfig::default());
        assert_eq!(
            chunks,
            [
                Chunk {
                    heading: Some("售后 > 退货".into()),
                    text: "七天无理由退货。\n\n需要保留包装。".into()
                },
                Chunk {
                    heading: Some("售后 > 发票".into()),
                    text: "可以开电子发票。\n```\n# not a heading\n```".into()
                },
            ]
        );
    }

    #[test]
    fn paragraphs_are_kept_whole_when_they_fit() {
        let text = "第一段很短。\n\n第二段也很短。\n\n第三段同样很短。";
        let chunks = chunk_document(text, &config(16, 0));
        let texts: Vec<&str> = chunks.iter().map(|c| c.text.as_str()).collect();
        assert_eq!(
            texts,
            ["第一段很短。\n\n第二段也很短。", "第三段同样很短。"]
        );
    }

    #[test]
    fn an_overlong_sentence_is_cut_at_commas_then_hard() {
        let sentence = "这是一段没有句号的很长的话，它一直说下去，直到超过目标长度为止".repeat(3);
        let chunks = chunk_document(&sentence, &config(20, 0));
        assert!(chunks.len() >= 5);
        for chunk in &chunks {
            assert!(chunk.text.chars().count() <= 20, "{}", chunk.text);
        }
        let rejoined: String = chunks.iter().map(|c| c.text.as_str()).collect();
        assert_eq!(rejoined, sentence);
        assert!(chunks[0].text.ends_with('，'));
    }

    #[test]
    fn zero_target_does_not_loop() {
        let chunks = chunk_document("abc", &config(0, 5));
        let texts: Vec<&str> = chunks.iter().map(|c| c.text.as_str()).collect();
        assert_eq!(texts, ["a", "b", "c"]);
    }
}
