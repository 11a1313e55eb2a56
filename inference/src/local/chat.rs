//! Everything around the transformer that turns chat messages into tokens and tokens back
//! into text: the tokenizer (from GGUF metadata or a `tokenizer.json`), the chat template,
//! end-of-turn tokens, streaming decode that never splits a character, and stop strings.

use std::path::Path;

use candle_core::quantized::gguf_file;
use candle_core::quantized::tokenizer::TokenizerFromGguf;
use tokenizers::Tokenizer;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;

use super::missing_file;
use crate::types::{ChatMessage, InferenceError, Role};

/// How chat messages are laid out for the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatTemplate {
    /// `<|im_start|>role\n…<|im_end|>\n` (SmolLM2, Qwen2).
    ChatMl,
    /// `<|start_header_id|>role<|end_header_id|>\n\n…<|eot_id|>` (llama 3).
    Llama3,
}

impl ChatTemplate {
    /// Picks the template a GGUF file's `tokenizer.chat_template` uses; ChatML otherwise.
    pub fn detect(template_source: Option<&str>) -> Self {
        match template_source {
            Some(source) if source.contains("<|start_header_id|>") => Self::Llama3,
            _ => Self::ChatMl,
        }
    }

    /// The prompt text for `messages`, ending where the assistant's answer begins.
    pub fn render(self, messages: &[ChatMessage], bos: Option<&str>) -> String {
        let mut out = String::new();
        match self {
            Self::ChatMl => {
                for m in messages {
                    out.push_str("<|im_start|>");
                    out.push_str(role_name(m.role));
                    out.push('\n');
                    out.push_str(&m.content);
                    out.push_str("<|im_end|>\n");
                }
                out.push_str("<|im_start|>assistant\n");
            }
            Self::Llama3 => {
                out.push_str(bos.unwrap_or("<|begin_of_text|>"));
                for m in messages {
                    out.push_str("<|start_header_id|>");
                    out.push_str(role_name(m.role));
                    out.push_str("<|end_header_id|>\n\n");
                    out.push_str(m.content.trim());
                    out.push_str("<|eot_id|>");
                }
                out.push_str("<|start_header_id|>assistant<|end_header_id|>\n\n");
            }
        }
        out
    }

    /// The token text that ends an assistant turn.
    pub fn end_of_turn(self) -> &'static str {
        match self {
            Self::ChatMl => "<|im_end|>",
            Self::Llama3 => "<|eot_id|>",
        }
    }
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::System => "system",
        Role::User => "user",
        Role::Assistant => "assistant",
    }
}

/// The text side of a chat model.
pub struct ChatText {
    pub tokenizer: Tokenizer,
    pub template: ChatTemplate,
    /// Tokens that end generation (EOS and the template's end of turn).
    pub stop_ids: Vec<u32>,
    bos: Option<String>,
}

impl ChatText {
    /// Builds the tokenizer from `tokenizer_json` when given, else from the GGUF metadata
    /// (`tokenizer.ggml.*`, gpt2-style BPE), else from a `tokenizer.json` in `beside`
    /// (the GGUF file's folder) when the metadata has no tokenizer candle can build.
    pub fn load(
        content: &gguf_file::Content,
        tokenizer_json: Option<&Path>,
        beside: Option<&Path>,
    ) -> Result<Self, InferenceError> {
        let from_file = |path: &Path| {
            Tokenizer::from_file(path)
                .map_err(|e| InferenceError::Internal(format!("{}: {e}", path.display())))
        };
        let tokenizer = match tokenizer_json {
            Some(path) if !path.is_file() => return Err(missing_file(path)),
            Some(path) => from_file(path)?,
            None => match tokenizer_from_gguf(content) {
                Ok(tokenizer) => tokenizer,
                Err(error) => {
                    let json = beside.map(|dir| dir.join("tokenizer.json"));
                    match json {
                        Some(path) if path.is_file() => from_file(&path)?,
                        _ => return Err(error),
                    }
                }
            },
        };
        let template = ChatTemplate::detect(
            content
                .metadata
                .get("tokenizer.chat_template")
                .and_then(|v| v.to_string().ok())
                .map(String::as_str),
        );
        let mut stop_ids = Vec::new();
        if let Some(eos) = metadata_u32(content, "tokenizer.ggml.eos_token_id") {
            stop_ids.push(eos);
        }
        for text in [template.end_of_turn(), "<|endoftext|>"] {
            if let Some(id) = tokenizer.token_to_id(text)
                && !stop_ids.contains(&id)
            {
                stop_ids.push(id);
            }
        }
        let bos = metadata_u32(content, "tokenizer.ggml.bos_token_id")
            .and_then(|id| tokenizer.id_to_token(id));
        Ok(Self {
            tokenizer,
            template,
            stop_ids,
            bos,
        })
    }

