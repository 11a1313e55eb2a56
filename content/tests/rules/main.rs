//! Integration tests of the content rules through the public API.
// Tests may panic on what they set up themselves.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod compliance;
mod parse;
mod robustness;
mod small_model;

/// Character offset of the `nth` (0-based) occurrence of `needle` in `haystack`.
pub fn char_pos(haystack: &str, needle: &str, nth: usize) -> usize {
    let (byte, _) = haystack
        .match_indices(needle)
        .nth(nth)
        .unwrap_or_else(|| panic!("{needle:?} occurs fewer than {} times", nth + 1));
    haystack[..byte].chars().count()
}
