//! Segmentation of Chinese and English text into index terms with jieba.

use std::sync::LazyLock;

use jieba_rs::Jieba;

use crate::normalize::normalize_text;

/// One dictionary for the whole process: loading it takes a noticeable moment and it is
/// read-only afterwards.
static JIEBA: LazyLock<Jieba> = LazyLock::new(Jieba::new);

/// Words too common to tell questions apart: particles, pronouns, interrogatives that
/// every FAQ question shares ("怎么", "如何") and English function words. Kept small on
/// purpose; BM25's idf handles the rest.
const STOPWORDS: &[&str] = &[
    // Chinese
    "的",
    "了",
    "着",
    "过",
    "是",
    "在",
    "和",
    "与",
    "及",
    "或",
    "而",
    "也",
    "都",
    "就",
    "还",
    "又",
    "吗",
    "呢",
    "吧",
    "啊",
    "呀",
    "哦",
    "嗯",
    "哈",
    "么",
    "啦",
    "嘛",
    "我",
    "你",
    "您",
    "他",
    "她",
    "它",
    "我们",
    "你们",
    "他们",
    "咱们",
    "这",
    "那",
    "这个",
    "那个",
    "这样",
    "那样",
    "一下",
    "一个",
    "怎么",
    "怎么办",
    "怎样",
    "怎么样",
    "如何",
    "什么",
    "请问",
    "请",
    "想",
    "要",
    "能",
    "会",
    "可以",
    "可",
    "把",
    "被",
    "给",
    "让",
    "对",
    "从",
    "到",
    "向",
    "有",
    "没",
    "没有",
    "不",
    "很",
    "太",
    "为什么",
    "为何",
    // English
    "a",
    "an",
    "the",
    "is",
    "are",
    "was",
    "were",
    "be",
    "been",
    "am",
    "do",
    "does",
    "did",
    "i",
    "you",
    "he",
    "she",
    "it",
    "we",
    "they",
    "me",
    "my",
    "your",
    "our",
    "its",
    "to",
    "of",
    "in",
    "on",
    "at",
    "for",
    "with",
    "and",
    "or",
    "but",
    "if",
    "so",
    "can",
    "could",
    "will",
    "would",
    "should",
    "how",
    "what",
    "why",
    "when",
    "please",
    "this",
    "that",
    "there",
    "here",
    "from",
    "by",
    "as",
    "not",
    "no",
    "any",
];

/// Loads the segmentation dictionary now, so the first follower message after a start
/// does not pay for it inside WeChat's five-second budget.
pub fn warm_up() {
    LazyLock::force(&JIEBA);
}

/// Whether `term` (already normalised) is on the built-in stopword list.
pub fn is_stopword(term: &str) -> bool {
    STOPWORDS.contains(&term)
}

/// Splits text into index terms: normalised (half-width, lowercase), cut by jieba in
/// search mode (long words also yield their dictionary sub-words, which helps recall
/// on short questions), without punctuation, whitespace or stopwords.
///
/// Queries go through the same function as documents so that both sides agree.
pub fn index_terms(text: &str) -> Vec<String> {
    let normalized = normalize_text(text);
    JIEBA
        .cut_for_search(&normalized, true)
        .into_iter()
        .map(|token| token.word.trim())
        .filter(|word| word.chars().any(char::is_alphanumeric))
        .filter(|word| !is_stopword(word))
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chinese_question_drops_particles_and_interrogatives() {
        assert_eq!(index_terms("怎么修改收货地址？"), ["修改", "收货", "地址"]);
        assert_eq!(index_terms("地址填错了想改一下"), ["地址", "填错", "改"]);
    }

    #[test]
    fn search_mode_yields_sub_words_of_compounds() {
        assert_eq!(
            index_terms("可以开增值税发票吗"),
            ["开", "增值", "增值税", "发票"]
        );
    }

    #[test]
    fn english_is_lowercased_and_function_words_dropped() {
        assert_eq!(index_terms("How do I RETURN an item?"), ["return", "item"]);
    }

    #[test]
    fn full_width_latin_and_digits_are_folded() {
        assert_eq!(index_terms("ＶＩＰ会员 ２０２６"), ["vip", "会员", "2026"]);
    }

    #[test]
    fn punctuation_only_text_yields_nothing() {
        assert!(index_terms("！？。，……   ").is_empty());
    }
}
