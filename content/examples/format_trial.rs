//! A small tool for trying prompts and the parser against a real model by hand.
//!
//! - `format_trial prompt <article|moments|menu_reply> <json|lines> <language> <brief>` prints
//!   the chat messages as JSON, for feeding to any model runner;
//! - `format_trial parse <article|moments|menu_reply> <file>...` parses each file (one model
//!   answer each) and prints one line per file: `ok`, or the error.

use std::process::ExitCode;

use wxpilot_content::limits::{Draft, validate_draft};
use wxpilot_content::parse::{Generated, ParseOptions, parse_output};
use wxpilot_content::prompt::{
    BrandVoice, ContentKind, GenerationOptions, OutputFormat, build_prompt,
};

fn kind(name: &str) -> Option<ContentKind> {
    match name {
        "article" => Some(ContentKind::Article),
        "moments" => Some(ContentKind::Moments),
        "menu_reply" => Some(ContentKind::MenuReply),
        _ => None,
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["prompt", k, format, language, brief] => {
            let (Some(kind), format) = (kind(k), *format) else {
                return usage();
            };
            let format = if format == "lines" {
                OutputFormat::Lines
            } else {
                OutputFormat::Json
            };
            let options = GenerationOptions {
                language: (*language).to_owned(),
                ..GenerationOptions::default()
            };
            let messages = build_prompt(kind, brief, &BrandVoice::default(), &options, format);
            match serde_json::to_string_pretty(&messages) {
                Ok(json) => println!("{json}"),
                Err(error) => {
                    eprintln!("{error}");
                    return ExitCode::FAILURE;
                }
            }
            ExitCode::SUCCESS
        }
        ["parse", k, files @ ..] if !files.is_empty() => {
            let Some(kind) = kind(k) else {
                return usage();
            };
            let options = ParseOptions {
                truncate_overlong: true,
                plain_text_fallback: std::env::var_os("PLAIN_TEXT_FALLBACK").is_some(),
            };
            let mut passed = 0;
            for file in files {
                let raw = match std::fs::read_to_string(file) {
                    Ok(raw) => raw,
                    Err(error) => {
                        println!("{file}: unreadable: {error}");
                        continue;
                    }
                };
                let verdict = match parse_output(kind, &raw, options) {
                    Ok(parsed) => match parsed.items.into_iter().next().inspect(|item| {
                        if std::env::var_os("SHOW").is_some() {
                            println!("{}", serde_json::to_string(item).unwrap_or_default());
                        }
                    }) {
                        Some(Generated::Article(article)) => {
                            let draft = Draft {
                                articles: vec![article.into_article_draft("", "")],
                            };
                            validate_draft(&draft)
                                .map(|()| "ok".to_owned())
                                .unwrap_or_else(|e| e.to_string())
                        }
                        Some(_) => "ok".to_owned(),
                        None => "no item".to_owned(),
                    },
                    Err(error) => error.to_string(),
                };
                if verdict == "ok" {
                    passed += 1;
                }
                println!("{file}: {verdict}");
            }
            println!("{passed}/{} valid", files.len());
            ExitCode::SUCCESS
        }
        _ => usage(),
    }
}

fn usage() -> ExitCode {
    eprintln!(
        "usage: format_trial prompt <article|moments|menu_reply> <json|lines> <language> <brief>\n       format_trial parse <article|moments|menu_reply> <file>..."
    );
    ExitCode::FAILURE
}