    /// The prompt tokens for a chat.
    pub fn encode_chat(&self, messages: &[ChatMessage]) -> Result<Vec<u32>, InferenceError> {
        let prompt = self.template.render(messages, self.bos.as_deref());
        let encoding = self
            .tokenizer
            .encode(prompt, false)
            .map_err(|e| InferenceError::Internal(format!("tokenizer: {e}")))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// Text of `ids` without special tokens.
    pub fn decode(&self, ids: &[u32]) -> Result<String, InferenceError> {
        self.tokenizer
            .decode(ids, true)
            .map_err(|e| InferenceError::Internal(format!("tokenizer: {e}")))
    }
}

fn metadata_u32(content: &gguf_file::Content, key: &str) -> Option<u32> {
    let value = content.metadata.get(key)?;
    value
        .to_u32()
        .ok()
        .or_else(|| value.to_i32().ok().and_then(|v| u32::try_from(v).ok()))
        .or_else(|| value.to_u64().ok().and_then(|v| u32::try_from(v).ok()))
}

/// candle's GGUF tokenizer, with the pre-tokenizer corrected for the files it treats as
/// plain GPT-2: no leading space is added (it would change every chat prompt), and
/// SmolLM's digit splitting is kept.
fn tokenizer_from_gguf(content: &gguf_file::Content) -> Result<Tokenizer, InferenceError> {
    let mut tokenizer = Tokenizer::from_gguf(content)
        .map_err(|e| InferenceError::Internal(format!("tokenizer from GGUF metadata: {e}")))?;
    let pre = content
        .metadata
        .get("tokenizer.ggml.pre")
        .and_then(|v| v.to_string().ok())
        .map(String::as_str)
        .unwrap_or("gpt2");
    let byte_level = ByteLevel::new(false, true, true);
    match pre {
        "qwen2" | "llama3" | "llama-bpe" | "smaug-bpe" | "lfm2" => {}
        "smollm" => {
            tokenizer.with_pre_tokenizer(Some(Sequence::new(vec![
                Digits::new(true).into(),
                byte_level.into(),
            ])));
        }
        _ => {
            tokenizer.with_pre_tokenizer(Some(byte_level));
        }
    }
    Ok(tokenizer)
}

/// Turns tokens into text as they arrive, holding back bytes until they complete a
/// character (the method of text-generation-inference's `decode_token`).
#[derive(Debug, Default)]
pub struct IncrementalDecoder {
    ids: Vec<u32>,
    prefix_offset: usize,
    read_offset: usize,
}

impl IncrementalDecoder {
    /// Adds one token; returns the new complete text, possibly empty.
    pub fn push(&mut self, text: &ChatText, id: u32) -> Result<String, InferenceError> {
        self.ids.push(id);
        let prefix = text.decode(&self.ids[self.prefix_offset..self.read_offset])?;
        let full = text.decode(&self.ids[self.prefix_offset..])?;
        if full.len() > prefix.len() && !full.ends_with('\u{FFFD}') && full.starts_with(&prefix) {
            let new = full[prefix.len()..].to_owned();
            self.prefix_offset = self.read_offset;
            self.read_offset = self.ids.len();
            Ok(new)
        } else {
            Ok(String::new())
        }
    }

    /// Whatever complete text is still held back at the end; the bytes of a character
    /// cut off by the end of generation are dropped rather than sent as U+FFFD.
    pub fn flush(&mut self, text: &ChatText) -> Result<String, InferenceError> {
        let prefix = text.decode(&self.ids[self.prefix_offset..self.read_offset])?;
        let full = text.decode(&self.ids[self.prefix_offset..])?;
        self.prefix_offset = self.ids.len();
        self.read_offset = self.ids.len();
        let tail = full.get(prefix.len()..).unwrap_or_default();
        Ok(tail.trim_end_matches('\u{FFFD}').to_owned())
    }
}

/// What a [`StopScanner`] made of new text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scanned {
    /// Text that can go out now (it cannot be the start of a stop string).
    Emit(String),
    /// A stop string appeared: emit this, then finish.
    Stop(String),
}

