//! Keyword auto-reply rules of one Official Account: exact, contains and regex matches,
//! ordered by priority, compiled once into a [`RuleSet`].

use regex::{Regex, RegexBuilder};
use serde::{Deserialize, Serialize};

use crate::normalize::normalize_text;

/// Longest regex pattern a tenant may store, in bytes.
pub const MAX_REGEX_PATTERN_BYTES: usize = 512;
/// Ceiling on one compiled regex program, so a tenant's pattern cannot use unbounded memory.
pub const REGEX_SIZE_LIMIT_BYTES: usize = 256 * 1024;
/// Ceiling on the lazy DFA cache of one regex.
pub const REGEX_DFA_SIZE_LIMIT_BYTES: usize = 256 * 1024;
/// Deepest nesting of groups and repetitions allowed in a pattern.
pub const REGEX_NEST_LIMIT: u32 = 32;

/// How a rule's pattern is compared with the follower's message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchKind {
    /// The normalised message equals the normalised pattern.
    Exact,
    /// The normalised message contains the normalised pattern.
    Contains,
    /// The pattern, a regular expression, matches somewhere in the normalised message
    /// (case-insensitively; anchor it with `^…$` for a whole-message match).
    Regex,
}

/// A keyword rule as the tenant stored it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleDefinition {
    /// Stable identifier of the rule (the row id).
    pub id: String,
    /// How `pattern` is matched.
    pub kind: MatchKind,
    /// The keyword or regular expression.
    pub pattern: String,
    /// The text sent back when the rule fires.
    pub reply: String,
    /// Higher fires first; rules of equal priority keep the order they were given in.
    pub priority: i32,
}

/// Why a set of rule definitions could not be compiled.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RuleError {
    /// The pattern is empty once normalised, so it would match everything or nothing.
    #[error("rule {rule_id}: the pattern is empty")]
    EmptyPattern {
        /// The offending rule.
        rule_id: String,
    },
    /// The regex pattern is longer than [`MAX_REGEX_PATTERN_BYTES`].
    #[error("rule {rule_id}: the regex pattern is {len} bytes long, at most {max} are allowed")]
    PatternTooLong {
        /// The offending rule.
        rule_id: String,
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The regex does not parse, nests too deeply or compiles too big.
    #[error("rule {rule_id}: invalid regex pattern: {reason}")]
    InvalidRegex {
        /// The offending rule.
        rule_id: String,
        /// The regex crate's explanation, which points at the bad part of the pattern.
        reason: String,
    },
    /// Two definitions share one id, which would make the matched rule ambiguous in logs.
    #[error("rule {rule_id} is defined twice")]
    DuplicateId {
        /// The repeated id.
        rule_id: String,
    },
}

#[derive(Debug, Clone)]
enum Matcher {
    Exact(String),
    Contains(String),
    Regex(Regex),
}

impl Matcher {
    fn matches(&self, normalized: &str) -> bool {
        match self {
            Matcher::Exact(pattern) => normalized == pattern,
            Matcher::Contains(pattern) => normalized.contains(pattern.as_str()),
            Matcher::Regex(regex) => regex.is_match(normalized),
        }
    }
}

#[derive(Debug, Clone)]
struct CompiledRule {
    definition: RuleDefinition,
    matcher: Matcher,
}

/// The compiled keyword rules of one account, in firing order.
#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    rules: Vec<CompiledRule>,
}

impl RuleSet {
    /// Compiles rule definitions, refusing the whole set when any rule is invalid so that
    /// the tenant sees the error when saving rather than a rule that silently never fires.
    pub fn compile(
        definitions: impl IntoIterator<Item = RuleDefinition>,
    ) -> Result<Self, RuleError> {
        let mut rules: Vec<CompiledRule> = Vec::new();
        for definition in definitions {
            if rules.iter().any(|r| r.definition.id == definition.id) {
                return Err(RuleError::DuplicateId {
                    rule_id: definition.id,
                });
            }
            let matcher = compile_matcher(&definition)?;
            rules.push(CompiledRule {
                definition,
                matcher,
            });
        }
        // A stable sort keeps the given order among equal priorities.
        rules.sort_by_key(|r| std::cmp::Reverse(r.definition.priority));
        Ok(Self { rules })
    }

