//! Shaping model output into WeChat text messages.

/// WeChat's limit for one passive (and customer-service) text reply, in UTF-8 bytes.
pub const MAX_PASSIVE_REPLY_BYTES: usize = 2048;

/// Removes control characters other than line breaks (tabs become spaces); they show as
/// boxes in WeChat or break its XML. Also drops a byte-order mark.
pub fn strip_control_chars(text: &str) -> String {
    text.chars()
        .filter_map(|c| match c {
            '\n' => Some('\n'),
            '\t' => Some(' '),
            '\u{FEFF}' => None,
            c if c.is_control() => None,
            c => Some(c),
        })
        .collect()
}

/// Cleans model output for WeChat: literal `\n` (backslash, n) that models emit when
/// they imitate JSON becomes a line break, Windows line ends are unified, control
/// characters go, trailing spaces on lines go, and runs of blank lines shrink to one.
pub fn clean_model_output(text: &str) -> String {
    let unified = text
        .replace("\\r\\n", "\n")
        .replace("\\n", "\n")
        .replace("\r\n", "\n")
        .replace('\r', "\n");
    let stripped = strip_control_chars(&unified);
    let mut out = String::with_capacity(stripped.len());
    let mut blank_run = 0;
    for line in stripped.lines() {
        let line = line.trim_end();
        if line.is_empty() {
            blank_run += 1;
            if blank_run > 1 {
                continue;
            }
        } else {
            blank_run = 0;
        }
        out.push_str(line);
        out.push('\n');
    }
    out.trim().to_owned()
}

/// Characters that attach to the one before them and must not start a message: the
/// zero-width joiner, variation selectors, skin-tone modifiers, combining marks,
/// emoji tag characters and the keycap (U+20E3, among the combining marks for symbols).
fn attaches_to_previous(c: char) -> bool {
    matches!(c as u32,
        0x200D | 0xFE00..=0xFE0F | 0x1F3FB..=0x1F3FF | 0x0300..=0x036F | 0x20D0..=0x20FF
        | 0xE0020..=0xE007F)
}

fn is_regional_indicator(c: char) -> bool {
    ('\u{1F1E6}'..='\u{1F1FF}').contains(&c)
}

/// Whether cutting `text` at byte `at` would split an emoji sequence or a character
/// from its combining marks.
fn splits_cluster(text: &str, at: usize) -> bool {
    let (before, after) = text.split_at(at);
    let (Some(prev), Some(next)) = (before.chars().next_back(), after.chars().next()) else {
        return false;
    };
    if attaches_to_previous(next) || prev == '\u{200D}' {
        return true;
    }
    // Flags are pairs of regional indicators: an odd count before the cut means the
    // cut would fall inside a pair.
    if is_regional_indicator(prev) && is_regional_indicator(next) {
        let run = before
            .chars()
            .rev()
            .take_while(|c| is_regional_indicator(*c))
            .count();
        return run % 2 == 1;
    }
    false
}

/// The largest cut position ≤ `max` that is a character boundary and does not split a
/// cluster (falling back to a plain character boundary when one cluster alone is
/// longer than `max`).
fn hard_cut(text: &str, max: usize) -> usize {
    let mut at = max.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    let boundary = at;
    while at > 0 && splits_cluster(text, at) {
        at -= 1;
        while !text.is_char_boundary(at) {
            at -= 1;
        }
    }
    if at == 0 { boundary } else { at }
}

fn ends_sentence(c: char) -> bool {
    matches!(c, '。' | '！' | '？' | '；' | '!' | '?' | ';' | '…')
}

fn is_closer(c: char) -> bool {
    matches!(
        c,
        '”' | '’' | '"' | '\'' | '」' | '』' | '）' | ')' | '】' | '》'
    )
}

/// The best place to end a message within `window` (the first `window.len()` bytes of
/// `text`): after the last paragraph break, else the last line break, else the last
/// sentence end, else the last comma or space — but only in the second half of the
/// window, so that no message is needlessly short.
fn soft_cut(text: &str, window: usize) -> Option<usize> {
    let half = window / 2;
    let slice = &text[..window];
    if let Some(i) = slice.rfind("\n\n").filter(|i| *i >= half) {
        return Some(i);
    }
    if let Some(i) = slice.rfind('\n').filter(|i| *i >= half) {
        return Some(i);
    }
    let mut sentence = None;
    let mut pause = None;
    // Inside a run of sentence-ending punctuation and the closing quotes after it
    // (`。”）`): the sentence ends after the whole run.
    let mut in_end_run = false;
    for (i, c) in slice.char_indices() {
        let end = i + c.len_utf8();
        let next = text[end..].chars().next();
        in_end_run = ends_sentence(c) || in_end_run && is_closer(c);
        let run_continues = next.is_some_and(|n| is_closer(n) || ends_sentence(n));
        if in_end_run && !run_continues || c == '.' && next.is_some_and(char::is_whitespace) {
            sentence = Some(end);
        } else if matches!(c, '，' | '、' | ',' | ' ' | '：' | ':') {
            pause = Some(end);
        }
    }
    sentence
        .filter(|e| *e >= half)
        .or(pause.filter(|e| *e >= half))
}

