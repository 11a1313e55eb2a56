//! Prompts for generating articles, Moments copy and menu replies.

use serde::{Deserialize, Serialize};

use crate::limits::{
    DIGEST_MAX_CHARS, MOMENTS_MAX_CHARS, PASSIVE_REPLY_MAX_BYTES, TITLE_MAX_CHARS,
};

/// What to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContentKind {
    /// An Official Account article: title, digest, body.
    Article,
    /// Moments (朋友圈) copy.
    Moments,
    /// The text sent when a follower taps a menu item (a passive reply).
    MenuReply,
}

/// How the model is asked to shape its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputFormat {
    /// A JSON object with named fields; for capable models.
    #[default]
    Json,
    /// `TITLE: …` / `DIGEST: …` / `BODY:` lines; small local models follow it more reliably.
    Lines,
}

/// Who says a prompt message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Instructions.
    System,
    /// The request.
    User,
    /// An earlier model answer.
    Assistant,
}

/// One chat message of a prompt; the inference layer maps it to its own type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromptMessage {
    /// Who says it.
    pub role: Role,
    /// What is said.
    pub content: String,
}

impl PromptMessage {
    fn new(role: Role, content: String) -> Self {
        Self { role, content }
    }
}

/// A brand's voice, from the tenant's settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrandVoice {
    /// Brand or account name.
    #[serde(default)]
    pub brand_name: String,
    /// Free-text style guide.
    #[serde(default)]
    pub style_guide: String,
    /// Words the brand likes to use.
    #[serde(default)]
    pub preferred_words: Vec<String>,
    /// Words the brand never uses (also worth passing to the compliance scanner).
    #[serde(default)]
    pub banned_words: Vec<String>,
    /// Signature appended to articles after generation (not written by the model).
    #[serde(default)]
    pub signature: String,
}

/// Rough length of the text asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Length {
    /// Short.
    Short,
    /// Medium.
    #[default]
    Medium,
    /// Long.
    Long,
}

/// Options of one generation request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenerationOptions {
    /// How many alternative versions to write (clamped to 1..=5).
    #[serde(default = "one")]
    pub variants: u8,
    /// Tone, e.g. "warm", "professional", "playful".
    #[serde(default)]
    pub tone: Option<String>,
    /// Rough length.
    #[serde(default)]
    pub length: Length,
    /// Keywords the text must contain.
    #[serde(default)]
    pub keywords: Vec<String>,
    /// Call to action to end with.
    #[serde(default)]
    pub call_to_action: Option<String>,
    /// Output language as a BCP-47 tag; Simplified Chinese by default.
    #[serde(default = "default_language")]
    pub language: String,
}

fn one() -> u8 {
    1
}

fn default_language() -> String {
    "zh-CN".to_owned()
}

impl Default for GenerationOptions {
    fn default() -> Self {
        Self {
            variants: 1,
            tone: None,
            length: Length::default(),
            keywords: Vec::new(),
            call_to_action: None,
            language: default_language(),
        }
    }
}

/// The most variants one request asks for.
pub const MAX_VARIANTS: u8 = 5;

fn language_name(tag: &str) -> String {
    match tag.to_ascii_lowercase().as_str() {
        "zh" | "zh-cn" | "zh-hans" | "zh-hans-cn" => "Simplified Chinese (简体中文)".to_owned(),
        "zh-tw" | "zh-hk" | "zh-hant" => "Traditional Chinese (繁體中文)".to_owned(),
        "en" | "en-us" | "en-gb" => "English".to_owned(),
        other => format!("the language with the tag {other}"),
    }
}

fn length_hint(kind: ContentKind, length: Length) -> &'static str {
    match (kind, length) {
        (ContentKind::Article, Length::Short) => "about 300 characters of body",
        (ContentKind::Article, Length::Medium) => "about 800 characters of body",
        (ContentKind::Article, Length::Long) => "about 1,500 characters of body",
        (ContentKind::Moments, Length::Short) => "one or two sentences",
        (ContentKind::Moments, Length::Medium) => "about 80 characters",
        (ContentKind::Moments, Length::Long) => "about 200 characters",
        (ContentKind::MenuReply, Length::Short) => "one sentence",
        (ContentKind::MenuReply, Length::Medium) => "two or three sentences",
        (ContentKind::MenuReply, Length::Long) => "a short paragraph",
    }
}

