//! Text normalisation shared by rule matching, handoff detection and tokenisation.
//!
//! Followers type on phone keyboards that switch between full-width and half-width forms
//! (`ＶＩＰ`, `１２３`, `？`) and between cases at random; matching on a normalised form
//! makes `vip`, `VIP` and `ＶＩＰ` the same keyword.

/// Folds one full-width character to its half-width form; other characters pass through.
///
/// The Unicode block "Halfwidth and Fullwidth Forms" maps U+FF01..=U+FF5E onto ASCII
/// U+0021..=U+007E by a fixed offset; U+3000 is the ideographic space.
pub fn fold_width(c: char) -> char {
    match c {
        '\u{3000}' => ' ',
        '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
        _ => c,
    }
}

/// Normalises text for matching: trims, folds full-width forms to half-width, lowercases
/// and collapses every run of whitespace to one ASCII space.
pub fn normalize_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut pending_space = false;
    for c in text.chars().map(fold_width) {
        if c.is_whitespace() {
            pending_space = !out.is_empty();
            continue;
        }
        if pending_space {
            out.push(' ');
            pending_space = false;
        }
        out.extend(c.to_lowercase());
    }
    out
}

/// Normalises like [`normalize_text`] and then drops all whitespace, so that `转 人工`
/// and `转人工` compare equal; used for short phrases where spacing carries no meaning.
pub fn normalize_compact(text: &str) -> String {
    normalize_text(text)
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_full_width_letters_digits_and_punctuation() {
        assert_eq!(normalize_text("ＶＩＰ１２３？"), "vip123?");
        assert_eq!(fold_width('Ａ'), 'A');
        assert_eq!(fold_width('～'), '~');
        // CJK punctuation is not a full-width form of ASCII and must stay as it is.
        assert_eq!(fold_width('。'), '。');
    }

    #[test]
    fn trims_and_collapses_whitespace_including_ideographic_space() {
        assert_eq!(
            normalize_text("\u{3000}  Hello \t\n World  "),
            "hello world"
        );
        assert_eq!(normalize_text("   "), "");
    }

    #[test]
    fn lowercases_beyond_ascii() {
        assert_eq!(normalize_text("ÄRGER Über"), "ärger über");
    }

    #[test]
    fn compact_form_drops_spaces() {
        assert_eq!(normalize_compact(" 转 人工 "), "转人工");
    }
}