/// Splits text into WeChat messages of at most `max_bytes` UTF-8 bytes each, on
/// character boundaries (never inside an emoji sequence), preferring paragraph, line and
/// sentence boundaries. Parts are trimmed; empty text gives no parts. A `max_bytes`
/// below 4 is raised to 4 so that any character fits.
pub fn split_for_wechat(text: &str, max_bytes: usize) -> Vec<String> {
    let max = max_bytes.max(4);
    let mut parts = Vec::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        if rest.len() <= max {
            parts.push(rest.to_owned());
            break;
        }
        let window = hard_cut(rest, max);
        let cut = soft_cut(rest, window).unwrap_or(window);
        let part = rest[..cut].trim_end();
        if !part.is_empty() {
            parts.push(part.to_owned());
        }
        rest = rest[cut..].trim_start();
    }
    parts
}

/// Shortest line (in characters, spaces ignored) that counts as an echo when the prompt
/// contains it: shorter ones ("好的", "谢谢") are ordinary words, not a leak.
const MIN_ECHO_CHARS: usize = 6;

/// Cleans a model answer ([`clean_model_output`]) and drops the lines that repeat the
/// prompt's instructions, or an earlier line of the answer: a small model that echoes its
/// instructions must not show a follower the system prompt, nor the same sentence ten times
/// when its decoding loops. Quoting the knowledge is what an answer should do, so pass only
/// the instructions ([`crate::prompt::scaffolding`]) as `prompt`. Lines are compared after
/// normalising width, case and spaces; what is left keeps its order.
pub fn drop_prompt_echo<S: AsRef<str>>(answer: &str, prompt: &[S]) -> String {
    let seen: Vec<String> = prompt
        .iter()
        .map(|m| crate::normalize::normalize_compact(m.as_ref()))
        .collect();
    let cleaned = clean_model_output(answer);
    let mut said: Vec<String> = Vec::new();
    let kept: Vec<&str> = cleaned
        .lines()
        .filter(|line| {
            let norm = crate::normalize::normalize_compact(line);
            // The model may end a copied clause with other punctuation than the prompt did.
            let norm = norm
                .trim_end_matches(|c: char| ".,;:!?。，；：！？、".contains(c))
                .to_owned();
            if norm.chars().count() < MIN_ECHO_CHARS {
                return true;
            }
            // A line the prompt holds, or one this answer already gave (a decoding loop).
            let echo = seen.iter().any(|p| p.contains(&norm)) || said.contains(&norm);
            said.push(norm);
            !echo
        })
        .collect();
    let text = clean_model_output(&kept.join("\n"));
    cut_runaway_repeat(&text).trim().to_owned()
}

/// A character repeated this many times in a row is a decoding loop, not text.
const RUNAWAY_REPEAT: usize = 12;

/// The text before the first character repeated [`RUNAWAY_REPEAT`] times in a row, where a
/// small model's decoding started to loop. Spaces and digits (a phone number, an amount)
/// never count.
pub fn cut_runaway_repeat(text: &str) -> &str {
    let mut run_start = 0;
    let mut run_len = 0;
    let mut previous = None;
    for (i, c) in text.char_indices() {
        if Some(c) == previous && !c.is_whitespace() && !c.is_ascii_digit() {
            run_len += 1;
            if run_len >= RUNAWAY_REPEAT {
                return &text[..run_start];
            }
        } else {
            previous = Some(c);
            run_start = i;
            run_len = 1;
        }
    }
    text
}