fn task_line(kind: ContentKind) -> String {
    match kind {
        ContentKind::Article => format!(
            "Write a WeChat Official Account article: a title of at most {TITLE_MAX_CHARS} \
             characters, a digest (one-sentence summary) of at most {DIGEST_MAX_CHARS} \
             characters, and the body."
        ),
        ContentKind::Moments => format!(
            "Write WeChat Moments (朋友圈) copy: friendly, easy to read on a phone, at most \
             {MOMENTS_MAX_CHARS} characters, a few fitting emoji allowed."
        ),
        ContentKind::MenuReply => format!(
            "Write the reply a follower receives after tapping an Official Account menu item: \
             plain text, no HTML, at most {PASSIVE_REPLY_MAX_BYTES} bytes (about 600 Chinese \
             characters)."
        ),
    }
}

fn format_instructions(kind: ContentKind, format: OutputFormat, variants: u8) -> String {
    match (format, kind) {
        (OutputFormat::Json, ContentKind::Article) => json_instructions(
            variants,
            r#"{"title": "…", "digest": "…", "body": "…"}"#,
            "In body, separate paragraphs with a blank line (\\n\\n); you may use <h2>, \
             <strong> and <ul><li> tags, nothing else.",
        ),
        (OutputFormat::Json, ContentKind::Moments) => {
            json_instructions(variants, r#"{"text": "…"}"#, "")
        }
        (OutputFormat::Json, ContentKind::MenuReply) => {
            json_instructions(variants, r#"{"reply": "…"}"#, "")
        }
        (OutputFormat::Lines, ContentKind::Article) => lines_instructions(
            variants,
            "TITLE: <the title on one line>\nDIGEST: <the summary on one line>\nBODY:\n<the body, paragraphs separated by blank lines>",
        ),
        (OutputFormat::Lines, ContentKind::Moments) => {
            lines_instructions(variants, "TEXT:\n<the copy>")
        }
        (OutputFormat::Lines, ContentKind::MenuReply) => {
            lines_instructions(variants, "REPLY:\n<the reply>")
        }
    }
}

fn json_instructions(variants: u8, shape: &str, extra: &str) -> String {
    let head = if variants > 1 {
        format!(
            "Answer with one JSON object and nothing else: {{\"variants\": [{shape}, …]}} \
             holding exactly {variants} different versions."
        )
    } else {
        format!("Answer with one JSON object and nothing else: {shape}")
    };
    let mut text = format!(
        "{head} Use double quotes, escape newlines inside strings as \\n, no comments, no \
         Markdown code fences."
    );
    if !extra.is_empty() {
        text.push(' ');
        text.push_str(extra);
    }
    text
}

fn lines_instructions(variants: u8, shape: &str) -> String {
    let repeat = if variants > 1 {
        format!(
            " Write {variants} different versions one after another, each starting again with \
             its first label, separated by a line with ---."
        )
    } else {
        String::new()
    };
    format!("Answer in exactly this format, labels in capitals, nothing before or after:\n{shape}\n{repeat}")
        .trim_end()
        .to_owned()
}

fn voice_lines(voice: &BrandVoice) -> Vec<String> {
    let mut lines = Vec::new();
    if !voice.brand_name.trim().is_empty() {
        lines.push(format!("Brand: {}", voice.brand_name.trim()));
    }
    if !voice.style_guide.trim().is_empty() {
        lines.push(format!("Style guide: {}", voice.style_guide.trim()));
    }
    if !voice.preferred_words.is_empty() {
        lines.push(format!(
            "Prefer these words where they fit: {}",
            voice.preferred_words.join("、")
        ));
    }
    if !voice.banned_words.is_empty() {
        lines.push(format!(
            "Never use these words: {}",
            voice.banned_words.join("、")
        ));
    }
    lines
}

/// The chat messages asking for `kind` from a campaign `brief`, in the brand's voice.
///
/// The system message carries the task, the legal rules and the output format; the user
/// message carries the brief and options. Use [`OutputFormat::Lines`] for small local models.
pub fn build_prompt(
    kind: ContentKind,
    brief: &str,
    voice: &BrandVoice,
    options: &GenerationOptions,
    format: OutputFormat,
) -> Vec<PromptMessage> {
    let variants = options.variants.clamp(1, MAX_VARIANTS);
    let mut system = vec![
        "You are a copywriter for WeChat Official Accounts in mainland China.".to_owned(),
        task_line(kind),
        format!("Write in {}.", language_name(&options.language)),
        "Follow China's Advertising Law: no absolute claims such as 最, 最佳, 最好, 第一, 唯一, \
         首选, 顶级, 国家级, 世界级, 100%, 万能, 绝对, 永久; no promises of cures, returns or \
         results; nothing you cannot prove."
            .to_owned(),
    ];
    if kind == ContentKind::Article && !voice.signature.trim().is_empty() {
        system.push("Do not add a signature; it is appended afterwards.".to_owned());
    }
    system.extend(voice_lines(voice));
    system.push(format_instructions(kind, format, variants));

    let mut user = vec![format!("Brief: {}", brief.trim())];
    if let Some(tone) = options.tone.as_deref().filter(|t| !t.trim().is_empty()) {
        user.push(format!("Tone: {}", tone.trim()));
    }
    user.push(format!("Length: {}", length_hint(kind, options.length)));
    if !options.keywords.is_empty() {
        user.push(format!(
            "Include these keywords: {}",
            options.keywords.join("、")
        ));
    }
    if let Some(cta) = options
        .call_to_action
        .as_deref()
        .filter(|c| !c.trim().is_empty())
    {
        user.push(format!("End with this call to action: {}", cta.trim()));
    }
    vec![
        PromptMessage::new(Role::System, system.join("\n")),
        PromptMessage::new(Role::User, user.join("\n")),
    ]
}

/// A token budget for one request: the longest text of the length asked for, in Chinese
/// (about 1.5 tokens a character), plus the labels, per version. The generate job passes it
/// as the inference layer's `max_tokens`.
///
/// No stop strings are suggested for the line format: small models repeat the format after
/// answering, but a stop on a second `TITLE:` would also cut an answer that starts with a
/// line of chatter, and the parser already keeps the first complete version.
pub fn max_tokens(kind: ContentKind, options: &GenerationOptions) -> u32 {
    let variants = u32::from(options.variants.clamp(1, MAX_VARIANTS));
    let chars_per_version: u32 = match (kind, options.length) {
        (ContentKind::Article, Length::Short) => 450,
        (ContentKind::Article, Length::Medium) => 1_100,
        (ContentKind::Article, Length::Long) => 2_000,
        (ContentKind::Moments, _) => 300,
        (ContentKind::MenuReply, _) => 500,
    };
    (chars_per_version * 3 / 2 + 80) * variants
}

/// The prompt for a retry: the original messages, the model's previous answer, and the
/// correction (a [`crate::compliance::rewrite_instruction`] or a parse error's
/// [`crate::parse::OutputError::feedback`]).
pub fn follow_up_prompt(
    original: &[PromptMessage],
    previous_answer: &str,
    correction: &str,
) -> Vec<PromptMessage> {
    let mut messages = original.to_vec();
    messages.push(PromptMessage::new(
        Role::Assistant,
        previous_answer.to_owned(),
    ));
    messages.push(PromptMessage::new(Role::User, correction.to_owned()));
    messages
}

#[cfg(test)]
mod tests {
    use super::*;

    fn voice() -> BrandVoice {
        BrandVoice {
            brand_name: "山野咖啡".to_owned(),
            style_guide: "亲切、简洁，不用网络流行语".to_owned(),
            preferred_words: vec!["手冲".to_owned(), "产地".to_owned()],
            banned_words: vec!["廉价".to_owned()],
            signature: "山野咖啡 · 每一杯都用心".to_owned(),
        }
    }

    #[test]
    fn article_prompt_carries_brief_voice_options_and_json_shape() {
        let options = GenerationOptions {
            variants: 2,
            tone: Some("温暖".to_owned()),
            keywords: vec!["云南".to_owned(), "新豆".to_owned()],
            call_to_action: Some("到店免费试饮".to_owned()),
            ..GenerationOptions::default()
        };
        let messages = build_prompt(
            ContentKind::Article,
            "秋季云南新豆上市",
            &voice(),
            &options,
            OutputFormat::Json,
        );
        assert_eq!(messages.len(), 2);
        assert_eq!(messages[0].role, Role::System);
        let system = &messages[0].content;
        for expected in [
            "at most 64",
            "at most 120",
            "Simplified Chinese",
            "Brand: 山野咖啡",
            "Style guide: 亲切、简洁",
            "Prefer these words where they fit: 手冲、产地",
            "Never use these words: 廉价",
            "Do not add a signature",
            "{\"variants\": [{\"title\": \"…\", \"digest\": \"…\", \"body\": \"…\"}, …]}",
            "exactly 2 different versions",
        ] {
            assert!(
                system.contains(expected),
                "missing {expected:?} in {system}"
            );
        }
        assert_eq!(
            messages[1].content,
            "Brief: 秋季云南新豆上市\nTone: 温暖\nLength: about 800 characters of body\nInclude these keywords: 云南、新豆\nEnd with this call to action: 到店免费试饮"
        );
    }

    #[test]
    fn line_format_prompt_shows_the_labels() {
        let messages = build_prompt(
            ContentKind::Article,
            "brief",
            &BrandVoice::default(),
            &GenerationOptions::default(),
            OutputFormat::Lines,
        );
        assert!(messages[0].content.ends_with("TITLE: <the title on one line>\nDIGEST: <the summary on one line>\nBODY:\n<the body, paragraphs separated by blank lines>"));
        let moments = build_prompt(
            ContentKind::Moments,
            "brief",
            &BrandVoice::default(),
            &GenerationOptions {
                variants: 3,
                ..GenerationOptions::default()
            },
            OutputFormat::Lines,
        );
        assert!(moments[0].content.contains("TEXT:\n<the copy>"));
        assert!(moments[0].content.contains("Write 3 different versions"));
        let reply = build_prompt(
            ContentKind::MenuReply,
            "营业时间",
            &BrandVoice::default(),
            &GenerationOptions {
                language: "en".to_owned(),
                ..GenerationOptions::default()
            },
            OutputFormat::Json,
        );
        assert!(reply[0].content.contains("{\"reply\": \"…\"}"));
        assert!(reply[0].content.contains("Write in English."));
    }

    #[test]
    fn token_budget_by_kind_length_and_variants() {
        let one = GenerationOptions::default();
        assert_eq!(max_tokens(ContentKind::Article, &one), 1_730);
        let three = GenerationOptions {
            variants: 3,
            ..GenerationOptions::default()
        };
        assert_eq!(max_tokens(ContentKind::Moments, &three), 1_590);
        let short = GenerationOptions {
            length: Length::Short,
            ..GenerationOptions::default()
        };
        assert_eq!(max_tokens(ContentKind::Article, &short), 755);
    }

    #[test]
    fn variants_are_clamped() {
        let messages = build_prompt(
            ContentKind::Moments,
            "b",
            &BrandVoice::default(),
            &GenerationOptions {
                variants: 40,
                ..GenerationOptions::default()
            },
            OutputFormat::Json,
        );
        assert!(messages[0].content.contains("exactly 5 different versions"));
    }

    #[test]
    fn follow_up_appends_answer_and_correction() {
        let original = build_prompt(
            ContentKind::MenuReply,
            "b",
            &BrandVoice::default(),
            &GenerationOptions::default(),
            OutputFormat::Json,
        );
        let messages = follow_up_prompt(&original, "{\"reply\": \"最好的\"}", "rewrite");
        assert_eq!(messages.len(), 4);
        assert_eq!(messages[2].role, Role::Assistant);
        assert_eq!(
            messages[3],
            PromptMessage::new(Role::User, "rewrite".to_owned())
        );
    }
}
