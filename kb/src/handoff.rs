//! Detecting that a follower asks for a human agent.

use serde::{Deserialize, Serialize};

use crate::normalize::normalize_compact;

/// The phrase that asks for a person when an account configures none.
pub const DEFAULT_HANDOFF_PHRASES: &[&str] = &["人工"];

/// Words that contain a handoff phrase without asking for a person ("人工智能" is
/// "artificial intelligence"); they are cut out of the message before matching.
pub const DEFAULT_HANDOFF_EXCLUSIONS: &[&str] = &["人工智能"];

/// Phrases that hand a conversation to a person, compared after normalisation
/// (full-width folded, lowercase, spaces removed), so `转 人工`, `人工客服` and
/// `ＨＵＭＡＮ` (with "human" configured) all count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandoffDetector {
    phrases: Vec<String>,
    exclusions: Vec<String>,
}

impl Default for HandoffDetector {
    fn default() -> Self {
        Self::new(DEFAULT_HANDOFF_PHRASES.iter().copied())
    }
}

fn normalized_list<S: AsRef<str>>(items: impl IntoIterator<Item = S>) -> Vec<String> {
    let mut list: Vec<String> = items
        .into_iter()
        .map(|p| normalize_compact(p.as_ref()))
        .filter(|p| !p.is_empty())
        .collect();
    list.sort();
    list.dedup();
    list
}

impl HandoffDetector {
    /// A detector for the given phrases (blank ones are ignored) with the default
    /// exclusions.
    pub fn new<S: AsRef<str>>(phrases: impl IntoIterator<Item = S>) -> Self {
        Self::with_exclusions(phrases, DEFAULT_HANDOFF_EXCLUSIONS.iter().copied())
    }

    /// A detector for the given phrases that ignores them inside the given words.
    pub fn with_exclusions<S: AsRef<str>, E: AsRef<str>>(
        phrases: impl IntoIterator<Item = S>,
        exclusions: impl IntoIterator<Item = E>,
    ) -> Self {
        let mut exclusions = normalized_list(exclusions);
        // Longest first, so a longer exclusion is not half-removed by a shorter one.
        exclusions.sort_by_key(|e| std::cmp::Reverse(e.chars().count()));
        Self {
            phrases: normalized_list(phrases),
            exclusions,
        }
    }

    /// The configured phrase found in `message`, if any.
    pub fn matched_phrase(&self, message: &str) -> Option<&str> {
        let mut normalized = normalize_compact(message);
        for exclusion in &self.exclusions {
            // A separator keeps the text on both sides from joining into a phrase.
            normalized = normalized.replace(exclusion.as_str(), "\u{0}");
        }
        self.phrases
            .iter()
            .find(|p| normalized.contains(p.as_str()))
            .map(String::as_str)
    }

    /// Whether `message` asks for a human agent.
    pub fn is_handoff_request(&self, message: &str) -> bool {
        self.matched_phrase(message).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_phrase_matches_with_spacing_and_surrounding_words() {
        let detector = HandoffDetector::default();
        assert!(detector.is_handoff_request("人工"));
        assert!(detector.is_handoff_request("转 人工 客服！"));
        assert!(detector.is_handoff_request("我要找人\u{3000}工"));
        assert!(!detector.is_handoff_request("怎么退货"));
        assert!(!detector.is_handoff_request("人很多"));
    }

    #[test]
    fn configured_phrases_are_normalised_on_both_sides() {
        let detector = HandoffDetector::new(["Human Agent", "  ", "客服"]);
        assert_eq!(
            detector.matched_phrase("I want a ＨＵＭＡＮ agent"),
            Some("humanagent")
        );
        assert_eq!(detector.matched_phrase("联系客服"), Some("客服"));
        // A custom list replaces the default.
        assert!(!detector.is_handoff_request("人工"));
    }

    #[test]
    fn artificial_intelligence_is_not_a_request_for_a_person() {
        let detector = HandoffDetector::default();
        assert!(!detector.is_handoff_request("你们的客服是人工智能吗"));
        assert!(detector.is_handoff_request("不要人工智能，要人工"));
        let custom = HandoffDetector::with_exclusions(["人工"], Vec::<String>::new());
        assert!(custom.is_handoff_request("人工智能"));
    }

    #[test]
    fn empty_list_never_matches() {
        let detector = HandoffDetector::new(Vec::<String>::new());
        assert!(!detector.is_handoff_request("人工"));
    }
}