    /// The rule that fires for `message`: the highest priority match, the earliest given
    /// among equals.
    pub fn first_match(&self, message: &str) -> Option<&RuleDefinition> {
        let normalized = normalize_text(message);
        self.rules
            .iter()
            .find(|r| r.matcher.matches(&normalized))
            .map(|r| &r.definition)
    }

    /// Every matching rule in firing order (for previews in the rule editor).
    pub fn all_matches(&self, message: &str) -> Vec<&RuleDefinition> {
        let normalized = normalize_text(message);
        self.rules
            .iter()
            .filter(|r| r.matcher.matches(&normalized))
            .map(|r| &r.definition)
            .collect()
    }

    /// Number of rules in the set.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether the set has no rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

/// Checks one definition on its own, for validating a rule before it is stored.
pub fn validate_rule(definition: &RuleDefinition) -> Result<(), RuleError> {
    compile_matcher(definition).map(|_| ())
}

fn compile_matcher(definition: &RuleDefinition) -> Result<Matcher, RuleError> {
    let empty = || RuleError::EmptyPattern {
        rule_id: definition.id.clone(),
    };
    match definition.kind {
        MatchKind::Exact | MatchKind::Contains => {
            let pattern = normalize_text(&definition.pattern);
            if pattern.is_empty() {
                return Err(empty());
            }
            Ok(if definition.kind == MatchKind::Exact {
                Matcher::Exact(pattern)
            } else {
                Matcher::Contains(pattern)
            })
        }
        MatchKind::Regex => {
            // Not normalised: folding or lowercasing would change the meaning of escapes
            // such as `\D` or of full-width literals; case-insensitivity covers the case.
            let pattern = definition.pattern.trim();
            if pattern.is_empty() {
                return Err(empty());
            }
            if pattern.len() > MAX_REGEX_PATTERN_BYTES {
                return Err(RuleError::PatternTooLong {
                    rule_id: definition.id.clone(),
                    len: pattern.len(),
                    max: MAX_REGEX_PATTERN_BYTES,
                });
            }
            RegexBuilder::new(pattern)
                .case_insensitive(true)
                .size_limit(REGEX_SIZE_LIMIT_BYTES)
                .dfa_size_limit(REGEX_DFA_SIZE_LIMIT_BYTES)
                .nest_limit(REGEX_NEST_LIMIT)
                .build()
                .map(Matcher::Regex)
                .map_err(|e| RuleError::InvalidRegex {
                    rule_id: definition.id.clone(),
                    reason: e.to_string(),
                })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(id: &str, kind: MatchKind, pattern: &str, priority: i32) -> RuleDefinition {
        RuleDefinition {
            id: id.to_owned(),
            kind,
            pattern: pattern.to_owned(),
            reply: format!("reply-{id}"),
            priority,
        }
    }

    #[test]
    fn exact_matches_only_the_whole_normalised_message() {
        let set = RuleSet::compile([rule("hi", MatchKind::Exact, "Hello", 0)]).unwrap();
        assert_eq!(
            set.first_match("  ＨＥＬＬＯ ").map(|r| r.id.as_str()),
            Some("hi")
        );
        assert_eq!(set.first_match("hello there"), None);
    }

    #[test]
    fn contains_matches_a_substring_after_normalisation() {
        let set = RuleSet::compile([rule("vip", MatchKind::Contains, "VIP会员", 0)]).unwrap();
        assert_eq!(
            set.first_match("我想开通ｖｉｐ会员").map(|r| r.id.as_str()),
            Some("vip")
        );
        assert_eq!(set.first_match("我想开通会员"), None);
    }

    #[test]
    fn regex_matches_case_insensitively_on_normalised_text() {
        let set = RuleSet::compile([rule(
            "order",
            MatchKind::Regex,
            r"^订单\s?[A-Z]{2}\d{4}$",
            0,
        )])
        .unwrap();
        // Full-width digits and letters are folded before the regex sees them.
        assert_eq!(
            set.first_match("订单 ａｂ１２３４").map(|r| r.id.as_str()),
            Some("order")
        );
        assert_eq!(set.first_match("订单 ab12345"), None);
    }

    #[test]
    fn higher_priority_wins_and_ties_keep_definition_order() {
        let set = RuleSet::compile([
            rule("low", MatchKind::Contains, "退货", 1),
            rule("first-of-equals", MatchKind::Contains, "退", 5),
            rule("second-of-equals", MatchKind::Regex, "退.", 5),
        ])
        .unwrap();
        assert_eq!(
            set.first_match("怎么退货").map(|r| r.id.as_str()),
            Some("first-of-equals")
        );
        let order: Vec<&str> = set
            .all_matches("怎么退货")
            .iter()
            .map(|r| r.id.as_str())
            .collect();
        assert_eq!(order, ["first-of-equals", "second-of-equals", "low"]);
        // Only the low-priority rule needs the whole word; "退款" skips it.
        let order: Vec<&str> = set
            .all_matches("退款")
            .iter()
            .map(|r| r.id.as_str())
            .collect();
        assert_eq!(order, ["first-of-equals", "second-of-equals"]);
    }

    #[test]
    fn invalid_regex_is_refused_with_the_rule_id_and_reason() {
        let err = RuleSet::compile([
            rule("ok", MatchKind::Contains, "你好", 0),
            rule("broken", MatchKind::Regex, "退货(", 0),
        ])
        .unwrap_err();
        match &err {
            RuleError::InvalidRegex { rule_id, reason } => {
                assert_eq!(rule_id, "broken");
                assert!(reason.contains("unclosed group"), "{reason}");
            }
            other => panic!("unexpected error {other:?}"),
        }
        assert!(
            err.to_string()
                .starts_with("rule broken: invalid regex pattern")
        );
    }

    #[test]
    fn regex_that_compiles_too_big_is_refused() {
        // Bounded repetition of a Unicode class expands far past the size limit.
        let err =
            validate_rule(&rule("huge", MatchKind::Regex, r"\w{1000}\w{1000}", 0)).unwrap_err();
        match err {
            RuleError::InvalidRegex { rule_id, reason } => {
                assert_eq!(rule_id, "huge");
                assert!(reason.contains("size limit"), "{reason}");
            }
            other => panic!("unexpected error {other:?}"),
        }
    }

    #[test]
    fn too_long_deeply_nested_empty_and_duplicate_patterns_are_refused() {
        let long = "a".repeat(MAX_REGEX_PATTERN_BYTES + 1);
        assert_eq!(
            validate_rule(&rule("long", MatchKind::Regex, &long, 0)),
            Err(RuleError::PatternTooLong {
                rule_id: "long".into(),
                len: MAX_REGEX_PATTERN_BYTES + 1,
                max: MAX_REGEX_PATTERN_BYTES
            })
        );
        let nested = format!("{}a{}", "(".repeat(40), ")".repeat(40));
        assert!(matches!(
            validate_rule(&rule("deep", MatchKind::Regex, &nested, 0)),
            Err(RuleError::InvalidRegex { .. })
        ));
        assert_eq!(
            validate_rule(&rule("blank", MatchKind::Contains, " \u{3000} ", 0)),
            Err(RuleError::EmptyPattern {
                rule_id: "blank".into()
            })
        );
        assert_eq!(
            RuleSet::compile([
                rule("a", MatchKind::Exact, "x", 0),
                rule("a", MatchKind::Exact, "y", 0)
            ])
            .unwrap_err(),
            RuleError::DuplicateId {
                rule_id: "a".into()
            }
        );
    }
}