/// Finds stop strings in streamed text, even when one is split across tokens, by holding
/// back any tail that could still grow into one.
#[derive(Debug, Default)]
pub struct StopScanner {
    stops: Vec<String>,
    held: String,
}

impl StopScanner {
    /// A scanner for these stop strings (empty ones are ignored).
    pub fn new(stops: &[String]) -> Self {
        Self {
            stops: stops.iter().filter(|s| !s.is_empty()).cloned().collect(),
            held: String::new(),
        }
    }

    /// Adds new text.
    pub fn push(&mut self, text: &str) -> Scanned {
        self.held.push_str(text);
        let first_stop = self
            .stops
            .iter()
            .filter_map(|s| self.held.find(s.as_str()))
            .min();
        if let Some(at) = first_stop {
            let before = self.held[..at].to_owned();
            self.held.clear();
            return Scanned::Stop(before);
        }
        let keep = self
            .stops
            .iter()
            .map(|s| longest_suffix_prefix(&self.held, s))
            .max()
            .unwrap_or(0);
        let cut = self.held.len() - keep;
        let out = self.held[..cut].to_owned();
        self.held.drain(..cut);
        Scanned::Emit(out)
    }

    /// The held-back tail, at the end of generation.
    pub fn finish(&mut self) -> String {
        std::mem::take(&mut self.held)
    }
}

/// Length of the longest tail of `text` that is a proper prefix of `stop`.
fn longest_suffix_prefix(text: &str, stop: &str) -> usize {
    stop.char_indices()
        .map(|(i, _)| i)
        .skip(1)
        .filter(|&len| text.ends_with(&stop[..len]))
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stops(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn chatml_renders_turns_and_opens_the_answer() {
        let prompt = ChatTemplate::ChatMl.render(
            &[ChatMessage::system("Be brief."), ChatMessage::user("Hi")],
            None,
        );
        assert_eq!(
            prompt,
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn llama3_template_is_detected_and_rendered() {
        let template = ChatTemplate::detect(Some("{{ '<|start_header_id|>' + role }}"));
        assert_eq!(template, ChatTemplate::Llama3);
        assert_eq!(
            ChatTemplate::detect(Some("<|im_start|>")),
            ChatTemplate::ChatMl
        );
        assert_eq!(
            template.render(&[ChatMessage::user(" Hi ")], None),
            "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
        );
    }

    #[test]
    fn stop_split_across_pushes_is_found_and_excluded() {
        let mut scanner = StopScanner::new(&stops(&["END"]));
        assert_eq!(scanner.push("abc E"), Scanned::Emit("abc ".into()));
        assert_eq!(scanner.push("N"), Scanned::Emit(String::new()));
        assert_eq!(scanner.push("Dxyz"), Scanned::Stop(String::new()));
    }

    #[test]
    fn held_text_that_is_not_a_stop_is_released() {
        let mut scanner = StopScanner::new(&stops(&["END", "\n\n"]));
        assert_eq!(scanner.push("say EN"), Scanned::Emit("say ".into()));
        assert_eq!(scanner.push("ough\n"), Scanned::Emit("ENough".into()));
        assert_eq!(scanner.finish(), "\n");
    }

    #[test]
    fn earliest_stop_wins_and_text_before_it_is_kept() {
        let mut scanner = StopScanner::new(&stops(&["two", "one"]));
        assert_eq!(scanner.push("zero one two"), Scanned::Stop("zero ".into()));
    }

    #[test]
    fn multibyte_stops_hold_on_character_boundaries() {
        let mut scanner = StopScanner::new(&stops(&["你好吗"]));
        assert_eq!(scanner.push("说你好"), Scanned::Emit("说".into()));
        assert_eq!(scanner.push("吗"), Scanned::Stop(String::new()));
        assert_eq!(longest_suffix_prefix("ab你", "你好"), "你".len());
    }

    #[test]
    fn no_stops_emit_everything() {
        let mut scanner = StopScanner::new(&stops(&[""]));
        assert_eq!(scanner.push("anything"), Scanned::Emit("anything".into()));
        assert_eq!(scanner.finish(), "");
    }
}