/// Cleans model output and splits it into passive-reply-sized messages.
pub fn shape_reply(model_output: &str) -> Vec<String> {
    split_for_wechat(&clean_model_output(model_output), MAX_PASSIVE_REPLY_BYTES)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echoed_prompt_lines_are_dropped_and_the_answer_kept() {
        let prompt = [
            "You answer for Acme.\nAnswer only from the provided knowledge, in plain text, briefly; or say so.\n资料：（没有找到相关资料）",
            "欢迎关注 Acme Coffee！有问题直接发消息。",
        ];
        let answer = "欢迎关注 Acme  coffee！有问题直接发消息。\n\nTry our Huila beans for pour-over.\n\n\
                      Answer only from the provided knowledge, in plain text, briefly.\n资料：（没有找到相关资料）\n好的";
        assert_eq!(
            drop_prompt_echo(answer, &prompt),
            "Try our Huila beans for pour-over.\n\n好的"
        );
        // A looping answer says each line once.
        assert_eq!(
            drop_prompt_echo(
                "我们的豆子都很新鲜！\n我们的豆子都很新鲜！\n\n我们的豆子都很新鲜！",
                &prompt
            ),
            "我们的豆子都很新鲜！"
        );
        // A decoding loop is cut where it starts; laughter is not a loop.
        assert_eq!(
            drop_prompt_echo(
                "晚上可以喝低因。猫猫猫猫猫猫猫猫猫猫猫猫猫猫；；；；",
                &prompt
            ),
            "晚上可以喝低因。"
        );
        assert_eq!(cut_runaway_repeat("哈哈哈哈，好的"), "哈哈哈哈，好的");
        assert_eq!(
            cut_runaway_repeat("客服电话 13888888888888，¥100000000000"),
            "客服电话 13888888888888，¥100000000000"
        );
        // A literal `\n` is a line break before lines are compared.
        assert_eq!(
            drop_prompt_echo(
                "好的\\nAnswer only from the provided knowledge, in plain text, briefly",
                &prompt
            ),
            "好的"
        );
        // Nothing but echo leaves nothing to send.
        assert_eq!(drop_prompt_echo(prompt[1], &prompt), "");
        // An answer that quotes nothing is unchanged.
        assert_eq!(
            drop_prompt_echo("签收后七天内可以退货。", &prompt),
            "签收后七天内可以退货。"
        );
    }

    #[test]
    fn literal_backslash_n_becomes_a_line_break_and_controls_go() {
        let raw = "您好！\\n退货请在七天内申请。\\r\\n谢谢\u{0007}\u{FEFF}\t。\r\n\n\n\n再见  ";
        assert_eq!(
            clean_model_output(raw),
            "您好！\n退货请在七天内申请。\n谢谢 。\n\n再见"
        );
    }

    #[test]
    fn short_text_is_one_part_and_empty_text_none() {
        assert_eq!(split_for_wechat("  你好  ", 2048), ["你好"]);
        assert!(split_for_wechat(" \n ", 2048).is_empty());
    }

    #[test]
    fn seven_hundred_chinese_characters_split_within_limit_at_a_sentence_end() {
        // 35 sentences of 20 characters (19 + 。): 700 characters, 2100 bytes.
        let text = "退货请在签收后七天内提交申请并保持完好"
            .repeat(35)
            .replace("好", "好。");
        assert_eq!(text.chars().count(), 700);
        let parts = split_for_wechat(&text, MAX_PASSIVE_REPLY_BYTES);
        assert_eq!(parts.len(), 2);
        for part in &parts {
            assert!(
                part.len() <= MAX_PASSIVE_REPLY_BYTES,
                "{} bytes",
                part.len()
            );
        }
        assert!(parts[0].ends_with('。'));
        assert_eq!(parts.concat(), text);
        // The first part is as long as whole sentences allow: 34 sentences, 2040 bytes.
        assert_eq!(parts[0].len(), 34 * 60);
    }

    #[test]
    fn seven_hundred_characters_without_punctuation_cut_on_a_character_boundary() {
        let text = "退".repeat(700);
        let parts = split_for_wechat(&text, MAX_PASSIVE_REPLY_BYTES);
        assert_eq!(
            parts.iter().map(String::len).collect::<Vec<_>>(),
            [2046, 54]
        );
        assert_eq!(parts.concat(), text);
    }

    #[test]
    fn emoji_sequences_are_never_split() {
        let unit = "好👍🏽👨\u{200D}👩\u{200D}👧🇨🇳1\u{FE0F}\u{20E3}";
        let text = unit.repeat(120);
        // 25 bytes still holds the longest sequence here, the 18-byte family emoji.
        for max in [2048, 100, 37, 25] {
            let parts = split_for_wechat(&text, max);
            assert_eq!(parts.concat(), text, "max {max}");
            for part in &parts {
                assert!(part.len() <= max, "{} > {max}", part.len());
                let first = part.chars().next().unwrap();
                assert!(
                    !attaches_to_previous(first),
                    "part starts with {first:?} at max {max}"
                );
                assert!(!part.ends_with('\u{200D}'));
                let flags = part.chars().filter(|c| is_regional_indicator(*c)).count();
                assert_eq!(flags % 2, 0, "a flag was split at max {max}");
            }
        }
    }

    #[test]
    fn closing_quotes_stay_with_their_sentence() {
        let text = format!("{}他说：“好的。”）{}", "甲".repeat(600), "乙".repeat(300));
        let parts = split_for_wechat(&text, MAX_PASSIVE_REPLY_BYTES);
        assert_eq!(parts.len(), 2);
        assert!(
            parts[0].ends_with("好的。”）"),
            "{}",
            &parts[0][parts[0].len() - 12..]
        );
        assert_eq!(parts[1], "乙".repeat(300));
    }

    #[test]
    fn paragraph_breaks_are_preferred() {
        let first = "甲".repeat(400);
        let second = "乙".repeat(400);
        let text = format!("{first}\n\n{second}。");
        let parts = split_for_wechat(&text, MAX_PASSIVE_REPLY_BYTES);
        assert_eq!(parts, [first, format!("{second}。")]);
    }

    #[test]
    fn shape_reply_cleans_then_splits() {
        let parts = shape_reply(&format!("{}\\n\\n{}", "a".repeat(2000), "b".repeat(100)));
        assert_eq!(parts, ["a".repeat(2000), "b".repeat(100)]);
    }
}
